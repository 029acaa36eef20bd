#include "test/sim/kube/patch.h"

#include <yaml-cpp/yaml.h>

#include <map>

namespace nixmox::kubesim {
namespace {

ApiError PatchError(const std::string& what) {
  ApiError e;
  e.code = 422;
  e.reason = "Invalid";
  e.message = what;
  return e;
}

ApiResult ParseJson(const std::string& text) {
  try {
    return json::parse(text);
  } catch (const json::exception& e) {
    return ApiError::BadRequest(std::string("error decoding patch: ") + e.what());
  }
}

// The merge keys of the upstream types' patchStrategy=merge lists. A key of ""
// marks a list of scalars merged as a set.
const std::map<std::string, std::string>& MergeKeys() {
  static const auto* keys = new std::map<std::string, std::string>{
      {"containers", "name"},
      {"initContainers", "name"},
      {"ephemeralContainers", "name"},
      {"env", "name"},
      {"volumes", "name"},
      {"volumeMounts", "mountPath"},
      {"volumeDevices", "devicePath"},
      {"ports", "containerPort"},
      {"imagePullSecrets", "name"},
      {"ownerReferences", "uid"},
      {"conditions", "type"},
      {"finalizers", ""},
      {"hostAliases", "ip"},
      {"tolerations", "key"},
      {"secrets", "name"},
      {"topologySpreadConstraints", "topologyKey"},
  };
  return *keys;
}

json MergeList(const json& target, const json& patch, const std::string& key_name,
               const std::string& parent_key) {
  json result = target.is_array() ? target : json::array();
  if (key_name.empty()) {  // a set of scalars
    for (const json& v : patch) {
      if (std::find(result.begin(), result.end(), v) == result.end()) result.push_back(v);
    }
    return result;
  }
  for (const json& item : patch) {
    if (!item.is_object() || !item.contains(key_name)) {
      result.push_back(item);
      continue;
    }
    auto it = std::find_if(result.begin(), result.end(), [&](const json& existing) {
      return existing.is_object() && existing.contains(key_name) &&
             existing[key_name] == item[key_name];
    });
    std::string directive = item.value("$patch", "");
    if (directive == "delete") {
      if (it != result.end()) result.erase(it);
      continue;
    }
    if (it == result.end()) {
      json clean = item;
      clean.erase("$patch");
      result.push_back(clean);
    } else {
      *it = StrategicMerge(*it, item, parent_key);
    }
  }
  return result;
}

json YamlToJson(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Map: {
      json obj = json::object();
      for (const auto& kv : node) obj[kv.first.as<std::string>()] = YamlToJson(kv.second);
      return obj;
    }
    case YAML::NodeType::Sequence: {
      json arr = json::array();
      for (const auto& item : node) arr.push_back(YamlToJson(item));
      return arr;
    }
    case YAML::NodeType::Scalar: {
      const std::string& s = node.Scalar();
      if (node.Tag() == "!") return s;  // quoted: always a string
      if (s == "true" || s == "True") return true;
      if (s == "false" || s == "False") return false;
      if (s == "null" || s == "~" || s.empty()) return nullptr;
      try {
        size_t used = 0;
        long long i = std::stoll(s, &used);
        if (used == s.size()) return i;
        double d = std::stod(s, &used);
        if (used == s.size()) return d;
      } catch (const std::exception&) {
      }
      return s;
    }
    default:
      return nullptr;
  }
}

}  // namespace

json StrategicMerge(const json& target, const json& patch, const std::string& parent_key) {
  if (!patch.is_object()) return patch;
  if (patch.value("$patch", "") == "replace") {
    json clean = patch;
    clean.erase("$patch");
    return clean;
  }
  json result = target.is_object() ? target : json::object();
  for (auto it = patch.begin(); it != patch.end(); ++it) {
    const std::string& key = it.key();
    if (key == "$patch" || key.rfind("$setElementOrder/", 0) == 0 || key == "$retainKeys") {
      continue;
    }
    if (key.rfind("$deleteFromPrimitiveList/", 0) == 0) {
      std::string field = key.substr(std::string("$deleteFromPrimitiveList/").size());
      if (result.contains(field) && result[field].is_array()) {
        json kept = json::array();
        for (const json& v : result[field]) {
          if (std::find(it->begin(), it->end(), v) == it->end()) kept.push_back(v);
        }
        result[field] = kept;
      }
      continue;
    }
    const json& value = it.value();
    if (value.is_null()) {
      result.erase(key);
    } else if (value.is_object()) {
      result[key] = StrategicMerge(result.contains(key) ? result[key] : json(), value, key);
    } else if (value.is_array() && MergeKeys().count(key) &&
               !(key == "ports" && parent_key == "spec")) {
      result[key] =
          MergeList(result.contains(key) ? result[key] : json(), value, MergeKeys().at(key), key);
    } else {
      result[key] = value;
    }
  }
  return result;
}

ApiResult MergePatch(const json& target, const std::string& patch) {
  ApiResult p = ParseJson(patch);
  if (!p.ok()) return p;
  if (!p.value().is_object()) return ApiError::BadRequest("merge patch must be a JSON object");
  json result = target;
  result.merge_patch(p.value());
  return result;
}

ApiResult JsonPatch(const json& target, const std::string& patch) {
  ApiResult p = ParseJson(patch);
  if (!p.ok()) return p;
  if (!p.value().is_array()) return ApiError::BadRequest("json patch must be a JSON array");
  try {
    return target.patch(p.value());
  } catch (const json::exception& e) {
    return PatchError(std::string("the server rejected our request due to an error in our "
                                  "request: ") +
                      e.what());
  }
}

ApiResult StrategicMergePatch(const json& target, const std::string& patch) {
  ApiResult p = ParseJson(patch);
  if (!p.ok()) return p;
  if (!p.value().is_object())
    return ApiError::BadRequest("strategic merge patch must be an object");
  return StrategicMerge(target, p.value());
}

ApiResult ParseYamlOrJson(const std::string& text) {
  try {
    return json::parse(text);
  } catch (const json::exception&) {
  }
  try {
    return YamlToJson(YAML::Load(text));
  } catch (const YAML::Exception& e) {
    return ApiError::BadRequest(std::string("error decoding YAML: ") + e.what());
  }
}

}  // namespace nixmox::kubesim
