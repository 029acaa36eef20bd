// A Reader served from informer caches: what reconcilers read. Writes go to
// the API server through a Writer; the cache catches up through the watch.
#pragma once

#include <map>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "src/kube/client.h"
#include "src/kube/informer.h"

namespace nixmox::kube {

// Thread-safe. Objects are copies of the cached ones, unpacked for the caller
// (a few microseconds each): prefer KeysByIndex or IndexEntries where keys or
// index values are enough.
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
  // Their keys ("namespace/name"), ordered, without unpacking any object.
  Result<std::vector<std::string>> KeysByIndex(const ResourceType& type, std::string_view index,
                                               std::string_view value);
  // Every {value, key} of the index whose value starts with `prefix`, ordered
  // by value then key, without unpacking any object (e.g. all VMIDs in use).
  Result<std::vector<std::pair<std::string, std::string>>> IndexEntries(
      const ResourceType& type, std::string_view index, std::string_view prefix);

 private:
  Result<Informer*> Find(const ResourceType& type);

  std::mutex mu_;
  std::map<std::string, Informer*> informers_;  // by "group/version/resource"
};

}  // namespace nixmox::kube
