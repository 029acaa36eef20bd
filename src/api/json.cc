#include "src/api/json.h"

#include <cstdint>
#include <limits>
#include <map>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

namespace nixmox::api {
namespace {

using nlohmann::json;

// Each struct lists its fields once, in Visit(); the encoder, decoder and
// describer below are visitors, so the JSON names cannot drift between them.
// clang-format off
#define NIXMOX_API_STRUCTS(X) \
  X(Condition) \
  X(LocalObjectReference) \
  X(CredentialsRef) \
  X(CaRef) \
  X(ClusterTls) \
  X(ProxmoxClusterSpec) \
  X(ClusterNodeStatus) \
  X(ProxmoxClusterStatus) \
  X(SecretKeyRef) \
  X(NixOptions) \
  X(ResourceRequirements) \
  X(BuilderSpec) \
  X(RolloutSpec) \
  X(NixImageSpec) \
  X(ImageGeneration) \
  X(RolloutStatus) \
  X(NixImageStatus) \
  X(CpuSpec) \
  X(RootDisk) \
  X(ExtraDisk) \
  X(NetworkInterface) \
  X(IpConfig) \
  X(CloudInit) \
  X(Reachability) \
  X(ProxmoxVmSpec) \
  X(VmAddress) \
  X(TaskRef) \
  X(ProxmoxVmStatus)
// clang-format on

#define NIXMOX_DECLARE_VISIT(T) \
  template <typename V>         \
  void Visit(V& v, T& t);
NIXMOX_API_STRUCTS(NIXMOX_DECLARE_VISIT)
#undef NIXMOX_DECLARE_VISIT

template <typename T>
struct IsOptional : std::false_type {};
template <typename T>
struct IsOptional<std::optional<T>> : std::true_type {};

template <typename T>
struct IsVector : std::false_type {};
template <typename T>
struct IsVector<std::vector<T>> : std::true_type {};

template <typename T>
struct IsStringMap : std::false_type {};
template <typename T>
struct IsStringMap<std::map<std::string, T>> : std::true_type {};

template <typename T>
constexpr bool kIsInteger = std::is_integral_v<T> && !std::is_same_v<T, bool>;

std::string Join(const std::string& path, std::string_view key) {
  return path.empty() ? std::string(key) : path + "." + std::string(key);
}

// ---------------------------------------------------------------------------
// Encoding.

class Encoder {
 public:
  template <typename T>
  void operator()(const char* key, T& value) {
    json j;
    if (Encode(value, &j)) out_[key] = std::move(j);
  }
  json Take() { return std::move(out_); }

  // Writes `value` to `*j`; false when it is empty and left out.
  template <typename T>
  static bool Encode(const T& value, json* j) {
    if constexpr (std::is_same_v<T, std::string>) {
      if (value.empty()) return false;
      *j = value;
    } else if constexpr (std::is_same_v<T, bool> || kIsInteger<T> || std::is_floating_point_v<T>) {
      *j = value;
    } else if constexpr (std::is_enum_v<T>) {
      *j = std::string(EnumName(value));
    } else if constexpr (std::is_same_v<T, Quantity>) {
      if (value.value.empty()) return false;
      *j = value.value;
    } else if constexpr (IsOptional<T>::value) {
      if (!value.has_value()) return false;
      // A set optional is written even when its value is empty.
      if (!Encode(*value, j)) *j = EmptyOf<typename T::value_type>();
    } else if constexpr (IsVector<T>::value) {
      if (value.empty()) return false;
      *j = json::array();
      for (const auto& item : value) {
        json e;
        if (!Encode(item, &e)) e = EmptyOf<typename T::value_type>();
        j->push_back(std::move(e));
      }
    } else if constexpr (IsStringMap<T>::value) {
      if (value.empty()) return false;
      *j = json::object();
      for (const auto& [k, item] : value) {
        json e;
        if (!Encode(item, &e)) e = EmptyOf<typename T::mapped_type>();
        (*j)[k] = std::move(e);
      }
    } else {
      Encoder sub;
      // Visit takes a mutable reference so that one field list serves the
      // decoder too; the encoder only reads.
      Visit(sub, const_cast<T&>(value));
      json obj = sub.Take();
      if (obj.empty()) return false;
      *j = std::move(obj);
    }
    return true;
  }

 private:
  template <typename T>
  static json EmptyOf() {
    if constexpr (std::is_same_v<T, std::string> || std::is_same_v<T, Quantity>) {
      return "";
    } else if constexpr (IsVector<T>::value) {
      return json::array();
    } else {
      return json::object();
    }
  }

  json out_ = json::object();
};

// ---------------------------------------------------------------------------
// Decoding.

class Decoder {
 public:
  Decoder(const json& obj, std::string path, std::vector<FieldError>* errors)
      : obj_(obj), path_(std::move(path)), errors_(errors) {}

  template <typename T>
  void operator()(const char* key, T& value) {
    auto it = obj_.find(key);
    if (it == obj_.end() || it->is_null()) return;
    Decode(*it, Join(path_, key), value, errors_);
  }

  template <typename T>
  static void Decode(const json& j, const std::string& path, T& out,
                     std::vector<FieldError>* errors) {
    auto fail = [&](std::string message) { errors->push_back({path, std::move(message)}); };
    if constexpr (std::is_same_v<T, std::string>) {
      if (!j.is_string()) return fail("must be a string");
      out = j.get<std::string>();
    } else if constexpr (std::is_same_v<T, bool>) {
      if (!j.is_boolean()) return fail("must be a boolean");
      out = j.get<bool>();
    } else if constexpr (kIsInteger<T>) {
      if (!j.is_number_integer()) return fail("must be an integer");
      if (j.is_number_unsigned()) {
        auto u = j.get<std::uint64_t>();
        if (u > static_cast<std::uint64_t>(std::numeric_limits<T>::max())) {
          return fail("out of range");
        }
        out = static_cast<T>(u);
      } else {
        auto s = j.get<std::int64_t>();
        if (s < std::numeric_limits<T>::min() || s > std::numeric_limits<T>::max()) {
          return fail("out of range");
        }
        out = static_cast<T>(s);
      }
    } else if constexpr (std::is_floating_point_v<T>) {
      if (!j.is_number()) return fail("must be a number");
      out = j.get<T>();
    } else if constexpr (std::is_enum_v<T>) {
      std::string supported;
      for (auto name : EnumInfo<T>::kNames) {
        supported += supported.empty() ? "" : ", ";
        supported += "\"" + std::string(name) + "\"";
      }
      if (!j.is_string()) return fail("must be one of " + supported);
      auto parsed = ParseEnum<T>(j.get<std::string>());
      if (!parsed) {
        return fail("unsupported value \"" + j.get<std::string>() + "\": must be one of " +
                    supported);
      }
      out = *parsed;
    } else if constexpr (std::is_same_v<T, Quantity>) {
      if (j.is_string()) {
        out.value = j.get<std::string>();
      } else if (j.is_number_integer()) {
        out.value = j.dump();
      } else {
        return fail("must be a quantity (a string or an integer)");
      }
    } else if constexpr (IsOptional<T>::value) {
      typename T::value_type value{};
      std::size_t before = errors->size();
      Decode(j, path, value, errors);
      if (errors->size() == before) out = std::move(value);
    } else if constexpr (IsVector<T>::value) {
      if (!j.is_array()) return fail("must be a list");
      out.clear();
      for (std::size_t i = 0; i < j.size(); ++i) {
        typename T::value_type item{};
        Decode(j[i], path + "[" + std::to_string(i) + "]", item, errors);
        out.push_back(std::move(item));
      }
    } else if constexpr (IsStringMap<T>::value) {
      if (!j.is_object()) return fail("must be an object");
      out.clear();
      for (const auto& [k, v] : j.items()) {
        typename T::mapped_type item{};
        Decode(v, path + "[" + k + "]", item, errors);
        out.emplace(k, std::move(item));
      }
    } else {
      if (!j.is_object()) return fail("must be an object");
      Decoder sub(j, path, errors);
      Visit(sub, out);
    }
  }

 private:
  const json& obj_;
  std::string path_;
  std::vector<FieldError>* errors_;
};

// ---------------------------------------------------------------------------
// Describing.

class Describer {
 public:
  Describer(std::string path, std::vector<FieldInfo>* out) : path_(std::move(path)), out_(out) {}

  template <typename T>
  void operator()(const char* key, T&) {
    Describe<T>(Join(path_, key), out_);
  }

  template <typename T>
  static void Describe(const std::string& path, std::vector<FieldInfo>* out) {
    if constexpr (std::is_same_v<T, std::string>) {
      out->push_back({path, JsonType::kString, {}});
    } else if constexpr (std::is_same_v<T, bool>) {
      out->push_back({path, JsonType::kBoolean, {}});
    } else if constexpr (kIsInteger<T>) {
      out->push_back({path, JsonType::kInteger, {}});
    } else if constexpr (std::is_floating_point_v<T>) {
      out->push_back({path, JsonType::kNumber, {}});
    } else if constexpr (std::is_enum_v<T>) {
      FieldInfo info{path, JsonType::kString, {}};
      for (auto name : EnumInfo<T>::kNames) info.enum_values.emplace_back(name);
      out->push_back(std::move(info));
    } else if constexpr (std::is_same_v<T, Quantity>) {
      out->push_back({path, JsonType::kIntOrString, {}});
    } else if constexpr (IsOptional<T>::value) {
      Describe<typename T::value_type>(path, out);
    } else if constexpr (IsVector<T>::value) {
      out->push_back({path, JsonType::kArray, {}});
      Describe<typename T::value_type>(path + "[]", out);
    } else if constexpr (IsStringMap<T>::value) {
      out->push_back({path, JsonType::kObject, {}});
      Describe<typename T::mapped_type>(path + "{}", out);
    } else {
      out->push_back({path, JsonType::kObject, {}});
      T sample{};
      Describer sub(path, out);
      Visit(sub, sample);
    }
  }

 private:
  std::string path_;
  std::vector<FieldInfo>* out_;
};

// ---------------------------------------------------------------------------
// The field lists. JSON names are the CRD's.

template <typename V>
void Visit(V& v, Condition& t) {
  v("type", t.type);
  v("status", t.status);
  v("reason", t.reason);
  v("message", t.message);
  v("lastTransitionTime", t.last_transition_time);
  v("observedGeneration", t.observed_generation);
}

template <typename V>
void Visit(V& v, LocalObjectReference& t) {
  v("name", t.name);
}

template <typename V>
void Visit(V& v, CredentialsRef& t) {
  v("name", t.name);
  v("tokenIDKey", t.token_id_key);
  v("tokenSecretKey", t.token_secret_key);
}

template <typename V>
void Visit(V& v, CaRef& t) {
  v("kind", t.kind);
  v("name", t.name);
  v("key", t.key);
}

template <typename V>
void Visit(V& v, ClusterTls& t) {
  v("caBundle", t.ca_bundle);
  v("caRef", t.ca_ref);
  v("insecureSkipTLSVerify", t.insecure_skip_tls_verify);
}

template <typename V>
void Visit(V& v, ProxmoxClusterSpec& t) {
  v("endpoint", t.endpoint);
  v("credentialsRef", t.credentials_ref);
  v("tls", t.tls);
  v("allowedNodes", t.allowed_nodes);
  v("defaultStorage", t.default_storage);
  v("imageStorage", t.image_storage);
  v("inventoryPeriodSeconds", t.inventory_period_seconds);
  v("maxConcurrentRequests", t.max_concurrent_requests);
  v("maxCreatesPerStorage", t.max_creates_per_storage);
  v("maxRequestsPerSecond", t.max_requests_per_second);
}

template <typename V>
void Visit(V& v, ClusterNodeStatus& t) {
  v("name", t.name);
  v("status", t.status);
  v("cpu", t.cpu);
  v("maxCpu", t.max_cpu);
  v("memory", t.memory);
  v("maxMemory", t.max_memory);
}

template <typename V>
void Visit(V& v, ProxmoxClusterStatus& t) {
  v("conditions", t.conditions);
  v("observedGeneration", t.observed_generation);
  v("version", t.version);
  v("nodes", t.nodes);
  v("ready", t.ready);
  v("onlineNodes", t.online_nodes);
}

template <typename V>
void Visit(V& v, SecretKeyRef& t) {
  v("name", t.name);
  v("key", t.key);
}

template <typename V>
void Visit(V& v, NixOptions& t) {
  v("substituters", t.substituters);
  v("trustedPublicKeys", t.trusted_public_keys);
  v("extraOptions", t.extra_options);
  v("accessTokensSecretRef", t.access_tokens_secret_ref);
}

template <typename V>
void Visit(V& v, ResourceRequirements& t) {
  v("requests", t.requests);
  v("limits", t.limits);
}

template <typename V>
void Visit(V& v, BuilderSpec& t) {
  v("image", t.image);
  v("resources", t.resources);
  v("nodeSelector", t.node_selector);
  v("timeoutSeconds", t.timeout_seconds);
  v("kvm", t.kvm);
}

template <typename V>
void Visit(V& v, RolloutSpec& t) {
  v("maxUnavailable", t.max_unavailable);
}

template <typename V>
void Visit(V& v, NixImageSpec& t) {
  v("flake", t.flake);
  v("attribute", t.attribute);
  v("format", t.format);
  v("clusterRef", t.cluster_ref);
  v("storage", t.storage);
  v("nix", t.nix);
  v("builder", t.builder);
  v("refreshIntervalSeconds", t.refresh_interval_seconds);
  v("generations", t.generations);
  v("rollout", t.rollout);
}

template <typename V>
void Visit(V& v, ImageGeneration& t) {
  v("storePath", t.store_path);
  v("narHash", t.nar_hash);
  v("volumeID", t.volume_id);
  v("builtAt", t.built_at);
}

template <typename V>
void Visit(V& v, RolloutStatus& t) {
  v("updated", t.updated);
  v("total", t.total);
}

template <typename V>
void Visit(V& v, NixImageStatus& t) {
  v("phase", t.phase);
  v("storePath", t.store_path);
  v("narHash", t.nar_hash);
  v("size", t.size);
  v("volumeID", t.volume_id);
  v("builtAt", t.built_at);
  v("flakeRevision", t.flake_revision);
  v("jobName", t.job_name);
  v("buildKey", t.build_key);
  v("progress", t.progress);
  v("checkedAt", t.checked_at);
  v("failedAttempts", t.failed_attempts);
  v("generations", t.generations);
  v("conditions", t.conditions);
  v("observedGeneration", t.observed_generation);
  v("rollout", t.rollout);
}

template <typename V>
void Visit(V& v, CpuSpec& t) {
  v("cores", t.cores);
  v("sockets", t.sockets);
  v("type", t.type);
}

template <typename V>
void Visit(V& v, RootDisk& t) {
  v("slot", t.slot);
  v("storage", t.storage);
  v("sizeGiB", t.size_gib);
}

template <typename V>
void Visit(V& v, ExtraDisk& t) {
  v("slot", t.slot);
  v("storage", t.storage);
  v("sizeGiB", t.size_gib);
}

template <typename V>
void Visit(V& v, NetworkInterface& t) {
  v("model", t.model);
  v("bridge", t.bridge);
  v("vlan", t.vlan);
  v("mac", t.mac);
}

template <typename V>
void Visit(V& v, IpConfig& t) {
  v("ipv4", t.ipv4);
  v("gateway4", t.gateway4);
  v("ipv6", t.ipv6);
  v("gateway6", t.gateway6);
}

template <typename V>
void Visit(V& v, CloudInit& t) {
  v("user", t.user);
  v("sshKeys", t.ssh_keys);
  v("ipConfig", t.ip_config);
  v("nameservers", t.nameservers);
  v("searchDomain", t.search_domain);
}

template <typename V>
void Visit(V& v, Reachability& t) {
  v("addressFamily", t.address_family);
  v("probePort", t.probe_port);
  v("timeoutSeconds", t.timeout_seconds);
}

template <typename V>
void Visit(V& v, ProxmoxVmSpec& t) {
  v("clusterRef", t.cluster_ref);
  v("node", t.node);
  v("vmid", t.vmid);
  v("imageRef", t.image_ref);
  v("sourceVolume", t.source_volume);
  v("cpu", t.cpu);
  v("memoryMiB", t.memory_mib);
  v("rootDisk", t.root_disk);
  v("disks", t.disks);
  v("networks", t.networks);
  v("cloudInit", t.cloud_init);
  v("tags", t.tags);
  v("powerState", t.power_state);
  v("protected", t.protection);
  v("deletionPolicy", t.deletion_policy);
  v("updatePolicy", t.update_policy);
  v("reachability", t.reachability);
}

template <typename V>
void Visit(V& v, VmAddress& t) {
  v("address", t.address);
  v("family", t.family);
  v("scope", t.scope);
  v("interface", t.interface_name);
  v("reachable", t.reachable);
}

template <typename V>
void Visit(V& v, TaskRef& t) {
  v("upid", t.upid);
  v("message", t.message);
}

template <typename V>
void Visit(V& v, ProxmoxVmStatus& t) {
  v("phase", t.phase);
  v("node", t.node);
  v("vmid", t.vmid);
  v("imageStorePath", t.image_store_path);
  v("ipAddresses", t.ip_addresses);
  v("primaryIP", t.primary_ip);
  v("conditions", t.conditions);
  v("observedGeneration", t.observed_generation);
  v("lastTask", t.last_task);
}

// ---------------------------------------------------------------------------
// Whole objects.

template <typename T>
json EncodeObject(const json& metadata, std::string_view kind, const T& spec_and_status) {
  json out = json::object();
  out["apiVersion"] = kApiVersion;
  out["kind"] = kind;
  out["metadata"] = metadata.is_object() ? metadata : json::object();
  json j;
  out["spec"] = Encoder::Encode(spec_and_status.spec, &j) ? j : json::object();
  out["status"] = Encoder::Encode(spec_and_status.status, &j) ? j : json::object();
  return out;
}

template <typename T>
json EncodeStatus(const T& status) {
  json j;
  return Encoder::Encode(status, &j) ? j : json::object();
}

template <typename T>
Result<T> DecodeObject(const json& in, std::string_view kind) {
  if (!in.is_object()) return InvalidError(std::string(kind) + ": not a JSON object");
  std::vector<FieldError> errors;
  auto check = [&](const char* key, std::string_view want) {
    auto it = in.find(key);
    if (it == in.end() || it->is_null()) return;
    if (!it->is_string() || it->get<std::string>() != want) {
      errors.push_back({key, "must be \"" + std::string(want) + "\""});
    }
  };
  check("apiVersion", kApiVersion);
  check("kind", kind);
  T out;
  if (auto it = in.find("metadata"); it != in.end() && !it->is_null()) {
    if (it->is_object()) {
      out.metadata = *it;
    } else {
      errors.push_back({"metadata", "must be an object"});
    }
  }
  Decoder top(in, "", &errors);
  top("spec", out.spec);
  top("status", out.status);
  if (!errors.empty()) {
    Status s = InvalidError("invalid " + std::string(kind));
    s.WithFieldErrors(std::move(errors));
    return s;
  }
  return out;
}

template <typename Spec, typename StatusT>
std::vector<FieldInfo> DescribeKind() {
  std::vector<FieldInfo> out;
  Describer::Describe<Spec>("spec", &out);
  Describer::Describe<StatusT>("status", &out);
  return out;
}

}  // namespace

const KindInfo& InfoFor(Kind kind) {
  static const KindInfo kCluster{"ProxmoxCluster", "proxmoxclusters", "proxmoxcluster"};
  static const KindInfo kImage{"NixImage", "niximages", "niximage"};
  static const KindInfo kVm{"ProxmoxVM", "proxmoxvms", "proxmoxvm"};
  switch (kind) {
    case Kind::kProxmoxCluster:
      return kCluster;
    case Kind::kNixImage:
      return kImage;
    case Kind::kProxmoxVm:
      return kVm;
  }
  return kVm;
}

json ToJson(const ProxmoxCluster& obj) {
  return EncodeObject(obj.metadata, InfoFor(Kind::kProxmoxCluster).kind, obj);
}
json ToJson(const NixImage& obj) {
  return EncodeObject(obj.metadata, InfoFor(Kind::kNixImage).kind, obj);
}
json ToJson(const ProxmoxVm& obj) {
  return EncodeObject(obj.metadata, InfoFor(Kind::kProxmoxVm).kind, obj);
}
json ToJson(const ProxmoxClusterStatus& status) { return EncodeStatus(status); }
json ToJson(const NixImageStatus& status) { return EncodeStatus(status); }
json ToJson(const ProxmoxVmStatus& status) { return EncodeStatus(status); }

Result<ProxmoxCluster> ProxmoxClusterFromJson(const json& obj) {
  return DecodeObject<ProxmoxCluster>(obj, InfoFor(Kind::kProxmoxCluster).kind);
}
Result<NixImage> NixImageFromJson(const json& obj) {
  return DecodeObject<NixImage>(obj, InfoFor(Kind::kNixImage).kind);
}
Result<ProxmoxVm> ProxmoxVmFromJson(const json& obj) {
  return DecodeObject<ProxmoxVm>(obj, InfoFor(Kind::kProxmoxVm).kind);
}

std::string_view JsonTypeName(JsonType type) {
  switch (type) {
    case JsonType::kString:
      return "string";
    case JsonType::kInteger:
      return "integer";
    case JsonType::kNumber:
      return "number";
    case JsonType::kBoolean:
      return "boolean";
    case JsonType::kObject:
      return "object";
    case JsonType::kArray:
      return "array";
    case JsonType::kIntOrString:
      return "int-or-string";
  }
  return "unknown";
}

std::vector<FieldInfo> DescribeFields(Kind kind) {
  switch (kind) {
    case Kind::kProxmoxCluster:
      return DescribeKind<ProxmoxClusterSpec, ProxmoxClusterStatus>();
    case Kind::kNixImage:
      return DescribeKind<NixImageSpec, NixImageStatus>();
    case Kind::kProxmoxVm:
      return DescribeKind<ProxmoxVmSpec, ProxmoxVmStatus>();
  }
  return {};
}

}  // namespace nixmox::api
