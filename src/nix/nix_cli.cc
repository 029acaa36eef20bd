#include "src/nix/nix_cli.h"

#include <spdlog/spdlog.h>

#include <nlohmann/json.hpp>

#include "src/nix/process.h"
#include "src/nix/result.h"

namespace nixmox::nix {
namespace {

using nlohmann::json;

std::string Join(const std::vector<std::string>& items, std::string_view separator) {
  std::string out;
  for (const std::string& item : items) {
    if (!out.empty()) out += separator;
    out += item;
  }
  return out;
}

bool StartsWith(std::string_view text, std::string_view prefix) {
  return text.substr(0, prefix.size()) == prefix;
}

// The command for the log, each argument quoted when a shell would need it.
std::string Printable(const std::vector<std::string>& argv) {
  std::string out;
  for (const std::string& a : argv) {
    if (!out.empty()) out += ' ';
    if (!a.empty() && a.find_first_of(" \t\n'\"$&;|<>()*?") == std::string::npos) {
      out += a;
    } else {
      out += '\'';
      for (char c : a) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
      out += '\'';
    }
  }
  return out;
}

Result<json> ParseJson(std::string_view text, std::string_view what) {
  json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) {
    return InvalidError(std::string(what) + " printed no JSON: " + Tail(text, 3, 300));
  }
  return j;
}

std::string StringAt(const json& obj, const char* key) {
  auto it = obj.find(key);
  return it != obj.end() && it->is_string() ? it->get<std::string>() : std::string();
}

Result<PathInfo> PathInfoFrom(const json& entry, std::string_view path) {
  if (!entry.is_object() || (entry.contains("valid") && entry["valid"] == false)) {
    return NotFoundError(std::string(path) + " is not a valid store path");
  }
  PathInfo info;
  info.path = std::string(path);
  info.nar_hash = StringAt(entry, "narHash");
  auto size = entry.find("narSize");
  if (info.nar_hash.empty() || size == entry.end() || !size->is_number_integer()) {
    return InvalidError("nix path-info gave no narHash/narSize for " + std::string(path));
  }
  info.nar_size = size->get<std::int64_t>();
  return info;
}

}  // namespace

std::vector<std::string> NixArgv(const NixSettings& settings,
                                 const std::vector<std::string>& command) {
  std::vector<std::string> argv = {settings.program, "--extra-experimental-features",
                                   "nix-command flakes"};
  if (!settings.substituters.empty()) {
    argv.insert(argv.end(), {"--option", "substituters", Join(settings.substituters, " ")});
  }
  if (!settings.trusted_public_keys.empty()) {
    argv.insert(argv.end(),
                {"--option", "trusted-public-keys", Join(settings.trusted_public_keys, " ")});
  }
  for (const auto& [name, value] : settings.options) {
    argv.insert(argv.end(), {"--option", name, value});
  }
  argv.insert(argv.end(), command.begin(), command.end());
  return argv;
}

std::vector<std::string> NixEnvironment(const std::vector<std::string>& base,
                                        const std::string& access_tokens) {
  std::vector<std::string> env;
  std::string nix_config;
  for (const std::string& entry : base) {
    if (StartsWith(entry, "NIXMOX_PVE_TOKEN_") || StartsWith(entry, "NIX_ACCESS_TOKENS=")) {
      continue;
    }
    if (StartsWith(entry, "NIX_CONFIG=")) {
      nix_config = entry.substr(std::string_view("NIX_CONFIG=").size());
      continue;
    }
    env.push_back(entry);
  }
  if (!access_tokens.empty()) {
    if (!nix_config.empty() && nix_config.back() != '\n') nix_config += '\n';
    nix_config += "access-tokens = " + access_tokens + "\n";
  }
  if (!nix_config.empty()) env.push_back("NIX_CONFIG=" + nix_config);
  return env;
}

std::vector<std::string> AccessTokenValues(std::string_view access_tokens) {
  std::vector<std::string> values;
  std::size_t pos = 0;
  while (pos < access_tokens.size()) {
    std::size_t end = access_tokens.find_first_of(" \t\n", pos);
    if (end == std::string_view::npos) end = access_tokens.size();
    std::string_view item = access_tokens.substr(pos, end - pos);
    pos = end + 1;
    if (item.empty()) continue;
    const std::size_t eq = item.find('=');
    std::string_view value = eq == std::string_view::npos ? item : item.substr(eq + 1);
    if (!value.empty()) values.emplace_back(value);
  }
  return values;
}

Result<FlakeMetadata> ParseFlakeMetadata(std::string_view text) {
  ASSIGN_OR_RETURN(json j, ParseJson(text, "nix flake metadata"));
  if (!j.is_object()) return InvalidError("nix flake metadata printed no object");
  FlakeMetadata meta;
  meta.locked_url = StringAt(j, "url");
  const json locked = j.value("locked", json::object());
  if (!locked.is_object()) return InvalidError("nix flake metadata: 'locked' is not an object");
  meta.revision = StringAt(locked, "rev");
  if (meta.revision.empty()) meta.revision = StringAt(locked, "narHash");
  if (meta.revision.empty()) {
    const json& source = locked.contains("lastModified") ? locked : j;
    auto it = source.find("lastModified");
    if (it != source.end() && it->is_number_integer()) {
      meta.revision = "lastModified:" + std::to_string(it->get<std::int64_t>());
    }
  }
  if (meta.revision.empty()) {
    return InvalidError("nix flake metadata names no revision, narHash or lastModified");
  }
  return meta;
}

Result<std::vector<std::string>> ParseBuildOutputs(std::string_view text) {
  ASSIGN_OR_RETURN(json j, ParseJson(text, "nix build"));
  if (!j.is_array()) return InvalidError("nix build --json printed no list");
  std::vector<std::string> paths;
  for (const json& built : j) {
    auto outputs = built.find("outputs");
    if (!built.is_object() || outputs == built.end() || !outputs->is_object()) continue;
    for (const auto& [name, path] : outputs->items()) {
      if (!path.is_string()) continue;
      // "out" first: it is the one an image derivation puts the image in.
      if (name == "out") {
        paths.insert(paths.begin(), path.get<std::string>());
      } else {
        paths.push_back(path.get<std::string>());
      }
    }
  }
  if (paths.empty()) return InvalidError("nix build --json names no output path");
  return paths;
}

Result<PathInfo> ParsePathInfo(std::string_view text, std::string_view path) {
  ASSIGN_OR_RETURN(json j, ParseJson(text, "nix path-info"));
  if (j.is_array()) {  // nix < 2.19: [{"path": ..., "narHash": ..., "narSize": ...}]
    for (const json& entry : j) {
      if (entry.is_object() && StringAt(entry, "path") == path) return PathInfoFrom(entry, path);
    }
  } else if (j.is_object()) {  // nix >= 2.19: {"/nix/store/...": {...} or null}
    auto it = j.find(std::string(path));
    if (it != j.end()) return PathInfoFrom(*it, path);
  } else {
    return InvalidError("nix path-info --json printed neither a list nor an object");
  }
  return NotFoundError("nix path-info does not list " + std::string(path));
}

NixCli::NixCli(NixSettings settings, std::vector<std::string> env, LineFn on_stderr_line)
    : settings_(std::move(settings)),
      env_(std::move(env)),
      on_stderr_line_(std::move(on_stderr_line)) {}

Result<std::string> NixCli::Run(const std::vector<std::string>& command) {
  ProcessSpec spec{NixArgv(settings_, command), env_};
  spdlog::info("running {}", Printable(spec.argv));
  ASSIGN_OR_RETURN(ProcessResult done, RunProcess(spec, on_stderr_line_));
  if (done.exit_code == 0) return std::move(done.out);
  std::string why = done.exit_code >= 0 ? "exit code " + std::to_string(done.exit_code)
                                        : "signal " + std::to_string(done.signal);
  std::string tail = Tail(done.err, kErrorTailLines, kErrorTailBytes);
  return InternalError("nix " + command.front() + " failed (" + why + ")" +
                       (tail.empty() ? "" : ":\n" + tail));
}

Result<FlakeMetadata> NixCli::Metadata(const std::string& flake_ref) {
  ASSIGN_OR_RETURN(std::string out, Run({"flake", "metadata", "--json", flake_ref}));
  return ParseFlakeMetadata(out);
}

Result<std::vector<std::string>> NixCli::Build(const std::string& installable) {
  ASSIGN_OR_RETURN(std::string out, Run({"build", "--no-link", "--json", "-L", installable}));
  return ParseBuildOutputs(out);
}

Result<PathInfo> NixCli::Info(const std::string& store_path) {
  ASSIGN_OR_RETURN(std::string out, Run({"path-info", "--json", store_path}));
  return ParsePathInfo(out, store_path);
}

}  // namespace nixmox::nix
