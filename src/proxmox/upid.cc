#include "src/proxmox/upid.h"

#include <cctype>
#include <charconv>
#include <vector>

namespace nixmox::proxmox {
namespace {

bool IsNodeName(std::string_view s) {
  if (s.empty()) return false;
  auto alnum = [](char c) { return std::isalnum(static_cast<unsigned char>(c)) != 0; };
  if (!alnum(s.front()) || !alnum(s.back())) return false;
  for (char c : s) {
    if (!alnum(c) && c != '-') return false;
  }
  return true;
}

// A UPID field may not contain whitespace or '/' (':' already split it).
bool IsPlainField(std::string_view s) {
  for (char c : s) {
    if (c == '/' || std::isspace(static_cast<unsigned char>(c))) return false;
  }
  return true;
}

template <typename T>
bool ParseHex(std::string_view s, size_t min_len, size_t max_len, T* out) {
  if (s.size() < min_len || s.size() > max_len) return false;
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), *out, 16);
  return ec == std::errc() && end == s.data() + s.size();
}

}  // namespace

Result<Upid> ParseUpid(std::string_view text) {
  // UPID:node:pid:pstart:starttime:type:id:user:  -> nine pieces, the last one empty.
  std::vector<std::string_view> parts;
  std::string_view rest = text;
  while (true) {
    const size_t colon = rest.find(':');
    parts.push_back(rest.substr(0, colon));
    if (colon == std::string_view::npos) break;
    rest.remove_prefix(colon + 1);
  }
  auto invalid = [&] { return InvalidError("malformed UPID '" + std::string(text) + "'"); };
  if (parts.size() != 9 || parts[0] != "UPID" || !parts[8].empty()) return invalid();

  Upid upid;
  upid.raw = std::string(text);
  if (!IsNodeName(parts[1])) return invalid();
  upid.node = std::string(parts[1]);
  std::uint32_t pid = 0;
  std::uint64_t pstart = 0;
  std::uint64_t starttime = 0;
  if (!ParseHex(parts[2], 8, 8, &pid) || !ParseHex(parts[3], 8, 9, &pstart) ||
      !ParseHex(parts[4], 8, 8, &starttime)) {
    return invalid();
  }
  upid.pid = pid;
  upid.pstart = pstart;
  upid.starttime = static_cast<std::int64_t>(starttime);
  if (parts[5].empty() || !IsPlainField(parts[5]) || !IsPlainField(parts[6]) || parts[7].empty() ||
      !IsPlainField(parts[7])) {
    return invalid();
  }
  upid.type = std::string(parts[5]);
  upid.id = std::string(parts[6]);
  upid.user = std::string(parts[7]);
  return upid;
}

}  // namespace nixmox::proxmox
