// Label and field selectors evaluated locally, with the API server's syntax,
// so the informer cache answers the same lists the server would.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "src/common/status.h"
#include "src/kube/object.h"

namespace nixmox::kube {

// "app=web,tier!=db,env in (a,b),zone notin (x),gpu,!legacy". Empty matches all.
class LabelSelector {
 public:
  static Result<LabelSelector> Parse(std::string_view text);
  bool Matches(const Object& obj) const;
  bool empty() const { return terms_.empty(); }

 private:
  enum class Op { kIn, kNotIn, kExists, kNotExists };
  struct Term {
    std::string key;
    Op op;
    std::vector<std::string> values;
  };
  std::vector<Term> terms_;
};

// "metadata.name=x,metadata.namespace!=y". Only metadata.name and
// metadata.namespace are known; other fields are Invalid.
class FieldSelector {
 public:
  static Result<FieldSelector> Parse(std::string_view text);
  bool Matches(const Object& obj) const;

 private:
  struct Term {
    std::string field;
    bool equal;
    std::string value;
  };
  std::vector<Term> terms_;
};

}  // namespace nixmox::kube
