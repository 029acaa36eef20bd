// The informer's local cache: objects keyed by namespace/name, plus named
// indexes (e.g. "ProxmoxVMs by the NixImage they boot"). Objects are shared
// and immutable once stored; readers never copy the cache.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <set>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "src/common/status.h"
#include "src/kube/object.h"

namespace nixmox::kube {

using ObjectPtr = std::shared_ptr<const Object>;

// The values an object is indexed under in one index (may be none or many).
using IndexFunc = std::function<std::vector<std::string>(const Object&)>;

// An index of namespaced objects by namespace.
std::vector<std::string> NamespaceIndex(const Object& obj);

// Thread-safe: many readers, one writer at a time.
class Store {
 public:
  // AlreadyExists for a duplicate name. Objects already stored are indexed too.
  Status AddIndex(const std::string& name, IndexFunc fn);

  // Inserts or replaces by key; returns the previous object or null.
  ObjectPtr Upsert(ObjectPtr obj);
  // Returns the removed object or null.
  ObjectPtr Remove(std::string_view key);

  struct ReplaceResult {
    std::vector<ObjectPtr> added;
    std::vector<std::pair<ObjectPtr, ObjectPtr>> updated;  // {old, new}; resourceVersion moved
    std::vector<ObjectPtr> deleted;                        // in the cache, not in the new list
  };
  // Makes the cache exactly `objects` (a relist) and says what changed.
  ReplaceResult Replace(std::vector<ObjectPtr> objects);

  ObjectPtr Get(std::string_view key) const;
  std::vector<ObjectPtr> List() const;  // ordered by key
  std::vector<std::string> Keys() const;
  // NotFound for an unknown index name.
  Result<std::vector<ObjectPtr>> ByIndex(std::string_view index, std::string_view value) const;
  size_t size() const;

 private:
  void IndexLocked(const std::string& key, const Object& obj);
  void UnindexLocked(const std::string& key, const Object& obj);

  mutable std::shared_mutex mu_;
  std::map<std::string, ObjectPtr, std::less<>> items_;
  std::map<std::string, IndexFunc, std::less<>> index_funcs_;
  // index name -> value -> keys
  std::map<std::string, std::map<std::string, std::set<std::string>, std::less<>>, std::less<>>
      indexes_;
};

}  // namespace nixmox::kube
