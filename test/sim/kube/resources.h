// What kubesim serves: the built-in resources, the ones CRDs register, and the
// discovery documents that describe them. Not thread-safe: KubeSim guards it.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "test/sim/kube/api_error.h"

namespace nixmox::kubesim {

struct PrinterColumn {
  std::string name;
  std::string type;  // string, integer, number, boolean, date
  std::string format;
  std::string description;
  int priority = 0;
  std::string json_path;
};

// One resource (a group and a plural), served at one or more versions. Objects
// are stored once; a read at another served version only relabels apiVersion
// (CRD conversion strategy None).
struct ResourceInfo {
  std::string group;                  // "" for the core group
  std::vector<std::string> versions;  // served versions; the first is the preferred one
  std::string plural;
  std::string singular;
  std::string kind;
  bool namespaced = true;
  std::vector<std::string> short_names;
  std::vector<std::string> categories;
  bool has_status = false;  // a /status subresource with its rules
  bool has_generation = false;
  bool custom = false;  // served for a CRD
  bool is_crd_itself = false;
  // Fields a field selector may name besides metadata.name and metadata.namespace.
  std::vector<std::string> selectable_fields;
  // The propagation a DELETE without one gets (batch/v1 Jobs orphan, as upstream).
  std::string default_propagation = "Background";
  // Per version: the openAPIV3Schema (custom resources) and the printer columns.
  std::map<std::string, json> schemas;
  std::map<std::string, std::vector<PrinterColumn>> columns;

  std::string GroupResource() const { return group.empty() ? plural : plural + "." + group; }
  std::string ApiVersion(const std::string& version) const {
    return group.empty() ? version : group + "/" + version;
  }
  bool Serves(const std::string& version) const;
};

class Registry {
 public:
  Registry();  // the built-in resources

  // Finds a resource by group, version and plural.
  const ResourceInfo* Find(const std::string& group, const std::string& version,
                           const std::string& plural) const;
  const ResourceInfo* FindByGroupResource(const std::string& group_resource) const;
  const ResourceInfo* FindByKind(const std::string& group, const std::string& kind) const;

  // Registers (or replaces) what a CRD object declares. The CRD must be valid.
  void RegisterCrd(const json& crd);
  void UnregisterCrd(const json& crd);

  // Discovery documents.
  json CoreVersions(const std::string& server_address) const;  // /api
  json GroupList() const;                                      // /apis
  std::optional<json> Group(const std::string& group) const;   // /apis/G
  std::optional<json> ResourceList(const std::string& group, const std::string& version) const;
  // Aggregated discovery (apidiscovery.k8s.io/v2 APIGroupDiscoveryList):
  // core=true for /api, false for /apis.
  json AggregatedDiscovery(bool core) const;
  // OpenAPI v3: the root index and one document per group-version.
  json OpenApiRoot() const;
  std::optional<json> OpenApiDocument(const std::string& group, const std::string& version) const;

  const std::map<std::string, ResourceInfo>& all() const { return resources_; }

 private:
  void Add(ResourceInfo info);
  std::vector<std::string> GroupOrder() const;

  std::map<std::string, ResourceInfo> resources_;  // by GroupResource()
  std::vector<std::string> order_;                 // registration order, for discovery
};

// Checks a CRD's spec the way the apiextensions server does for the parts
// kubesim uses (names, group, scope, versions, one storage version).
std::vector<Cause> ValidateCrd(const json& crd);

}  // namespace nixmox::kubesim
