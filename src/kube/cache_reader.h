// A Reader served from informer caches: what reconcilers read. Writes go to
// the API server through a Writer; the cache catches up through the watch.
#pragma once

#include <map>
#include <mutex>
#include <string>

#include "src/kube/client.h"
#include "src/kube/informer.h"

namespace nixmox::kube {

// Thread-safe. Objects are copies of the cached ones.
class CacheReader final : public Reader {
 public:
  // `informer` must outlive the reader; one per resource type.
  void Register(Informer& informer);

  // Internal when no informer serves the type (a wiring bug, not a missing object).
  Result<Object> Get(const ResourceType& type, std::string_view ns, std::string_view name) override;
  // Label and field selectors apply; limit/continue are ignored (the cache is
  // in memory). The list's resource_version is empty.
  Result<ObjectList> List(const ResourceType& type, std::string_view ns,
                          const ListOptions& options) override;

  // Objects of `type` whose index `index` holds `value`.
  Result<std::vector<Object>> ByIndex(const ResourceType& type, std::string_view index,
                                      std::string_view value);

 private:
  Result<Informer*> Find(const ResourceType& type);

  std::mutex mu_;
  std::map<std::string, Informer*> informers_;  // by "group/version/resource"
};

}  // namespace nixmox::kube
