#include "test/sim/kube/schema.h"

#include <cmath>
#include <regex>

namespace nixmox::kubesim {
namespace {

std::string Join(const std::string& path, const std::string& key) {
  return path.empty() ? key : path + "." + key;
}

bool PreservesUnknown(const json& schema) {
  return schema.value("x-kubernetes-preserve-unknown-fields", false);
}

void PruneValue(const json& schema, json& value, const std::string& path, bool root,
                std::vector<std::string>& pruned) {
  if (!schema.is_object()) return;
  if (value.is_object()) {
    const json* props = schema.contains("properties") ? &schema["properties"] : nullptr;
    const json* additional =
        schema.contains("additionalProperties") && schema["additionalProperties"].is_object()
            ? &schema["additionalProperties"]
            : nullptr;
    bool keep_unknown = PreservesUnknown(schema) || (schema.contains("additionalProperties") &&
                                                     schema["additionalProperties"].is_boolean() &&
                                                     schema["additionalProperties"].get<bool>());
    std::vector<std::string> drop;
    for (auto it = value.begin(); it != value.end(); ++it) {
      const std::string& key = it.key();
      if (root && (key == "apiVersion" || key == "kind" || key == "metadata")) continue;
      if (props && props->contains(key)) {
        PruneValue((*props)[key], it.value(), Join(path, key), false, pruned);
      } else if (additional) {
        PruneValue(*additional, it.value(), Join(path, key), false, pruned);
      } else if (!keep_unknown) {
        drop.push_back(key);
      }
    }
    for (const auto& key : drop) {
      pruned.push_back(Join(path, key));
      value.erase(key);
    }
  } else if (value.is_array() && schema.contains("items")) {
    for (size_t i = 0; i < value.size(); ++i) {
      PruneValue(schema["items"], value[i], path + "[" + std::to_string(i) + "]", false, pruned);
    }
  }
}

std::string TypeOf(const json& v) {
  if (v.is_null()) return "null";
  if (v.is_boolean()) return "boolean";
  if (v.is_number_integer() || v.is_number_unsigned()) return "integer";
  if (v.is_number_float()) {
    double d = v.get<double>();
    return std::floor(d) == d ? "integer" : "number";
  }
  if (v.is_string()) return "string";
  if (v.is_array()) return "array";
  return "object";
}

bool TypeMatches(const std::string& want, const json& v) {
  std::string have = TypeOf(v);
  if (want == have) return true;
  return want == "number" && have == "integer";
}

// How kube-openapi prints a value inside a message: strings quoted, numbers bare.
std::string Show(const json& v) {
  if (v.is_number_float()) {
    double d = v.get<double>();
    if (std::floor(d) == d) return std::to_string(static_cast<long long>(d));
  }
  return v.dump();
}

std::string ShowNumber(const json& v) { return Show(v); }

void ValidateValue(const json& schema, const json& value, const std::string& path,
                   std::vector<Cause>& causes) {
  if (!schema.is_object()) return;
  const std::string field = path.empty() ? "<root>" : path;
  if (value.is_null()) {
    if (schema.value("nullable", false)) return;
    if (schema.contains("type")) {
      causes.push_back({"FieldValueTypeInvalid", field,
                        "Invalid value: \"null\": " + field + " in body must be of type " +
                            schema["type"].get<std::string>() + ": \"null\""});
    }
    return;
  }
  if (schema.value("x-kubernetes-int-or-string", false)) {
    if (!value.is_string() && TypeOf(value) != "integer") {
      causes.push_back({"FieldValueTypeInvalid", field,
                        "Invalid value: " + Show(value) + ": " + field +
                            " in body must be of type integer-or-string: \"" + TypeOf(value) +
                            "\""});
      return;
    }
  } else if (schema.contains("type") && schema["type"].is_string()) {
    std::string want = schema["type"];
    if (!TypeMatches(want, value)) {
      causes.push_back({"FieldValueTypeInvalid", field,
                        "Invalid value: \"" + TypeOf(value) + "\": " + field +
                            " in body must be of type " + want + ": \"" + TypeOf(value) + "\""});
      return;
    }
  }
  if (schema.contains("enum") && schema["enum"].is_array()) {
    bool found = false;
    std::string supported;
    for (const json& e : schema["enum"]) {
      if (e == value) found = true;
      supported += (supported.empty() ? "" : ", ") + e.dump();
    }
    if (!found) {
      causes.push_back({"FieldValueNotSupported", field,
                        "Unsupported value: " + value.dump() + ": supported values: " + supported});
    }
  }
  if (value.is_number()) {
    double d = value.get<double>();
    if (schema.contains("minimum")) {
      double m = schema["minimum"].get<double>();
      bool excl = schema.value("exclusiveMinimum", false);
      if (excl ? d <= m : d < m) {
        causes.push_back({"FieldValueInvalid", field,
                          "Invalid value: " + Show(value) + ": " + field + " in body should be " +
                              (excl ? "greater than " : "greater than or equal to ") +
                              ShowNumber(schema["minimum"])});
      }
    }
    if (schema.contains("maximum")) {
      double m = schema["maximum"].get<double>();
      bool excl = schema.value("exclusiveMaximum", false);
      if (excl ? d >= m : d > m) {
        causes.push_back({"FieldValueInvalid", field,
                          "Invalid value: " + Show(value) + ": " + field + " in body should be " +
                              (excl ? "less than " : "less than or equal to ") +
                              ShowNumber(schema["maximum"])});
      }
    }
  }
  if (value.is_string()) {
    const std::string& s = value.get_ref<const std::string&>();
    if (schema.contains("minLength") && s.size() < schema["minLength"].get<size_t>()) {
      causes.push_back({"FieldValueInvalid", field,
                        "Invalid value: " + value.dump() + ": " + field +
                            " in body should be at least " +
                            std::to_string(schema["minLength"].get<size_t>()) + " chars long"});
    }
    if (schema.contains("maxLength") && s.size() > schema["maxLength"].get<size_t>()) {
      causes.push_back({"FieldValueTooLong", field,
                        "Too long: may not be more than " +
                            std::to_string(schema["maxLength"].get<size_t>()) + " bytes"});
    }
    if (schema.contains("pattern") && schema["pattern"].is_string()) {
      std::string pattern = schema["pattern"];
      try {
        if (!std::regex_search(s, std::regex(pattern, std::regex::ECMAScript))) {
          causes.push_back({"FieldValueInvalid", field,
                            "Invalid value: " + value.dump() + ": " + field +
                                " in body should match '" + pattern + "'"});
        }
      } catch (const std::regex_error&) {
        // An invalid pattern would have been rejected with the CRD; ignore it here.
      }
    }
  }
  if (value.is_array()) {
    if (schema.contains("minItems") && value.size() < schema["minItems"].get<size_t>()) {
      causes.push_back({"FieldValueInvalid", field,
                        "Invalid value: " + std::to_string(value.size()) + ": " + field +
                            " in body should have at least " +
                            std::to_string(schema["minItems"].get<size_t>()) + " items"});
    }
    if (schema.contains("maxItems") && value.size() > schema["maxItems"].get<size_t>()) {
      causes.push_back({"FieldValueTooMany", field,
                        "Too many: " + std::to_string(value.size()) + ": must have at most " +
                            std::to_string(schema["maxItems"].get<size_t>()) + " items"});
    }
    if (schema.contains("items")) {
      for (size_t i = 0; i < value.size(); ++i) {
        ValidateValue(schema["items"], value[i], path + "[" + std::to_string(i) + "]", causes);
      }
    }
  }
  if (value.is_object()) {
    if (schema.contains("required") && schema["required"].is_array()) {
      for (const json& r : schema["required"]) {
        if (r.is_string() && !value.contains(r.get<std::string>())) {
          causes.push_back({"FieldValueRequired", Join(path, r), "Required value"});
        }
      }
    }
    if (schema.contains("minProperties") && value.size() < schema["minProperties"].get<size_t>()) {
      causes.push_back({"FieldValueInvalid", field,
                        "Invalid value: " + std::to_string(value.size()) + ": " + field +
                            " in body should have at least " +
                            std::to_string(schema["minProperties"].get<size_t>()) + " properties"});
    }
    if (schema.contains("maxProperties") && value.size() > schema["maxProperties"].get<size_t>()) {
      causes.push_back({"FieldValueTooMany", field,
                        "Too many: " + std::to_string(value.size()) + ": must have at most " +
                            std::to_string(schema["maxProperties"].get<size_t>()) + " items"});
    }
    const json* props = schema.contains("properties") ? &schema["properties"] : nullptr;
    for (auto it = value.begin(); it != value.end(); ++it) {
      if (path.empty() &&
          (it.key() == "metadata" || it.key() == "apiVersion" || it.key() == "kind")) {
        continue;
      }
      if (props && props->contains(it.key())) {
        ValidateValue((*props)[it.key()], it.value(), Join(path, it.key()), causes);
      } else if (schema.contains("additionalProperties") &&
                 schema["additionalProperties"].is_object()) {
        ValidateValue(schema["additionalProperties"], it.value(), Join(path, it.key()), causes);
      }
    }
  }
}

}  // namespace

void ApplyDefaults(const json& schema, json& value) {
  if (!schema.is_object()) return;
  if (value.is_object()) {
    if (schema.contains("properties")) {
      for (auto it = schema["properties"].begin(); it != schema["properties"].end(); ++it) {
        const json& prop = it.value();
        if (!value.contains(it.key()) && prop.is_object() && prop.contains("default")) {
          value[it.key()] = prop["default"];
        }
        if (value.contains(it.key())) ApplyDefaults(prop, value[it.key()]);
      }
    }
    if (schema.contains("additionalProperties") && schema["additionalProperties"].is_object()) {
      for (auto it = value.begin(); it != value.end(); ++it) {
        if (schema.contains("properties") && schema["properties"].contains(it.key())) continue;
        ApplyDefaults(schema["additionalProperties"], it.value());
      }
    }
  } else if (value.is_array() && schema.contains("items")) {
    for (auto& item : value) ApplyDefaults(schema["items"], item);
  }
}

std::vector<std::string> Prune(const json& schema, json& object) {
  std::vector<std::string> pruned;
  PruneValue(schema, object, "", true, pruned);
  return pruned;
}

std::vector<Cause> Validate(const json& schema, const json& value, const std::string& path) {
  std::vector<Cause> causes;
  ValidateValue(schema, value, path, causes);
  return causes;
}

}  // namespace nixmox::kubesim
