#include "src/kube/store.h"

#include <mutex>

namespace nixmox::kube {

std::vector<std::string> NamespaceIndex(const Object& obj) {
  std::string ns = NamespaceOf(obj);
  if (ns.empty()) return {};
  return {std::move(ns)};
}

Status Store::AddIndex(const std::string& name, IndexFunc fn) {
  std::unique_lock lock(mu_);
  if (index_funcs_.count(name)) return AlreadyExistsError("index \"" + name + "\" exists");
  index_funcs_.emplace(name, std::move(fn));
  auto& index = indexes_[name];
  for (const auto& [key, obj] : items_) {
    for (auto& v : index_funcs_[name](*obj)) index[v].insert(key);
  }
  return OkStatus();
}

void Store::IndexLocked(const std::string& key, const Object& obj) {
  for (const auto& [name, fn] : index_funcs_) {
    auto& index = indexes_[name];
    for (auto& v : fn(obj)) index[v].insert(key);
  }
}

void Store::UnindexLocked(const std::string& key, const Object& obj) {
  for (const auto& [name, fn] : index_funcs_) {
    auto& index = indexes_[name];
    for (auto& v : fn(obj)) {
      auto it = index.find(v);
      if (it == index.end()) continue;
      it->second.erase(key);
      if (it->second.empty()) index.erase(it);
    }
  }
}

ObjectPtr Store::Upsert(ObjectPtr obj) {
  std::string key = KeyOf(*obj);
  std::unique_lock lock(mu_);
  ObjectPtr old;
  auto it = items_.find(key);
  if (it != items_.end()) {
    old = it->second;
    UnindexLocked(key, *old);
    it->second = obj;
  } else {
    items_.emplace(key, obj);
  }
  IndexLocked(key, *obj);
  return old;
}

ObjectPtr Store::Remove(std::string_view key) {
  std::unique_lock lock(mu_);
  auto it = items_.find(key);
  if (it == items_.end()) return nullptr;
  ObjectPtr old = it->second;
  UnindexLocked(it->first, *old);
  items_.erase(it);
  return old;
}

Store::ReplaceResult Store::Replace(std::vector<ObjectPtr> objects) {
  std::map<std::string, ObjectPtr, std::less<>> fresh;
  for (auto& obj : objects) fresh[KeyOf(*obj)] = std::move(obj);
  ReplaceResult result;
  std::unique_lock lock(mu_);
  for (const auto& [key, old] : items_) {
    auto it = fresh.find(key);
    if (it == fresh.end()) {
      result.deleted.push_back(old);
    } else if (ResourceVersionOf(*old) != ResourceVersionOf(*it->second)) {
      result.updated.emplace_back(old, it->second);
    }
  }
  for (const auto& [key, obj] : fresh) {
    if (!items_.count(key)) result.added.push_back(obj);
  }
  items_ = std::move(fresh);
  for (auto& [name, index] : indexes_) index.clear();
  for (const auto& [key, obj] : items_) IndexLocked(key, *obj);
  return result;
}

ObjectPtr Store::Get(std::string_view key) const {
  std::shared_lock lock(mu_);
  auto it = items_.find(key);
  return it == items_.end() ? nullptr : it->second;
}

std::vector<ObjectPtr> Store::List() const {
  std::shared_lock lock(mu_);
  std::vector<ObjectPtr> out;
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

Result<std::vector<ObjectPtr>> Store::ByIndex(std::string_view index,
                                              std::string_view value) const {
  std::shared_lock lock(mu_);
  auto idx = indexes_.find(index);
  if (idx == indexes_.end()) return NotFoundError("no index \"" + std::string(index) + "\"");
  std::vector<ObjectPtr> out;
  auto keys = idx->second.find(value);
  if (keys == idx->second.end()) return out;
  for (const auto& key : keys->second) {
    auto it = items_.find(key);
    if (it != items_.end()) out.push_back(it->second);
  }
  return out;
}

size_t Store::size() const {
  std::shared_lock lock(mu_);
  return items_.size();
}

}  // namespace nixmox::kube
