// Proves that crds/*.yaml and the C++ types in src/api describe the same API:
// the same fields with compatible types, the same enums, the same defaults;
// and that the CRDs follow Kubernetes' structural-schema rules.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <yaml-cpp/yaml.h>

#include <charconv>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "src/api/json.h"
#include "test/unit/api/fixtures.h"

namespace nixmox::api {
namespace {

using nlohmann::json;
using ::testing::ElementsAreArray;
using ::testing::IsEmpty;

// ---- YAML to JSON ----------------------------------------------------------

json ScalarToJson(const YAML::Node& node) {
  const std::string& s = node.Scalar();
  if (node.Tag() != "?") return s;  // quoted: always a string
  if (s == "true") return true;
  if (s == "false") return false;
  if (s == "null" || s == "~" || s.empty()) return nullptr;
  long long i = 0;
  if (auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), i);
      ec == std::errc() && end == s.data() + s.size()) {
    return i;
  }
  double d = 0;
  if (auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), d);
      ec == std::errc() && end == s.data() + s.size()) {
    return d;
  }
  return s;
}

json YamlToJson(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Map: {
      json out = json::object();
      for (const auto& kv : node) out[kv.first.as<std::string>()] = YamlToJson(kv.second);
      return out;
    }
    case YAML::NodeType::Sequence: {
      json out = json::array();
      for (const auto& item : node) out.push_back(YamlToJson(item));
      return out;
    }
    case YAML::NodeType::Scalar:
      return ScalarToJson(node);
    default:
      return nullptr;
  }
}

json LoadCrd(const std::string& file) {
  return YamlToJson(YAML::LoadFile(std::string(NIXMOX_CRD_DIR) + "/" + file));
}

// ---- Schema helpers -------------------------------------------------------

std::string SchemaType(const json& schema) {
  if (schema.value("x-kubernetes-int-or-string", false)) return "int-or-string";
  return schema.value("type", "");
}

struct SchemaField {
  std::string type;
  std::vector<std::string> enum_values;
};

// Paths in DescribeFields' notation: "spec.disks[].slot", "spec.x.map{}".
void Flatten(const json& schema, const std::string& path, std::map<std::string, SchemaField>* out) {
  SchemaField f{SchemaType(schema), {}};
  if (schema.contains("enum")) {
    for (const auto& e : schema["enum"]) f.enum_values.push_back(e.get<std::string>());
  }
  (*out)[path] = f;
  if (schema.contains("properties")) {
    for (const auto& [k, sub] : schema["properties"].items()) Flatten(sub, path + "." + k, out);
  }
  if (schema.contains("items")) Flatten(schema["items"], path + "[]", out);
  if (schema.contains("additionalProperties") && schema["additionalProperties"].is_object()) {
    Flatten(schema["additionalProperties"], path + "{}", out);
  }
}

// A subset of OpenAPI v3 validation, enough for the keywords the CRDs use.
void CheckValue(const json& schema, const json& v, const std::string& path,
                std::vector<std::string>* errors) {
  auto fail = [&](const std::string& m) { errors->push_back(path + ": " + m); };
  std::string type = SchemaType(schema);
  bool ok = (type == "string" && v.is_string()) || (type == "integer" && v.is_number_integer()) ||
            (type == "number" && v.is_number()) || (type == "boolean" && v.is_boolean()) ||
            (type == "object" && v.is_object()) || (type == "array" && v.is_array()) ||
            (type == "int-or-string" && (v.is_string() || v.is_number_integer()));
  if (!ok) return fail("expected " + type + ", got " + v.dump());
  if (schema.contains("enum")) {
    bool found = false;
    for (const auto& e : schema["enum"]) found = found || e == v;
    if (!found) fail("not in enum: " + v.dump());
  }
  if (v.is_number()) {
    if (schema.contains("minimum") && v.get<double>() < schema["minimum"].get<double>()) {
      fail("below minimum");
    }
    if (schema.contains("maximum") && v.get<double>() > schema["maximum"].get<double>()) {
      fail("above maximum");
    }
  }
  if (v.is_string()) {
    const std::string s = v.get<std::string>();
    if (schema.contains("minLength") && s.size() < schema["minLength"].get<std::size_t>()) {
      fail("shorter than minLength");
    }
    if (schema.contains("maxLength") && s.size() > schema["maxLength"].get<std::size_t>()) {
      fail("longer than maxLength");
    }
    if (schema.contains("pattern") &&
        !std::regex_search(s, std::regex(schema["pattern"].get<std::string>()))) {
      fail("\"" + s + "\" does not match " + schema["pattern"].get<std::string>());
    }
  }
  if (v.is_array()) {
    if (schema.contains("maxItems") && v.size() > schema["maxItems"].get<std::size_t>()) {
      fail("more than maxItems");
    }
    for (std::size_t i = 0; i < v.size(); ++i) {
      CheckValue(schema["items"], v[i], path + "[" + std::to_string(i) + "]", errors);
    }
  }
  if (v.is_object()) {
    if (schema.contains("maxProperties") && v.size() > schema["maxProperties"].get<std::size_t>()) {
      fail("more than maxProperties");
    }
    for (const auto& r : schema.value("required", json::array())) {
      if (!v.contains(r.get<std::string>())) fail("missing required " + r.get<std::string>());
    }
    for (const auto& [k, sub] : v.items()) {
      if (schema.contains("properties") && schema["properties"].contains(k)) {
        CheckValue(schema["properties"][k], sub, path + "." + k, errors);
      } else if (schema.contains("additionalProperties")) {
        CheckValue(schema["additionalProperties"], sub, path + "[" + k + "]", errors);
      } else {
        fail("field " + k + " is not in the schema (the API server would drop it)");
      }
    }
  }
}

// Kubernetes' structural defaulting: absent fields with a default get it, and
// the defaulted value is defaulted further (so `default: {}` fills children).
void ApplyDefaults(const json& schema, json& v) {
  if (v.is_object() && schema.contains("properties")) {
    for (const auto& [k, sub] : schema["properties"].items()) {
      if (!v.contains(k) && sub.contains("default")) v[k] = sub["default"];
      if (v.contains(k)) ApplyDefaults(sub, v[k]);
    }
  }
  if (v.is_object() && schema.contains("additionalProperties") &&
      schema["additionalProperties"].is_object()) {
    for (auto& [k, sub] : v.items()) ApplyDefaults(schema["additionalProperties"], sub);
  }
  if (v.is_array() && schema.contains("items")) {
    for (auto& item : v) ApplyDefaults(schema["items"], item);
  }
}

// Schema paths no value in `values` reaches.
void FindUncovered(const json& schema, const std::vector<const json*>& values,
                   const std::string& path, std::vector<std::string>* missing) {
  if (schema.contains("properties")) {
    for (const auto& [k, sub] : schema["properties"].items()) {
      std::vector<const json*> children;
      for (const json* v : values) {
        if (v->is_object() && v->contains(k)) children.push_back(&(*v)[k]);
      }
      if (children.empty()) {
        missing->push_back(path + "." + k);
      } else {
        FindUncovered(sub, children, path + "." + k, missing);
      }
    }
  }
  auto descend = [&](const json& sub, const std::string& sub_path, bool array) {
    std::vector<const json*> children;
    for (const json* v : values) {
      if (array && v->is_array()) {
        for (const auto& item : *v) children.push_back(&item);
      } else if (!array && v->is_object()) {
        for (const auto& [k, item] : v->items()) children.push_back(&item);
      }
    }
    if (children.empty()) {
      missing->push_back(sub_path);
    } else {
      FindUncovered(sub, children, sub_path, missing);
    }
  };
  if (schema.contains("items")) descend(schema["items"], path + "[]", true);
  if (schema.contains("additionalProperties") && schema["additionalProperties"].is_object()) {
    descend(schema["additionalProperties"], path + "{}", false);
  }
}

// Walks every schema node with its path.
template <typename F>
void ForEachNode(const json& schema, const std::string& path, F&& f) {
  f(schema, path);
  if (schema.contains("properties")) {
    for (const auto& [k, sub] : schema["properties"].items()) ForEachNode(sub, path + "." + k, f);
  }
  if (schema.contains("items")) ForEachNode(schema["items"], path + "[]", f);
  if (schema.contains("additionalProperties") && schema["additionalProperties"].is_object()) {
    ForEachNode(schema["additionalProperties"], path + "{}", f);
  }
}

// ---- The three kinds -----------------------------------------------------

struct Case {
  Kind kind;
  const char* file;
  const char* short_name;
  std::vector<std::string> columns;
  json (*full)();
  json (*minimal)();
  // Decode and encode again, through the kind's own functions.
  json (*round_trip)(const json&);
};

void PrintTo(const Case& c, std::ostream* os) { *os << InfoFor(c.kind).kind; }

template <typename T>
json RoundTrip(Result<T> (*from)(const json&), const json& in) {
  auto decoded = from(in);
  EXPECT_TRUE(decoded.ok()) << decoded.status().ToString();
  return decoded.ok() ? ToJson(*decoded) : json();
}

std::vector<Case> Cases() {
  return {
      {Kind::kProxmoxCluster,
       "nixmox.io_proxmoxclusters.yaml",
       "pxc",
       {"Ready", "Version", "Nodes", "Age"},
       [] { return ToJson(testing::FullCluster()); },
       testing::MinimalClusterJson,
       [](const json& j) { return RoundTrip(&ProxmoxClusterFromJson, j); }},
      {Kind::kNixImage,
       "nixmox.io_niximages.yaml",
       "nimg",
       {"Phase", "Store path", "Size", "Age"},
       [] { return ToJson(testing::FullImage()); },
       testing::MinimalImageJson,
       [](const json& j) { return RoundTrip(&NixImageFromJson, j); }},
      {Kind::kProxmoxVm,
       "nixmox.io_proxmoxvms.yaml",
       "pvm",
       {"Phase", "Node", "VMID", "IP", "Image", "Age"},
       [] { return ToJson(testing::FullVm()); },
       testing::MinimalVmJson,
       [](const json& j) { return RoundTrip(&ProxmoxVmFromJson, j); }},
  };
}

class CrdAgreementTest : public ::testing::TestWithParam<Case> {
 protected:
  void SetUp() override {
    crd_ = LoadCrd(GetParam().file);
    ASSERT_TRUE(crd_.is_object()) << GetParam().file;
    schema_ = crd_["spec"]["versions"][0]["schema"]["openAPIV3Schema"];
    ASSERT_TRUE(schema_.is_object());
    for (const char* top : {"spec", "status"}) {
      ASSERT_TRUE(schema_["properties"].contains(top)) << top;
      Flatten(schema_["properties"][top], top, &schema_fields_);
    }
    for (const FieldInfo& f : DescribeFields(GetParam().kind)) cpp_fields_[f.path] = f;
  }

  json crd_;
  json schema_;
  std::map<std::string, SchemaField> schema_fields_;
  std::map<std::string, FieldInfo> cpp_fields_;
};

TEST_P(CrdAgreementTest, NamesGroupScopeAndVersionMatchTheKind) {
  const KindInfo& info = InfoFor(GetParam().kind);
  EXPECT_EQ(crd_["apiVersion"], "apiextensions.k8s.io/v1");
  EXPECT_EQ(crd_["kind"], "CustomResourceDefinition");
  EXPECT_EQ(crd_["metadata"]["name"], std::string(info.plural) + "." + std::string(kGroup));
  const json& spec = crd_["spec"];
  EXPECT_EQ(spec["group"], kGroup);
  EXPECT_EQ(spec["scope"], "Namespaced");
  EXPECT_EQ(spec["names"]["kind"], info.kind);
  EXPECT_EQ(spec["names"]["listKind"], std::string(info.kind) + "List");
  EXPECT_EQ(spec["names"]["plural"], info.plural);
  EXPECT_EQ(spec["names"]["singular"], info.singular);
  EXPECT_EQ(spec["names"]["shortNames"], json::array({GetParam().short_name}));
  EXPECT_EQ(spec["names"]["categories"], json::array({"nixmox"}));
  ASSERT_EQ(spec["versions"].size(), 1u);
  const json& version = spec["versions"][0];
  EXPECT_EQ(version["name"], kVersion);
  EXPECT_EQ(version["served"], true);
  EXPECT_EQ(version["storage"], true);
  EXPECT_EQ(version["subresources"], json({{"status", json::object()}}));
}

TEST_P(CrdAgreementTest, PrinterColumnsAreTheAgreedOnesAndPointAtRealFields) {
  const json& columns = crd_["spec"]["versions"][0]["additionalPrinterColumns"];
  std::vector<std::string> names;
  for (const auto& c : columns) {
    names.push_back(c["name"]);
    std::string path = c["jsonPath"];
    if (path == ".metadata.creationTimestamp") {
      EXPECT_EQ(c["type"], "date");
      continue;
    }
    ASSERT_EQ(path.rfind('.', 0), 0u) << path;
    auto field = schema_fields_.find(path.substr(1));
    ASSERT_NE(field, schema_fields_.end()) << c["name"] << " points at " << path;
    EXPECT_EQ(field->second.type, c["type"].get<std::string>()) << path;
    EXPECT_TRUE(c.contains("description")) << c["name"];
  }
  EXPECT_THAT(names, ElementsAreArray(GetParam().columns));
}

TEST_P(CrdAgreementTest, EverySchemaFieldIsProducedByTheCppType) {
  for (const auto& [path, field] : schema_fields_) {
    EXPECT_TRUE(cpp_fields_.count(path)) << "schema field " << path << " has no C++ field";
  }
}

TEST_P(CrdAgreementTest, EveryCppFieldExistsInTheSchemaWithACompatibleType) {
  for (const auto& [path, info] : cpp_fields_) {
    auto it = schema_fields_.find(path);
    if (it == schema_fields_.end()) {
      ADD_FAILURE() << "C++ field " << path << " is not in the schema";
      continue;
    }
    EXPECT_EQ(it->second.type, JsonTypeName(info.type)) << path;
  }
}

TEST_P(CrdAgreementTest, EnumsAgreeWithTheCppEnums) {
  for (const auto& [path, info] : cpp_fields_) {
    auto it = schema_fields_.find(path);
    if (it == schema_fields_.end()) continue;  // reported by the test above
    EXPECT_EQ(it->second.enum_values, info.enum_values) << path;
  }
}

TEST_P(CrdAgreementTest, FullExampleSetsEverySchemaField) {
  json full = GetParam().full();
  std::vector<std::string> missing;
  for (const char* top : {"spec", "status"}) {
    ASSERT_TRUE(full.contains(top));
    FindUncovered(schema_["properties"][top], {&full[top]}, top, &missing);
  }
  EXPECT_THAT(missing, IsEmpty());
}

TEST_P(CrdAgreementTest, FullExampleIsValidAgainstTheSchema) {
  json full = GetParam().full();
  std::vector<std::string> errors;
  CheckValue(schema_["properties"]["spec"], full["spec"], "spec", &errors);
  CheckValue(schema_["properties"]["status"], full["status"], "status", &errors);
  EXPECT_THAT(errors, IsEmpty());
}

TEST_P(CrdAgreementTest, SchemaDefaultsEqualTheCppDefaults) {
  json minimal = GetParam().minimal();
  json defaulted = minimal;
  ApplyDefaults(schema_, defaulted);
  // The C++ side fills in its defaults while decoding; writing the result
  // back must give exactly what the API server's defaulting gives.
  json from_cpp = GetParam().round_trip(minimal);
  EXPECT_EQ(from_cpp["spec"], defaulted["spec"])
      << "C++:    " << from_cpp["spec"].dump() << "\nschema: " << defaulted["spec"].dump();
  // And decoding the server-defaulted object changes nothing.
  EXPECT_EQ(GetParam().round_trip(defaulted)["spec"], from_cpp["spec"]);
}

TEST_P(CrdAgreementTest, DefaultsAreValidAgainstTheirOwnSchema) {
  std::vector<std::string> errors;
  ForEachNode(schema_, "", [&](const json& node, const std::string& path) {
    if (!node.contains("default")) return;
    json value = node["default"];
    ApplyDefaults(node, value);
    CheckValue(node, value, path, &errors);
  });
  EXPECT_THAT(errors, IsEmpty());
}

TEST_P(CrdAgreementTest, SchemaIsStructural) {
  std::vector<std::string> problems;
  ForEachNode(schema_, "", [&](const json& node, const std::string& path) {
    if (SchemaType(node).empty()) problems.push_back(path + ": no type");
    if (node.contains("x-kubernetes-preserve-unknown-fields")) {
      problems.push_back(path + ": preserve-unknown-fields");
    }
    if (path != ".metadata" && !node.contains("description")) {
      problems.push_back(path + ": no description");
    }
    for (const auto& r : node.value("required", json::array())) {
      if (!node["properties"].contains(r.get<std::string>())) {
        problems.push_back(path + ": required " + r.get<std::string>() + " is not a property");
      }
    }
    // Fields the operator writes are never required, so a partial status
    // write is always accepted; only a condition's own keys are.
    if (path.rfind(".status", 0) == 0 && node.contains("required") &&
        path.find(".conditions[]") == std::string::npos) {
      problems.push_back(path + ": a status field is required");
    }
  });
  EXPECT_THAT(problems, IsEmpty());
  EXPECT_FALSE(schema_.contains("required") &&
               std::count(schema_["required"].begin(), schema_["required"].end(), "status"));
}

TEST_P(CrdAgreementTest, CelRulesOnlyNameFieldsThatExist) {
  std::vector<std::string> problems;
  int rules = 0;
  std::regex field_ref(R"((?:self|oldSelf)\.([A-Za-z_][A-Za-z0-9_]*))");
  ForEachNode(schema_, "", [&](const json& node, const std::string& path) {
    for (const auto& v : node.value("x-kubernetes-validations", json::array())) {
      ++rules;
      std::string rule = v["rule"];
      if (v.value("message", "").empty()) problems.push_back(path + ": rule without a message");
      for (std::sregex_iterator it(rule.begin(), rule.end(), field_ref), end; it != end; ++it) {
        std::string name = (*it)[1];
        if (!node.contains("properties") || !node["properties"].contains(name)) {
          problems.push_back(path + ": rule names " + name + ", which is not a property");
        }
      }
    }
  });
  EXPECT_THAT(problems, IsEmpty());
  EXPECT_GE(rules, 1);
}

INSTANTIATE_TEST_SUITE_P(Kinds, CrdAgreementTest, ::testing::ValuesIn(Cases()),
                         [](const ::testing::TestParamInfo<Case>& p) {
                           return std::string(InfoFor(p.param.kind).kind);
                         });

// The immutability rules the issue asks for, by field.
TEST(CrdRulesTest, ClusterRefAndVmidAreGuardedByTransitionRules) {
  json vm = LoadCrd("nixmox.io_proxmoxvms.yaml")["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
                                                ["properties"]["spec"];
  EXPECT_EQ(vm["properties"]["clusterRef"]["x-kubernetes-validations"][0]["rule"],
            "self == oldSelf");
  std::string rules = vm["x-kubernetes-validations"].dump();
  EXPECT_NE(rules.find("self.vmid == oldSelf.vmid"), std::string::npos);
  EXPECT_NE(rules.find("has(self.imageRef) != has(self.sourceVolume)"), std::string::npos);
  json image = LoadCrd("nixmox.io_niximages.yaml")["spec"]["versions"][0]["schema"]
                                                  ["openAPIV3Schema"]["properties"]["spec"];
  EXPECT_EQ(image["properties"]["clusterRef"]["x-kubernetes-validations"][0]["rule"],
            "self == oldSelf");
}

}  // namespace
}  // namespace nixmox::api
