// Talking to the `nix` command line: the arguments every call gets (the
// experimental features flakes need, the caller's substituters, keys and
// options), the environment it runs in (access tokens only through
// NIX_CONFIG, never in argv, never logged), and the JSON it prints.
//
// Written against nix 2.8 (Debian's nix-bin) and current nix: where their JSON
// differs (`nix path-info --json` is a list in 2.8, an object keyed by store
// path since 2.19) the parsers read both.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "src/common/status.h"

namespace nixmox::nix {

struct NixSettings {
  std::string program = "nix";                   // looked up on PATH unless it holds a '/'
  std::vector<std::string> substituters;         // replaces nix's list when non-empty
  std::vector<std::string> trusted_public_keys;  // replaces nix's list when non-empty
  // --option NAME VALUE, in order, after the two above (so they can override them).
  std::vector<std::pair<std::string, std::string>> options;
};

// argv for `nix <command...>` with the settings applied. Never holds a secret.
std::vector<std::string> NixArgv(const NixSettings& settings,
                                 const std::vector<std::string>& command);

// The environment nix runs in: `base` without the builder's own secrets
// (NIXMOX_PVE_TOKEN_*, NIX_ACCESS_TOKENS), and with `access_tokens`, when
// given, appended to NIX_CONFIG as nix's `access-tokens` setting.
std::vector<std::string> NixEnvironment(const std::vector<std::string>& base,
                                        const std::string& access_tokens);

// The values of an access-tokens setting ("github.com=ghp_x gitlab.com=PAT:y"
// gives {"ghp_x", "PAT:y"}): what must never be printed.
std::vector<std::string> AccessTokenValues(std::string_view access_tokens);

struct FlakeMetadata {
  // locked.rev; without one (a path: flake, a dirty tree) locked.narHash;
  // without that "lastModified:<seconds>".
  std::string revision;
  // The locked reference ("github:o/r/<rev>?narHash=..."): building it builds
  // exactly `revision`. Empty when nix printed none.
  std::string locked_url;
};
// `nix flake metadata --json` output.
Result<FlakeMetadata> ParseFlakeMetadata(std::string_view json);

// `nix build --json` output: the store path of each built output, "out" first.
Result<std::vector<std::string>> ParseBuildOutputs(std::string_view json);

struct PathInfo {
  std::string path;
  std::string nar_hash;  // as nix prints it ("sha256-..." since 2.4)
  std::int64_t nar_size = 0;
};
// `nix path-info --json <path>` output, a list (nix < 2.19) or an object keyed
// by store path (2.19 and later). kNotFound when `path` is not in it or not valid.
Result<PathInfo> ParsePathInfo(std::string_view json, std::string_view path);

// Runs nix. Each stderr line goes to `on_stderr_line` as it arrives.
class NixCli {
 public:
  using LineFn = std::function<void(std::string_view)>;

  NixCli(NixSettings settings, std::vector<std::string> env, LineFn on_stderr_line);

  // `nix flake metadata --json REF`.
  Result<FlakeMetadata> Metadata(const std::string& flake_ref);
  // `nix build --no-link --json -L INSTALLABLE`: the output store paths.
  Result<std::vector<std::string>> Build(const std::string& installable);
  // `nix path-info --json PATH`.
  Result<PathInfo> Info(const std::string& store_path);

  // Failures above are kInternal (nix ran and failed: the message is the last
  // lines of its stderr), kNotFound (nix could not be started) or kInvalid
  // (nix printed JSON we cannot read).
  const NixSettings& settings() const { return settings_; }

 private:
  Result<std::string> Run(const std::vector<std::string>& command);

  NixSettings settings_;
  std::vector<std::string> env_;
  LineFn on_stderr_line_;
};

// How many lines of nix's stderr a failure carries.
inline constexpr std::size_t kErrorTailLines = 20;
inline constexpr std::size_t kErrorTailBytes = 3500;

}  // namespace nixmox::nix
