#include "test/sim/kube/kubesim.h"

#include <algorithm>
#include <ctime>
#include <regex>
#include <set>

#include "test/sim/kube/admission.h"
#include "test/sim/kube/patch.h"
#include "test/sim/kube/protobuf.h"
#include "test/sim/kube/schema.h"
#include "test/sim/kube/selectors.h"
#include "test/sim/kube/table.h"

namespace nixmox::kubesim {
namespace {

constexpr char kCrdCleanupFinalizer[] = "customresourcecleanup.apiextensions.k8s.io";
constexpr char kForeground[] = "foregroundDeletion";
constexpr char kOrphan[] = "orphan";

const char kB64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

std::string Base64Encode(const std::string& in) {
  std::string out;
  size_t i = 0;
  while (i + 2 < in.size()) {
    uint32_t n = (uint8_t(in[i]) << 16) | (uint8_t(in[i + 1]) << 8) | uint8_t(in[i + 2]);
    out += {kB64[n >> 18], kB64[(n >> 12) & 63], kB64[(n >> 6) & 63], kB64[n & 63]};
    i += 3;
  }
  if (i + 1 == in.size()) {
    uint32_t n = uint8_t(in[i]) << 16;
    out += {kB64[n >> 18], kB64[(n >> 12) & 63], '=', '='};
  } else if (i + 2 == in.size()) {
    uint32_t n = (uint8_t(in[i]) << 16) | (uint8_t(in[i + 1]) << 8);
    out += {kB64[n >> 18], kB64[(n >> 12) & 63], kB64[(n >> 6) & 63], '='};
  }
  return out;
}

std::optional<std::string> Base64Decode(const std::string& in) {
  if (in.size() % 4 != 0) return std::nullopt;
  std::string out;
  uint32_t buf = 0;
  int bits = 0;
  for (size_t i = 0; i < in.size(); ++i) {
    char c = in[i];
    if (c == '=') {
      if (i + 2 < in.size()) return std::nullopt;
      break;
    }
    const char* p = std::strchr(kB64, c);
    if (!p || c == 0) return std::nullopt;
    buf = (buf << 6) | uint32_t(p - kB64);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out += char((buf >> bits) & 0xff);
    }
  }
  return out;
}

bool ValidSubdomain(const std::string& name) {
  static const std::regex re("[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*");
  return name.size() <= 253 && std::regex_match(name, re);
}

bool ValidLabel(const std::string& name) {
  static const std::regex re("[a-z0-9]([-a-z0-9]*[a-z0-9])?");
  return name.size() <= 63 && std::regex_match(name, re);
}

std::string Key(const std::string& ns, const std::string& name) { return ns + "/" + name; }

json& Meta(json& o) {
  if (!o.contains("metadata") || !o["metadata"].is_object()) o["metadata"] = json::object();
  return o["metadata"];
}

std::string MetaString(const json& o, const char* field) {
  if (!o.contains("metadata") || !o["metadata"].is_object()) return "";
  const json& m = o["metadata"];
  return m.contains(field) && m[field].is_string() ? m[field].get<std::string>() : "";
}

std::vector<std::string> Finalizers(const json& o) {
  std::vector<std::string> out;
  if (o.contains("metadata") && o["metadata"].contains("finalizers") &&
      o["metadata"]["finalizers"].is_array()) {
    for (const json& f : o["metadata"]["finalizers"]) {
      if (f.is_string()) out.push_back(f);
    }
  }
  return out;
}

bool Deleting(const json& o) {
  return o.contains("metadata") && o["metadata"].contains("deletionTimestamp");
}

bool Has(const std::vector<std::string>& v, const std::string& s) {
  return std::find(v.begin(), v.end(), s) != v.end();
}

void SetFinalizerList(json& o, const std::vector<std::string>& f) {
  if (f.empty()) {
    Meta(o).erase("finalizers");
  } else {
    Meta(o)["finalizers"] = f;
  }
}

bool WantsTable(const http::ServerRequest& req) {
  auto accept = req.headers.Get("Accept");
  return accept && accept->find("as=Table") != std::string::npos;
}

http::ServerResponse JsonResponse(int code, const json& body,
                                  const std::vector<std::string>& warnings = {}) {
  http::ServerResponse resp;
  resp.status = code;
  resp.headers.Set("Content-Type", "application/json");
  resp.headers.Set("Cache-Control", "no-cache, private");
  for (const auto& w : warnings) resp.headers.Add("Warning", "299 - " + json(w).dump());
  resp.body = body.dump();
  return resp;
}

http::ServerResponse ErrorResponse(const ApiError& e) { return JsonResponse(e.code, e.ToStatus()); }

http::ServerResponse NotFoundPage() {
  ApiError e;
  e.code = 404;
  e.reason = "NotFound";
  e.message = "the server could not find the requested resource";
  e.details = {
      {"causes", {{{"reason", "UnexpectedServerResponse"}, {"message", "404 page not found"}}}}};
  return ErrorResponse(e);
}

std::vector<std::string> Split(const std::string& path) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start < path.size()) {
    size_t slash = path.find('/', start);
    if (slash == std::string::npos) slash = path.size();
    if (slash > start) out.push_back(path.substr(start, slash - start));
    start = slash + 1;
  }
  return out;
}

json SpecPart(const json& o, bool ignore_status) {
  json copy = o;
  copy.erase("metadata");
  if (ignore_status) copy.erase("status");
  return copy;
}

// Fields a field selector can name for this resource, from this object.
json FieldSet(const ResourceInfo& r, const json& o) {
  json f = {{"metadata.name", MetaString(o, "name")}};
  if (r.namespaced) f["metadata.namespace"] = MetaString(o, "namespace");
  for (const auto& path : r.selectable_fields) f[path] = FieldValue(o, path);
  return f;
}

json Labels(const json& o) {
  if (o.contains("metadata") && o["metadata"].contains("labels") &&
      o["metadata"]["labels"].is_object()) {
    return o["metadata"]["labels"];
  }
  return json::object();
}

ApiResult CheckFieldSelector(const ResourceInfo& r, const Selector& s) {
  for (const auto& req : s.requirements()) {
    if (req.key == "metadata.name" || (req.key == "metadata.namespace" && r.namespaced) ||
        Has(r.selectable_fields, req.key)) {
      continue;
    }
    return ApiError::BadRequest("field label not supported: " + req.key);
  }
  return json();
}

}  // namespace

struct KubeSim::Target {
  std::string group, version, resource, ns, name, sub;
  bool has_ns = false;
  bool legacy_watch = false;
};

struct KubeSim::WatchSpec {
  ResourceInfo r;
  std::string version;
  std::string ns;
  Selector labels;
  Selector fields;
  bool initial = false;  // send the current objects as ADDED first
  uint64_t start = 0;
  bool bookmarks = false;
  bool initial_end_bookmark = false;
  bool table = false;
  std::string include;
  std::chrono::steady_clock::time_point deadline;
};

KubeSim::KubeSim(Options options)
    : options_(std::move(options)),
      clock_(options_.clock ? *options_.clock : RealClock()),
      rng_(std::random_device{}()) {
  std::lock_guard<std::mutex> lock(mu_);
  const ResourceInfo& ns = *registry_.FindByGroupResource("namespaces");
  for (const char* name : {"default", "kube-system", "kube-public", "kube-node-lease"}) {
    json o = {{"apiVersion", "v1"}, {"kind", "Namespace"}, {"metadata", {{"name", name}}}};
    ApiResult r = DoCreate(ns, "", o, WriteOptions{});
    assert(r.ok());
    (void)r;
  }
}

KubeSim::~KubeSim() { Shutdown(); }

void KubeSim::Shutdown() {
  std::lock_guard<std::mutex> lock(mu_);
  stopping_ = true;
  cv_.notify_all();
}

void KubeSim::SetServerAddress(std::string address) {
  std::lock_guard<std::mutex> lock(mu_);
  options_.server_address = std::move(address);
}

void KubeSim::SetLogHandler(LogHandler handler) {
  std::lock_guard<std::mutex> lock(mu_);
  log_handler_ = std::move(handler);
}

std::string KubeSim::Now() const {
  std::time_t t = std::chrono::system_clock::to_time_t(clock_.WallNow());
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

std::string KubeSim::NewUid() {
  uint64_t a = rng_(), b = rng_();
  a = (a & 0xffffffffffff0fffULL) | 0x0000000000004000ULL;  // version 4
  b = (b & 0x3fffffffffffffffULL) | 0x8000000000000000ULL;  // variant 1
  char buf[40];
  std::snprintf(buf, sizeof buf, "%08x-%04x-%04x-%04x-%012llx", uint32_t(a >> 32),
                uint32_t((a >> 16) & 0xffff), uint32_t(a & 0xffff), uint32_t(b >> 48),
                static_cast<unsigned long long>(b & 0xffffffffffffULL));
  return buf;
}

// ---------------------------------------------------------------------------
// Storage

json* KubeSim::Find(const ResourceInfo& r, const std::string& ns, const std::string& name) {
  auto it = objects_.find(r.GroupResource());
  if (it == objects_.end()) return nullptr;
  auto o = it->second.find(Key(r.namespaced ? ns : "", name));
  return o == it->second.end() ? nullptr : &o->second;
}

void KubeSim::Commit(const ResourceInfo& r, json object, const std::string& type, const json* old) {
  ++rv_;
  Meta(object)["resourceVersion"] = std::to_string(rv_);
  std::string key = Key(MetaString(object, "namespace"), MetaString(object, "name"));
  auto gc_relevant = [](const json& o) {
    return Deleting(o) || (o.contains("metadata") && o["metadata"].contains("ownerReferences"));
  };
  if (gc_relevant(object) || (old && old->is_object() && gc_relevant(*old))) gc_pending_ = true;
  history_.push_back(Event{rv_, r.GroupResource(), type, object, old ? *old : json()});
  objects_[r.GroupResource()][key] = std::move(object);
  while (history_.size() > options_.watch_window) {
    compacted_ = history_.front().rv;
    history_.pop_front();
  }
  cv_.notify_all();
}

void KubeSim::Remove(const ResourceInfo& r, const std::string& key) {
  auto& bucket = objects_[r.GroupResource()];
  auto it = bucket.find(key);
  if (it == bucket.end()) return;
  json object = std::move(it->second);
  bucket.erase(it);
  gc_pending_ = true;
  ++rv_;
  Meta(object)["resourceVersion"] = std::to_string(rv_);
  if (r.is_crd_itself) {
    const ResourceInfo* cr = registry_.FindByGroupResource(
        object["spec"]["names"].value("plural", "") + "." + object["spec"].value("group", ""));
    if (cr) objects_.erase(cr->GroupResource());
    registry_.UnregisterCrd(object);
  }
  history_.push_back(Event{rv_, r.GroupResource(), "DELETED", std::move(object), json()});
  while (history_.size() > options_.watch_window) {
    compacted_ = history_.front().rv;
    history_.pop_front();
  }
  cv_.notify_all();
}

// Deletes an object marked for deletion once its finalizers are gone.
bool KubeSim::FinishIfUnblocked(const ResourceInfo& r, const std::string& key) {
  auto& bucket = objects_[r.GroupResource()];
  auto it = bucket.find(key);
  if (it == bucket.end() || !Deleting(it->second) || !Finalizers(it->second).empty()) return false;
  if (r.GroupResource() == "namespaces") return false;  // waits for its content (GC)
  Remove(r, key);
  return true;
}

// ---------------------------------------------------------------------------
// Admission: per-kind defaults and validation, and the CRD schema.

ApiResult KubeSim::Admit(const ResourceInfo& r, json& o, const json* old, const WriteOptions& w) {
  const std::string name = MetaString(o, "name");
  const std::string gr = r.GroupResource();
  std::vector<Cause> causes;
  const json refs = Meta(o).value("ownerReferences", json::array());
  for (size_t i = 0; i < refs.size(); ++i) {
    const std::string path = "metadata.ownerReferences[" + std::to_string(i) + "]";
    for (const char* f : {"apiVersion", "kind", "name", "uid"}) {
      if (!refs[i].is_object() || refs[i].value(f, "").empty()) {
        causes.push_back({"FieldValueInvalid", path + "." + f,
                          std::string("Invalid value: \"\": ") + f + " must not be empty"});
      }
    }
  }
  if (!causes.empty()) return InvalidError(r.group, r.kind, name, causes);
  if (r.custom) {
    std::string api_version = o.value("apiVersion", "");
    std::string version = api_version.substr(api_version.find('/') + 1);
    auto it = r.schemas.find(version);
    if (it != r.schemas.end()) {
      std::vector<std::string> unknown = Prune(it->second, o);
      if (!unknown.empty() && w.field_validation == "Strict") {
        std::string list;
        for (const auto& u : unknown)
          list += (list.empty() ? "" : ", ") + ("unknown field \"" + u + "\"");
        return ApiError::BadRequest(r.kind + " in version \"" + version +
                                    "\" cannot be handled as a " + r.kind +
                                    ": strict decoding error: " + list);
      }
      if (w.field_validation == "Warn" && w.warnings) {
        for (const auto& u : unknown) w.warnings->push_back("unknown field \"" + u + "\"");
      }
      ApplyDefaults(it->second, o);
      causes = Validate(it->second, o);
    }
  } else if (gr == "namespaces") {
    if (!ValidLabel(name)) {
      causes.push_back({"FieldValueInvalid", "metadata.name",
                        "Invalid value: " + json(name).dump() +
                            ": a lowercase RFC 1123 label must consist of lower case alphanumeric "
                            "characters or '-', and must start and end with an alphanumeric "
                            "character (e.g. 'my-name',  or '123-abc', regex used for validation "
                            "is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"});
    }
    Meta(o)["labels"]["kubernetes.io/metadata.name"] = name;
    if (!old) {
      o["spec"]["finalizers"] = {"kubernetes"};
      o["status"] = {{"phase", "Active"}};
    }
  } else if (gr == "secrets") {
    if (o.contains("stringData") && o["stringData"].is_object()) {
      for (auto it = o["stringData"].begin(); it != o["stringData"].end(); ++it) {
        if (it->is_string()) o["data"][it.key()] = Base64Encode(it->get<std::string>());
      }
      o.erase("stringData");
    }
    if (!o.contains("type")) o["type"] = "Opaque";
    if (o.contains("data") && o["data"].is_object()) {
      for (auto it = o["data"].begin(); it != o["data"].end(); ++it) {
        if (!it->is_string() || !Base64Decode(it->get<std::string>())) {
          return ApiError::BadRequest(
              "Secret in version \"v1\" cannot be handled as a Secret: "
              "illegal base64 data in data." +
              it.key());
        }
      }
    }
    if (old && old->value("immutable", false) &&
        (o.value("data", json()) != (*old).value("data", json()))) {
      causes.push_back(
          {"FieldValueForbidden", "data", "Forbidden: field is immutable when `immutable` is set"});
    }
  } else if (gr == "pods" || gr == "jobs.batch") {
    bool job = gr == "jobs.batch";
    json* pod_spec = nullptr;
    std::string prefix;
    if (job) {
      json& spec = o["spec"];
      if (!spec.is_object()) spec = json::object();
      if (!old) {
        std::string uid = MetaString(o, "uid");
        json& labels = spec["template"]["metadata"]["labels"];
        labels["batch.kubernetes.io/controller-uid"] = uid;
        labels["controller-uid"] = uid;
        labels["batch.kubernetes.io/job-name"] = name;
        labels["job-name"] = name;
        if (!spec.contains("selector")) {
          spec["selector"] = {{"matchLabels", {{"batch.kubernetes.io/controller-uid", uid}}}};
        }
        for (auto [k, v] : {std::pair<const char*, json>{"backoffLimit", 6},
                            {"completions", 1},
                            {"parallelism", 1},
                            {"completionMode", "NonIndexed"},
                            {"suspend", false},
                            {"manualSelector", false},
                            {"podReplacementPolicy", "TerminatingOrFailed"}}) {
          if (!spec.contains(k)) spec[k] = v;
        }
        o["status"] = json::object();
      } else if (old->contains("spec") && (*old)["spec"].contains("template") &&
                 spec.value("template", json()) != (*old)["spec"]["template"]) {
        causes.push_back(
            {"FieldValueInvalid", "spec.template",
             "Invalid value: " + spec.value("template", json()).dump() + ": field is immutable"});
      }
      pod_spec = &spec["template"]["spec"];
      prefix = "spec.template.spec";
      std::string policy = pod_spec->value("restartPolicy", "");
      if (policy != "Never" && policy != "OnFailure") {
        causes.push_back({"FieldValueRequired", prefix + ".restartPolicy",
                          "Required value: valid values: \"OnFailure\", \"Never\""});
      }
    } else {
      pod_spec = &o["spec"];
      prefix = "spec";
      if (!old) {
        o["status"] = {{"phase", "Pending"}, {"qosClass", "BestEffort"}};
      }
    }
    AdmitPodSpec(*pod_spec, prefix, causes);
    if (!job && !pod_spec->contains("serviceAccountName")) {
      (*pod_spec)["serviceAccountName"] = "default";
    }
  } else if (gr == "deployments.apps") {
    AdmitDeployment(o, old, causes);
  } else if (gr == "poddisruptionbudgets.policy") {
    AdmitPodDisruptionBudget(o, old, causes);
  } else if (gr == "roles.rbac.authorization.k8s.io" ||
             gr == "clusterroles.rbac.authorization.k8s.io") {
    AdmitRole(o, r.namespaced, causes);
  } else if (gr == "rolebindings.rbac.authorization.k8s.io" ||
             gr == "clusterrolebindings.rbac.authorization.k8s.io") {
    AdmitRoleBinding(o, old, r.namespaced, causes);
  } else if (gr == "services") {
    if (!o.contains("spec") || !o["spec"].is_object()) o["spec"] = json::object();
    json& spec = o["spec"];
    if (!spec.contains("type")) spec["type"] = "ClusterIP";
    if (!old && !spec.contains("clusterIP")) {
      spec["clusterIP"] =
          "10.96." + std::to_string(rng_() % 250 + 1) + "." + std::to_string(rng_() % 250 + 1);
      spec["clusterIPs"] = {spec["clusterIP"]};
    }
    if (!old) o["status"] = {{"loadBalancer", json::object()}};
  } else if (r.is_crd_itself) {
    causes = ValidateCrd(o);
    if (causes.empty()) {
      json& spec = o["spec"];
      json names = spec["names"];
      if (!names.contains("singular")) {
        std::string k = names.value("kind", "");
        std::transform(k.begin(), k.end(), k.begin(), ::tolower);
        names["singular"] = k;
      }
      if (!names.contains("listKind")) names["listKind"] = names.value("kind", "") + "List";
      spec["names"] = names;
      if (old && old->contains("spec") &&
          (*old)["spec"].value("group", "") != spec.value("group", "")) {
        causes.push_back({"FieldValueInvalid", "spec.group",
                          "Invalid value: " + spec["group"].dump() + ": field is immutable"});
      }
      std::string now = Now();
      json stored = json::array();
      if (old)
        stored = (*old).value("status", json::object()).value("storedVersions", json::array());
      for (const json& v : spec["versions"]) {
        if (v.value("storage", false) &&
            std::find(stored.begin(), stored.end(), v["name"]) == stored.end()) {
          stored.push_back(v["name"]);
        }
      }
      auto condition = [&](const char* type, const char* reason, const char* message) {
        return json{{"type", type},
                    {"status", "True"},
                    {"lastTransitionTime", now},
                    {"reason", reason},
                    {"message", message}};
      };
      json conditions = json::array();
      if (old && (*old).contains("status") && (*old)["status"].contains("conditions")) {
        conditions = (*old)["status"]["conditions"];
      } else {
        conditions = {condition("NamesAccepted", "NoConflicts", "no conflicts found"),
                      condition("Established", "InitialNamesAccepted",
                                "the initial names have been accepted")};
      }
      o["status"] = {
          {"conditions", conditions}, {"acceptedNames", names}, {"storedVersions", stored}};
      if (!old) {
        std::vector<std::string> f = Finalizers(o);
        if (!Has(f, kCrdCleanupFinalizer)) f.push_back(kCrdCleanupFinalizer);
        SetFinalizerList(o, f);
      }
    }
  }
  if (!causes.empty()) return InvalidError(r.group, r.kind, name, causes);
  return json();
}

// ---------------------------------------------------------------------------
// Verbs

ApiResult KubeSim::DoCreate(const ResourceInfo& r, const std::string& ns, json o,
                            const WriteOptions& w) {
  if (!o.is_object()) return ApiError::BadRequest("the body of the request is not a JSON object");
  json& md = Meta(o);
  if (r.namespaced) {
    std::string body_ns = MetaString(o, "namespace");
    if (!body_ns.empty() && body_ns != ns) {
      return ApiError::BadRequest(
          "the namespace of the provided object does not match the namespace sent on the "
          "request");
    }
    md["namespace"] = ns;
  } else {
    md.erase("namespace");
  }
  std::string name = MetaString(o, "name");
  if (name.empty() && !MetaString(o, "generateName").empty()) {
    static const char kAlphabet[] = "bcdfghjklmnpqrstvwxz2456789";
    for (int attempt = 0; attempt < 8; ++attempt) {
      std::string candidate = MetaString(o, "generateName");
      for (int i = 0; i < 5; ++i) candidate += kAlphabet[rng_() % (sizeof kAlphabet - 1)];
      if (!Find(r, ns, candidate)) {
        name = candidate;
        break;
      }
    }
    md["name"] = name;
  }
  if (name.empty()) {
    return InvalidError(r.group, r.kind, "",
                        {{"FieldValueRequired", "metadata.name",
                          "Required value: name or generateName is required"}});
  }
  if (!ValidSubdomain(name)) {
    return InvalidError(
        r.group, r.kind, name,
        {{"FieldValueInvalid", "metadata.name",
          "Invalid value: " + json(name).dump() +
              ": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric "
              "characters, '-' or '.', and must start and end with an alphanumeric character "
              "(e.g. 'example.com', regex used for validation is "
              "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"}});
  }
  if (r.namespaced) {
    const ResourceInfo& nsr = *registry_.FindByGroupResource("namespaces");
    json* nso = Find(nsr, "", ns);
    if (!nso) return ApiError::NotFound("", "namespaces", ns);
    if (Deleting(*nso)) {
      return ApiError::Forbidden(
          r.group, r.plural, name,
          "unable to create new content in namespace " + ns + " because it is being terminated");
    }
  }
  if (Find(r, ns, name)) return ApiError::AlreadyExists(r.group, r.plural, name);
  for (const char* f : {"uid", "resourceVersion", "creationTimestamp", "deletionTimestamp",
                        "deletionGracePeriodSeconds", "generation", "selfLink"}) {
    md.erase(f);
  }
  md["uid"] = NewUid();
  md["creationTimestamp"] = Now();
  if (r.has_generation) md["generation"] = 1;
  if (r.has_status && r.custom) o.erase("status");
  o["apiVersion"] = o.value("apiVersion", r.ApiVersion(r.versions[0]));
  o["kind"] = r.kind;
  ApiResult admitted = Admit(r, o, nullptr, w);
  if (!admitted.ok()) return admitted;
  if (w.dry_run) return o;
  Commit(r, o, "ADDED", nullptr);
  json stored = *Find(r, ns, name);
  if (r.is_crd_itself) registry_.RegisterCrd(stored);
  return stored;
}

ApiResult KubeSim::DoUpdate(const ResourceInfo& r, const std::string& ns, const std::string& name,
                            json o, bool status, const WriteOptions& w) {
  if (!o.is_object()) return ApiError::BadRequest("the body of the request is not a JSON object");
  json* current = Find(r, ns, name);
  if (!current) return ApiError::NotFound(r.group, r.plural, name);
  const json cur = *current;
  std::string body_name = MetaString(o, "name");
  if (body_name != name) {
    return ApiError::BadRequest("the name of the object (" + body_name +
                                ") does not match the name on the URL (" + name + ")");
  }
  if (r.namespaced) {
    std::string body_ns = MetaString(o, "namespace");
    if (!body_ns.empty() && body_ns != ns) {
      return ApiError::BadRequest(
          "the namespace of the provided object does not match the namespace sent on the "
          "request");
    }
  }
  std::string want_rv = MetaString(o, "resourceVersion");
  if (!want_rv.empty() && want_rv != MetaString(cur, "resourceVersion")) {
    return ApiError::Conflict(r.group, r.plural, name,
                              "the object has been modified; please apply your changes to the "
                              "latest version and try again");
  }
  json next;
  if (status) {
    next = cur;
    if (o.contains("status")) {
      next["status"] = o["status"];
    } else {
      next.erase("status");
    }
  } else {
    next = o;
    json& md = Meta(next);
    const json& old_md = cur["metadata"];
    for (const char* f : {"uid", "creationTimestamp", "deletionTimestamp",
                          "deletionGracePeriodSeconds", "generation", "namespace"}) {
      if (old_md.contains(f)) {
        md[f] = old_md[f];
      } else {
        md.erase(f);
      }
    }
    if (r.has_status) {
      if (cur.contains("status")) {
        next["status"] = cur["status"];
      } else {
        next.erase("status");
      }
    }
    if (Deleting(cur)) {
      std::vector<std::string> added;
      std::vector<std::string> before = Finalizers(cur);
      for (const auto& f : Finalizers(next)) {
        if (!Has(before, f)) added.push_back(f);
      }
      if (!added.empty()) {
        std::string list;
        for (const auto& f : added) list += (list.empty() ? "" : " ") + json(f).dump();
        return InvalidError(r.group, r.kind, name,
                            {{"FieldValueForbidden", "metadata.finalizers",
                              "Forbidden: no new finalizers can be added if the object is being "
                              "deleted, found new finalizers []string{" +
                                  list + "}"}});
      }
    }
  }
  next["kind"] = r.kind;
  if (!next.contains("apiVersion")) next["apiVersion"] = cur.value("apiVersion", "");
  Meta(next)["resourceVersion"] = cur["metadata"]["resourceVersion"];
  ApiResult admitted = Admit(r, next, &cur, w);
  if (!admitted.ok()) return admitted;
  if (r.has_generation && !status && SpecPart(next, r.has_status) != SpecPart(cur, r.has_status)) {
    Meta(next)["generation"] = cur["metadata"].value("generation", 0) + 1;
  }
  // An update that changes nothing writes nothing, as etcd's guaranteed update does.
  json next_cmp = next, cur_cmp = cur;
  next_cmp.erase("apiVersion");
  cur_cmp.erase("apiVersion");
  if (next_cmp == cur_cmp) return cur;
  if (w.dry_run) return next;
  std::string key = Key(r.namespaced ? ns : "", name);
  Commit(r, next, "MODIFIED", &cur);
  json stored = objects_[r.GroupResource()][key];
  if (r.is_crd_itself && !Deleting(stored)) registry_.RegisterCrd(stored);
  if (FinishIfUnblocked(r, key)) {
    Meta(stored)["resourceVersion"] = std::to_string(rv_);
  }
  return stored;
}

ApiResult KubeSim::DoDelete(const ResourceInfo& r, const std::string& ns, const std::string& name,
                            const DeleteOptions& d) {
  json* current = Find(r, ns, name);
  if (!current) return ApiError::NotFound(r.group, r.plural, name);
  json cur = *current;
  if (!d.precondition_uid.empty() && d.precondition_uid != MetaString(cur, "uid")) {
    return ApiError::Conflict(r.group, r.plural, name,
                              "Precondition failed: UID in precondition: " + d.precondition_uid +
                                  ", UID in object meta: " + MetaString(cur, "uid"));
  }
  if (!d.precondition_rv.empty() && d.precondition_rv != MetaString(cur, "resourceVersion")) {
    return ApiError::Conflict(
        r.group, r.plural, name,
        "Precondition failed: ResourceVersion in precondition: " + d.precondition_rv +
            ", ResourceVersion in object meta: " + MetaString(cur, "resourceVersion"));
  }
  std::string policy = d.propagation.empty() ? r.default_propagation : d.propagation;
  if (policy != "Background" && policy != "Foreground" && policy != "Orphan") {
    return ApiError::BadRequest("propagationPolicy: Unsupported value: " + json(policy).dump() +
                                ": supported values: \"Foreground\", \"Background\", "
                                "\"Orphan\"");
  }
  std::vector<std::string> fins = Finalizers(cur);
  bool has_dependents = false;
  std::string uid = MetaString(cur, "uid");
  for (const auto& [gr, bucket] : objects_) {
    for (const auto& [key, o] : bucket) {
      for (const json& ref : o["metadata"].value("ownerReferences", json::array())) {
        if (ref.value("uid", "") == uid) has_dependents = true;
      }
    }
  }
  // Orphan and Foreground park the object behind a finalizer the garbage
  // collector removes; with no dependents there is nothing to wait for.
  if (policy == "Foreground" && has_dependents && !Has(fins, kForeground))
    fins.push_back(kForeground);
  if (policy == "Orphan" && has_dependents && !Has(fins, kOrphan)) fins.push_back(kOrphan);
  const std::string key = Key(r.namespaced ? ns : "", name);
  bool is_namespace = r.GroupResource() == "namespaces";
  if (fins.empty() && !is_namespace) {
    if (d.dry_run) return cur;
    Remove(r, key);
    Meta(cur)["resourceVersion"] = std::to_string(rv_);
    return cur;
  }
  if (Deleting(cur) && fins == Finalizers(cur)) return cur;
  json next = cur;
  SetFinalizerList(next, fins);
  if (!Deleting(cur)) {
    Meta(next)["deletionTimestamp"] = Now();
    Meta(next)["deletionGracePeriodSeconds"] = 0;
    if (next["metadata"].value("generation", 0) > 0) {
      Meta(next)["generation"] = next["metadata"]["generation"].get<int64_t>() + 1;
    }
    if (is_namespace) next["status"]["phase"] = "Terminating";
  }
  if (d.dry_run) return next;
  Commit(r, next, "MODIFIED", &cur);
  return objects_[r.GroupResource()][key];
}

void KubeSim::CollectGarbage() {
  for (int round = 0; round < 1000 && gc_pending_; ++round) {
    gc_pending_ = false;
    bool changed = false;
    std::set<std::string> uids;
    std::map<std::string, std::vector<std::pair<std::string, std::string>>> dependents;
    std::vector<std::pair<std::string, std::string>> all;
    for (const auto& [gr, bucket] : objects_) {
      for (const auto& [key, o] : bucket) {
        uids.insert(MetaString(o, "uid"));
        all.push_back({gr, key});
        for (const json& ref : o["metadata"].value("ownerReferences", json::array())) {
          dependents[ref.value("uid", "")].push_back({gr, key});
        }
      }
    }
    auto lookup = [&](const std::string& gr, const std::string& key) -> json* {
      auto b = objects_.find(gr);
      if (b == objects_.end()) return nullptr;
      auto o = b->second.find(key);
      return o == b->second.end() ? nullptr : &o->second;
    };
    auto del = [&](const std::string& gr, const json& o, const std::string& policy) {
      const ResourceInfo* dr = registry_.FindByGroupResource(gr);
      if (!dr || Deleting(o)) return;
      DeleteOptions d;
      d.propagation = policy;
      (void)DoDelete(*dr, MetaString(o, "namespace"), MetaString(o, "name"), d);
      changed = true;
    };
    auto drop_finalizer = [&](const ResourceInfo& r, const std::string& key, const char* f) {
      json cur = *lookup(r.GroupResource(), key);
      json next = cur;
      std::vector<std::string> fins = Finalizers(cur);
      fins.erase(std::remove(fins.begin(), fins.end(), f), fins.end());
      SetFinalizerList(next, fins);
      Commit(r, next, "MODIFIED", &cur);
      FinishIfUnblocked(r, key);
      changed = true;
    };
    for (const auto& [gr, key] : all) {
      json* op = lookup(gr, key);
      const ResourceInfo* r = registry_.FindByGroupResource(gr);
      if (!op || !r) continue;
      // Most objects neither are being deleted nor have owners: skip them
      // without copying.
      if (!Deleting(*op) && !(*op)["metadata"].contains("ownerReferences")) continue;
      const json o = *op;
      const std::string uid = MetaString(o, "uid");
      std::vector<std::pair<std::string, std::string>> deps;
      for (const auto& dep : dependents[uid]) {
        if (lookup(dep.first, dep.second)) deps.push_back(dep);
      }
      if (Deleting(o)) {
        std::vector<std::string> fins = Finalizers(o);
        if (Has(fins, kForeground)) {
          if (deps.empty()) {
            drop_finalizer(*r, key, kForeground);
            continue;
          }
          for (const auto& dep : deps) del(dep.first, *lookup(dep.first, dep.second), "Background");
        }
        if (Has(fins, kOrphan)) {
          for (const auto& dep : deps) {
            json cur = *lookup(dep.first, dep.second);
            json next = cur;
            json refs = json::array();
            for (const json& ref : cur["metadata"]["ownerReferences"]) {
              if (ref.value("uid", "") != uid) refs.push_back(ref);
            }
            if (refs.empty()) {
              next["metadata"].erase("ownerReferences");
            } else {
              next["metadata"]["ownerReferences"] = refs;
            }
            Commit(*registry_.FindByGroupResource(dep.first), next, "MODIFIED", &cur);
          }
          drop_finalizer(*r, key, kOrphan);
          continue;
        }
        if (r->is_crd_itself && Has(fins, kCrdCleanupFinalizer)) {
          std::string cr_gr =
              o["spec"]["names"].value("plural", "") + "." + o["spec"].value("group", "");
          auto bucket = objects_.find(cr_gr);
          if (bucket == objects_.end() || bucket->second.empty()) {
            drop_finalizer(*r, key, kCrdCleanupFinalizer);
            continue;
          }
          std::vector<json> crs;
          for (const auto& [k, cr] : bucket->second) crs.push_back(cr);
          for (const json& cr : crs) del(cr_gr, cr, "Background");
        }
        if (gr == "namespaces") {
          const std::string ns = MetaString(o, "name");
          bool empty = true;
          std::vector<std::pair<std::string, json>> content;
          for (const auto& [cgr, bucket] : objects_) {
            for (const auto& [k, co] : bucket) {
              if (MetaString(co, "namespace") == ns) {
                empty = false;
                content.push_back({cgr, co});
              }
            }
          }
          for (const auto& [cgr, co] : content) del(cgr, co, "Background");
          if (empty && fins.empty()) {
            Remove(*r, key);
            changed = true;
            continue;
          }
        }
      }
      // Dependents whose owners are all gone are deleted; references to
      // owners that are gone while another owner remains are dropped.
      json refs = o["metadata"].value("ownerReferences", json::array());
      if (!refs.empty()) {
        json live = json::array();
        for (const json& ref : refs) {
          if (uids.count(ref.value("uid", ""))) live.push_back(ref);
        }
        if (live.empty()) {
          del(gr, o, "Background");
        } else if (live.size() != refs.size()) {
          json next = o;
          next["metadata"]["ownerReferences"] = live;
          Commit(*r, next, "MODIFIED", &o);
          changed = true;
        }
      }
    }
    if (!changed) return;
  }
}

// ---------------------------------------------------------------------------
// HTTP

namespace {

json Present(const ResourceInfo& r, const std::string& version, json o) {
  o["apiVersion"] = r.ApiVersion(version);
  return o;
}

ApiResult ParseBody(const http::ServerRequest& req) {
  std::string ct = req.headers.Get("Content-Type").value_or("");
  ApiResult parsed = ct.find("protobuf") != std::string::npos ? DecodeProtobufObject(req.body)
                                                              : ParseYamlOrJson(req.body);
  if (parsed.ok() && !parsed.value().is_object()) {
    return ApiError::BadRequest("the body of the request was not a JSON object");
  }
  return parsed;
}

bool Truthy(const std::optional<std::string>& v) { return v && (*v == "true" || *v == "1"); }

std::string MediaType(const http::ServerRequest& req) {
  std::string ct = req.headers.Get("Content-Type").value_or("");
  ct = ct.substr(0, ct.find(';'));
  while (!ct.empty() && ct.back() == ' ') ct.pop_back();
  return ct;
}

json Bookmark(const ResourceInfo& r, const std::string& version, uint64_t rv, bool initial_end) {
  json md = {{"resourceVersion", std::to_string(rv)}, {"creationTimestamp", nullptr}};
  if (initial_end) md["annotations"] = {{"k8s.io/initial-events-end", "true"}};
  return {{"type", "BOOKMARK"},
          {"object", {{"kind", r.kind}, {"apiVersion", r.ApiVersion(version)}, {"metadata", md}}}};
}

json TooOld(uint64_t asked, uint64_t oldest) {
  ApiError e = ApiError::Gone("too old resource version: " + std::to_string(asked) + " (" +
                              std::to_string(oldest) + ")");
  return {{"type", "ERROR"}, {"object", e.ToStatus()}};
}

}  // namespace

http::ServerResponse KubeSim::Handle(const http::ServerRequest& req) {
  try {
    return Serve(req);
  } catch (const std::exception& e) {
    return ErrorResponse(ApiError::Internal(std::string("kubesim: ") + e.what()));
  }
}

http::ServerResponse KubeSim::Serve(const http::ServerRequest& req) {
  std::string path = req.path;
  while (path.size() > 1 && path.back() == '/') path.pop_back();
  if (path == "/healthz" || path == "/livez" || path == "/readyz") {
    return http::ServerResponse::Text(200, "ok");
  }
  if (path.rfind("/_sim/", 0) == 0) return ServeAdmin(req, path);
  if (!options_.token.empty()) {
    auto auth = req.headers.Get("Authorization");
    if (!auth || *auth != "Bearer " + options_.token) {
      ApiError e;
      e.code = 401;
      e.reason = "Unauthorized";
      e.message = "Unauthorized";
      return ErrorResponse(e);
    }
  }
  if (path == "/version") {
    return JsonResponse(200, {{"major", "1"},
                              {"minor", "32"},
                              {"gitVersion", "v1.32.0+kubesim"},
                              {"gitCommit", "0000000000000000000000000000000000000000"},
                              {"gitTreeState", "clean"},
                              {"buildDate", "2024-12-11T00:00:00Z"},
                              {"goVersion", "go1.23.3"},
                              {"compiler", "gc"},
                              {"platform", "linux/amd64"}});
  }
  std::vector<std::string> seg = Split(path);
  if (seg.empty()) return NotFoundPage();
  {
    // Discovery: aggregated (apidiscovery.k8s.io/v2) when the client lists
    // it in Accept, as kubectl 1.32 does, else the legacy documents.
    std::lock_guard<std::mutex> lock(mu_);
    if (path == "/api" || path == "/apis") {
      std::string accept = req.headers.Get("Accept").value_or("");
      if (accept.find("g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList") != std::string::npos) {
        http::ServerResponse resp =
            JsonResponse(200, registry_.AggregatedDiscovery(path == "/api"));
        resp.headers.Set("Content-Type",
                         "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList");
        resp.headers.Set("Vary", "Accept");
        return resp;
      }
      return JsonResponse(200, path == "/api" ? registry_.CoreVersions(options_.server_address)
                                              : registry_.GroupList());
    }
    if (seg[0] == "openapi") {
      if (seg.size() == 2 && seg[1] == "v3") return JsonResponse(200, registry_.OpenApiRoot());
      std::optional<json> doc;
      if (seg.size() == 4 && seg[1] == "v3" && seg[2] == "api") {
        doc = registry_.OpenApiDocument("", seg[3]);
      } else if (seg.size() == 5 && seg[1] == "v3" && seg[2] == "apis") {
        doc = registry_.OpenApiDocument(seg[3], seg[4]);
      }
      return doc ? JsonResponse(200, *doc) : NotFoundPage();
    }
    if (seg[0] == "api" && seg.size() == 2) {
      auto list = registry_.ResourceList("", seg[1]);
      return list ? JsonResponse(200, *list) : NotFoundPage();
    }
    if (seg[0] == "apis" && seg.size() == 2) {
      auto group = registry_.Group(seg[1]);
      return group ? JsonResponse(200, *group) : NotFoundPage();
    }
    if (seg[0] == "apis" && seg.size() == 3) {
      auto list = registry_.ResourceList(seg[1], seg[2]);
      return list ? JsonResponse(200, *list) : NotFoundPage();
    }
  }
  Target t;
  size_t i;
  if (seg[0] == "api" && seg.size() >= 3) {
    t.version = seg[1];
    i = 2;
  } else if (seg[0] == "apis" && seg.size() >= 4) {
    t.group = seg[1];
    t.version = seg[2];
    i = 3;
  } else {
    return NotFoundPage();
  }
  std::vector<std::string> rest(seg.begin() + static_cast<long>(i), seg.end());
  if (!rest.empty() && rest[0] == "watch") {
    t.legacy_watch = true;
    rest.erase(rest.begin());
  }
  if (rest.size() >= 3 && rest[0] == "namespaces" &&
      !(rest.size() == 3 && (rest[2] == "status" || rest[2] == "finalize"))) {
    t.ns = rest[1];
    t.has_ns = true;
    rest.erase(rest.begin(), rest.begin() + 2);
  }
  if (rest.empty() || rest.size() > 3) return NotFoundPage();
  t.resource = rest[0];
  if (rest.size() >= 2) t.name = rest[1];
  if (rest.size() == 3) t.sub = rest[2];
  return ServeResource(req, t);
}

http::ServerResponse KubeSim::ServeAdmin(const http::ServerRequest& req, const std::string& path) {
  if (path == "/_sim/requests" && req.method == "GET") {
    std::lock_guard<std::mutex> lock(counters_mu_);
    return JsonResponse(200, json(counters_));
  }
  if (path == "/_sim/requests" && req.method == "DELETE") {
    std::lock_guard<std::mutex> lock(counters_mu_);
    counters_.clear();
    return JsonResponse(200, json::object());
  }
  if (path == "/_sim/drop-watches" && req.method == "POST") {
    int open = 0;
    {
      std::lock_guard<std::mutex> lock(mu_);
      open = open_watches_.load();
      ++watch_epoch_;
      cv_.notify_all();
    }
    return JsonResponse(200, {{"dropped", open}});
  }
  return NotFoundPage();
}

void KubeSim::CountRequest(const http::ServerRequest& req, const Target& t) {
  std::string verb = req.method;
  if (req.method == "GET" && t.sub.empty()) {
    if (t.legacy_watch || Truthy(req.QueryValue("watch"))) {
      verb = "WATCH";
    } else if (t.name.empty()) {
      verb = "LIST";
    }
  }
  std::string key = verb + " " + t.resource;
  if (!t.group.empty()) key += "." + t.group;
  if (!t.sub.empty()) key += "/" + t.sub;
  std::lock_guard<std::mutex> lock(counters_mu_);
  ++counters_[key];
}

http::ServerResponse KubeSim::ServeResource(const http::ServerRequest& req, const Target& t) {
  CountRequest(req, t);
  if (req.method == "GET" && t.sub.empty() && (t.legacy_watch || Truthy(req.QueryValue("watch")))) {
    return ServeWatch(req, t);
  }
  if (t.legacy_watch) return NotFoundPage();
  std::unique_lock<std::mutex> lock(mu_);
  const ResourceInfo* rp = registry_.Find(t.group, t.version, t.resource);
  if (!rp) return NotFoundPage();
  const ResourceInfo r = *rp;
  if (r.namespaced != t.has_ns && !(r.namespaced && t.name.empty() && req.method == "GET") &&
      !(r.namespaced && t.name.empty() && req.method == "POST")) {
    return NotFoundPage();
  }
  if (!t.sub.empty() && t.sub != "status" && !(t.sub == "log" && r.GroupResource() == "pods")) {
    return NotFoundPage();
  }
  if (t.sub == "status" && !r.has_status) return NotFoundPage();
  if (t.sub == "log") {
    if (req.method != "GET")
      return ErrorResponse(ApiError::MethodNotAllowed("only GET is allowed"));
    json* pod = Find(r, t.ns, t.name);
    if (!pod) return ErrorResponse(ApiError::NotFound("", "pods", t.name));
    std::string container =
        req.QueryValue("container").value_or((*pod)["spec"]["containers"][0].value("name", ""));
    LogHandler handler = log_handler_;
    lock.unlock();
    if (handler) return handler(t.ns, t.name, req);
    return ErrorResponse(ApiError::BadRequest("container \"" + container + "\" in pod \"" + t.name +
                                              "\" is waiting to start: "
                                              "ContainerCreating"));
  }
  const bool status = t.sub == "status";
  std::vector<std::string> warnings;
  WriteOptions w;
  w.dry_run = req.QueryValue("dryRun").value_or("") == "All";
  w.field_validation = req.QueryValue("fieldValidation").value_or("Warn");
  w.warnings = &warnings;
  auto finish = [&](ApiResult result, int code) {
    if (!result.ok()) return ErrorResponse(result.error());
    if (!w.dry_run) CollectGarbage();
    return JsonResponse(code, Present(r, t.version, result.value()), warnings);
  };

  if (req.method == "GET") {
    if (t.name.empty()) return ServeList(req, t);
    json* o = Find(r, t.ns, t.name);
    if (!o) return ErrorResponse(ApiError::NotFound(r.group, r.plural, t.name));
    json out = Present(r, t.version, *o);
    if (WantsTable(req) && !status) {
      json table = BuildTable(r, t.version, {out}, req.QueryValue("includeObject").value_or(""),
                              clock_.WallNow());
      table["metadata"]["resourceVersion"] = MetaString(out, "resourceVersion");
      return JsonResponse(200, table);
    }
    return JsonResponse(200, out);
  }
  if (req.method == "POST") {
    if (!t.name.empty() || (r.namespaced && !t.has_ns)) {
      return ErrorResponse(ApiError::MethodNotAllowed(
          "the server does not allow this method on the requested resource"));
    }
    ApiResult parsed = ParseBody(req);
    if (!parsed.ok()) return ErrorResponse(parsed.error());
    json* body = &parsed.value();
    std::string av = body->value("apiVersion", "");
    if (!av.empty() && av != r.ApiVersion(t.version)) {
      return ErrorResponse(ApiError::BadRequest("the API version in the data (" + av +
                                                ") does not match the expected API version (" +
                                                r.ApiVersion(t.version) + ")"));
    }
    std::string kind = body->value("kind", "");
    if (!kind.empty() && kind != r.kind) {
      return ErrorResponse(ApiError::BadRequest(
          "the kind in the data (" + kind + ") does not match the expected kind (" + r.kind + ")"));
    }
    (*body)["apiVersion"] = r.ApiVersion(t.version);
    return finish(DoCreate(r, t.ns, *body, w), 201);
  }
  if (req.method == "PUT") {
    if (t.name.empty()) return ErrorResponse(ApiError::MethodNotAllowed("PUT needs a name"));
    ApiResult parsed = ParseBody(req);
    if (!parsed.ok()) return ErrorResponse(parsed.error());
    json* body = &parsed.value();
    std::string kind = body->value("kind", "");
    if (!kind.empty() && kind != r.kind) {
      return ErrorResponse(ApiError::BadRequest(
          "the kind in the data (" + kind + ") does not match the expected kind (" + r.kind + ")"));
    }
    (*body)["apiVersion"] = r.ApiVersion(t.version);
    return finish(DoUpdate(r, t.ns, t.name, *body, status, w), 200);
  }
  if (req.method == "PATCH") {
    if (t.name.empty()) return ErrorResponse(ApiError::MethodNotAllowed("PATCH needs a name"));
    std::string type = MediaType(req);
    json* cur = Find(r, t.ns, t.name);
    ApiResult patched = json();
    if (type == "application/apply-patch+yaml") {
      if (req.QueryValue("fieldManager").value_or("").empty()) {
        return ErrorResponse(ApiError::BadRequest(
            "PATCH, application/apply-patch+yaml: fieldManager is required for apply patch"));
      }
      ApiResult applied = ParseYamlOrJson(req.body);
      if (!applied.ok()) return ErrorResponse(applied.error());
      if (!cur) {
        if (status) return ErrorResponse(ApiError::NotFound(r.group, r.plural, t.name));
        json o = applied.value();
        Meta(o)["name"] = t.name;
        o["apiVersion"] = r.ApiVersion(t.version);
        return finish(DoCreate(r, t.ns, o, w), 201);
      }
      json base = Present(r, t.version, *cur);
      if (r.custom) {
        base.merge_patch(applied.value());
        patched = base;
      } else {
        patched = StrategicMerge(base, applied.value());
      }
    } else {
      if (!cur) return ErrorResponse(ApiError::NotFound(r.group, r.plural, t.name));
      json base = Present(r, t.version, *cur);
      if (type == "application/merge-patch+json") {
        patched = MergePatch(base, req.body);
      } else if (type == "application/json-patch+json") {
        patched = JsonPatch(base, req.body);
      } else if (type == "application/strategic-merge-patch+json" && !r.custom) {
        patched = StrategicMergePatch(base, req.body);
      } else {
        return ErrorResponse(ApiError::UnsupportedMediaType(
            std::string("the body of the request was in an unknown format - accepted media types "
                        "include: application/json-patch+json, application/merge-patch+json, ") +
            (r.custom ? "" : "application/strategic-merge-patch+json, ") +
            "application/apply-patch+yaml"));
      }
    }
    if (!patched.ok()) return ErrorResponse(patched.error());
    return finish(DoUpdate(r, t.ns, t.name, patched.value(), status, w), 200);
  }
  if (req.method == "DELETE") {
    DeleteOptions d;
    ApiResult parsed = req.body.empty() ? ApiResult(json()) : ParseBody(req);
    json* body = parsed.ok() && parsed.value().is_object() ? &parsed.value() : nullptr;
    if (body) {
      d.propagation = body->value("propagationPolicy", "");
      if (body->contains("orphanDependents") && (*body)["orphanDependents"].is_boolean()) {
        d.propagation = (*body)["orphanDependents"].get<bool>() ? "Orphan" : "Background";
      }
      if (body->contains("preconditions") && (*body)["preconditions"].is_object()) {
        d.precondition_uid = (*body)["preconditions"].value("uid", "");
        d.precondition_rv = (*body)["preconditions"].value("resourceVersion", "");
      }
      if (body->contains("dryRun") && !(*body)["dryRun"].empty()) d.dry_run = true;
    }
    if (auto p = req.QueryValue("propagationPolicy")) d.propagation = *p;
    if (auto p = req.QueryValue("orphanDependents"))
      d.propagation = Truthy(p) ? "Orphan" : "Background";
    if (w.dry_run) d.dry_run = true;
    if (t.name.empty()) {
      Selector labels, fields;
      ApiResult ok = Selector::ParseLabels(req.QueryValue("labelSelector").value_or(""), labels);
      if (ok.ok()) ok = Selector::ParseFields(req.QueryValue("fieldSelector").value_or(""), fields);
      if (ok.ok()) ok = CheckFieldSelector(r, fields);
      if (!ok.ok()) return ErrorResponse(ok.error());
      std::vector<json> victims;
      for (const auto& [key, o] : objects_[r.GroupResource()]) {
        if (r.namespaced && MetaString(o, "namespace") != t.ns) continue;
        if (labels.Matches(Labels(o)) && fields.Matches(FieldSet(r, o))) victims.push_back(o);
      }
      json items = json::array();
      for (const json& o : victims) {
        ApiResult res = DoDelete(r, t.ns, MetaString(o, "name"), d);
        if (res.ok()) items.push_back(Present(r, t.version, res.value()));
      }
      if (!d.dry_run) CollectGarbage();
      return JsonResponse(200, {{"kind", r.kind + "List"},
                                {"apiVersion", r.ApiVersion(t.version)},
                                {"metadata", {{"resourceVersion", std::to_string(rv_)}}},
                                {"items", items}});
    }
    ApiResult res = DoDelete(r, t.ns, t.name, d);
    if (!res.ok()) return ErrorResponse(res.error());
    if (!d.dry_run) CollectGarbage();
    return JsonResponse(200, Present(r, t.version, res.value()));
  }
  return ErrorResponse(ApiError::MethodNotAllowed(
      "the server does not allow this method on the requested resource"));
}

http::ServerResponse KubeSim::ServeList(const http::ServerRequest& req, const Target& t) {
  // Runs with mu_ held.
  const ResourceInfo r = *registry_.Find(t.group, t.version, t.resource);
  Selector labels, fields;
  ApiResult ok = Selector::ParseLabels(req.QueryValue("labelSelector").value_or(""), labels);
  if (ok.ok()) ok = Selector::ParseFields(req.QueryValue("fieldSelector").value_or(""), fields);
  if (ok.ok()) ok = CheckFieldSelector(r, fields);
  if (!ok.ok()) return ErrorResponse(ok.error());
  long limit = 0;
  if (auto l = req.QueryValue("limit")) {
    try {
      limit = std::stol(*l);
    } catch (const std::exception&) {
      return ErrorResponse(ApiError::BadRequest("limit: Invalid value: " + json(*l).dump()));
    }
  }
  uint64_t list_rv = rv_;
  std::string after;
  if (auto c = req.QueryValue("continue"); c && !c->empty()) {
    auto decoded = Base64Decode(*c);
    json token;
    try {
      token = json::parse(decoded.value_or(""));
      list_rv = token.at("rv").get<uint64_t>();
      after = token.at("start").get<std::string>();
    } catch (const std::exception&) {
      return ErrorResponse(
          ApiError::BadRequest("continue key is not valid: incorrect encoded start resourceVersion "
                               "(version meta.k8s.io/v1)"));
    }
    if (list_rv < compacted_) {
      return ErrorResponse(ApiError::Gone(
          "The provided continue parameter is too old to display a consistent list result. You "
          "can start a new list without the continue parameter, or use the continue token in "
          "this response to retrieve the remainder of the results. Continuing with the provided "
          "token results in an inconsistent list - objects that were created, modified, or "
          "deleted between the time the first chunk was returned and now may show up in the "
          "list."));
    }
  }
  std::vector<json> items;
  std::string last_key;
  long remaining = 0;
  auto bucket = objects_.find(r.GroupResource());
  if (bucket != objects_.end()) {
    for (auto it = bucket->second.upper_bound(after); it != bucket->second.end(); ++it) {
      const json& o = it->second;
      if (t.has_ns && MetaString(o, "namespace") != t.ns) continue;
      if (!labels.Matches(Labels(o)) || !fields.Matches(FieldSet(r, o))) continue;
      if (limit > 0 && static_cast<long>(items.size()) >= limit) {
        ++remaining;
        continue;
      }
      items.push_back(Present(r, t.version, o));
      last_key = it->first;
    }
  }
  json md = {{"resourceVersion", std::to_string(list_rv)}};
  if (remaining > 0) {
    md["continue"] = Base64Encode(json{{"rv", list_rv}, {"start", last_key}}.dump());
    md["remainingItemCount"] = remaining;
  }
  if (WantsTable(req)) {
    json table = BuildTable(r, t.version, items, req.QueryValue("includeObject").value_or(""),
                            clock_.WallNow());
    table["metadata"] = md;
    return JsonResponse(200, table);
  }
  return JsonResponse(200, {{"kind", r.kind + "List"},
                            {"apiVersion", r.ApiVersion(t.version)},
                            {"metadata", md},
                            {"items", items}});
}

http::ServerResponse KubeSim::ServeWatch(const http::ServerRequest& req, const Target& t) {
  auto spec = std::make_shared<WatchSpec>();
  {
    std::lock_guard<std::mutex> lock(mu_);
    const ResourceInfo* rp = registry_.Find(t.group, t.version, t.resource);
    if (!rp || (!rp->namespaced && t.has_ns)) return NotFoundPage();
    spec->r = *rp;
  }
  spec->version = t.version;
  spec->ns = t.has_ns ? t.ns : "";
  std::string field_text = req.QueryValue("fieldSelector").value_or("");
  if (!t.name.empty()) {
    field_text += (field_text.empty() ? "" : ",") + std::string("metadata.name=") + t.name;
  }
  ApiResult ok = Selector::ParseLabels(req.QueryValue("labelSelector").value_or(""), spec->labels);
  if (ok.ok()) ok = Selector::ParseFields(field_text, spec->fields);
  if (ok.ok()) ok = CheckFieldSelector(spec->r, spec->fields);
  if (!ok.ok()) return ErrorResponse(ok.error());
  std::string rv = req.QueryValue("resourceVersion").value_or("");
  spec->bookmarks = Truthy(req.QueryValue("allowWatchBookmarks"));
  if (Truthy(req.QueryValue("sendInitialEvents"))) {
    spec->initial = true;
    spec->initial_end_bookmark = spec->bookmarks;
  } else if (rv.empty() || rv == "0") {
    spec->initial = true;
  } else {
    try {
      size_t used = 0;
      spec->start = std::stoull(rv, &used);
      if (used != rv.size()) throw std::invalid_argument(rv);
    } catch (const std::exception&) {
      return ErrorResponse(ApiError::BadRequest(
          "resourceVersion: Invalid value: " + json(rv).dump() + ": must be a number"));
    }
  }
  std::chrono::seconds timeout = options_.default_watch_timeout;
  if (auto ts = req.QueryValue("timeoutSeconds")) {
    try {
      timeout = std::chrono::seconds(std::stol(*ts));
    } catch (const std::exception&) {
      return ErrorResponse(ApiError::BadRequest("timeoutSeconds: Invalid value"));
    }
  }
  spec->deadline = std::chrono::steady_clock::now() + timeout;
  spec->table = WantsTable(req);
  spec->include = req.QueryValue("includeObject").value_or("");
  http::ServerResponse resp;
  resp.status = 200;
  resp.headers.Set("Content-Type", "application/json");
  resp.headers.Set("Cache-Control", "no-cache, private");
  resp.stream = [this, spec](http::StreamWriter& writer) { RunWatch(*spec, writer); };
  return resp;
}

void KubeSim::RunWatch(const WatchSpec& spec, http::StreamWriter& writer) {
  const std::string gr = spec.r.GroupResource();
  bool first_table = true;
  auto matches = [&](const json& o) {
    if (!spec.ns.empty() && MetaString(o, "namespace") != spec.ns) return false;
    return spec.labels.Matches(Labels(o)) && spec.fields.Matches(FieldSet(spec.r, o));
  };
  auto encode = [&](const std::string& type, const json& object) {
    json o = Present(spec.r, spec.version, object);
    if (spec.table) {
      json table =
          BuildTable(spec.r, spec.version, {o}, spec.include, clock_.WallNow(), first_table);
      first_table = false;
      table["metadata"]["resourceVersion"] = MetaString(o, "resourceVersion");
      o = std::move(table);
    }
    return json{{"type", type}, {"object", o}}.dump() + "\n";
  };
  auto write_all = [&](const std::vector<std::string>& lines) {
    for (const auto& l : lines) {
      if (!writer.Write(l)) return false;
    }
    return true;
  };
  // Counted while the stream runs, for /_sim/drop-watches' answer.
  struct OpenWatch {
    std::atomic<int>* open = nullptr;
    ~OpenWatch() {
      if (open) --*open;
    }
  } open_watch;
  std::vector<std::string> out;
  uint64_t pos = 0;
  uint64_t epoch = 0;
  {
    std::lock_guard<std::mutex> lock(mu_);
    // Under mu_, like the drop: a watch it counted is one it ends.
    epoch = watch_epoch_;
    ++open_watches_;
    open_watch.open = &open_watches_;
    if (spec.initial) {
      for (const auto& [key, o] : objects_[gr]) {
        if (matches(o)) out.push_back(encode("ADDED", o));
      }
      pos = rv_;
      if (spec.initial_end_bookmark)
        out.push_back(Bookmark(spec.r, spec.version, pos, true).dump() + "\n");
    } else {
      pos = spec.start;
      if (pos < compacted_) {
        writer.Write(TooOld(pos, compacted_ + 1).dump() + "\n");
        return;
      }
    }
  }
  if (!write_all(out)) return;
  auto last_sent = std::chrono::steady_clock::now();
  while (true) {
    out.clear();
    {
      std::unique_lock<std::mutex> lock(mu_);
      if (!stopping_ && rv_ <= pos) {
        auto wake = std::min(spec.deadline,
                             std::chrono::steady_clock::now() + std::chrono::milliseconds(500));
        if (spec.bookmarks) wake = std::min(wake, last_sent + options_.bookmark_interval);
        cv_.wait_until(lock, wake);
      }
      if (stopping_ || watch_epoch_ != epoch) return;
      if (pos < compacted_) {
        lock.unlock();
        writer.Write(TooOld(pos, compacted_ + 1).dump() + "\n");
        return;
      }
      auto it = std::upper_bound(history_.begin(), history_.end(), pos,
                                 [](uint64_t v, const Event& e) { return v < e.rv; });
      for (; it != history_.end(); ++it) {
        const Event& e = *it;
        if (e.group_resource != gr) continue;
        bool now_matches = matches(e.object);
        if (e.type == "MODIFIED") {
          bool was = matches(e.old);
          if (now_matches && was)
            out.push_back(encode("MODIFIED", e.object));
          else if (now_matches)
            out.push_back(encode("ADDED", e.object));
          else if (was)
            out.push_back(encode("DELETED", e.object));
        } else if (now_matches) {
          out.push_back(encode(e.type, e.object));
        }
      }
      pos = rv_;
      // A watch on a custom resource ends once its CRD is gone, as upstream.
      if (!registry_.FindByGroupResource(gr)) {
        lock.unlock();
        write_all(out);
        return;
      }
    }
    auto now = std::chrono::steady_clock::now();
    if (!out.empty()) {
      if (!write_all(out)) return;
      last_sent = now;
    } else if (spec.bookmarks && now - last_sent >= options_.bookmark_interval) {
      if (!writer.Write(Bookmark(spec.r, spec.version, pos, false).dump() + "\n")) return;
      last_sent = now;
    }
    if (writer.closed() || now >= spec.deadline) return;
  }
}

// ---------------------------------------------------------------------------
// In-process API

ApiResult KubeSim::Get(const std::string& group_resource, const std::string& ns,
                       const std::string& name) {
  std::lock_guard<std::mutex> lock(mu_);
  const ResourceInfo* r = registry_.FindByGroupResource(group_resource);
  if (!r) return ApiError::NotFound("", group_resource, name);
  json* o = Find(*r, ns, name);
  if (!o) return ApiError::NotFound(r->group, r->plural, name);
  return *o;
}

ApiResult KubeSim::List(const std::string& group_resource, const std::string& ns) {
  std::lock_guard<std::mutex> lock(mu_);
  json items = json::array();
  auto bucket = objects_.find(group_resource);
  if (bucket == objects_.end()) return items;
  for (const auto& [key, o] : bucket->second) {
    if (ns.empty() || MetaString(o, "namespace") == ns) items.push_back(o);
  }
  return items;
}

ApiResult KubeSim::Create(const std::string& group_resource, const std::string& ns, json object) {
  std::lock_guard<std::mutex> lock(mu_);
  const ResourceInfo* r = registry_.FindByGroupResource(group_resource);
  if (!r) return ApiError::NotFound("", group_resource, "");
  const ResourceInfo info = *r;
  ApiResult res = DoCreate(info, ns, std::move(object), WriteOptions{});
  if (res.ok()) CollectGarbage();
  return res;
}

ApiResult KubeSim::Update(const std::string& group_resource, const std::string& ns, json object,
                          bool status) {
  std::lock_guard<std::mutex> lock(mu_);
  const ResourceInfo* r = registry_.FindByGroupResource(group_resource);
  if (!r) return ApiError::NotFound("", group_resource, "");
  const ResourceInfo info = *r;
  std::string name = MetaString(object, "name");
  ApiResult res = DoUpdate(info, ns, name, std::move(object), status, WriteOptions{});
  if (res.ok()) CollectGarbage();
  return res;
}

ApiResult KubeSim::Delete(const std::string& group_resource, const std::string& ns,
                          const std::string& name, const std::string& propagation) {
  std::lock_guard<std::mutex> lock(mu_);
  const ResourceInfo* r = registry_.FindByGroupResource(group_resource);
  if (!r) return ApiError::NotFound("", group_resource, name);
  const ResourceInfo info = *r;
  DeleteOptions d;
  d.propagation = propagation;
  ApiResult res = DoDelete(info, ns, name, d);
  if (res.ok()) CollectGarbage();
  return res;
}

uint64_t KubeSim::resource_version() {
  std::lock_guard<std::mutex> lock(mu_);
  return rv_;
}

uint64_t KubeSim::WaitForChange(uint64_t seen, std::chrono::milliseconds timeout) {
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait_for(lock, timeout, [&] { return rv_ > seen || stopping_; });
  return rv_;
}

}  // namespace nixmox::kubesim
