// Structural-schema handling for custom resources, as the apiextensions server
// does it on every write: defaults, then pruning of unknown fields, then
// validation of the OpenAPI v3 constraints kubesim models (type, required,
// enum, minimum/maximum incl. exclusive, minLength/maxLength, pattern,
// minItems/maxItems, minProperties/maxProperties, additionalProperties,
// nullable, x-kubernetes-int-or-string, x-kubernetes-preserve-unknown-fields).
// CEL rules (x-kubernetes-validations) and formats are not checked.
#pragma once

#include <string>
#include <vector>

#include "test/sim/kube/api_error.h"

namespace nixmox::kubesim {

// Fills in every `default` the schema declares for a missing field, recursively.
void ApplyDefaults(const json& schema, json& value);

// Removes fields the schema does not declare and returns their paths
// ("spec.foo"). apiVersion, kind and metadata at the root are kept.
std::vector<std::string> Prune(const json& schema, json& object);

// The violations of `value` against `schema`; `path` names value ("" for the root).
std::vector<Cause> Validate(const json& schema, const json& value, const std::string& path = "");

}  // namespace nixmox::kubesim
