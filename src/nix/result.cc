#include "src/nix/result.h"

#include <algorithm>
#include <array>
#include <vector>

namespace nixmox::nix {
namespace {

constexpr std::array<std::string_view, 3> kStageNames = {"arguments", "build", "upload"};

// dump() that never throws: nix's output may hold bytes that are not UTF-8
// (build logs, a cut in the middle of a character); they become U+FFFD.
std::string Dump(const nlohmann::json& j) {
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

// The first position at or after `pos` that does not split a UTF-8 character.
std::size_t CharBoundary(std::string_view text, std::size_t pos) {
  while (pos < text.size() && (static_cast<unsigned char>(text[pos]) & 0xC0) == 0x80) ++pos;
  return pos;
}

// Reads `obj[key]` into `out` when present; false when it has the wrong type.
template <typename T>
bool Read(const nlohmann::json& obj, const char* key, T& out) {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return true;
  try {
    out = it->get<T>();
    return true;
  } catch (const nlohmann::json::exception&) {
    return false;
  }
}

}  // namespace

std::string_view StageName(Stage stage) { return kStageNames[static_cast<std::size_t>(stage)]; }

nlohmann::json ToJson(const BuildResult& r) {
  nlohmann::json j = {{"ok", r.ok}};
  if (!r.ok) {
    j["stage"] = StageName(r.stage);
    j["error"] = r.error;
    return j;
  }
  if (r.unchanged) j["unchanged"] = true;
  const auto put = [&j](const char* key, const std::string& value) {
    if (!value.empty()) j[key] = value;
  };
  put("storePath", r.store_path);
  put("narHash", r.nar_hash);
  if (r.nar_size) j["narSize"] = r.nar_size;
  if (r.size) j["size"] = r.size;
  put("format", r.format);
  put("volumeId", r.volume_id);
  if (!r.nodes.empty()) j["nodes"] = r.nodes;
  if (!r.unchanged) j["uploaded"] = r.uploaded;
  put("flakeRevision", r.flake_revision);
  if (!r.unchanged) {
    j["kvm"] = r.kvm;
    j["buildSeconds"] = r.build_seconds;
    j["uploadSeconds"] = r.upload_seconds;
  }
  return j;
}

std::string ToMessage(const BuildResult& result) {
  std::string message = Dump(ToJson(result));
  if (message.size() <= kMaxMessageBytes || result.ok) return message;
  BuildResult cut = result;
  const std::size_t excess = message.size() - kMaxMessageBytes + 3;  // room for "..."
  // dump() escapes, so one byte of error may cost more than one of message:
  // shrink until it fits.
  std::size_t drop = std::min(excess, cut.error.size());
  while (true) {
    drop = CharBoundary(result.error, std::min(drop, result.error.size()));
    cut.error = "..." + result.error.substr(drop);
    message = Dump(ToJson(cut));
    if (message.size() <= kMaxMessageBytes || drop >= result.error.size()) return message;
    drop += message.size() - kMaxMessageBytes;
  }
}

Result<BuildResult> ParseResult(std::string_view message) {
  nlohmann::json j = nlohmann::json::parse(message, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object() || !j.contains("ok") || !j["ok"].is_boolean()) {
    return Status(Code::kInvalid, "not a nixmox-builder result: " + Tail(message, 3, 200));
  }
  BuildResult r;
  r.ok = j["ok"].get<bool>();
  std::string stage = "build";
  const bool fine = Read(j, "unchanged", r.unchanged) && Read(j, "storePath", r.store_path) &&
                    Read(j, "narHash", r.nar_hash) && Read(j, "narSize", r.nar_size) &&
                    Read(j, "size", r.size) && Read(j, "format", r.format) &&
                    Read(j, "volumeId", r.volume_id) && Read(j, "nodes", r.nodes) &&
                    Read(j, "uploaded", r.uploaded) && Read(j, "flakeRevision", r.flake_revision) &&
                    Read(j, "kvm", r.kvm) && Read(j, "buildSeconds", r.build_seconds) &&
                    Read(j, "uploadSeconds", r.upload_seconds) && Read(j, "stage", stage) &&
                    Read(j, "error", r.error);
  if (!fine) return Status(Code::kInvalid, "a nixmox-builder result field has the wrong type");
  auto it = std::find(kStageNames.begin(), kStageNames.end(), stage);
  if (it == kStageNames.end()) return Status(Code::kInvalid, "unknown builder stage " + stage);
  r.stage = static_cast<Stage>(it - kStageNames.begin());
  if (r.ok && !r.unchanged && (r.store_path.empty() || r.volume_id.empty())) {
    return Status(Code::kInvalid,
                  "a successful nixmox-builder result names no store path or volume");
  }
  return r;
}

std::string Tail(std::string_view text, std::size_t max_lines, std::size_t max_bytes) {
  std::vector<std::string_view> lines;  // the last max_lines non-empty ones, newest first
  while (!text.empty() && lines.size() < max_lines) {
    std::size_t nl = text.rfind('\n');
    std::string_view line = nl == std::string_view::npos ? text : text.substr(nl + 1);
    text = nl == std::string_view::npos ? std::string_view() : text.substr(0, nl);
    while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) line.remove_suffix(1);
    if (!line.empty()) lines.push_back(line);
  }
  std::string tail;
  for (auto it = lines.rbegin(); it != lines.rend(); ++it) {
    if (!tail.empty()) tail += '\n';
    tail += *it;
  }
  if (tail.size() > max_bytes) {
    // Keep whole lines where one still fits, else the end of the last one.
    std::size_t cut = tail.size() - max_bytes;
    std::size_t nl = tail.find('\n', cut);
    tail.erase(0, nl == std::string::npos ? CharBoundary(tail, cut) : nl + 1);
  }
  return tail;
}

std::string FormatProgress(const Progress& progress) {
  nlohmann::json j = {{"stage", StageName(progress.stage)}, {"message", progress.message}};
  if (progress.percent >= 0) j["percent"] = progress.percent;
  return std::string(kProgressPrefix) + Dump(j);
}

std::optional<Progress> LastProgress(std::string_view log) {
  std::size_t end = log.size();
  while (end > 0) {
    std::size_t nl = end == 0 ? std::string_view::npos : log.rfind('\n', end - 1);
    std::size_t start = nl == std::string_view::npos ? 0 : nl + 1;
    std::string_view line = log.substr(start, end - start);
    end = nl == std::string_view::npos ? 0 : nl;
    std::size_t at = line.find(kProgressPrefix);
    if (at == std::string_view::npos) continue;
    nlohmann::json j = nlohmann::json::parse(line.substr(at + kProgressPrefix.size()), nullptr,
                                             /*allow_exceptions=*/false);
    if (!j.is_object()) continue;
    Progress p;
    std::string stage;
    if (!Read(j, "stage", stage) || !Read(j, "percent", p.percent) ||
        !Read(j, "message", p.message)) {
      continue;
    }
    auto it = std::find(kStageNames.begin(), kStageNames.end(), stage);
    if (it == kStageNames.end()) continue;
    p.stage = static_cast<Stage>(it - kStageNames.begin());
    return p;
  }
  return std::nullopt;
}

std::string StoreHash(std::string_view store_path) {
  constexpr std::string_view kPrefix = "/nix/store/";
  if (!store_path.starts_with(kPrefix)) return "";
  std::string_view rest = store_path.substr(kPrefix.size());
  if (rest.size() < 32 || (rest.size() > 32 && rest[32] != '-')) return "";
  // Nix's base-32 alphabet (no e, o, t, u). Anything else is not a store path,
  // and Proxmox would rewrite it in a volume name.
  constexpr std::string_view kAlphabet = "0123456789abcdfghijklmnpqrsvwxyz";
  std::string_view hash = rest.substr(0, 32);
  if (hash.find_first_not_of(kAlphabet) != std::string_view::npos) return "";
  return std::string(hash);
}

std::string VolumeFileName(std::string_view image, std::string_view store_path,
                           std::string_view extension) {
  std::string name = "nixmox-";
  name += image;
  name += '-';
  name += StoreHash(store_path);
  name += '.';
  name += extension;
  return name;
}

}  // namespace nixmox::nix
