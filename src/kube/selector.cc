#include "src/kube/selector.h"

#include <algorithm>

namespace nixmox::kube {
namespace {

std::string_view Trim(std::string_view s) {
  while (!s.empty() && s.front() == ' ') s.remove_prefix(1);
  while (!s.empty() && s.back() == ' ') s.remove_suffix(1);
  return s;
}

// Splits on commas outside parentheses.
Result<std::vector<std::string_view>> SplitTerms(std::string_view text) {
  std::vector<std::string_view> out;
  int depth = 0;
  size_t start = 0;
  for (size_t i = 0; i <= text.size(); ++i) {
    if (i == text.size() || (text[i] == ',' && depth == 0)) {
      auto term = Trim(text.substr(start, i - start));
      if (!term.empty()) out.push_back(term);
      start = i + 1;
    } else if (text[i] == '(') {
      ++depth;
    } else if (text[i] == ')') {
      if (--depth < 0) return InvalidError("unbalanced ')' in selector");
    }
  }
  if (depth != 0) return InvalidError("unbalanced '(' in selector");
  return out;
}

bool ValidKey(std::string_view k) {
  if (k.empty()) return false;
  return std::all_of(k.begin(), k.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.' ||
           c == '/';
  });
}

const Object* Labels(const Object& obj) {
  if (!obj.is_object()) return nullptr;
  auto md = obj.find("metadata");
  if (md == obj.end() || !md->is_object()) return nullptr;
  auto labels = md->find("labels");
  if (labels == md->end() || !labels->is_object()) return nullptr;
  return &*labels;
}

}  // namespace

Result<LabelSelector> LabelSelector::Parse(std::string_view text) {
  LabelSelector sel;
  ASSIGN_OR_RETURN(auto terms, SplitTerms(text));
  for (std::string_view t : terms) {
    auto bad = [&] {
      return InvalidError("invalid label selector term \"" + std::string(t) + "\"");
    };
    Term term;
    if (t.front() == '!') {
      term.key = std::string(Trim(t.substr(1)));
      term.op = Op::kNotExists;
    } else if (auto p = t.find("!="); p != std::string_view::npos) {
      term.key = std::string(Trim(t.substr(0, p)));
      term.op = Op::kNotIn;
      term.values.emplace_back(Trim(t.substr(p + 2)));
    } else if (auto p = t.find('='); p != std::string_view::npos) {
      term.key = std::string(Trim(t.substr(0, p)));
      term.op = Op::kIn;
      size_t v = p + 1;
      if (v < t.size() && t[v] == '=') ++v;
      term.values.emplace_back(Trim(t.substr(v)));
    } else if (auto p = t.find('('); p != std::string_view::npos) {
      if (t.back() != ')') return bad();
      auto head = Trim(t.substr(0, p));
      auto sp = head.rfind(' ');
      if (sp == std::string_view::npos) return bad();
      auto op = Trim(head.substr(sp + 1));
      term.key = std::string(Trim(head.substr(0, sp)));
      if (op == "in")
        term.op = Op::kIn;
      else if (op == "notin")
        term.op = Op::kNotIn;
      else
        return bad();
      auto list = t.substr(p + 1, t.size() - p - 2);
      size_t start = 0;
      for (size_t i = 0; i <= list.size(); ++i) {
        if (i == list.size() || list[i] == ',') {
          auto v = Trim(list.substr(start, i - start));
          if (!v.empty()) term.values.emplace_back(v);
          start = i + 1;
        }
      }
      if (term.values.empty()) return bad();
    } else {
      term.key = std::string(t);
      term.op = Op::kExists;
    }
    if (!ValidKey(term.key)) return bad();
    sel.terms_.push_back(std::move(term));
  }
  return sel;
}

bool LabelSelector::Matches(const Object& obj) const {
  const Object* labels = Labels(obj);
  for (const auto& t : terms_) {
    const Object* value = nullptr;
    if (labels) {
      auto it = labels->find(t.key);
      if (it != labels->end() && it->is_string()) value = &*it;
    }
    const bool in = value && std::find(t.values.begin(), t.values.end(),
                                       value->get<std::string>()) != t.values.end();
    switch (t.op) {
      case Op::kExists:
        if (!value) return false;
        break;
      case Op::kNotExists:
        if (value) return false;
        break;
      case Op::kIn:
        if (!in) return false;
        break;
      // As on the server, a missing label satisfies "!=" and "notin".
      case Op::kNotIn:
        if (in) return false;
        break;
    }
  }
  return true;
}

Result<FieldSelector> FieldSelector::Parse(std::string_view text) {
  FieldSelector sel;
  ASSIGN_OR_RETURN(auto terms, SplitTerms(text));
  for (std::string_view t : terms) {
    Term term;
    size_t p = t.find("!=");
    size_t skip = 2;
    term.equal = p == std::string_view::npos;
    if (term.equal) {
      p = t.find('=');
      if (p == std::string_view::npos) {
        return InvalidError("invalid field selector term \"" + std::string(t) + "\"");
      }
      skip = (p + 1 < t.size() && t[p + 1] == '=') ? 2 : 1;
    }
    term.field = std::string(Trim(t.substr(0, p)));
    term.value = std::string(Trim(t.substr(p + skip)));
    if (term.field != "metadata.name" && term.field != "metadata.namespace") {
      return InvalidError("field selector on \"" + term.field + "\" is not supported by the cache");
    }
    sel.terms_.push_back(std::move(term));
  }
  return sel;
}

bool FieldSelector::Matches(const Object& obj) const {
  for (const auto& t : terms_) {
    const std::string actual = t.field == "metadata.name" ? NameOf(obj) : NamespaceOf(obj);
    if ((actual == t.value) != t.equal) return false;
  }
  return true;
}

}  // namespace nixmox::kube
