// What nixmox-builder reports, and how the NixImage controller reads it.
//
// The builder writes one JSON object to its container's termination message
// (at most 4096 bytes, so error text is a tail, never the whole log) and
// exits with a code that says which stage failed. The controller parses the
// same object from the Pod's status. Both sides use these types, so the
// format has exactly one definition.
//
//   success:  {"ok":true,"storePath":"/nix/store/<hash>-nixos.qcow2",
//              "narHash":"sha256-...","narSize":123,"size":456,"format":"qcow2",
//              "volumeId":"local:import/nixmox-web-<hash>.qcow2","nodes":["pve1"],
//              "uploaded":true,"flakeRevision":"<rev>","kvm":false,
//              "buildSeconds":12.5,"uploadSeconds":3.25}
//   no-op refresh (the flake's locked revision did not move):
//             {"ok":true,"unchanged":true,"flakeRevision":"<rev>"}
//   failure:  {"ok":false,"stage":"build","error":"<last lines of nix's stderr>"}
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "src/common/status.h"

namespace nixmox::nix {

// The builder's exit codes.
inline constexpr int kExitOk = 0;
inline constexpr int kExitBadArguments = 2;
inline constexpr int kExitBuildFailed = 3;
inline constexpr int kExitUploadFailed = 4;

// The termination message limit the kubelet enforces.
inline constexpr std::size_t kMaxMessageBytes = 4096;

enum class Stage { kArguments, kBuild, kUpload };
std::string_view StageName(Stage stage);

struct BuildResult {
  bool ok = false;

  // ok: what was built and where it went.
  bool unchanged = false;  // a refresh check found the same locked revision: nothing built
  std::string store_path;
  std::string nar_hash;
  std::int64_t nar_size = 0;
  std::int64_t size = 0;  // bytes of the image file uploaded
  std::string format;     // qcow2 | raw | vma
  std::string volume_id;  // "<storage>:import/<file>"
  std::vector<std::string> nodes;  // where the volume is (one entry for shared storage)
  bool uploaded = false;           // false: the volume was there already with the same size
  std::string flake_revision;
  bool kvm = false;  // /dev/kvm was usable during the build
  double build_seconds = 0;
  double upload_seconds = 0;

  // !ok: which stage failed and the tail of its error output.
  Stage stage = Stage::kBuild;
  std::string error;

  bool operator==(const BuildResult&) const = default;
};

nlohmann::json ToJson(const BuildResult& result);
// Serialized and, when needed, with `error` cut from the front so that the
// whole message fits in kMaxMessageBytes.
std::string ToMessage(const BuildResult& result);
// kInvalid when `message` is not a result object.
Result<BuildResult> ParseResult(std::string_view message);

// The last `max_lines` non-empty lines of `text`, at most `max_bytes` long
// (cut at a line boundary where possible).
std::string Tail(std::string_view text, std::size_t max_lines, std::size_t max_bytes);

// Progress: while it works the builder prints lines
//   nixmox-progress {"stage":"upload","percent":45,"message":"120/260 MiB to pve1"}
// to stdout; the controller reads the Pod log's tail and shows the last one
// in the NixImage's status (phase Building or Uploading, status.progress).
inline constexpr std::string_view kProgressPrefix = "nixmox-progress ";

struct Progress {
  Stage stage = Stage::kBuild;
  int percent = -1;  // -1: unknown (nix build reports no percentage)
  std::string message;
  bool operator==(const Progress&) const = default;
};

// One log line, prefix included, without a trailing newline.
std::string FormatProgress(const Progress& progress);
// The last well-formed progress line in `log`, if any.
std::optional<Progress> LastProgress(std::string_view log);

// "nixmox-<image>-<storehash>.<ext>": the file name of an uploaded image,
// from the NixImage's name, its store path and the format's extension.
std::string VolumeFileName(std::string_view image, std::string_view store_path,
                           std::string_view extension);
// "abc...xyz" from "/nix/store/abc...xyz-name": the 32-character hash part,
// or "" when `store_path` is not a store path.
std::string StoreHash(std::string_view store_path);

}  // namespace nixmox::nix
