#include "src/kube/store.h"

#include <mutex>

namespace nixmox::kube {
namespace {

void PutVarint(std::string& out, std::uint64_t n) {
  while (n >= 0x80) {
    out.push_back(static_cast<char>((n & 0x7f) | 0x80));
    n >>= 7;
  }
  out.push_back(static_cast<char>(n));
}

std::uint64_t TakeVarint(std::string_view& in) {
  std::uint64_t n = 0;
  for (int shift = 0;; shift += 7) {
    const auto b = static_cast<std::uint8_t>(in.front());
    in.remove_prefix(1);
    n |= std::uint64_t{b & 0x7fu} << shift;
    if (b < 0x80) return n;
  }
}

// Calls fn(index position, value) for each value StoredObject::index_values_ holds.
template <typename Fn>
void ForEachIndexValue(std::string_view in, Fn&& fn) {
  for (std::size_t index = 0; !in.empty(); ++index) {
    for (std::uint64_t count = TakeVarint(in); count > 0; --count) {
      const std::uint64_t length = TakeVarint(in);
      fn(index, in.substr(0, length));
      in.remove_prefix(length);
    }
  }
}

}  // namespace

std::vector<std::string> NamespaceIndex(const Object& obj) {
  std::string ns = NamespaceOf(obj);
  if (ns.empty()) return {};
  return {std::move(ns)};
}

Status Store::AddIndex(const std::string& name, IndexFunc fn) {
  std::unique_lock lock(mu_);
  if (FindIndexLocked(name)) return AlreadyExistsError("index \"" + name + "\" exists");
  indexes_.push_back(Index{name, std::move(fn), {}});
  // Objects already stored need their values in the new index: pack them
  // again, and index them afresh (the entries view into the old packs).
  for (Index& index : indexes_) index.entries.clear();
  for (auto& [key, obj] : items_) {
    obj = PackLocked(obj->Unpack());
    IndexLocked(*obj);
  }
  return OkStatus();
}

StoredPtr Store::PackLocked(const Object& obj) const {
  auto out = std::make_shared<StoredObject>();
  out->key_ = KeyOf(obj);
  out->resource_version_ = ResourceVersionOf(obj);
  out->packed_ = PackedObject(obj, keys_);
  std::string values;
  for (const Index& index : indexes_) {
    const std::vector<std::string> of_index = index.fn(obj);
    PutVarint(values, of_index.size());
    for (const std::string& v : of_index) {
      PutVarint(values, v.size());
      values += v;
    }
  }
  out->index_values_ = std::string(values);  // exactly its size
  out->indexes_ = indexes_.size();
  return out;
}

StoredPtr Store::Pack(const Object& obj) const {
  std::shared_lock lock(mu_);
  const std::string rv = ResourceVersionOf(obj);
  if (!rv.empty()) {
    auto it = items_.find(KeyOf(obj));
    if (it != items_.end() && it->second->resource_version_ == rv) return it->second;
  }
  return PackLocked(obj);
}

StoredPtr Store::CurrentLocked(StoredPtr obj) const {
  if (obj->indexes_ == indexes_.size()) return obj;
  return PackLocked(obj->Unpack());
}

const Store::Index* Store::FindIndexLocked(std::string_view name) const {
  for (const Index& index : indexes_) {
    if (index.name == name) return &index;
  }
  return nullptr;
}

void Store::IndexLocked(const StoredObject& obj) {
  ForEachIndexValue(obj.index_values_, [&](std::size_t i, std::string_view value) {
    indexes_[i].entries.emplace(value, obj.key_);
  });
}

void Store::UnindexLocked(const StoredObject& obj) {
  ForEachIndexValue(obj.index_values_, [&](std::size_t i, std::string_view value) {
    indexes_[i].entries.erase({value, obj.key_});
  });
}

StoredPtr Store::Upsert(StoredPtr obj) {
  std::unique_lock lock(mu_);
  obj = CurrentLocked(std::move(obj));
  StoredPtr old;
  auto it = items_.find(obj->key_);
  if (it != items_.end()) {
    old = it->second;
    UnindexLocked(*old);
    it->second = obj;
  } else {
    items_.emplace(obj->key_, obj);
  }
  IndexLocked(*obj);
  return old;
}

StoredPtr Store::Remove(std::string_view key) {
  std::unique_lock lock(mu_);
  auto it = items_.find(key);
  if (it == items_.end()) return nullptr;
  StoredPtr old = it->second;
  UnindexLocked(*old);
  items_.erase(it);
  return old;
}

Store::ReplaceResult Store::Replace(std::vector<StoredPtr> objects) {
  std::map<std::string, StoredPtr, std::less<>> fresh;
  for (auto& obj : objects) {
    std::string key = obj->key_;
    fresh.insert_or_assign(std::move(key), std::move(obj));
  }
  objects = {};
  ReplaceResult result;
  std::unique_lock lock(mu_);
  for (auto& [key, obj] : fresh) obj = CurrentLocked(std::move(obj));
  for (const auto& [key, old] : items_) {
    auto it = fresh.find(key);
    if (it == fresh.end()) {
      result.deleted.push_back(old);
    } else if (old->resource_version_ != it->second->resource_version_) {
      result.updated.emplace_back(old, it->second);
    }
  }
  for (const auto& [key, obj] : fresh) {
    if (!items_.count(key)) result.added.push_back(obj);
  }
  // The entries view into the objects: gone before the old ones may go.
  for (Index& index : indexes_) index.entries.clear();
  items_ = std::move(fresh);
  for (const auto& [key, obj] : items_) IndexLocked(*obj);
  return result;
}

std::optional<Object> Store::Get(std::string_view key) const {
  StoredPtr obj;
  {
    std::shared_lock lock(mu_);
    auto it = items_.find(key);
    if (it == items_.end()) return std::nullopt;
    obj = it->second;
  }
  return obj->Unpack();
}

std::vector<StoredPtr> Store::List() const {
  std::shared_lock lock(mu_);
  std::vector<StoredPtr> out;
  out.reserve(items_.size());
  for (const auto& [key, obj] : items_) out.push_back(obj);
  return out;
}

std::vector<std::string> Store::Keys() const {
  std::shared_lock lock(mu_);
  std::vector<std::string> out;
  out.reserve(items_.size());
  for (const auto& [key, obj] : items_) out.push_back(key);
  return out;
}

Result<std::vector<StoredPtr>> Store::ByIndex(std::string_view index,
                                              std::string_view value) const {
  std::shared_lock lock(mu_);
  const Index* idx = FindIndexLocked(index);
  if (!idx) return NotFoundError("no index \"" + std::string(index) + "\"");
  std::vector<StoredPtr> out;
  for (auto it = idx->entries.lower_bound({value, {}});
       it != idx->entries.end() && it->first == value; ++it) {
    auto item = items_.find(it->second);
    if (item != items_.end()) out.push_back(item->second);
  }
  return out;
}

Result<std::vector<std::string>> Store::KeysByIndex(std::string_view index,
                                                    std::string_view value) const {
  std::shared_lock lock(mu_);
  const Index* idx = FindIndexLocked(index);
  if (!idx) return NotFoundError("no index \"" + std::string(index) + "\"");
  std::vector<std::string> out;
  for (auto it = idx->entries.lower_bound({value, {}});
       it != idx->entries.end() && it->first == value; ++it) {
    out.emplace_back(it->second);
  }
  return out;
}

Result<std::vector<std::pair<std::string, std::string>>> Store::IndexEntries(
    std::string_view index, std::string_view prefix) const {
  std::shared_lock lock(mu_);
  const Index* idx = FindIndexLocked(index);
  if (!idx) return NotFoundError("no index \"" + std::string(index) + "\"");
  std::vector<std::pair<std::string, std::string>> out;
  for (auto it = idx->entries.lower_bound({prefix, {}});
       it != idx->entries.end() && it->first.starts_with(prefix); ++it) {
    out.emplace_back(it->first, it->second);
  }
  return out;
}

size_t Store::size() const {
  std::shared_lock lock(mu_);
  return items_.size();
}

}  // namespace nixmox::kube
