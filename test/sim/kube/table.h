// The meta.k8s.io/v1 Table rendering (`Accept: application/json;as=Table`):
// kubectl get asks for it and prints the columns the server chose.
#pragma once

#include <chrono>
#include <string>
#include <vector>

#include "test/sim/kube/resources.h"

namespace nixmox::kubesim {

// Evaluates the JSONPath subset printer columns use: .a.b, .a[0], .a[*].b,
// .a[?(@.k=="v")].b. Returns every match (empty when none).
std::vector<json> EvalJsonPath(const json& object, const std::string& path);

// "5s", "3m", "2d" as kubectl and the server print ages.
std::string HumanDuration(std::chrono::seconds d);

// Builds a Table of `objects` for `resource` served at `version`. include is
// the ?includeObject= value: None, Metadata (default) or Object.
json BuildTable(const ResourceInfo& resource, const std::string& version,
                const std::vector<json>& objects, const std::string& include,
                std::chrono::system_clock::time_point now, bool with_columns = true);

}  // namespace nixmox::kubesim
