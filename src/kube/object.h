// Kubernetes objects are nlohmann::json (the data model); these helpers read
// the metadata every component needs without throwing on odd shapes.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <utility>

namespace nixmox::kube {

using Object = nlohmann::json;

// The string at obj[path...], or "" when a step is missing or not of the right type.
std::string StringAt(const Object& obj, std::initializer_list<std::string_view> path);

std::string NameOf(const Object& obj);
std::string NamespaceOf(const Object& obj);
std::string UidOf(const Object& obj);
std::string ResourceVersionOf(const Object& obj);
// metadata.generation, 0 when absent.
std::int64_t GenerationOf(const Object& obj);

// The cache and work-queue key: "namespace/name", or "name" for cluster-scoped objects.
std::string MakeKey(std::string_view ns, std::string_view name);
std::string KeyOf(const Object& obj);
// Splits a key back into {namespace, name}; namespace is "" for cluster-scoped keys.
std::pair<std::string, std::string> SplitKey(std::string_view key);

}  // namespace nixmox::kube
