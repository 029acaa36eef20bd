#include "src/proxmox/property_string.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <limits>
#include <set>

namespace nixmox::proxmox {
namespace {

std::string_view Trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

// The network card models; in "virtio=BC:24:..." the model is the key and the MAC its value.
constexpr std::string_view kNetModels[] = {
    "e1000",    "e1000-82540em", "e1000-82544gc", "e1000-82545em", "e1000e",  "i82551", "i82557b",
    "i82559er", "ne2k_isa",      "ne2k_pci",      "pcnet",         "rtl8139", "virtio", "vmxnet3"};

bool IsNetModel(std::string_view s) {
  return std::find(std::begin(kNetModels), std::end(kNetModels), s) != std::end(kNetModels);
}

Result<int> ParseIntValue(std::string_view key, std::string_view v) {
  int out = 0;
  const auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), out);
  if (ec != std::errc() || end != v.data() + v.size()) {
    return InvalidError("property '" + std::string(key) + "': '" + std::string(v) +
                        "' is not an integer");
  }
  return out;
}

Result<bool> ParseBoolValue(std::string_view key, std::string_view v) {
  auto b = ParsePveBool(v);
  if (!b) {
    return InvalidError("property '" + std::string(key) + "': '" + std::string(v) +
                        "' is not a boolean");
  }
  return *b;
}

std::string FormatDouble(double d) {
  char buf[64];
  const auto [end, ec] = std::to_chars(buf, buf + sizeof(buf), d);
  return ec == std::errc() ? std::string(buf, end) : std::to_string(d);
}

void AddOpt(PropertyList& out, std::string key, const std::string& v) {
  if (!v.empty()) out.emplace_back(std::move(key), v);
}
void AddOpt(PropertyList& out, std::string key, const std::optional<bool>& v) {
  if (v) out.emplace_back(std::move(key), *v ? "1" : "0");
}
void AddOpt(PropertyList& out, std::string key, const std::optional<int>& v) {
  if (v) out.emplace_back(std::move(key), std::to_string(*v));
}

// First part, then the rest sorted by key: the order Proxmox prints.
std::string JoinCanonical(std::string first, PropertyList rest) {
  std::stable_sort(rest.begin(), rest.end(),
                   [](const auto& a, const auto& b) { return a.first < b.first; });
  std::string out = std::move(first);
  for (const auto& [k, v] : rest) {
    if (!out.empty()) out += ',';
    out += k;
    out += '=';
    out += v;
  }
  return out;
}

}  // namespace

Result<PropertyList> ParsePropertyString(std::string_view text, std::string_view default_key) {
  PropertyList out;
  std::set<std::string, std::less<>> seen;
  bool have_default = false;
  while (true) {
    const size_t comma = text.find(',');
    std::string_view part = Trim(text.substr(0, comma));
    if (!part.empty()) {
      const size_t eq = part.find('=');
      std::string key;
      std::string value;
      if (eq == std::string_view::npos) {
        if (have_default || default_key.empty()) {
          return InvalidError("property string: value '" + std::string(part) + "' has no key");
        }
        have_default = true;
        key = std::string(default_key);
        value = std::string(part);
      } else {
        key = std::string(Trim(part.substr(0, eq)));
        value = std::string(Trim(part.substr(eq + 1)));
        if (key.empty()) return InvalidError("property string: empty key");
      }
      if (!seen.insert(key).second) {
        return InvalidError("property string: duplicate key '" + key + "'");
      }
      out.emplace_back(std::move(key), std::move(value));
    }
    if (comma == std::string_view::npos) break;
    text.remove_prefix(comma + 1);
  }
  return out;
}

Result<std::uint64_t> ParseSize(std::string_view text) {
  std::string_view s = Trim(text);
  auto invalid = [&] { return InvalidError("invalid size '" + std::string(text) + "'"); };
  std::uint64_t mult = 1;
  if (!s.empty()) {
    switch (s.back()) {
      case 'K':
        mult = 1ULL << 10;
        break;
      case 'M':
        mult = 1ULL << 20;
        break;
      case 'G':
        mult = 1ULL << 30;
        break;
      case 'T':
        mult = 1ULL << 40;
        break;
      default:
        break;
    }
    if (mult != 1) s.remove_suffix(1);
  }
  const size_t dot = s.find('.');
  std::string_view whole = s.substr(0, dot);
  std::string_view frac = dot == std::string_view::npos ? std::string_view() : s.substr(dot + 1);
  if (whole.empty() || (dot != std::string_view::npos && frac.empty())) return invalid();
  for (char c : frac) {
    if (!std::isdigit(static_cast<unsigned char>(c))) return invalid();
  }
  std::uint64_t n = 0;
  const auto [end, ec] = std::from_chars(whole.data(), whole.data() + whole.size(), n);
  if (ec != std::errc() || end != whole.data() + whole.size()) return invalid();
  if (n > std::numeric_limits<std::uint64_t>::max() / mult) return invalid();
  std::uint64_t bytes = n * mult;
  if (!frac.empty()) {
    // Proxmox truncates: int("1.5" * 1024**3).
    const double f = std::stod("0." + std::string(frac));
    bytes += static_cast<std::uint64_t>(std::floor(f * static_cast<double>(mult)));
  }
  return bytes;
}

std::string FormatSize(std::uint64_t bytes) {
  if (bytes == 0) return "0";
  static constexpr char kUnits[] = {'K', 'M', 'G', 'T'};
  std::uint64_t v = bytes;
  int unit = -1;
  while (unit < 3 && v % 1024 == 0) {
    v /= 1024;
    ++unit;
  }
  std::string out = std::to_string(v);
  if (unit >= 0) out += kUnits[unit];
  return out;
}

std::optional<bool> ParsePveBool(std::string_view text) {
  const std::string s = Lower(Trim(text));
  if (s == "1" || s == "yes" || s == "on" || s == "true") return true;
  if (s == "0" || s == "no" || s == "off" || s == "false") return false;
  return std::nullopt;
}

Result<NetConfig> ParseNetConfig(std::string_view text) {
  ASSIGN_OR_RETURN(PropertyList parts, ParsePropertyString(text, "model"));
  NetConfig net;
  bool have_model = false;
  for (auto& [key, value] : parts) {
    if (IsNetModel(key)) {
      // "virtio=BC:24:11:..."
      if (have_model)
        return InvalidError("net: more than one model in '" + std::string(text) + "'");
      have_model = true;
      net.model = key;
      net.macaddr = value;
    } else if (key == "model") {
      if (have_model)
        return InvalidError("net: more than one model in '" + std::string(text) + "'");
      have_model = true;
      net.model = value;
    } else if (key == "macaddr") {
      net.macaddr = value;
    } else if (key == "bridge") {
      net.bridge = value;
    } else if (key == "tag") {
      ASSIGN_OR_RETURN(net.tag, ParseIntValue(key, value));
    } else if (key == "firewall") {
      ASSIGN_OR_RETURN(net.firewall, ParseBoolValue(key, value));
    } else if (key == "link_down") {
      ASSIGN_OR_RETURN(net.link_down, ParseBoolValue(key, value));
    } else if (key == "mtu") {
      ASSIGN_OR_RETURN(net.mtu, ParseIntValue(key, value));
    } else if (key == "queues") {
      ASSIGN_OR_RETURN(net.queues, ParseIntValue(key, value));
    } else if (key == "rate") {
      double d = 0;
      const auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), d);
      if (ec != std::errc() || end != value.data() + value.size()) {
        return InvalidError("property 'rate': '" + value + "' is not a number");
      }
      net.rate = d;
    } else if (key == "trunks") {
      net.trunks = value;
    } else {
      net.extra.emplace_back(key, value);
    }
  }
  if (!have_model) return InvalidError("net: no model in '" + std::string(text) + "'");
  return net;
}

std::string FormatNetConfig(const NetConfig& net) {
  std::string first = net.model;
  if (!net.macaddr.empty()) first += "=" + net.macaddr;
  PropertyList rest = net.extra;
  AddOpt(rest, "bridge", net.bridge);
  AddOpt(rest, "firewall", net.firewall);
  AddOpt(rest, "link_down", net.link_down);
  AddOpt(rest, "mtu", net.mtu);
  AddOpt(rest, "queues", net.queues);
  if (net.rate) rest.emplace_back("rate", FormatDouble(*net.rate));
  AddOpt(rest, "tag", net.tag);
  AddOpt(rest, "trunks", net.trunks);
  return JoinCanonical(std::move(first), std::move(rest));
}

std::string DiskConfig::storage() const {
  const size_t colon = file.find(':');
  return colon == std::string::npos ? std::string() : file.substr(0, colon);
}

std::string DiskConfig::volume_name() const {
  const size_t colon = file.find(':');
  return colon == std::string::npos ? std::string() : file.substr(colon + 1);
}

bool DiskConfig::is_cloudinit() const {
  return volume_name().find("cloudinit") != std::string::npos;
}

Result<DiskConfig> ParseDiskConfig(std::string_view text) {
  ASSIGN_OR_RETURN(PropertyList parts, ParsePropertyString(text, "file"));
  DiskConfig disk;
  for (auto& [key, value] : parts) {
    if (key == "file" || key == "volume") {
      disk.file = value;
    } else if (key == "size") {
      ASSIGN_OR_RETURN(disk.size_bytes, ParseSize(value));
    } else if (key == "media") {
      disk.media = value;
    } else if (key == "import-from") {
      disk.import_from = value;
    } else if (key == "format") {
      disk.format = value;
    } else if (key == "cache") {
      disk.cache = value;
    } else if (key == "discard") {
      disk.discard = value;
    } else if (key == "iothread") {
      ASSIGN_OR_RETURN(disk.iothread, ParseBoolValue(key, value));
    } else if (key == "ssd") {
      ASSIGN_OR_RETURN(disk.ssd, ParseBoolValue(key, value));
    } else if (key == "backup") {
      ASSIGN_OR_RETURN(disk.backup, ParseBoolValue(key, value));
    } else {
      disk.extra.emplace_back(key, value);
    }
  }
  if (disk.file.empty()) return InvalidError("disk: no volume in '" + std::string(text) + "'");
  return disk;
}

std::string FormatDiskConfig(const DiskConfig& disk) {
  PropertyList rest = disk.extra;
  AddOpt(rest, "backup", disk.backup);
  AddOpt(rest, "cache", disk.cache);
  AddOpt(rest, "discard", disk.discard);
  AddOpt(rest, "format", disk.format);
  AddOpt(rest, "import-from", disk.import_from);
  AddOpt(rest, "iothread", disk.iothread);
  AddOpt(rest, "media", disk.media);
  if (disk.size_bytes) rest.emplace_back("size", FormatSize(*disk.size_bytes));
  AddOpt(rest, "ssd", disk.ssd);
  return JoinCanonical(disk.file, std::move(rest));
}

std::vector<std::string> ParseTags(std::string_view text) {
  std::vector<std::string> out;
  std::string current;
  for (char c : text) {
    if (c == ';' || c == ',' || std::isspace(static_cast<unsigned char>(c))) {
      if (!current.empty()) out.push_back(std::move(current));
      current.clear();
    } else {
      current += c;
    }
  }
  if (!current.empty()) out.push_back(std::move(current));
  return out;
}

std::string FormatTags(const std::vector<std::string>& tags) {
  std::string out;
  for (const auto& t : tags) {
    if (!out.empty()) out += ';';
    out += t;
  }
  return out;
}

std::vector<std::string> NormalizeTags(std::vector<std::string> tags) {
  for (auto& t : tags) t = Lower(t);
  std::sort(tags.begin(), tags.end());
  tags.erase(std::unique(tags.begin(), tags.end()), tags.end());
  return tags;
}

bool IsValidTag(std::string_view tag) {
  if (tag.empty()) return false;
  auto word = [](char c) { return std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '_'; };
  if (!word(tag.front())) return false;
  for (char c : tag) {
    if (!word(c) && c != '-' && c != '+' && c != '.') return false;
  }
  return true;
}

}  // namespace nixmox::proxmox
