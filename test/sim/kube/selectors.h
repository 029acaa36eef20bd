// Label and field selectors as list and watch take them (?labelSelector=,
// ?fieldSelector=).
#pragma once

#include <string>
#include <vector>

#include "test/sim/kube/api_error.h"

namespace nixmox::kubesim {

struct Requirement {
  std::string key;
  std::string op;  // "=", "!=", "in", "notin", "exists", "!"
  std::vector<std::string> values;
};

class Selector {
 public:
  bool Matches(const json& labels_or_fields) const;  // a flat string->string map
  bool empty() const { return reqs_.empty(); }
  const std::vector<Requirement>& requirements() const { return reqs_; }

  // "app=web,tier in (a,b),!legacy"; BadRequest when malformed.
  static ApiResult ParseLabels(const std::string& text, Selector& out);
  // "metadata.name=x,status.phase!=Running" (only =, == and !=).
  static ApiResult ParseFields(const std::string& text, Selector& out);

 private:
  std::vector<Requirement> reqs_;
};

// The string value at a dotted path ("spec.nodeName"), or "" when absent;
// booleans and numbers are printed as the API server's field sets do.
std::string FieldValue(const json& object, const std::string& path);

}  // namespace nixmox::kubesim
