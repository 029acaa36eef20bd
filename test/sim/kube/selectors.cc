#include "test/sim/kube/selectors.h"

#include <algorithm>
#include <cctype>

namespace nixmox::kubesim {
namespace {

std::string Trim(const std::string& s) {
  size_t b = s.find_first_not_of(" \t");
  size_t e = s.find_last_not_of(" \t");
  return b == std::string::npos ? "" : s.substr(b, e - b + 1);
}

// Splits on commas that are not inside parentheses.
std::vector<std::string> SplitTerms(const std::string& text) {
  std::vector<std::string> out;
  int depth = 0;
  std::string cur;
  for (char c : text) {
    if (c == '(') ++depth;
    if (c == ')') --depth;
    if (c == ',' && depth == 0) {
      out.push_back(Trim(cur));
      cur.clear();
    } else {
      cur += c;
    }
  }
  out.push_back(Trim(cur));
  return out;
}

bool ValidLabelValue(const std::string& v) {
  if (v.size() > 63) return false;
  return std::all_of(v.begin(), v.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.' ||
           c == '/';
  });
}

}  // namespace

bool Selector::Matches(const json& map) const {
  for (const auto& r : reqs_) {
    bool has = map.is_object() && map.contains(r.key);
    std::string v = has && map[r.key].is_string() ? map[r.key].get<std::string>() : "";
    if (r.op == "exists") {
      if (!has) return false;
    } else if (r.op == "!") {
      if (has) return false;
    } else if (r.op == "=") {
      if (!has || v != r.values[0]) return false;
    } else if (r.op == "!=") {
      if (has && v == r.values[0]) return false;
    } else if (r.op == "in") {
      if (!has || std::find(r.values.begin(), r.values.end(), v) == r.values.end()) return false;
    } else if (r.op == "notin") {
      if (has && std::find(r.values.begin(), r.values.end(), v) != r.values.end()) return false;
    }
  }
  return true;
}

ApiResult Selector::ParseLabels(const std::string& text, Selector& out) {
  out.reqs_.clear();
  if (Trim(text).empty()) return json();
  for (const std::string& term : SplitTerms(text)) {
    auto bad = [&]() {
      return ApiError::BadRequest("unable to parse requirement: found '" + term +
                                  "', expected: identifier");
    };
    if (term.empty()) return bad();
    Requirement r;
    size_t sp = term.find(' ');
    std::string lower = term;
    std::transform(lower.begin(), lower.end(), lower.begin(), ::tolower);
    size_t in_pos = lower.find(" in ");
    size_t notin_pos = lower.find(" notin ");
    if (notin_pos != std::string::npos || in_pos != std::string::npos) {
      bool notin = notin_pos != std::string::npos;
      size_t pos = notin ? notin_pos : in_pos;
      r.key = Trim(term.substr(0, pos));
      r.op = notin ? "notin" : "in";
      std::string rest = Trim(term.substr(pos + (notin ? 7 : 4)));
      if (rest.size() < 2 || rest.front() != '(' || rest.back() != ')') return bad();
      std::string inner = rest.substr(1, rest.size() - 2);
      size_t start = 0;
      while (start <= inner.size()) {
        size_t comma = inner.find(',', start);
        std::string v = Trim(
            inner.substr(start, comma == std::string::npos ? std::string::npos : comma - start));
        if (!ValidLabelValue(v)) return bad();
        r.values.push_back(v);
        if (comma == std::string::npos) break;
        start = comma + 1;
      }
    } else if (term.find("!=") != std::string::npos) {
      size_t pos = term.find("!=");
      r.key = Trim(term.substr(0, pos));
      r.op = "!=";
      r.values = {Trim(term.substr(pos + 2))};
    } else if (term.find("==") != std::string::npos) {
      size_t pos = term.find("==");
      r.key = Trim(term.substr(0, pos));
      r.op = "=";
      r.values = {Trim(term.substr(pos + 2))};
    } else if (term.find('=') != std::string::npos) {
      size_t pos = term.find('=');
      r.key = Trim(term.substr(0, pos));
      r.op = "=";
      r.values = {Trim(term.substr(pos + 1))};
    } else if (term[0] == '!') {
      r.key = Trim(term.substr(1));
      r.op = "!";
    } else {
      (void)sp;
      r.key = term;
      r.op = "exists";
    }
    if (r.key.empty() || r.key.find(' ') != std::string::npos) return bad();
    for (const auto& v : r.values) {
      if (!ValidLabelValue(v)) return bad();
    }
    out.reqs_.push_back(r);
  }
  return json();
}

ApiResult Selector::ParseFields(const std::string& text, Selector& out) {
  out.reqs_.clear();
  if (Trim(text).empty()) return json();
  for (const std::string& term : SplitTerms(text)) {
    Requirement r;
    size_t pos;
    if ((pos = term.find("!=")) != std::string::npos) {
      r.op = "!=";
      r.key = Trim(term.substr(0, pos));
      r.values = {Trim(term.substr(pos + 2))};
    } else if ((pos = term.find("==")) != std::string::npos) {
      r.op = "=";
      r.key = Trim(term.substr(0, pos));
      r.values = {Trim(term.substr(pos + 2))};
    } else if ((pos = term.find('=')) != std::string::npos) {
      r.op = "=";
      r.key = Trim(term.substr(0, pos));
      r.values = {Trim(term.substr(pos + 1))};
    } else {
      return ApiError::BadRequest("invalid selector: '" + text + "'; can't understand '" + term +
                                  "'");
    }
    out.reqs_.push_back(r);
  }
  return json();
}

std::string FieldValue(const json& object, const std::string& path) {
  const json* cur = &object;
  size_t start = 0;
  while (start <= path.size()) {
    size_t dot = path.find('.', start);
    std::string key =
        path.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
    if (!cur->is_object() || !cur->contains(key)) return "";
    cur = &(*cur)[key];
    if (dot == std::string::npos) break;
    start = dot + 1;
  }
  if (cur->is_string()) return cur->get<std::string>();
  if (cur->is_null()) return "";
  return cur->dump();
}

}  // namespace nixmox::kubesim
