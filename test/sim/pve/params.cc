#include "test/sim/pve/params.h"

#include <algorithm>
#include <cctype>
#include <nlohmann/json.hpp>
#include <regex>
#include <stdexcept>

namespace nixmox::pvesim {
namespace {

bool IsInteger(const std::string& v) {
  static const std::regex re("^[+-]?[0-9]+$");
  return std::regex_match(v, re);
}

bool IsNumber(const std::string& v) {
  static const std::regex re("^[+-]?([0-9]+\\.?[0-9]*|\\.[0-9]+)([eE][+-]?[0-9]+)?$");
  return std::regex_match(v, re);
}

// Finds the spec for a parameter name, honouring "[n]" names.
const ParamSpec* FindSpec(const std::string& name, const std::vector<ParamSpec>& specs) {
  for (const ParamSpec& s : specs) {
    if (s.name == name) return &s;
    const size_t n = s.name.find("[n]");
    if (n == std::string::npos) continue;
    const std::string prefix = s.name.substr(0, n);
    if (name.size() <= prefix.size() || name.compare(0, prefix.size(), prefix) != 0) continue;
    const std::string index = name.substr(prefix.size());
    if (!std::all_of(index.begin(), index.end(), ::isdigit)) continue;
    if (index.size() > 1 && index[0] == '0') continue;
    if (index.size() > 4 || std::stoi(index) > s.max_index) continue;
    return &s;
  }
  return nullptr;
}

std::string CheckValue(const ParamSpec& spec, const std::string& v) {
  switch (spec.type) {
    case ParamType::kBoolean:
      if (v != "0" && v != "1") return "type check ('boolean') failed - got '" + v + "'";
      return "";
    case ParamType::kInteger: {
      if (!IsInteger(v)) return "type check ('integer') failed - got '" + v + "'";
      long long n = 0;
      try {
        n = std::stoll(v);
      } catch (const std::out_of_range&) {
        return "type check ('integer') failed - got '" + v + "'";
      }
      if (spec.minimum && n < *spec.minimum)
        return "value must have a minimum value of " + std::to_string(*spec.minimum);
      if (spec.maximum && n > *spec.maximum)
        return "value must have a maximum value of " + std::to_string(*spec.maximum);
      return "";
    }
    case ParamType::kNumber: {
      if (!IsNumber(v)) return "type check ('number') failed - got '" + v + "'";
      double n = 0;
      try {
        n = std::stod(v);
      } catch (const std::out_of_range&) {
        return "type check ('number') failed - got '" + v + "'";
      }
      if (spec.minimum && n < static_cast<double>(*spec.minimum))
        return "value must have a minimum value of " + std::to_string(*spec.minimum);
      if (spec.maximum && n > static_cast<double>(*spec.maximum))
        return "value must have a maximum value of " + std::to_string(*spec.maximum);
      return "";
    }
    case ParamType::kString:
      break;
  }
  if (spec.max_length > 0 && static_cast<int>(v.size()) > spec.max_length)
    return "value may only be " + std::to_string(spec.max_length) + " characters long";
  if (!spec.enumeration.empty() &&
      std::find(spec.enumeration.begin(), spec.enumeration.end(), v) == spec.enumeration.end()) {
    std::string list;
    for (const std::string& e : spec.enumeration) list += (list.empty() ? "" : ", ") + e;
    return "value '" + v + "' does not have a value in the enumeration '" + list + "'";
  }
  if (!spec.pattern.empty() && !std::regex_match(v, std::regex(spec.pattern)))
    return "value does not match the regex pattern";
  return "";
}

std::string Trim(std::string_view s) {
  size_t b = 0, e = s.size();
  while (b < e && std::isspace(static_cast<unsigned char>(s[b]))) ++b;
  while (e > b && std::isspace(static_cast<unsigned char>(s[e - 1]))) --e;
  return std::string(s.substr(b, e - b));
}

// The value of `key="..."` (or unquoted) inside a header like Content-Disposition.
std::optional<std::string> HeaderParam(std::string_view header, std::string_view key) {
  size_t pos = 0;
  while (pos < header.size()) {
    size_t semi = header.find(';', pos);
    if (semi == std::string_view::npos) semi = header.size();
    std::string item = Trim(header.substr(pos, semi - pos));
    pos = semi + 1;
    const size_t eq = item.find('=');
    if (eq == std::string::npos) continue;
    std::string k = Trim(item.substr(0, eq));
    std::transform(k.begin(), k.end(), k.begin(), ::tolower);
    if (k != key) continue;
    std::string v = Trim(item.substr(eq + 1));
    if (v.size() >= 2 && v.front() == '"' && v.back() == '"') v = v.substr(1, v.size() - 2);
    return v;
  }
  return std::nullopt;
}

}  // namespace

FieldErrors Validate(const Params& params, const std::vector<ParamSpec>& specs) {
  FieldErrors errors;
  for (const auto& [name, value] : params) {
    const ParamSpec* spec = FindSpec(name, specs);
    if (spec == nullptr) {
      errors[name] =
          "property is not defined in schema and the schema does not allow additional properties";
      continue;
    }
    std::string err = CheckValue(*spec, value);
    if (!err.empty()) errors[name] = std::move(err);
  }
  for (const ParamSpec& s : specs) {
    if (!s.optional && s.name.find("[n]") == std::string::npos && !params.count(s.name))
      errors[s.name] = "property is missing and it is not optional";
  }
  return errors;
}

bool DecodeJsonBody(std::string_view body, Params* out) {
  nlohmann::json j = nlohmann::json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object()) return false;
  for (const auto& [k, v] : j.items()) {
    if (v.is_string()) {
      (*out)[k] = v.get<std::string>();
    } else if (v.is_boolean()) {
      (*out)[k] = v.get<bool>() ? "1" : "0";
    } else if (v.is_number_integer()) {
      (*out)[k] = std::to_string(v.get<long long>());
    } else if (v.is_number()) {
      (*out)[k] = v.dump();
    } else if (v.is_array()) {
      // PVE 8 joins arrays for "-list" parameters.
      std::string joined;
      for (const auto& e : v)
        joined += (joined.empty() ? "" : ",") + (e.is_string() ? e.get<std::string>() : e.dump());
      (*out)[k] = joined;
    } else if (!v.is_null()) {
      (*out)[k] = v.dump();
    }
  }
  return true;
}

bool ParseMultipart(std::string_view content_type, std::string_view body,
                    std::vector<MultipartPart>* out) {
  std::optional<std::string> boundary = HeaderParam(content_type, "boundary");
  if (!boundary || boundary->empty()) return false;
  const std::string delim = "--" + *boundary;
  size_t pos = body.find(delim);
  if (pos == std::string_view::npos) return false;
  pos += delim.size();
  while (true) {
    if (body.substr(pos, 2) == "--") return true;  // closing delimiter
    if (body.substr(pos, 2) != "\r\n") return false;
    pos += 2;
    const size_t header_end = body.find("\r\n\r\n", pos);
    if (header_end == std::string_view::npos) return false;
    MultipartPart part;
    std::string_view headers = body.substr(pos, header_end - pos);
    size_t hp = 0;
    while (hp <= headers.size()) {
      size_t eol = headers.find("\r\n", hp);
      if (eol == std::string_view::npos) eol = headers.size();
      std::string_view line = headers.substr(hp, eol - hp);
      hp = eol + 2;
      const size_t colon = line.find(':');
      if (colon == std::string_view::npos) continue;
      std::string name = Trim(line.substr(0, colon));
      std::transform(name.begin(), name.end(), name.begin(), ::tolower);
      if (name == "content-disposition") {
        std::string_view value = line.substr(colon + 1);
        part.name = HeaderParam(value, "name").value_or("");
        part.filename = HeaderParam(value, "filename");
      }
    }
    const size_t data_start = header_end + 4;
    const size_t next = body.find("\r\n" + delim, data_start);
    if (next == std::string_view::npos) return false;
    part.data = std::string(body.substr(data_start, next - data_start));
    out->push_back(std::move(part));
    pos = next + 2 + delim.size();
  }
}

std::optional<std::string> PropertyString::Get(std::string_view key) const {
  for (const auto& [k, v] : items)
    if (k == key) return v;
  return std::nullopt;
}

void PropertyString::Set(const std::string& key, std::string value) {
  for (auto& [k, v] : items) {
    if (k == key) {
      v = std::move(value);
      return;
    }
  }
  items.emplace_back(key, std::move(value));
}

void PropertyString::Remove(std::string_view key) {
  items.erase(
      std::remove_if(items.begin(), items.end(), [&](const auto& kv) { return kv.first == key; }),
      items.end());
}

PropertyString ParsePropertyString(std::string_view s, std::string_view default_key) {
  PropertyString p;
  size_t pos = 0;
  while (pos <= s.size() && !s.empty()) {
    size_t comma = s.find(',', pos);
    if (comma == std::string_view::npos) comma = s.size();
    std::string_view item = s.substr(pos, comma - pos);
    pos = comma + 1;
    if (item.empty()) continue;
    const size_t eq = item.find('=');
    if (eq == std::string_view::npos) {
      p.items.emplace_back(std::string(default_key), std::string(item));
    } else {
      p.items.emplace_back(std::string(item.substr(0, eq)), std::string(item.substr(eq + 1)));
    }
    if (comma == s.size()) break;
  }
  return p;
}

std::string PrintPropertyString(const PropertyString& p, std::string_view first_key) {
  std::string out;
  std::vector<std::pair<std::string, std::string>> rest;
  for (const auto& kv : p.items) {
    if (kv.first == first_key) {
      out = kv.second;
    } else {
      rest.push_back(kv);
    }
  }
  std::stable_sort(rest.begin(), rest.end(),
                   [](const auto& a, const auto& b) { return a.first < b.first; });
  for (const auto& [k, v] : rest) out += (out.empty() ? "" : ",") + k + "=" + v;
  return out;
}

std::optional<uint64_t> ParseSize(std::string_view s) {
  static const std::regex re("^\\+?([0-9]+(\\.[0-9]+)?)([KMGT]?)$");
  std::match_results<std::string_view::const_iterator> m;
  if (!std::regex_match(s.begin(), s.end(), m, re)) return std::nullopt;
  double value = std::stod(m[1].str());
  const std::string unit = m[3].str();
  const double mult = unit == "K"   ? 1024.0
                      : unit == "M" ? 1024.0 * 1024
                      : unit == "G" ? 1024.0 * 1024 * 1024
                      : unit == "T" ? 1024.0 * 1024 * 1024 * 1024
                                    : 1.0;
  return static_cast<uint64_t>(value * mult);
}

std::string FormatSize(uint64_t bytes) {
  const uint64_t kb = bytes / 1024;
  if (kb * 1024 != bytes) return std::to_string(bytes);
  const uint64_t mb = kb / 1024;
  if (mb * 1024 != kb) return std::to_string(kb) + "K";
  const uint64_t gb = mb / 1024;
  if (gb * 1024 != mb) return std::to_string(mb) + "M";
  const uint64_t tb = gb / 1024;
  if (tb * 1024 != gb) return std::to_string(gb) + "G";
  return std::to_string(tb) + "T";
}

std::vector<std::string> SplitList(std::string_view s) {
  std::vector<std::string> out;
  std::string cur;
  for (char c : s) {
    if (c == ',' || c == ';' || std::isspace(static_cast<unsigned char>(c))) {
      if (!cur.empty()) out.push_back(std::move(cur));
      cur.clear();
    } else {
      cur += c;
    }
  }
  if (!cur.empty()) out.push_back(std::move(cur));
  return out;
}

}  // namespace nixmox::pvesim
