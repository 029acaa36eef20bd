// The informer's local cache: objects keyed by namespace/name, plus named
// indexes (e.g. "ProxmoxVMs by the NixImage they boot"). Objects are kept
// packed (packed_object.h: a thirteenth of a json tree's memory), shared
// and immutable once stored; Unpack() gives a reader its own copy.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "src/common/status.h"
#include "src/kube/object.h"
#include "src/kube/packed_object.h"

namespace nixmox::kube {

// The values an object is indexed under in one index (may be none or many).
using IndexFunc = std::function<std::vector<std::string>(const Object&)>;

// An index of namespaced objects by namespace.
std::vector<std::string> NamespaceIndex(const Object& obj);

// One cached object: packed, with what the store reads without unpacking it.
class StoredObject {
 public:
  Object Unpack() const { return packed_.Unpack(); }
  const std::string& key() const { return key_; }
  const std::string& resource_version() const { return resource_version_; }

 private:
  friend class Store;
  std::string key_;
  std::string resource_version_;
  PackedObject packed_;
  // The object's values in each index, in the order the indexes were added,
  // computed once when it was packed (see Store::Pack): for each index a
  // varint count, then each value as a varint length and its bytes.
  std::string index_values_;
  std::size_t indexes_ = 0;  // how many indexes index_values_ covers
};
using StoredPtr = std::shared_ptr<const StoredObject>;

// Thread-safe: many readers, one writer at a time.
class Store {
 public:
  explicit Store(KeyTable& keys = KeyTable::Shared()) : keys_(keys) {}

  // AlreadyExists for a duplicate name. Objects already stored are indexed too.
  Status AddIndex(const std::string& name, IndexFunc fn);

  // Packs `obj` and computes its index values, for Upsert or Replace; runs
  // the index functions without holding the store's lock. When the store
  // already holds the object at the same (non-empty) resourceVersion it
  // returns that one: a relist of unchanged objects costs no memory.
  StoredPtr Pack(const Object& obj) const;

  // Inserts or replaces by key; returns the previous object or null.
  StoredPtr Upsert(StoredPtr obj);
  // Returns the removed object or null.
  StoredPtr Remove(std::string_view key);

  struct ReplaceResult {
    std::vector<StoredPtr> added;
    std::vector<std::pair<StoredPtr, StoredPtr>> updated;  // {old, new}; resourceVersion moved
    std::vector<StoredPtr> deleted;                        // in the cache, not in the new list
  };
  // Makes the cache exactly `objects` (a relist) and says what changed.
  ReplaceResult Replace(std::vector<StoredPtr> objects);

  // An unpacked copy, or nullopt.
  std::optional<Object> Get(std::string_view key) const;
  std::vector<StoredPtr> List() const;  // ordered by key
  std::vector<std::string> Keys() const;
  // NotFound for an unknown index name. Ordered by key.
  Result<std::vector<StoredPtr>> ByIndex(std::string_view index, std::string_view value) const;
  // The same, keys only.
  Result<std::vector<std::string>> KeysByIndex(std::string_view index,
                                               std::string_view value) const;
  // Every {value, key} of an index whose value starts with `prefix` (all for
  // ""), ordered by value then key: what an index holds, without unpacking.
  Result<std::vector<std::pair<std::string, std::string>>> IndexEntries(
      std::string_view index, std::string_view prefix) const;
  size_t size() const;

 private:
  struct Index {
    std::string name;
    IndexFunc fn;
    // {value, key}, both viewing into the stored object (its index_values_
    // and key_): an entry costs one small node, and the object outlives it.
    std::set<std::pair<std::string_view, std::string_view>> entries;
  };

  StoredPtr PackLocked(const Object& obj) const;
  // `obj` itself, or packed again when indexes were added since it was packed.
  StoredPtr CurrentLocked(StoredPtr obj) const;
  void IndexLocked(const StoredObject& obj);
  void UnindexLocked(const StoredObject& obj);
  const Index* FindIndexLocked(std::string_view name) const;

  KeyTable& keys_;
  mutable std::shared_mutex mu_;
  std::map<std::string, StoredPtr, std::less<>> items_;
  std::vector<Index> indexes_;  // in the order they were added
};

}  // namespace nixmox::kube
