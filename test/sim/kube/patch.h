// The PATCH flavours kube-apiserver accepts, applied to an object in JSON.
// Exceptions from the JSON and YAML libraries stay inside these functions.
#pragma once

#include <string>

#include "test/sim/kube/api_error.h"

namespace nixmox::kubesim {

// RFC 7386 JSON merge patch (application/merge-patch+json).
ApiResult MergePatch(const json& target, const std::string& patch);

// RFC 6902 JSON patch (application/json-patch+json).
ApiResult JsonPatch(const json& target, const std::string& patch);

// Strategic merge patch (application/strategic-merge-patch+json) for built-in
// kinds: maps merge, `null` deletes, lists named in the upstream patch
// strategies (containers by name, env by name, ownerReferences by uid,
// conditions by type, finalizers as a set, ...) merge by key, other lists are
// replaced; the $patch (replace, delete), $retainKeys-free subset of the
// directives and $deleteFromPrimitiveList are honoured, $setElementOrder is ignored.
ApiResult StrategicMergePatch(const json& target, const std::string& patch);

// Merges `applied` into `target` the way a strategic merge patch would. Used
// for server-side apply (simplified: no managedFields, no field ownership).
json StrategicMerge(const json& target, const json& patch, const std::string& parent_key = "");

// YAML or JSON text to JSON (for application/apply-patch+yaml and YAML bodies).
ApiResult ParseYamlOrJson(const std::string& text);

}  // namespace nixmox::kubesim
