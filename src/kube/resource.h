// Which kind of object a request is about, and the REST paths and query
// strings the API server expects for it. Pure functions, no I/O.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace nixmox::kube {

// A group/version/resource plus what a client needs to address it.
struct ResourceType {
  std::string group;     // "" for the core group
  std::string version;   // "v1"
  std::string resource;  // plural, lower case: "pods", "proxmoxvms"
  bool namespaced = true;
  std::string kind;  // "Pod"; used for apiVersion/kind of written objects and event references

  // "v1" for core, "group/version" otherwise.
  std::string ApiVersion() const;
  bool operator==(const ResourceType&) const = default;
};

// A few built-in types the runtime itself uses.
namespace resources {
ResourceType Leases();      // coordination.k8s.io/v1 leases
ResourceType Events();      // core/v1 events
ResourceType ConfigMaps();  // core/v1 configmaps
ResourceType Secrets();     // core/v1 secrets
ResourceType Pods();        // core/v1 pods
ResourceType Namespaces();  // core/v1 namespaces (cluster-scoped)
ResourceType Jobs();        // batch/v1 jobs
}  // namespace resources

// Options of list and watch requests; unset fields are not sent.
struct ListOptions {
  std::string label_selector;  // "app=x,tier in (a,b),!legacy"
  std::string field_selector;  // "metadata.name=x"
  std::optional<long long> limit;
  std::string continue_token;
  std::string resource_version;
  // "NotOlderThan" or "Exact"; only meaningful with resource_version.
  std::string resource_version_match;
  // Watch only.
  std::optional<long long> timeout_seconds;
  bool allow_watch_bookmarks = false;
  // Watch only: start with the current objects as ADDED events, then a BOOKMARK
  // annotated k8s.io/initial-events-end (needs resource_version_match NotOlderThan).
  bool send_initial_events = false;
};

// "/api/v1/namespaces/ns/pods/name/status" and the like. An empty namespace on a
// namespaced type addresses all namespaces (lists and watches only). Empty name
// addresses the collection.
std::string ResourcePath(const ResourceType& type, std::string_view ns, std::string_view name = "",
                         std::string_view subresource = "");

// The query pairs for a list (watch=false) or a watch (watch=true).
std::vector<std::pair<std::string, std::string>> ListQuery(const ListOptions& options, bool watch);

}  // namespace nixmox::kube
