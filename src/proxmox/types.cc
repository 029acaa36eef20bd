#include "src/proxmox/types.h"

#include <algorithm>
#include <cctype>
#include <charconv>

#include "src/http/http.h"

namespace nixmox::proxmox {
namespace {

std::optional<std::int64_t> ParseInt64(std::string_view s) {
  std::int64_t v = 0;
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || end != s.data() + s.size()) return std::nullopt;
  return v;
}

// "scsi12" -> true for prefix "scsi".
bool IsIndexedKey(std::string_view key, std::string_view prefix) {
  if (!key.starts_with(prefix) || key.size() == prefix.size()) return false;
  return std::all_of(key.begin() + static_cast<std::ptrdiff_t>(prefix.size()), key.end(),
                     [](char c) { return std::isdigit(static_cast<unsigned char>(c)) != 0; });
}

}  // namespace

Params& Params::Set(std::string key, std::string value) {
  for (auto& [k, v] : entries_) {
    if (k == key) {
      v = std::move(value);
      return *this;
    }
  }
  entries_.emplace_back(std::move(key), std::move(value));
  return *this;
}

Params& Params::SetInt(std::string key, std::int64_t value) {
  return Set(std::move(key), std::to_string(value));
}

Params& Params::SetBool(std::string key, bool value) {
  return Set(std::move(key), value ? "1" : "0");
}

Params& Params::SetSshKeys(std::string_view keys) {
  // Proxmox checks the value against ^[-%a-zA-Z0-9_.!~*'()]*$ and URI-unescapes it.
  return Set("sshkeys", http::PercentEncode(keys));
}

Params& Params::SetTags(const std::vector<std::string>& tags) {
  return Set("tags", FormatTags(tags));
}

Params& Params::SetNet(int index, const NetConfig& net) {
  return Set("net" + std::to_string(index), FormatNetConfig(net));
}

Params& Params::SetDisk(std::string key, const DiskConfig& disk) {
  return Set(std::move(key), FormatDiskConfig(disk));
}

std::optional<std::string> Params::Get(std::string_view key) const {
  for (const auto& [k, v] : entries_) {
    if (k == key) return v;
  }
  return std::nullopt;
}

std::optional<std::string> VmConfig::Get(std::string_view key) const {
  for (const auto& [k, v] : entries_) {
    if (k == key) return v;
  }
  return std::nullopt;
}

std::optional<std::int64_t> VmConfig::GetInt(std::string_view key) const {
  auto v = Get(key);
  if (!v) return std::nullopt;
  return ParseInt64(*v);
}

std::optional<bool> VmConfig::GetBool(std::string_view key) const {
  auto v = Get(key);
  if (!v) return std::nullopt;
  if (v->empty()) return false;
  return ParsePveBool(*v);
}

std::string VmConfig::name() const { return Get("name").value_or(""); }

std::optional<std::int64_t> VmConfig::memory_mib() const {
  auto v = Get("memory");
  if (!v) return std::nullopt;
  auto parts = ParsePropertyString(*v, "current");
  if (!parts.ok()) return std::nullopt;
  for (const auto& [k, val] : *parts) {
    if (k == "current") return ParseInt64(val);
  }
  return std::nullopt;
}

std::vector<std::string> VmConfig::tags() const { return ParseTags(Get("tags").value_or("")); }

std::string VmConfig::lock() const { return Get("lock").value_or(""); }

std::optional<std::string> VmConfig::sshkeys() const {
  auto v = Get("sshkeys");
  if (!v) return std::nullopt;
  return http::PercentDecode(*v);
}

Result<NetConfig> VmConfig::net(int index) const {
  const std::string key = "net" + std::to_string(index);
  auto v = Get(key);
  if (!v) return NotFoundError("VM config has no " + key);
  auto net = ParseNetConfig(*v);
  if (!net.ok()) return Status(net.status()).Annotate(key);
  return net;
}

std::vector<int> VmConfig::NetIndexes() const {
  std::vector<int> out;
  for (const auto& [k, v] : entries_) {
    if (IsIndexedKey(k, "net")) {
      if (auto n = ParseInt64(std::string_view(k).substr(3))) out.push_back(static_cast<int>(*n));
    }
  }
  std::sort(out.begin(), out.end());
  return out;
}

std::vector<std::string> VmConfig::DiskKeys() const {
  std::vector<std::string> out;
  for (const auto& [k, v] : entries_) {
    if (IsIndexedKey(k, "scsi") || IsIndexedKey(k, "virtio") || IsIndexedKey(k, "sata") ||
        IsIndexedKey(k, "ide") || k == "efidisk0" || k == "tpmstate0") {
      out.push_back(k);
    }
  }
  return out;
}

Result<DiskConfig> VmConfig::disk(std::string_view key) const {
  auto v = Get(key);
  if (!v) return NotFoundError("VM config has no " + std::string(key));
  auto disk = ParseDiskConfig(*v);
  if (!disk.ok()) return Status(disk.status()).Annotate(key);
  return disk;
}

bool TaskStatus::succeeded() const {
  return status == "stopped" && (exitstatus == "OK" || exitstatus.starts_with("WARNINGS"));
}

}  // namespace nixmox::proxmox
