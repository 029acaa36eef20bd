// nixmox-builder: what the NixImage controller's Job runs. It builds a flake
// attribute with nix, finds the image file in the output, uploads it to
// Proxmox VE storage and reports one BuildResult (result.h) as the
// container's termination message, with an exit code per failed stage.
//
//   nixmox-builder --flake REF --attribute ATTR --format qcow2|raw|vma --image NAME
//       --pve-url https://HOST:PORT --storage STORAGE [--node NODE]... [--pve-insecure]
//       [--substituter URL]... [--trusted-public-key KEY]... [--nix-option NAME=VALUE]...
//       [--expect-revision REV] [--result-file PATH] [--kvm Auto|Required|Disabled]
//       [--nix PATH]
//
// Secrets come from the environment only (a Secret through secretKeyRef):
// NIXMOX_PVE_TOKEN_ID, NIXMOX_PVE_TOKEN_SECRET, NIXMOX_PVE_CA (PEM, optional),
// NIX_ACCESS_TOKENS (optional; nix's access-tokens setting). None of them is
// ever printed, logged or written to the result.
#pragma once

#include <chrono>
#include <ostream>
#include <string>
#include <vector>

#include "src/common/clock.h"
#include "src/common/status.h"
#include "src/nix/nix_cli.h"
#include "src/nix/result.h"
#include "src/proxmox/client.h"

namespace nixmox::nix {

enum class KvmMode {
  kAuto,      // use /dev/kvm when usable, else build emulated (slow) and say so
  kRequired,  // fail the build stage when /dev/kvm is not usable
  kDisabled,  // do not look at /dev/kvm; report kvm=false
};

struct BuilderOptions {
  std::string flake;      // a flake reference: github:o/r/ref, git+https://..., path:/...
  std::string attribute;  // built as "<flake>#<attribute>"
  std::string format;     // qcow2 | raw | vma
  std::string image;      // the NixImage's name; part of the volume's file name
  std::string pve_url;    // https://HOST:PORT
  std::string storage;
  std::vector<std::string> nodes;  // empty: chosen from the cluster (upload.h)
  bool pve_insecure = false;       // skip TLS verification (only when asked)
  NixSettings nix;                 // --substituter, --trusted-public-key, --nix-option, --nix
  std::string expect_revision;     // a refresh: report `unchanged` when the flake is still here
  std::string result_file = "/dev/termination-log";
  KvmMode kvm = KvmMode::kAuto;
};

struct BuilderCommandLine {
  bool help = false;
  BuilderOptions options;
};

// `args` without the program name; "--flag value" and "--flag=value".
// kInvalid naming the flag for an unknown flag, a missing value or a bad one,
// and for a missing required flag.
Result<BuilderCommandLine> ParseBuilderArgs(const std::vector<std::string>& args);
std::string BuilderUsage();

// --result-file's value as far as it can be read from arguments that failed
// to parse, else the default: where the bad-arguments result goes.
std::string ResultFileFromArgs(const std::vector<std::string>& args);

struct BuilderSecrets {
  proxmox::ApiToken token;
  std::string ca_pem;         // trust these CAs for the PVE endpoint (added to the system's)
  std::string access_tokens;  // nix access-tokens, "host=token ..."
};

// From "NAME=VALUE" entries. kInvalid (naming the variable, never its value)
// when the token id or secret is missing or malformed.
Result<BuilderSecrets> ReadSecrets(const std::vector<std::string>& env);

// Replaces every secret in `text` with <redacted>.
std::string RedactSecrets(const BuilderSecrets& secrets, std::string text);

// Where the builder runs: what differs between a Job and a test.
struct BuilderEnvironment {
  std::vector<std::string> env;  // this process's environment (nix gets it minus secrets)
  std::string kvm_device = "/dev/kvm";
  std::ostream* progress = nullptr;  // progress lines; null: none
  const Clock* clock = nullptr;      // null: RealClock()
  proxmox::WaitOptions wait = DefaultWait();
  std::chrono::milliseconds progress_interval{std::chrono::seconds(2)};

  static proxmox::WaitOptions DefaultWait();
};

struct BuilderOutcome {
  BuildResult result;
  int exit_code = kExitOk;
};

// The whole run: flake metadata (and the refresh check), build, image lookup,
// path-info, upload. Never throws; every failure is in the outcome.
BuilderOutcome RunBuilder(const BuilderOptions& options, const BuilderSecrets& secrets,
                          const BuilderEnvironment& environment);

// True when `device` can be opened read-write (what QEMU needs for KVM);
// otherwise false with the reason in `why`.
bool KvmUsable(const std::string& device, std::string* why);

}  // namespace nixmox::nix
