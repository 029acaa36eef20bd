// Planning for one ProxmoxVM, as pure functions: the Proxmox config its spec
// asks for (DesiredVm), the parameters that create it, and the difference
// between that and what Proxmox has (drift). No I/O; any thread.
//
// Comparison rules: NICs and disks are compared by slot (net0, scsi1), tags
// as sets (Proxmox lower-cases and sorts them), MACs only where the spec sets
// one (otherwise the MAC Proxmox generated is kept for the VM's life). Data
// is never deleted by a diff: a disk in Proxmox that the spec does not name
// is reported, not removed, and a disk is never shrunk.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "src/api/types.h"
#include "src/proxmox/types.h"

namespace nixmox::controllers {

// The tag naming the image a VM was created from: "nixmox-image-" and the
// first 16 characters of the store path's hash ("/nix/store/<hash>-name").
// Empty for an empty store path.
std::string ImageTag(std::string_view store_path);

struct DesiredDisk {
  std::string slot;     // "scsi0"
  std::string storage;  // resolved: the spec's, else the cluster's default
  std::optional<std::uint64_t> size_bytes;  // root disk: unset = the image's size
};

struct DesiredVm {
  std::string name;  // the ProxmoxVM's name (a DNS label, as Proxmox wants)
  std::int32_t cores = 1;
  std::int32_t sockets = 1;
  std::string cpu_type;
  std::int64_t memory_mib = 0;
  std::vector<proxmox::NetConfig> nets;  // nets[i] is netI
  DesiredDisk root;
  std::string import_from;  // the volume the root disk is imported from
  std::vector<DesiredDisk> disks;
  std::optional<api::CloudInit> cloud_init;
  // The user's tags, UidTag(uid) and, with an image, ImageTag(store path):
  // normalized (lower case, sorted, unique).
  std::vector<std::string> tags;
  bool protection = false;
};

struct PlanInputs {
  const api::ProxmoxVm* vm = nullptr;  // metadata.name and .uid are read from it
  const api::ProxmoxClusterSpec* cluster = nullptr;
  std::string image_volume;      // NixImage status.volumeID, or spec.sourceVolume
  std::string image_store_path;  // empty for a sourceVolume
};
DesiredVm Desire(const PlanInputs& inputs);

// POST /nodes/{node}/qemu parameters (vmid aside): name, cores, sockets, cpu,
// memory, netN, the root disk imported ("STORAGE:0,import-from=VOLUME"),
// extra disks ("STORAGE:GiB"), boot order, virtio-scsi-single, the guest
// agent, a serial console, cloud-init (ide2 STORAGE:cloudinit, ciuser,
// sshkeys, ipconfigN, nameserver, searchdomain) when asked, tags, protection.
proxmox::Params CreateParams(const DesiredVm& desired);

struct Resize {
  std::string slot;
  std::string size;  // absolute, "20G"
  bool operator==(const Resize&) const = default;
};

struct ConfigDiff {
  // Config keys to set or delete, with the observed digest. Extra disks that
  // are missing appear here as "STORAGE:GiB" allocations.
  proxmox::ConfigUpdate update;
  std::vector<Resize> resizes;
  // One human-readable line per difference ("cores: 2 -> 4", "net1: missing"),
  // for events and the InSync condition.
  std::vector<std::string> drift;
  // Differences that cannot be corrected in place and are left alone (a disk
  // larger than the spec, a disk the spec does not name), each explained.
  std::vector<std::string> unfixable;
  // True when `update` allocates storage (slow: send it as an async POST).
  bool allocates = false;

  bool empty() const { return update.set.empty() && update.delete_keys.empty() && resizes.empty(); }
};
ConfigDiff Diff(const DesiredVm& desired, const proxmox::VmConfig& observed);

// The managed keys among Proxmox's pending changes: those that wait for a
// restart (memory, cores, cpu, NIC model...). Empty when none wait.
std::vector<std::string> KeysAwaitingRestart(const std::vector<proxmox::PendingEntry>& pending);

}  // namespace nixmox::controllers
