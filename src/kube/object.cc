#include "src/kube/object.h"

namespace nixmox::kube {

std::string StringAt(const Object& obj, std::initializer_list<std::string_view> path) {
  const Object* cur = &obj;
  for (std::string_view step : path) {
    if (!cur->is_object()) return "";
    auto it = cur->find(std::string(step));
    if (it == cur->end()) return "";
    cur = &*it;
  }
  return cur->is_string() ? cur->get<std::string>() : "";
}

std::string NameOf(const Object& obj) { return StringAt(obj, {"metadata", "name"}); }
std::string NamespaceOf(const Object& obj) { return StringAt(obj, {"metadata", "namespace"}); }
std::string UidOf(const Object& obj) { return StringAt(obj, {"metadata", "uid"}); }
std::string ResourceVersionOf(const Object& obj) {
  return StringAt(obj, {"metadata", "resourceVersion"});
}

std::int64_t GenerationOf(const Object& obj) {
  if (!obj.is_object()) return 0;
  auto md = obj.find("metadata");
  if (md == obj.end() || !md->is_object()) return 0;
  auto g = md->find("generation");
  if (g == md->end() || !g->is_number_integer()) return 0;
  return g->get<std::int64_t>();
}

std::string MakeKey(std::string_view ns, std::string_view name) {
  if (ns.empty()) return std::string(name);
  std::string key(ns);
  key += '/';
  key += name;
  return key;
}

std::string KeyOf(const Object& obj) { return MakeKey(NamespaceOf(obj), NameOf(obj)); }

std::pair<std::string, std::string> SplitKey(std::string_view key) {
  auto slash = key.find('/');
  if (slash == std::string_view::npos) return {"", std::string(key)};
  return {std::string(key.substr(0, slash)), std::string(key.substr(slash + 1))};
}

}  // namespace nixmox::kube
