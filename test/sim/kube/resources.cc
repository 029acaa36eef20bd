#include "test/sim/kube/resources.h"

#include <algorithm>
#include <cstdio>
#include <functional>
#include <regex>
#include <set>

namespace nixmox::kubesim {
namespace {

const std::vector<std::string> kVerbs = {"create", "delete", "deletecollection", "get",
                                         "list",   "patch",  "update",           "watch"};

ResourceInfo Builtin(std::string group, std::string version, std::string plural,
                     std::string singular, std::string kind, bool namespaced) {
  ResourceInfo r;
  r.group = std::move(group);
  r.versions = {std::move(version)};
  r.plural = std::move(plural);
  r.singular = std::move(singular);
  r.kind = std::move(kind);
  r.namespaced = namespaced;
  return r;
}

std::string HashHex(const std::string& s) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016zx", std::hash<std::string>{}(s));
  return buf;
}

}  // namespace

bool ResourceInfo::Serves(const std::string& version) const {
  return std::find(versions.begin(), versions.end(), version) != versions.end();
}

Registry::Registry() {
  auto ns = Builtin("", "v1", "namespaces", "namespace", "Namespace", false);
  ns.short_names = {"ns"};
  ns.has_status = true;
  ns.selectable_fields = {"status.phase"};
  Add(ns);
  auto secrets = Builtin("", "v1", "secrets", "secret", "Secret", true);
  secrets.selectable_fields = {"type"};
  Add(secrets);
  auto cms = Builtin("", "v1", "configmaps", "configmap", "ConfigMap", true);
  cms.short_names = {"cm"};
  Add(cms);
  auto events = Builtin("", "v1", "events", "event", "Event", true);
  events.short_names = {"ev"};
  events.selectable_fields = {"involvedObject.kind",
                              "involvedObject.namespace",
                              "involvedObject.name",
                              "involvedObject.uid",
                              "involvedObject.apiVersion",
                              "involvedObject.resourceVersion",
                              "involvedObject.fieldPath",
                              "reason",
                              "reportingComponent",
                              "source",
                              "type"};
  Add(events);
  auto pods = Builtin("", "v1", "pods", "pod", "Pod", true);
  pods.short_names = {"po"};
  pods.categories = {"all"};
  pods.has_status = true;
  pods.selectable_fields = {
      "spec.nodeName",    "spec.restartPolicy", "spec.schedulerName", "spec.serviceAccountName",
      "spec.hostNetwork", "status.phase",       "status.podIP",       "status.nominatedNodeName"};
  Add(pods);
  auto sas = Builtin("", "v1", "serviceaccounts", "serviceaccount", "ServiceAccount", true);
  sas.short_names = {"sa"};
  Add(sas);
  auto svcs = Builtin("", "v1", "services", "service", "Service", true);
  svcs.short_names = {"svc"};
  svcs.categories = {"all"};
  svcs.has_status = true;
  Add(svcs);
  auto jobs = Builtin("batch", "v1", "jobs", "job", "Job", true);
  jobs.categories = {"all"};
  jobs.has_status = true;
  jobs.has_generation = true;
  jobs.selectable_fields = {"status.successful"};
  jobs.default_propagation = "Orphan";
  Add(jobs);
  Add(Builtin("coordination.k8s.io", "v1", "leases", "lease", "Lease", true));
  // events.k8s.io/v1 Events are stored apart from core v1 Events (upstream
  // converts between the two; kubesim does not).
  auto new_events = Builtin("events.k8s.io", "v1", "events", "event", "Event", true);
  new_events.short_names = {"ev"};
  Add(new_events);
  // What Helm charts and kustomize bases install besides the above. Stored and
  // validated only: no controller acts on them (see README).
  auto deployments = Builtin("apps", "v1", "deployments", "deployment", "Deployment", true);
  deployments.short_names = {"deploy"};
  deployments.categories = {"all"};
  deployments.has_status = true;
  deployments.has_generation = true;
  Add(deployments);
  auto pdbs = Builtin("policy", "v1", "poddisruptionbudgets", "poddisruptionbudget",
                      "PodDisruptionBudget", true);
  pdbs.short_names = {"pdb"};
  pdbs.has_status = true;
  pdbs.has_generation = true;
  Add(pdbs);
  const std::string rbac = "rbac.authorization.k8s.io";
  Add(Builtin(rbac, "v1", "roles", "role", "Role", true));
  Add(Builtin(rbac, "v1", "rolebindings", "rolebinding", "RoleBinding", true));
  Add(Builtin(rbac, "v1", "clusterroles", "clusterrole", "ClusterRole", false));
  Add(Builtin(rbac, "v1", "clusterrolebindings", "clusterrolebinding", "ClusterRoleBinding",
              false));
  auto crds = Builtin("apiextensions.k8s.io", "v1", "customresourcedefinitions",
                      "customresourcedefinition", "CustomResourceDefinition", false);
  crds.short_names = {"crd", "crds"};
  crds.has_status = true;
  crds.has_generation = true;
  crds.is_crd_itself = true;
  Add(crds);
}

void Registry::Add(ResourceInfo info) {
  std::string key = info.GroupResource();
  if (!resources_.count(key)) order_.push_back(key);
  resources_[key] = std::move(info);
}

const ResourceInfo* Registry::Find(const std::string& group, const std::string& version,
                                   const std::string& plural) const {
  auto it = resources_.find(group.empty() ? plural : plural + "." + group);
  if (it == resources_.end() || !it->second.Serves(version)) return nullptr;
  return &it->second;
}

const ResourceInfo* Registry::FindByGroupResource(const std::string& group_resource) const {
  auto it = resources_.find(group_resource);
  return it == resources_.end() ? nullptr : &it->second;
}

const ResourceInfo* Registry::FindByKind(const std::string& group, const std::string& kind) const {
  for (const auto& [key, r] : resources_) {
    if (r.group == group && r.kind == kind) return &r;
  }
  return nullptr;
}

void Registry::RegisterCrd(const json& crd) {
  const json& spec = crd["spec"];
  ResourceInfo r;
  r.group = spec.value("group", "");
  const json& names = spec["names"];
  r.plural = names.value("plural", "");
  r.kind = names.value("kind", "");
  r.singular = names.value("singular", "");
  if (r.singular.empty()) {
    r.singular = r.kind;
    std::transform(r.singular.begin(), r.singular.end(), r.singular.begin(), ::tolower);
  }
  r.short_names = names.value("shortNames", std::vector<std::string>{});
  r.categories = names.value("categories", std::vector<std::string>{});
  r.namespaced = spec.value("scope", "Namespaced") == "Namespaced";
  r.custom = true;
  r.has_generation = true;
  for (const json& v : spec.value("versions", json::array())) {
    if (!v.value("served", false)) continue;
    std::string name = v.value("name", "");
    // The storage version is preferred in discovery, as kube-apiserver sorts by priority.
    if (v.value("storage", false)) {
      r.versions.insert(r.versions.begin(), name);
    } else {
      r.versions.push_back(name);
    }
    if (v.contains("subresources") && v["subresources"].contains("status")) r.has_status = true;
    if (v.contains("schema") && v["schema"].contains("openAPIV3Schema")) {
      r.schemas[name] = v["schema"]["openAPIV3Schema"];
    }
    std::vector<PrinterColumn> cols;
    for (const json& c : v.value("additionalPrinterColumns", json::array())) {
      PrinterColumn pc;
      pc.name = c.value("name", "");
      pc.type = c.value("type", "string");
      pc.format = c.value("format", "");
      pc.description = c.value("description", "");
      pc.priority = c.value("priority", 0);
      pc.json_path = c.value("jsonPath", "");
      cols.push_back(pc);
    }
    r.columns[name] = cols;
    for (const json& f : v.value("selectableFields", json::array())) {
      std::string path = f.value("jsonPath", "");
      if (!path.empty() && path[0] == '.') path = path.substr(1);
      r.selectable_fields.push_back(path);
    }
  }
  // Sort the non-preferred versions so that discovery is stable.
  Add(std::move(r));
}

void Registry::UnregisterCrd(const json& crd) {
  const json& spec = crd["spec"];
  std::string key = spec["names"].value("plural", "") + "." + spec.value("group", "");
  auto it = resources_.find(key);
  if (it == resources_.end() || !it->second.custom) return;
  resources_.erase(it);
  order_.erase(std::remove(order_.begin(), order_.end(), key), order_.end());
}

std::vector<std::string> Registry::GroupOrder() const {
  std::vector<std::string> groups;
  for (const auto& key : order_) {
    const ResourceInfo& r = resources_.at(key);
    if (r.group.empty()) continue;
    if (std::find(groups.begin(), groups.end(), r.group) == groups.end()) {
      groups.push_back(r.group);
    }
  }
  return groups;
}

json Registry::CoreVersions(const std::string& server_address) const {
  return {{"kind", "APIVersions"},
          {"versions", {"v1"}},
          {"serverAddressByClientCIDRs",
           {{{"clientCIDR", "0.0.0.0/0"}, {"serverAddress", server_address}}}}};
}

std::optional<json> Registry::Group(const std::string& group) const {
  std::vector<std::string> versions;
  for (const auto& key : order_) {
    const ResourceInfo& r = resources_.at(key);
    if (r.group != group) continue;
    for (const auto& v : r.versions) {
      if (std::find(versions.begin(), versions.end(), v) == versions.end()) versions.push_back(v);
    }
  }
  if (versions.empty() || group.empty()) return std::nullopt;
  json vs = json::array();
  for (const auto& v : versions) vs.push_back({{"groupVersion", group + "/" + v}, {"version", v}});
  return json{{"kind", "APIGroup"},
              {"apiVersion", "v1"},
              {"name", group},
              {"versions", vs},
              {"preferredVersion", vs[0]}};
}

json Registry::GroupList() const {
  json groups = json::array();
  for (const auto& g : GroupOrder()) {
    json group = *Group(g);
    group.erase("kind");
    group.erase("apiVersion");
    groups.push_back(group);
  }
  return {{"kind", "APIGroupList"}, {"apiVersion", "v1"}, {"groups", groups}};
}

std::optional<json> Registry::ResourceList(const std::string& group,
                                           const std::string& version) const {
  json list = json::array();
  bool any = false;
  for (const auto& key : order_) {
    const ResourceInfo& r = resources_.at(key);
    if (r.group != group || !r.Serves(version)) continue;
    any = true;
    json entry = {{"name", r.plural},
                  {"singularName", r.singular},
                  {"namespaced", r.namespaced},
                  {"kind", r.kind},
                  {"verbs", kVerbs},
                  {"storageVersionHash", HashHex(key).substr(0, 11)}};
    if (!r.short_names.empty()) entry["shortNames"] = r.short_names;
    if (!r.categories.empty()) entry["categories"] = r.categories;
    list.push_back(entry);
    if (r.has_status) {
      list.push_back({{"name", r.plural + "/status"},
                      {"singularName", ""},
                      {"namespaced", r.namespaced},
                      {"kind", r.kind},
                      {"verbs", {"get", "patch", "update"}}});
    }
    if (r.group.empty() && r.plural == "pods") {
      list.push_back({{"name", "pods/log"},
                      {"singularName", ""},
                      {"namespaced", true},
                      {"kind", "Pod"},
                      {"verbs", {"get"}}});
    }
  }
  if (!any) return std::nullopt;
  return json{{"kind", "APIResourceList"},
              {"apiVersion", "v1"},
              {"groupVersion", group.empty() ? version : group + "/" + version},
              {"resources", list}};
}

json Registry::AggregatedDiscovery(bool core) const {
  std::vector<std::string> groups = core ? std::vector<std::string>{""} : GroupOrder();
  json items = json::array();
  for (const auto& g : groups) {
    std::vector<std::string> versions;
    for (const auto& key : order_) {
      const ResourceInfo& r = resources_.at(key);
      if (r.group != g) continue;
      for (const auto& v : r.versions) {
        if (std::find(versions.begin(), versions.end(), v) == versions.end()) {
          versions.push_back(v);
        }
      }
    }
    json vs = json::array();
    for (const auto& v : versions) {
      json resources = json::array();
      for (const auto& key : order_) {
        const ResourceInfo& r = resources_.at(key);
        if (r.group != g || !r.Serves(v)) continue;
        json kind = {{"group", g}, {"version", v}, {"kind", r.kind}};
        json entry = {{"resource", r.plural},
                      {"responseKind", kind},
                      {"scope", r.namespaced ? "Namespaced" : "Cluster"},
                      {"singularResource", r.singular},
                      {"verbs", kVerbs}};
        if (!r.short_names.empty()) entry["shortNames"] = r.short_names;
        if (!r.categories.empty()) entry["categories"] = r.categories;
        json subs = json::array();
        if (r.has_status) {
          subs.push_back({{"subresource", "status"},
                          {"responseKind", kind},
                          {"verbs", {"get", "patch", "update"}}});
        }
        if (g.empty() && r.plural == "pods") {
          subs.push_back({{"subresource", "log"},
                          {"responseKind", {{"group", ""}, {"version", "v1"}, {"kind", "Pod"}}},
                          {"verbs", {"get"}}});
        }
        if (!subs.empty()) entry["subresources"] = subs;
        resources.push_back(entry);
      }
      vs.push_back({{"version", v}, {"resources", resources}, {"freshness", "Current"}});
    }
    json md = json::object();
    if (!g.empty()) md["name"] = g;
    items.push_back({{"metadata", md}, {"versions", vs}});
  }
  return {{"kind", "APIGroupDiscoveryList"},
          {"apiVersion", "apidiscovery.k8s.io/v2"},
          {"metadata", json::object()},
          {"items", items}};
}

std::optional<json> Registry::OpenApiDocument(const std::string& group,
                                              const std::string& version) const {
  // Just enough OpenAPI for kubectl: each resource's PATCH operation names its
  // GroupVersionKind and declares the fieldValidation parameter, so kubectl
  // leaves field validation to the server (which kubesim does for custom
  // resources). No component schemas: kubectl then computes strategic merge
  // patches from its compiled-in types, as it does against older servers.
  json paths = json::object();
  bool any = false;
  auto param = [](const char* name) {
    return json{{"name", name}, {"in", "query"}, {"schema", {{"type", "string"}}}};
  };
  for (const auto& key : order_) {
    const ResourceInfo& r = resources_.at(key);
    if (r.group != group || !r.Serves(version)) continue;
    any = true;
    std::string prefix = group.empty() ? "/api/" + version : "/apis/" + group + "/" + version;
    std::string item =
        prefix + (r.namespaced ? "/namespaces/{namespace}/" : "/") + r.plural + "/{name}";
    json gvk = {{"group", group}, {"version", version}, {"kind", r.kind}};
    json params = {param("dryRun"), param("fieldManager"), param("fieldValidation"),
                   param("force")};
    auto op = [&](const char* id, const char* action) {
      return json{{"operationId", std::string(id) + r.kind},
                  {"x-kubernetes-action", action},
                  {"x-kubernetes-group-version-kind", gvk},
                  {"parameters", params},
                  {"responses", {{"200", {{"description", "OK"}}}}}};
    };
    paths[item] = {{"get", op("read", "get")},
                   {"put", op("replace", "put")},
                   {"patch", op("patch", "patch")},
                   {"delete", op("delete", "delete")}};
    if (r.has_status) {
      paths[item + "/status"] = {{"get", op("readStatus", "get")},
                                 {"put", op("replaceStatus", "put")},
                                 {"patch", op("patchStatus", "patch")}};
    }
  }
  if (!any) return std::nullopt;
  return json{{"openapi", "3.0.0"},
              {"info", {{"title", "Kubernetes"}, {"version", "v1.32.0"}}},
              {"paths", paths},
              {"components", json::object()}};
}

json Registry::OpenApiRoot() const {
  json paths = json::object();
  std::set<std::pair<std::string, std::string>> gvs;
  for (const auto& [key, r] : resources_) {
    for (const auto& v : r.versions) gvs.insert({r.group, v});
  }
  for (const auto& [g, v] : gvs) {
    std::string rel = g.empty() ? "api/" + v : "apis/" + g + "/" + v;
    std::string hash = HashHex(OpenApiDocument(g, v)->dump());
    paths[rel] = {{"serverRelativeURL", "/openapi/v3/" + rel + "?hash=" + hash}};
  }
  return {{"paths", paths}};
}

std::vector<Cause> ValidateCrd(const json& crd) {
  std::vector<Cause> causes;
  auto required = [&](const std::string& field) {
    causes.push_back({"FieldValueRequired", field, "Required value"});
  };
  auto invalid = [&](const std::string& field, const json& value, const std::string& why) {
    causes.push_back({"FieldValueInvalid", field, "Invalid value: " + value.dump() + ": " + why});
  };
  const json spec = crd.value("spec", json::object());
  std::string group = spec.value("group", "");
  const json names = spec.value("names", json::object());
  std::string plural = names.value("plural", "");
  std::string kind = names.value("kind", "");
  std::string name = crd.value("metadata", json::object()).value("name", "");
  if (group.empty())
    required("spec.group");
  else if (group.find('.') == std::string::npos) {
    invalid("spec.group", group, "should be a domain with at least one dot");
  }
  if (plural.empty()) required("spec.names.plural");
  if (kind.empty()) required("spec.names.kind");
  if (!group.empty() && !plural.empty() && name != plural + "." + group) {
    invalid("metadata.name", name, "must be spec.names.plural+\".\"+spec.group");
  }
  std::string scope = spec.value("scope", "");
  if (scope != "Namespaced" && scope != "Cluster") {
    causes.push_back({"FieldValueNotSupported", "spec.scope",
                      "Unsupported value: " + json(scope).dump() +
                          ": supported values: \"Cluster\", \"Namespaced\""});
  }
  const json versions = spec.value("versions", json::array());
  if (!versions.is_array() || versions.empty()) {
    causes.push_back(
        {"FieldValueInvalid", "spec.versions",
         "Invalid value: null: must have exactly one version marked as storage version"});
    return causes;
  }
  int storage = 0;
  for (size_t i = 0; i < versions.size(); ++i) {
    const json& v = versions[i];
    std::string path = "spec.versions[" + std::to_string(i) + "]";
    if (v.value("name", "").empty()) required(path + ".name");
    if (v.value("storage", false)) ++storage;
    if (!v.contains("schema") || !v["schema"].contains("openAPIV3Schema")) {
      required(path + ".schema.openAPIV3Schema");
    } else if (v["schema"]["openAPIV3Schema"].value("type", "") != "object") {
      causes.push_back({"FieldValueRequired", path + ".schema.openAPIV3Schema.type",
                        "Required value: must not be empty at the root"});
    }
  }
  if (storage != 1) {
    causes.push_back({"FieldValueInvalid", "spec.versions",
                      "Invalid value: " + versions.dump() +
                          ": must have exactly one version marked as storage version"});
  }
  return causes;
}

}  // namespace nixmox::kubesim
