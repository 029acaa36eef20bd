#include "src/controllers/cluster_controller.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <array>
#include <functional>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <utility>

#include "src/api/json.h"
#include "src/api/reasons.h"
#include "src/api/validation.h"
#include "src/controllers/resources.h"
#include "src/kube/conditions.h"
#include "src/kube/config.h"
#include "src/kube/object.h"

namespace nixmox::controllers {
namespace {

using nlohmann::json;
using std::chrono::milliseconds;

// How soon to look again when a referenced Secret or ConfigMap is missing
// (its creation also enqueues the cluster through ClusterKeysForReference).
constexpr milliseconds kMissingReferenceRetry = std::chrono::seconds(30);
// How often a deleted cluster checks whether its ProxmoxVMs are gone.
constexpr milliseconds kDeletionPoll = std::chrono::seconds(10);
constexpr milliseconds kMinRequeue = std::chrono::seconds(1);

kube::Condition MakeCondition(std::string_view type, bool ok, std::string_view reason,
                              std::string message, std::int64_t generation) {
  kube::Condition c;
  c.type = std::string(type);
  c.status = std::string(ok ? kube::kConditionTrue : kube::kConditionFalse);
  c.reason = std::string(reason);
  c.message = std::move(message);
  c.observed_generation = generation;
  return c;
}

// What one pass found out; Report writes it to status.
struct Observation {
  std::optional<kube::Condition> connected;          // unset: not looked at this pass
  kube::Condition ready;                             // always set
  std::optional<kube::Condition> image_storage;      // unset: no inventory this pass
  std::optional<api::ProxmoxClusterStatus> summary;  // version, nodes, onlineNodes
  Status error;  // returned once status is written (the controller backs off)
  milliseconds requeue_after{0};
};

// Connected and Ready both False for the same reason.
Observation NotConnected(std::string_view reason, std::string message, std::int64_t generation) {
  Observation seen;
  seen.connected = MakeCondition(api::condition::kConnected, false, reason, message, generation);
  seen.ready = MakeCondition(api::condition::kReady, false, reason, std::move(message), generation);
  return seen;
}

bool IsDeleting(const kube::Object& object) {
  return !kube::StringAt(object, {"metadata", "deletionTimestamp"}).empty();
}

std::vector<std::string> Finalizers(const kube::Object& object) {
  std::vector<std::string> out;
  auto md = object.find("metadata");
  if (md == object.end() || !md->is_object()) return out;
  auto list = md->find("finalizers");
  if (list == md->end() || !list->is_array()) return out;
  for (const json& f : *list) {
    if (f.is_string()) out.push_back(f.get<std::string>());
  }
  return out;
}

bool HasFinalizer(const kube::Object& object) {
  std::vector<std::string> list = Finalizers(object);
  return std::find(list.begin(), list.end(), kClusterFinalizer) != list.end();
}

std::string JoinFieldErrors(const Status& status) {
  if (status.field_errors().empty()) return status.message();
  std::string out;
  for (const FieldError& e : status.field_errors()) {
    if (!out.empty()) out += "; ";
    out += e.field + ": " + e.message;
  }
  return out;
}

// The decoded cluster, or kInvalid carrying every decoding or validation error.
Result<api::ProxmoxCluster> DecodeValid(const kube::Object& object) {
  ASSIGN_OR_RETURN(api::ProxmoxCluster cluster, api::ProxmoxClusterFromJson(object));
  RETURN_IF_ERROR(api::ToStatus(api::Validate(cluster.spec)));
  return cluster;
}

std::string Trimmed(std::string s) {
  constexpr std::string_view kSpace = " \t\r\n";
  s.erase(s.find_last_not_of(kSpace) + 1);
  s.erase(0, s.find_first_not_of(kSpace));
  return s;
}

// One value of a Secret (base64 in .data) or a ConfigMap (plain in .data).
// NotFound, naming the object and key but never a value, when it is missing
// or empty; other read errors pass through.
Result<std::string> ReadKey(kube::Reader& reader, api::CaSourceKind kind, const std::string& ns,
                            const std::string& name, const std::string& key) {
  const bool secret = kind == api::CaSourceKind::kSecret;
  const std::string what = std::string(api::EnumName(kind)) + " \"" + name + "\"";
  auto object =
      reader.Get(secret ? kube::resources::Secrets() : kube::resources::ConfigMaps(), ns, name);
  if (!object.ok()) {
    if (object.status().code() == Code::kNotFound) return NotFoundError(what + " not found");
    return Status(object.status()).Annotate("reading " + what);
  }
  const std::string raw = kube::StringAt(*object, {"data", key});
  if (raw.empty()) return NotFoundError(what + " has no key \"" + key + "\"");
  if (!secret) return raw;
  auto decoded = kube::Base64Decode(raw);
  if (!decoded.ok()) return NotFoundError(what + " key \"" + key + "\" is not base64");
  return std::move(decoded).value();
}

struct Credentials {
  proxmox::ApiToken token;
  http::TlsConfig tls;
};

Result<proxmox::ApiToken> ReadToken(kube::Reader& reader, const std::string& ns,
                                    const api::CredentialsRef& ref) {
  // Values written from files often end in a newline; Proxmox ids and UUIDs never do.
  ASSIGN_OR_RETURN(std::string id,
                   ReadKey(reader, api::CaSourceKind::kSecret, ns, ref.name, ref.token_id_key));
  ASSIGN_OR_RETURN(std::string secret,
                   ReadKey(reader, api::CaSourceKind::kSecret, ns, ref.name, ref.token_secret_key));
  id = Trimmed(std::move(id));
  secret = Trimmed(std::move(secret));
  if (id.empty() || secret.empty()) {
    return NotFoundError("Secret \"" + ref.name + "\" has an empty \"" +
                         (id.empty() ? ref.token_id_key : ref.token_secret_key) + "\"");
  }
  return proxmox::ApiToken(std::move(id), std::move(secret));
}

Result<http::TlsConfig> ReadTls(kube::Reader& reader, const std::string& ns,
                                const api::ClusterTls& spec) {
  http::TlsConfig tls;
  tls.insecure_skip_verify = spec.insecure_skip_tls_verify;
  tls.ca_pem = spec.ca_bundle;
  if (spec.ca_ref) {
    ASSIGN_OR_RETURN(tls.ca_pem,
                     ReadKey(reader, spec.ca_ref->kind, ns, spec.ca_ref->name, spec.ca_ref->key));
  }
  return tls;
}

// The reason a failed connection or list reports. The HTTP client reports a
// failed handshake or an untrusted certificate as kRetryable ("Error in SSL
// handshake") and an unusable CA bundle as kInvalid ("... holds no PEM
// certificate"), so TLS problems are told apart by their text.
std::string_view FailureReason(const Status& status) {
  if (status.code() == Code::kUnauthorized) return api::reason::kAuthenticationFailed;
  if (status.code() == Code::kForbidden) return api::reason::kPermissionDenied;
  for (std::string_view marker : {"certificate", "SSL", "TLS"}) {
    if (status.message().find(marker) != std::string::npos) return api::reason::kTlsError;
  }
  return api::reason::kUnreachable;
}

// Connected and Ready False for a failed connection or list; the error makes
// the controller retry with its per-key backoff.
Observation Failed(const std::string& what, const Status& status, const proxmox::ApiToken& token,
                   std::int64_t generation) {
  const std::string_view reason = FailureReason(status);
  const std::string message = token.Redact(what + ": " + status.message());
  Observation seen = NotConnected(reason, message, generation);
  seen.error = RetryableError(std::string(reason) + ": " + message);
  return seen;
}

// What a runtime is built from, hashed: the endpoint, the token (its secret
// included), the TLS trust and the limits the client and the runtime enforce.
// Kept in memory only. Other spec fields (allowed nodes, storages, period)
// are read from the object on every pass, so editing them keeps the runtime
// with its inventory, VMID holds and storage slots.
std::size_t Fingerprint(const api::ProxmoxClusterSpec& spec, const Credentials& credentials,
                        int max_in_flight) {
  std::string text;
  for (const std::string& part :
       {spec.endpoint, credentials.token.AuthorizationHeader(), credentials.tls.ca_pem,
        std::to_string(credentials.tls.insecure_skip_verify), std::to_string(max_in_flight),
        std::to_string(spec.max_creates_per_storage),
        std::to_string(spec.max_requests_per_second)}) {
    text += part;
    text += '\n';
  }
  return std::hash<std::string>{}(text);
}

api::NodeState NodeStateOf(const std::string& status) {
  if (status == "online") return api::NodeState::kOnline;
  if (status == "offline") return api::NodeState::kOffline;
  return api::NodeState::kUnknown;
}

// The allowed nodes as the inventory shows them; all nodes, by name, when
// none are listed. An allowed node Proxmox does not know is Unknown.
std::vector<api::ClusterNodeStatus> NodeStatuses(const Inventory& inventory,
                                                 const api::ProxmoxClusterSpec& spec) {
  std::map<std::string, const proxmox::ClusterResource*> by_name;
  for (const proxmox::ClusterResource& node : inventory.nodes) by_name[node.node] = &node;
  std::vector<std::string> names = spec.allowed_nodes;
  if (names.empty()) {
    for (const auto& entry : by_name) names.push_back(entry.first);
  }
  std::vector<api::ClusterNodeStatus> out;
  for (const std::string& name : names) {
    api::ClusterNodeStatus status;
    status.name = name;
    if (auto it = by_name.find(name); it != by_name.end()) {
      const proxmox::ClusterResource& node = *it->second;
      status.status = NodeStateOf(node.status);
      status.cpu = node.cpu;
      status.max_cpu = static_cast<std::int32_t>(node.maxcpu);
      status.memory = static_cast<std::int64_t>(node.mem);
      status.max_memory = static_cast<std::int64_t>(node.maxmem);
    }
    out.push_back(std::move(status));
  }
  return out;
}

std::vector<std::string> SplitContent(const std::string& content) {
  std::vector<std::string> out;
  std::size_t start = 0;
  while (start <= content.size()) {
    std::size_t end = content.find(',', start);
    if (end == std::string::npos) end = content.size();
    if (end > start) out.push_back(content.substr(start, end - start));
    start = end + 1;
  }
  return out;
}

// ImageStorageReady: the NixImage uploads need spec.imageStorage on the
// allowed nodes with content "import". Ready does not depend on it: VMs from
// volumes already in Proxmox work without it.
kube::Condition ImageStorageCondition(const Inventory& inventory,
                                      const api::ProxmoxClusterSpec& spec,
                                      std::int64_t generation) {
  const std::string& name = spec.image_storage;
  const auto allowed = [&](const std::string& node) {
    return spec.allowed_nodes.empty() ||
           std::find(spec.allowed_nodes.begin(), spec.allowed_nodes.end(), node) !=
               spec.allowed_nodes.end();
  };
  std::vector<const proxmox::ClusterResource*> entries;
  for (const proxmox::ClusterResource& storage : inventory.storages) {
    if (storage.storage == name && allowed(storage.node)) entries.push_back(&storage);
  }
  constexpr std::string_view kStillWorks =
      " Ready is not affected: VMs from volumes already in Proxmox still work; NixImage uploads "
      "to this storage fail until it is fixed.";
  if (entries.empty()) {
    return MakeCondition(api::condition::kImageStorageReady, false, api::reason::kStorageNotFound,
                         "storage \"" + name +
                             "\" is not on any allowed node; add it in Proxmox (Datacenter > "
                             "Storage, with content \"import\") or set spec.imageStorage to one "
                             "that is." +
                             std::string(kStillWorks),
                         generation);
  }
  const proxmox::ClusterResource& storage = *entries.front();
  std::vector<std::string> content = SplitContent(storage.content);
  if (std::find(content.begin(), content.end(), "import") == content.end()) {
    content.push_back("import");
    std::string wanted;
    for (const std::string& c : content) wanted += (wanted.empty() ? "" : ",") + c;
    return MakeCondition(
        api::condition::kImageStorageReady, false, api::reason::kStorageContentMissing,
        "storage \"" + name + "\" (" + storage.plugintype + ") does not allow content \"import\"" +
            " (it has \"" + storage.content + "\"); enable it with `pvesm set " + name +
            " --content " + wanted +
            "` (file-based storages only, such as dir or nfs) or set spec.imageStorage to one "
            "that allows it." +
            std::string(kStillWorks),
        generation);
  }
  return MakeCondition(api::condition::kImageStorageReady, true, api::reason::kImportEnabled,
                       "storage \"" + name + "\" accepts content \"import\"", generation);
}

// Connection failure reasons are reported in one event reason, as a client-go
// controller would: "ConnectionFailed" with the precise reason in the message.
bool IsConnectionFailure(std::string_view reason) {
  constexpr std::array<std::string_view, 5> kReasons = {
      api::reason::kCredentialsNotFound, api::reason::kAuthenticationFailed,
      api::reason::kPermissionDenied, api::reason::kTlsError, api::reason::kUnreachable};
  return std::find(kReasons.begin(), kReasons.end(), reason) != kReasons.end();
}

}  // namespace

struct ClusterReconciler::Impl {
  kube::Reader& reader;
  kube::Writer& writer;
  kube::EventRecorder& events;
  ClusterRegistry& registry;
  ClusterControllerOptions options;
  Clock& clock;

  // What the registered runtimes were built from, by cluster key.
  struct Connection {
    std::size_t fingerprint = 0;
    std::string version;
  };
  std::mutex mu;
  std::map<std::string, Connection> connections;

  Impl(kube::Reader& r, kube::Writer& w, kube::EventRecorder& e, ClusterRegistry& reg,
       ClusterControllerOptions o)
      : reader(r),
        writer(w),
        events(e),
        registry(reg),
        options(std::move(o)),
        clock(options.clock ? *options.clock : RealClock()) {
    if (!options.connect) options.connect = proxmox::ConnectPveClient;
  }

  Result<kube::ReconcileResult> Reconcile(const kube::Request& request);

  // Drops the runtime: the ProxmoxVM controller sees the cluster as not connected.
  void Forget(const std::string& key) {
    registry.Remove(key);
    std::lock_guard lock(mu);
    connections.erase(key);
  }

  Result<std::vector<std::string>> VmsUsing(const kube::Object& cluster);
  Result<kube::ReconcileResult> Release(const std::string& key, const kube::Object& cluster);
  Result<kube::Object> SetFinalizers(const kube::Object& cluster, std::vector<std::string> list);
  Result<kube::Object> EnsureFinalizer(const kube::Object& cluster);

  Result<Observation> Observe(const std::string& key, const api::ProxmoxCluster& cluster,
                              std::int64_t generation);
  struct Connected {
    std::shared_ptr<ClusterRuntime> runtime;
    std::string version;
  };
  Result<Connected> Connect(const std::string& key, const api::ProxmoxClusterSpec& spec,
                            const Credentials& credentials);
  int MaxInFlight(const api::ProxmoxClusterSpec& spec) const {
    if (options.max_inflight <= 0) return spec.max_concurrent_requests;
    return std::min(spec.max_concurrent_requests, options.max_inflight);
  }
  milliseconds Period(const api::ProxmoxClusterSpec& spec) const {
    return options.inventory_period.value_or(std::chrono::seconds(spec.inventory_period_seconds));
  }

  Status Report(const kube::Object& cluster, const Observation& seen);
  void RecordTransitions(const kube::Object& cluster, const json& before, const json& after);
};

Result<kube::ReconcileResult> ClusterReconciler::Impl::Reconcile(const kube::Request& request) {
  const std::string key = request.Key();
  auto got = reader.Get(ProxmoxClusters(), request.ns, request.name);
  if (!got.ok()) {
    if (got.status().code() != Code::kNotFound) return got.status();
    Forget(key);
    return kube::ReconcileResult{};
  }
  kube::Object object = std::move(got).value();
  const std::int64_t generation = kube::GenerationOf(object);

  // Deletion first: it needs no valid spec, so a cluster whose spec broke can still go.
  const bool deleting = IsDeleting(object);
  std::vector<std::string> users;
  if (deleting) {
    ASSIGN_OR_RETURN(users, VmsUsing(object));
    if (users.empty()) return Release(key, object);
  }

  Observation seen;
  if (auto cluster = DecodeValid(object); !cluster.ok()) {
    Forget(key);
    const std::string problems = JoinFieldErrors(cluster.status());
    seen.connected = MakeCondition(api::condition::kConnected, false, api::reason::kInvalidSpec,
                                   "not connecting while the spec is invalid", generation);
    seen.ready = MakeCondition(api::condition::kReady, false, api::reason::kInvalidSpec,
                               "the spec is invalid: " + problems, generation);
    seen.error = InvalidError("ProxmoxCluster " + key + " has an invalid spec: " + problems)
                     .WithFieldErrors(cluster.status().field_errors());
  } else {
    if (!deleting) {
      ASSIGN_OR_RETURN(object, EnsureFinalizer(object));
    }
    ASSIGN_OR_RETURN(seen, Observe(key, *cluster, generation));
  }

  if (deleting) {
    // The runtime stays (the ProxmoxVMs need it to delete their VMs); Ready says why we wait.
    seen.ready = MakeCondition(api::condition::kReady, false, api::reason::kDeleting,
                               "deletion waits for " + std::to_string(users.size()) +
                                   " ProxmoxVM(s) that use this cluster, such as " + users.front(),
                               generation);
    if (kube::IsTerminal(seen.error)) seen.error = OkStatus();
    seen.requeue_after = seen.requeue_after.count() > 0
                             ? std::min(seen.requeue_after, kDeletionPoll)
                             : kDeletionPoll;
  }

  RETURN_IF_ERROR(Report(object, seen));
  if (!seen.error.ok()) return seen.error;
  return kube::ReconcileResult{.requeue_after = seen.requeue_after};
}

Result<std::vector<std::string>> ClusterReconciler::Impl::VmsUsing(const kube::Object& cluster) {
  ASSIGN_OR_RETURN(kube::ObjectList vms,
                   reader.List(ProxmoxVms(), kube::NamespaceOf(cluster), kube::ListOptions{}));
  const std::string name = kube::NameOf(cluster);
  std::vector<std::string> out;
  for (const kube::Object& vm : vms.items) {
    if (kube::StringAt(vm, {"spec", "clusterRef", "name"}) == name) out.push_back(kube::NameOf(vm));
  }
  return out;
}

Result<kube::ReconcileResult> ClusterReconciler::Impl::Release(const std::string& key,
                                                               const kube::Object& cluster) {
  Forget(key);
  if (HasFinalizer(cluster)) {
    std::vector<std::string> rest = Finalizers(cluster);
    std::erase(rest, kClusterFinalizer);
    RETURN_IF_ERROR(SetFinalizers(cluster, std::move(rest)));
  }
  return kube::ReconcileResult{};
}

Result<kube::Object> ClusterReconciler::Impl::SetFinalizers(const kube::Object& cluster,
                                                            std::vector<std::string> list) {
  // The resourceVersion makes this a compare-and-swap: a concurrent change to
  // the list is a Conflict, not a lost finalizer.
  kube::Object patch = {
      {"metadata",
       {{"finalizers", std::move(list)}, {"resourceVersion", kube::ResourceVersionOf(cluster)}}}};
  return writer.Patch(ProxmoxClusters(), kube::NamespaceOf(cluster), kube::NameOf(cluster),
                      kube::PatchType::kMerge, patch);
}

Result<kube::Object> ClusterReconciler::Impl::EnsureFinalizer(const kube::Object& cluster) {
  if (HasFinalizer(cluster)) return cluster;
  std::vector<std::string> list = Finalizers(cluster);
  list.push_back(kClusterFinalizer);
  return SetFinalizers(cluster, std::move(list));
}

Result<Observation> ClusterReconciler::Impl::Observe(const std::string& key,
                                                     const api::ProxmoxCluster& cluster,
                                                     std::int64_t generation) {
  const api::ProxmoxClusterSpec& spec = cluster.spec;
  const std::string ns = kube::StringAt(cluster.metadata, {"namespace"});

  // Credentials and trust. A missing Secret, ConfigMap or key is waited for;
  // a failed read is an error.
  const auto missing = [&](std::string_view reason, const Status& status) -> Result<Observation> {
    if (status.code() != Code::kNotFound) return status;
    Forget(key);
    Observation seen = NotConnected(reason, status.message(), generation);
    seen.requeue_after = kMissingReferenceRetry;
    return seen;
  };
  auto token = ReadToken(reader, ns, spec.credentials_ref);
  if (!token.ok()) return missing(api::reason::kCredentialsNotFound, token.status());
  auto tls = ReadTls(reader, ns, spec.tls);
  if (!tls.ok()) return missing(api::reason::kTlsError, tls.status());
  const Credentials credentials{std::move(token).value(), std::move(tls).value()};

  auto connected = Connect(key, spec, credentials);
  if (!connected.ok()) {
    return Failed("connecting to " + spec.endpoint, connected.status(), credentials.token,
                  generation);
  }

  // The one /cluster/resources list per period. Status writes and other
  // events in between reuse the last one.
  const milliseconds period = Period(spec);
  std::shared_ptr<const Inventory> inventory = connected->runtime->inventory();
  if (!inventory || clock.Now() - inventory->fetched_at >= period) {
    auto refreshed = connected->runtime->RefreshInventory();
    if (!refreshed.ok()) {
      // The runtime and its last inventory stay: a failed list is often brief.
      return Failed("listing /cluster/resources", refreshed.status(), credentials.token,
                    generation);
    }
    inventory = std::move(refreshed).value();
  }

  Observation seen;
  api::ProxmoxClusterStatus& summary = seen.summary.emplace();
  summary.version = connected->version;
  summary.nodes = NodeStatuses(*inventory, spec);
  std::string offline;
  int online = 0;
  for (const api::ClusterNodeStatus& node : summary.nodes) {
    if (node.status == api::NodeState::kOnline) {
      ++online;
    } else {
      offline +=
          (offline.empty() ? "" : ", ") + node.name + " " + std::string(api::EnumName(node.status));
    }
  }
  summary.online_nodes = std::to_string(online) + "/" + std::to_string(summary.nodes.size());
  seen.connected =
      MakeCondition(api::condition::kConnected, true, api::reason::kConnected,
                    "Proxmox VE " + connected->version + " at " + spec.endpoint, generation);
  seen.ready = online > 0
                   ? MakeCondition(api::condition::kReady, true, api::reason::kNodesOnline,
                                   summary.online_nodes + " allowed nodes online", generation)
                   : MakeCondition(api::condition::kReady, false, api::reason::kNoOnlineNodes,
                                   "no allowed node is online" +
                                       (offline.empty() ? std::string(" (there are none)")
                                                        : " (" + offline + ")"),
                                   generation);
  seen.image_storage = ImageStorageCondition(*inventory, spec, generation);
  const auto age = std::chrono::duration_cast<milliseconds>(clock.Now() - inventory->fetched_at);
  seen.requeue_after = std::max(kMinRequeue, period - age);
  return seen;
}

Result<ClusterReconciler::Impl::Connected> ClusterReconciler::Impl::Connect(
    const std::string& key, const api::ProxmoxClusterSpec& spec, const Credentials& credentials) {
  const int max_in_flight = MaxInFlight(spec);
  const std::size_t fingerprint = Fingerprint(spec, credentials, max_in_flight);
  {
    std::lock_guard lock(mu);
    auto it = connections.find(key);
    if (it != connections.end() && it->second.fingerprint == fingerprint) {
      if (std::shared_ptr<ClusterRuntime> runtime = registry.Get(key)) {
        return Connected{std::move(runtime), it->second.version};
      }
    }
  }

  proxmox::PveClientOptions client_options;
  client_options.base_url = spec.endpoint;
  client_options.tls = credentials.tls;
  client_options.token = credentials.token;
  client_options.limits.max_in_flight = max_in_flight;
  client_options.limits.qps = spec.max_requests_per_second;
  client_options.limits.burst = std::max(10, spec.max_requests_per_second);
  client_options.clock = &clock;
  auto client = options.connect(std::move(client_options));
  // The version is asked once per runtime: it proves endpoint, trust and token together.
  Result<proxmox::VersionInfo> version =
      client.ok() ? (*client)->GetVersion() : Result<proxmox::VersionInfo>(client.status());
  if (!version.ok()) {
    Forget(key);
    return version.status();
  }
  auto runtime = std::make_shared<ClusterRuntime>(key, spec, std::move(client).value(), clock,
                                                  options.runtime);
  registry.Put(runtime);
  std::lock_guard lock(mu);
  connections[key] = Connection{fingerprint, version->version};
  return Connected{std::move(runtime), version->version};
}

Status ClusterReconciler::Impl::Report(const kube::Object& cluster, const Observation& seen) {
  const json before = cluster.contains("status") && cluster["status"].is_object()
                          ? cluster["status"]
                          : json::object();
  json after = before;
  json& conditions = after["conditions"];
  const Clock::WallTime now = clock.WallNow();
  kube::SetCondition(conditions, seen.ready, now);
  for (const auto* condition : {&seen.connected, &seen.image_storage}) {
    if (*condition) kube::SetCondition(conditions, **condition, now);
  }
  if (seen.summary) {
    const json fields = api::ToJson(*seen.summary);
    for (const char* field : {"version", "nodes", "onlineNodes"}) {
      if (fields.contains(field)) {
        after[field] = fields[field];
      } else {
        after.erase(field);
      }
    }
  }
  after["ready"] = seen.ready.status == kube::kConditionTrue;
  after["observedGeneration"] = kube::GenerationOf(cluster);
  if (after == before) return OkStatus();

  kube::Object updated = cluster;
  updated["status"] = after;
  RETURN_IF_ERROR(writer.UpdateStatus(ProxmoxClusters(), updated));
  RecordTransitions(cluster, before.value("conditions", json::array()), after["conditions"]);
  return OkStatus();
}

// One event per condition whose status or reason moved, never per period.
// A connection failure shows in Connected and Ready alike; it is told once, by
// Ready, as "ConnectionFailed" with the precise reason in the message. Good
// news is told when it is a recovery, and once by Connected when that moved.
void ClusterReconciler::Impl::RecordTransitions(const kube::Object& cluster, const json& before,
                                                const json& after) {
  const auto moved = [&](std::string_view type) {
    const std::optional<kube::Condition> now = kube::FindCondition(after, type);
    const std::optional<kube::Condition> was = kube::FindCondition(before, type);
    return now && !(was && was->status == now->status && was->reason == now->reason);
  };
  const bool connected_moved = moved(api::condition::kConnected);
  const std::optional<kube::Condition> ready = kube::FindCondition(after, api::condition::kReady);
  for (std::string_view type :
       {api::condition::kConnected, api::condition::kReady, api::condition::kImageStorageReady}) {
    if (!moved(type)) continue;
    const kube::Condition now = *kube::FindCondition(after, type);
    const bool ok = now.status == kube::kConditionTrue;
    const bool is_connected = type == api::condition::kConnected;
    if (is_connected && !ok && ready && ready->reason == now.reason) continue;
    if (!is_connected && ok && (connected_moved || !kube::FindCondition(before, type))) continue;
    const bool connection_failure = !ok && IsConnectionFailure(now.reason);
    const std::string_view event_type =
        ok || now.reason == api::reason::kDeleting ? kube::kEventNormal : kube::kEventWarning;
    // Events are best effort; the recorder logs its own failures.
    (void)events.Event(cluster, event_type, connection_failure ? "ConnectionFailed" : now.reason,
                       connection_failure ? now.reason + ": " + now.message : now.message);
  }
}

ClusterReconciler::ClusterReconciler(kube::Reader& reader, kube::Writer& writer,
                                     kube::EventRecorder& events, ClusterRegistry& registry,
                                     ClusterControllerOptions options)
    : impl_(std::make_unique<Impl>(reader, writer, events, registry, std::move(options))) {}

ClusterReconciler::~ClusterReconciler() = default;

Result<kube::ReconcileResult> ClusterReconciler::Reconcile(const kube::Request& request) {
  return impl_->Reconcile(request);
}

std::vector<std::string> ClusterKeysForReference(kube::Reader& reader, const kube::Object& object) {
  const std::string kind = kube::StringAt(object, {"kind"});
  const std::string ns = kube::NamespaceOf(object);
  const std::string name = kube::NameOf(object);
  auto clusters = reader.List(ProxmoxClusters(), ns, kube::ListOptions{});
  if (!clusters.ok()) {
    spdlog::error("listing ProxmoxClusters in {} for {} {}: {}", ns, kind, name,
                  clusters.status().ToString());
    return {};
  }
  std::vector<std::string> keys;
  for (const kube::Object& item : clusters->items) {
    // An undecodable cluster waits for its own change, not for a Secret's.
    auto cluster = api::ProxmoxClusterFromJson(item);
    if (!cluster.ok()) continue;
    const api::ProxmoxClusterSpec& spec = cluster->spec;
    const bool credentials = kind == "Secret" && spec.credentials_ref.name == name;
    const bool ca = spec.tls.ca_ref && spec.tls.ca_ref->name == name &&
                    api::EnumName(spec.tls.ca_ref->kind) == kind;
    if (credentials || ca) keys.push_back(kube::KeyOf(item));
  }
  return keys;
}

}  // namespace nixmox::controllers
