// JSON <-> C++ for the v1alpha1 kinds, and the field list the CRD agreement
// test checks against crds/*.yaml.
//
// Encoding follows the CRD: camelCase names; numbers, booleans and enums are
// always written; empty strings, lists, maps and objects are left out; a
// std::optional is written exactly when it holds a value.
//
// Decoding never throws. Absent or null fields keep their C++ default (the
// API default); unknown fields are ignored (the API server prunes them). A
// value of the wrong type fails with kInvalid and one FieldError per bad
// field, with its path ("spec.disks[1].sizeGiB"). Required fields and value
// rules are validation.h's job, not the decoder's.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "src/api/types.h"
#include "src/common/status.h"

namespace nixmox::api {

enum class Kind { kProxmoxCluster, kNixImage, kProxmoxVm };

struct KindInfo {
  std::string_view kind;      // "ProxmoxVM"
  std::string_view plural;    // "proxmoxvms"
  std::string_view singular;  // "proxmoxvm"
};
const KindInfo& InfoFor(Kind kind);

nlohmann::json ToJson(const ProxmoxCluster& obj);
nlohmann::json ToJson(const NixImage& obj);
nlohmann::json ToJson(const ProxmoxVm& obj);
// The status object alone, for writes to the status subresource.
nlohmann::json ToJson(const ProxmoxClusterStatus& status);
nlohmann::json ToJson(const NixImageStatus& status);
nlohmann::json ToJson(const ProxmoxVmStatus& status);

// `obj` must be a JSON object; apiVersion and kind, when present, must match.
Result<ProxmoxCluster> ProxmoxClusterFromJson(const nlohmann::json& obj);
Result<NixImage> NixImageFromJson(const nlohmann::json& obj);
Result<ProxmoxVm> ProxmoxVmFromJson(const nlohmann::json& obj);

// One JSON field the C++ types produce, for comparison with the CRD schema.
enum class JsonType { kString, kInteger, kNumber, kBoolean, kObject, kArray, kIntOrString };
std::string_view JsonTypeName(JsonType type);

struct FieldInfo {
  // Dotted path from the object root: "spec.disks[].slot" for list items,
  // "spec.builder.nodeSelector{}" for map values.
  std::string path;
  JsonType type;
  std::vector<std::string> enum_values;  // the allowed spellings, for enums
};

// Every field of spec and status (and "spec", "status" themselves), in
// declaration order.
std::vector<FieldInfo> DescribeFields(Kind kind);

}  // namespace nixmox::api
