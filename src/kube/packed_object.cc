#include "src/kube/packed_object.h"

#include <cassert>
#include <cstring>

namespace nixmox::kube {
namespace {

// The format: each value starts with a byte whose high nibble is its type and
// whose low nibble is a count, length or small number (0-14), or 15 when that
// number follows as a varint. Floats follow as their 8 bytes (the bytes never
// leave the process). An object's members come in the map's order, each name
// as a varint: 0 for an inline name (varint length, bytes), else 1 + its
// number in the KeyTable.
enum Type : std::uint8_t {
  kNull = 0,
  kFalse = 1,
  kTrue = 2,
  kUnsigned = 3,  // the number
  kInteger = 4,   // the number zigzag-encoded (signed, even when non-negative)
  kFloat = 5,
  kString = 6,  // the length, then the bytes
  kArray = 7,   // the element count, then the elements
  kObject = 8,  // the member count, then name and value of each
};
constexpr std::uint8_t kInlineLimit = 15;

class Writer {
 public:
  Writer(KeyTable& keys, std::string& out) : keys_(keys), out_(out) {}

  void Value(const Object& v) {
    switch (v.type()) {
      case Object::value_t::null:
        Head(kNull, 0);
        return;
      case Object::value_t::boolean:
        Head(v.get<bool>() ? kTrue : kFalse, 0);
        return;
      case Object::value_t::number_unsigned:
        Head(kUnsigned, v.get<std::uint64_t>());
        return;
      case Object::value_t::number_integer: {
        const auto i = v.get<std::int64_t>();
        Head(kInteger, (static_cast<std::uint64_t>(i) << 1) ^ static_cast<std::uint64_t>(i >> 63));
        return;
      }
      case Object::value_t::number_float: {
        const double d = v.get<double>();
        Head(kFloat, 0);
        char raw[sizeof d];
        std::memcpy(raw, &d, sizeof d);
        out_.append(raw, sizeof d);
        return;
      }
      case Object::value_t::string: {
        const auto& s = v.get_ref<const std::string&>();
        Head(kString, s.size());
        out_.append(s);
        return;
      }
      case Object::value_t::array:
        Head(kArray, v.size());
        for (const auto& e : v) Value(e);
        return;
      case Object::value_t::object:
        Head(kObject, v.size());
        for (const auto& [name, member] : v.items()) {
          Name(name);
          Value(member);
        }
        return;
      case Object::value_t::binary:
      case Object::value_t::discarded:
        break;
    }
    // Parsed JSON holds neither; nothing in nixmox builds them.
    assert(false && "binary or discarded json cannot be packed");
    Head(kNull, 0);
  }

 private:
  void Head(Type type, std::uint64_t n) {
    if (n < kInlineLimit) {
      out_.push_back(static_cast<char>((type << 4) | n));
      return;
    }
    out_.push_back(static_cast<char>((type << 4) | kInlineLimit));
    Varint(n);
  }

  void Varint(std::uint64_t n) {
    while (n >= 0x80) {
      out_.push_back(static_cast<char>((n & 0x7f) | 0x80));
      n >>= 7;
    }
    out_.push_back(static_cast<char>(n));
  }

  void Name(const std::string& name) {
    if (auto id = keys_.Intern(name)) {
      Varint(std::uint64_t{*id} + 1);
      return;
    }
    Varint(0);
    Varint(name.size());
    out_.append(name);
  }

  KeyTable& keys_;
  std::string& out_;
};

class Reader {
 public:
  Reader(const KeyTable* keys, std::string_view in) : keys_(keys), p_(in.data()), end_(in.end()) {}

  Object Value() {
    const auto head = static_cast<std::uint8_t>(*p_++);
    const auto type = static_cast<Type>(head >> 4);
    const std::uint64_t n = (head & 0x0f) < kInlineLimit ? (head & 0x0f) : Varint();
    switch (type) {
      case kNull:
        return nullptr;
      case kFalse:
        return false;
      case kTrue:
        return true;
      case kUnsigned:
        return n;
      case kInteger:
        return static_cast<std::int64_t>((n >> 1) ^ (~(n & 1) + 1));
      case kFloat: {
        double d;
        std::memcpy(&d, p_, sizeof d);
        p_ += sizeof d;
        return d;
      }
      case kString:
        return Object(Take(n));
      case kArray: {
        Object out = Object::array();
        auto& elements = out.get_ref<Object::array_t&>();
        elements.reserve(n);
        for (std::uint64_t i = 0; i < n; ++i) elements.push_back(Value());
        return out;
      }
      case kObject: {
        Object out = Object::object();
        auto& members = out.get_ref<Object::object_t&>();
        for (std::uint64_t i = 0; i < n; ++i) {
          std::string name = Name();
          // Members were written in the map's order: each goes at the end.
          members.emplace_hint(members.end(), std::move(name), Value());
        }
        return out;
      }
    }
    assert(false && "corrupt pack");
    return nullptr;
  }

  bool done() const { return p_ == end_; }

 private:
  std::uint64_t Varint() {
    std::uint64_t n = 0;
    for (int shift = 0;; shift += 7) {
      const auto b = static_cast<std::uint8_t>(*p_++);
      n |= std::uint64_t{b & 0x7fu} << shift;
      if (b < 0x80) return n;
    }
  }

  std::string Take(std::uint64_t n) {
    assert(n <= static_cast<std::uint64_t>(end_ - p_));
    std::string s(p_, n);
    p_ += n;
    return s;
  }

  std::string Name() {
    const std::uint64_t ref = Varint();
    if (ref == 0) return Take(Varint());
    return keys_->Name(static_cast<std::uint32_t>(ref - 1));
  }

  const KeyTable* keys_;
  const char* p_;
  const char* end_;
};

}  // namespace

KeyTable::KeyTable(std::size_t capacity) : capacity_(capacity) { names_.reserve(capacity_); }

KeyTable& KeyTable::Shared() {
  static auto* table = new KeyTable();  // never destroyed: packs may outlive static destructors
  return *table;
}

std::optional<std::uint32_t> KeyTable::Intern(std::string_view name) {
  if (name.size() > kMaxNameLength) return std::nullopt;
  std::lock_guard lock(mu_);
  if (auto it = ids_.find(name); it != ids_.end()) return it->second;
  if (names_.size() == capacity_) return std::nullopt;
  names_.emplace_back(name);
  const auto id = static_cast<std::uint32_t>(names_.size() - 1);
  ids_.emplace(names_.back(), id);
  return id;
}

std::size_t KeyTable::size() const {
  std::lock_guard lock(mu_);
  return names_.size();
}

PackedObject::PackedObject(const Object& obj, KeyTable& keys) : keys_(&keys) {
  std::string bytes;
  bytes.reserve(4096);
  Writer(keys, bytes).Value(obj);
  bytes_ = std::string(bytes);  // a copy of exactly its size: caches hold many
}

Object PackedObject::Unpack() const {
  if (bytes_.empty()) return nullptr;
  Reader reader(keys_, bytes_);
  Object out = reader.Value();
  assert(reader.done());
  return out;
}

}  // namespace nixmox::kube
