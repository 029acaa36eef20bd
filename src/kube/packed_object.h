// PackedObject: an immutable Object in a compact binary form, for caches that
// hold thousands of objects. As an nlohmann::json tree an object costs about
// ten times its wire size (a map node per member, a heap string per long
// value); packed it is one byte string of about half its wire size: lengths
// as varints, small lengths inside the type byte, and each member name as a
// number from a KeyTable that all packs share (the same few hundred names
// recur in every object of a kind). Unpack gives back an equal Object.
#pragma once

#include <cstddef>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "src/kube/object.h"

namespace nixmox::kube {

// Member names by number, append-only and bounded: names longer than
// kMaxNameLength, and any name once the table is full, stay inline in the
// packs. Thread-safe; Name() takes no lock.
class KeyTable {
 public:
  static constexpr std::size_t kDefaultCapacity = 8192;
  static constexpr std::size_t kMaxNameLength = 64;

  explicit KeyTable(std::size_t capacity = kDefaultCapacity);
  KeyTable(const KeyTable&) = delete;
  KeyTable& operator=(const KeyTable&) = delete;

  // The table every cache shares; never destroyed.
  static KeyTable& Shared();

  // The number of `name`, adding it when there is room; nullopt when it stays inline.
  std::optional<std::uint32_t> Intern(std::string_view name);
  // The name of a number Intern returned (in this process, to anyone).
  const std::string& Name(std::uint32_t id) const { return names_[id]; }
  std::size_t size() const;

 private:
  const std::size_t capacity_;
  mutable std::mutex mu_;  // guards ids_ and appends to names_
  // Reserved to capacity_ up front and never reallocated: a number handed out
  // stays valid, so Name() can read it without the lock.
  std::vector<std::string> names_;
  std::unordered_map<std::string_view, std::uint32_t> ids_;  // views into names_
};

class PackedObject {
 public:
  PackedObject() = default;  // packs null
  // `keys` must outlive the pack (the shared table always does).
  explicit PackedObject(const Object& obj, KeyTable& keys = KeyTable::Shared());

  // A fresh Object equal to the one packed (numbers keep their value; an
  // integer packed from a signed non-negative value comes back unsigned).
  Object Unpack() const;
  // The packed bytes (the heap memory it holds).
  std::size_t size() const { return bytes_.size(); }

 private:
  const KeyTable* keys_ = nullptr;
  std::string bytes_;
};

}  // namespace nixmox::kube
