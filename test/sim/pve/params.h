// Request parameter handling for pve-sim: decoding (query, form, JSON,
// multipart) and validation against a hand-written subset of the PVE 8.4
// schema, producing the same per-parameter messages as PVE::JSONSchema.
// Internal to the simulator; not thread-aware (pure functions).
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace nixmox::pvesim {

enum class ParamType { kString, kInteger, kBoolean, kNumber };

// One schema property. `name` may end in "[n]" (e.g. "net[n]"), which matches
// name0..name<max_index>.
struct ParamSpec {
  std::string name;
  ParamType type = ParamType::kString;
  bool optional = true;
  std::optional<int64_t> minimum;
  std::optional<int64_t> maximum;
  std::vector<std::string> enumeration;
  std::string pattern;  // ECMAScript regex that must match the whole value
  int max_length = 0;   // 0 = unlimited
  int max_index = 0;    // for "[n]" names
};

// Parameters as PVE sees them after decoding: name -> string value. JSON
// booleans arrive as "1"/"0", JSON numbers as their decimal text.
using Params = std::map<std::string, std::string>;
using FieldErrors = std::map<std::string, std::string>;

// Checks every parameter against `specs` (unknown ones, types, ranges, enums,
// patterns, missing required ones). Returns the `errors` object; empty = valid.
FieldErrors Validate(const Params& params, const std::vector<ParamSpec>& specs);

// Decodes an application/json body into Params. False when the body is not a
// JSON object.
bool DecodeJsonBody(std::string_view body, Params* out);

// One part of a multipart/form-data body.
struct MultipartPart {
  std::string name;
  std::optional<std::string> filename;
  std::string data;
};

// Parses a multipart/form-data body; `content_type` is the request's header
// (it carries the boundary). False when the body is malformed.
bool ParseMultipart(std::string_view content_type, std::string_view body,
                    std::vector<MultipartPart>* out);

// A Proxmox property string "default,key=value,...": the first item without
// '=' is stored under `default_key`.
struct PropertyString {
  std::vector<std::pair<std::string, std::string>> items;  // in given order
  std::optional<std::string> Get(std::string_view key) const;
  void Set(const std::string& key, std::string value);
  void Remove(std::string_view key);
};
PropertyString ParsePropertyString(std::string_view s, std::string_view default_key);
// Prints `first_key`'s value first (bare), then the rest sorted by key.
std::string PrintPropertyString(const PropertyString& p, std::string_view first_key);

// "32G", "+1G", "1024" (bytes) -> bytes. Nullopt when it does not parse.
std::optional<uint64_t> ParseSize(std::string_view s);
// Like PVE::Tools::format_size: the largest unit that divides evenly.
std::string FormatSize(uint64_t bytes);

// Splits a "-list" value (separators ',', ';', whitespace).
std::vector<std::string> SplitList(std::string_view s);

}  // namespace nixmox::pvesim
