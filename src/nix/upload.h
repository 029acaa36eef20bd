// Putting a built image on Proxmox VE storage as an `import` volume.
//
// Which nodes: the ones the caller names; otherwise, from /cluster/resources,
// one online node that has the storage when it is shared (every node sees the
// same file), else every online node that has it (a VM on any node can then
// import it). On each node the upload is skipped when the volume is already
// there with the expected size; the name holds the store hash, so the same
// name means the same image.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "src/common/clock.h"
#include "src/common/status.h"
#include "src/nix/result.h"
#include "src/proxmox/client.h"
#include "src/proxmox/types.h"

namespace nixmox::nix {

// From /cluster/resources entries of type storage and node: where `storage`
// should receive the upload. kNotFound when no node has it, kRetryable when
// the nodes that have it are all offline, kInvalid when it does not take
// `import` content.
Result<std::vector<std::string>> ChooseUploadNodes(
    const std::vector<proxmox::ClusterResource>& resources, const std::string& storage);

struct UploadSpec {
  std::filesystem::path file;
  std::string filename;  // the volume's file name (VolumeFileName)
  std::string storage;
  // Empty: ChooseUploadNodes over the cluster's resources.
  std::vector<std::string> nodes;
  // The `size` Proxmox lists for the volume when it holds this file: the
  // virtual size for qcow2, the file's length otherwise.
  std::uint64_t listed_size = 0;
  proxmox::WaitOptions wait;
  // How often progress is reported while a file is being sent.
  std::chrono::milliseconds progress_interval{std::chrono::seconds(2)};
};

struct UploadOutcome {
  std::string volume_id;           // "<storage>:import/<filename>"
  std::vector<std::string> nodes;  // where the volume now is
  bool uploaded = false;           // false: every node had it already
};

using ProgressFn = std::function<void(const Progress&)>;

// Uploads to every chosen node in turn and waits for each imgcopy task.
// Errors name the node; nothing in them is secret (the client redacts).
Result<UploadOutcome> UploadImage(proxmox::PveClient& pve, const UploadSpec& spec,
                                  const ProgressFn& progress, const Clock& clock,
                                  const proxmox::Sleeper& sleeper);

// How far this process has read `file` (the largest position among its open
// descriptors on it, from /proc/self/fdinfo); nullopt when it has none open.
// The HTTP client streams the file itself, so this is the upload's progress.
std::optional<std::uint64_t> FileReadPosition(const std::filesystem::path& file);

}  // namespace nixmox::nix
