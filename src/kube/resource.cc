#include "src/kube/resource.h"

#include "src/http/http.h"

namespace nixmox::kube {

std::string ResourceType::ApiVersion() const {
  return group.empty() ? version : group + "/" + version;
}

namespace resources {
ResourceType Leases() { return {"coordination.k8s.io", "v1", "leases", true, "Lease"}; }
ResourceType Events() { return {"", "v1", "events", true, "Event"}; }
ResourceType ConfigMaps() { return {"", "v1", "configmaps", true, "ConfigMap"}; }
ResourceType Secrets() { return {"", "v1", "secrets", true, "Secret"}; }
ResourceType Pods() { return {"", "v1", "pods", true, "Pod"}; }
ResourceType Namespaces() { return {"", "v1", "namespaces", false, "Namespace"}; }
ResourceType Jobs() { return {"batch", "v1", "jobs", true, "Job"}; }
}  // namespace resources

std::string ResourcePath(const ResourceType& type, std::string_view ns, std::string_view name,
                         std::string_view subresource) {
  std::string path =
      type.group.empty() ? "/api/" + type.version : "/apis/" + type.group + "/" + type.version;
  if (type.namespaced && !ns.empty()) {
    path += "/namespaces/";
    path += http::PercentEncode(ns);
  }
  path += '/';
  path += type.resource;
  if (!name.empty()) {
    path += '/';
    path += http::PercentEncode(name);
    if (!subresource.empty()) {
      path += '/';
      path += subresource;
    }
  }
  return path;
}

std::vector<std::pair<std::string, std::string>> ListQuery(const ListOptions& o, bool watch) {
  std::vector<std::pair<std::string, std::string>> q;
  if (!o.label_selector.empty()) q.emplace_back("labelSelector", o.label_selector);
  if (!o.field_selector.empty()) q.emplace_back("fieldSelector", o.field_selector);
  if (!o.resource_version.empty()) q.emplace_back("resourceVersion", o.resource_version);
  if (!o.resource_version_match.empty()) {
    q.emplace_back("resourceVersionMatch", o.resource_version_match);
  }
  if (watch) {
    q.emplace_back("watch", "true");
    if (o.allow_watch_bookmarks) q.emplace_back("allowWatchBookmarks", "true");
    if (o.send_initial_events) q.emplace_back("sendInitialEvents", "true");
    if (o.timeout_seconds) q.emplace_back("timeoutSeconds", std::to_string(*o.timeout_seconds));
  } else {
    if (o.limit) q.emplace_back("limit", std::to_string(*o.limit));
    if (!o.continue_token.empty()) q.emplace_back("continue", o.continue_token);
  }
  return q;
}

}  // namespace nixmox::kube
