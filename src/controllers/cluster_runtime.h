// What the controllers share about one Proxmox cluster while the operator
// runs: the PveClient (one per cluster, it owns the cluster's request limits),
// the latest inventory (one /cluster/resources list per period), the VMID
// allocator, the per-storage bound on creations and imports, and the memory
// of placements not yet visible in the inventory.
//
// The ProxmoxCluster controller creates a ClusterRuntime when it has
// credentials that work and puts it in the ClusterRegistry under the
// cluster's key ("namespace/name"); it replaces it when the connection
// settings change and removes it when the ProxmoxCluster goes. The ProxmoxVM
// controller only reads the registry. Everything here is in memory and is
// rebuilt after a restart from Proxmox (inventory) and from Kubernetes
// (status.vmid of the ProxmoxVMs): losing it loses nothing.
//
// All classes are thread-safe.
#pragma once

#include <chrono>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "src/api/types.h"
#include "src/common/clock.h"
#include "src/common/status.h"
#include "src/proxmox/client.h"

namespace nixmox::controllers {

// The tag every VM the operator manages carries: "nixmox-uid-<ProxmoxVM uid>".
inline constexpr std::string_view kUidTagPrefix = "nixmox-uid-";
std::string UidTag(std::string_view uid);
// Whether `tag` is some ProxmoxVM's UidTag.
inline bool IsUidTag(std::string_view tag) { return tag.starts_with(kUidTagPrefix); }

// One /cluster/resources list (type all), split by kind.
struct Inventory {
  Clock::SteadyTime fetched_at{};
  std::vector<proxmox::ClusterResource> nodes;     // type "node"
  std::vector<proxmox::ClusterResource> storages;  // type "storage"
  std::map<int, proxmox::ClusterResource> vms;     // type "qemu", by vmid
  std::map<std::string, int> vmid_by_tag;          // every tag of every VM -> its vmid
  int managed_running = 0;                         // running VMs that carry a nixmox UID tag

  const proxmox::ClusterResource* FindVm(int vmid) const;
  // The VM carrying `tag`, e.g. UidTag(uid); null when none does.
  const proxmox::ClusterResource* FindVmByTag(std::string_view tag) const;
  // Whether `storage` is shared between nodes; a storage the inventory does
  // not show counts as shared (one bound for all nodes, the careful choice).
  bool StorageShared(std::string_view storage) const;
  // Builds the maps from a raw list.
  static Inventory FromResources(std::vector<proxmox::ClusterResource> resources,
                                 Clock::SteadyTime fetched_at);
};

// A VM that appeared, went away, or changed in a way the inventory shows
// (status, node, name, tags, lock, maxcpu, maxmem, maxdisk, template).
struct InventoryChange {
  enum class Kind { kAdded, kChanged, kRemoved };
  Kind kind = Kind::kChanged;
  int vmid = 0;
  // Tags before and after, together: a ProxmoxVM is found by its UidTag in them.
  std::vector<std::string> tags;
};
std::vector<InventoryChange> DiffInventories(const Inventory& before, const Inventory& after);

// Picks VMIDs for ProxmoxVMs without spec.vmid. A VMID is free when the
// inventory does not show it and no ProxmoxVM holds it in status (the caller
// says which ones do) and it was not handed out in the last `hold` (so two
// workers never get the same id before either status write lands).
class VmidAllocator {
 public:
  struct Options {
    int min_vmid = 100;
    int max_vmid = 999999999;
    std::chrono::milliseconds hold{std::chrono::minutes(5)};
  };
  VmidAllocator(Options options, const Clock& clock);

  // The lowest free VMID; kRetryable when the range is exhausted.
  Result<int> Allocate(const Inventory& inventory, const std::set<int>& held_by_objects);
  // The same, asking `held_by_objects` about each candidate (an index lookup).
  Result<int> AllocateExcept(const Inventory& inventory,
                             const std::function<bool(int vmid)>& held_by_objects);
  // Forgets a hand-out (the ProxmoxVM gave it up before creating anything).
  void Release(int vmid);

 private:
  Options options_;
  const Clock& clock_;
  std::mutex mu_;
  std::map<int, Clock::SteadyTime> handed_out_;
};

// Bounds concurrent creations and imports per storage: Proxmox's storage lock
// times out after 10 s, and parallel full-disk work on one storage fails
// beyond a few. A slot is held by a key (the ProxmoxVM's) until released, or
// until `expiry` passes (a crashed or forgotten holder cannot starve others).
// A storage here is a bound's name: the storage's own for a shared one,
// "node/storage" for a node's local one (SlotName).
//
// Holders turned away wait in line; a release wakes the first in line (the
// waker, e.g. "enqueue this ProxmoxVM"), so nobody polls for a slot.
class StorageSlots {
 public:
  using Waker = std::function<void(const std::string& holder)>;

  StorageSlots(int per_storage, std::chrono::milliseconds expiry, const Clock& clock);
  // True when `holder` has (or now got) a slot on `storage`; otherwise it
  // waits in line for one.
  bool TryAcquire(const std::string& storage, const std::string& holder);
  // Frees the holder's slot (and its place in line).
  void Release(const std::string& storage, const std::string& holder);
  int InUse(const std::string& storage);
  // Called outside the lock; set once, at wiring.
  void SetWaker(Waker waker);

 private:
  void ExpireLocked(std::map<std::string, Clock::SteadyTime>& holders, Clock::SteadyTime now);

  const int per_storage_;
  const std::chrono::milliseconds expiry_;
  const Clock& clock_;
  std::mutex mu_;
  std::map<std::string, std::map<std::string, Clock::SteadyTime>> held_;  // storage -> holder
  std::map<std::string, std::deque<std::string>> waiting_;                // storage -> line
  Waker waker_;
};

// The bound a create on `storage` of `node` counts against.
std::string SlotName(const Inventory& inventory, const std::string& node,
                     const std::string& storage);

// Memory promised to VMs placed on a node but not yet running there, so that
// placements made between two inventories do not all pick the same node.
class PlacementLedger {
 public:
  void Add(const std::string& holder, const std::string& node, std::uint64_t memory_bytes);
  void Remove(const std::string& holder);
  // node -> bytes promised.
  std::map<std::string, std::uint64_t> Pending() const;

 private:
  mutable std::mutex mu_;
  std::map<std::string, std::pair<std::string, std::uint64_t>> by_holder_;
};

struct ClusterRuntimeOptions {
  // A refresh asked for sooner than this after the last list returns that list.
  std::chrono::milliseconds min_refresh_interval{1000};
  VmidAllocator::Options vmids;
  std::chrono::milliseconds storage_slot_expiry{std::chrono::minutes(30)};
};

class ClusterRuntime {
 public:
  // `clock` must outlive the runtime.
  ClusterRuntime(std::string key, api::ProxmoxClusterSpec spec,
                 std::unique_ptr<proxmox::PveClient> client, const Clock& clock,
                 ClusterRuntimeOptions options = {});

  const std::string& key() const { return key_; }
  const api::ProxmoxClusterSpec& spec() const { return spec_; }
  proxmox::PveClient& client() { return *client_; }

  // The latest inventory; null before the first successful list.
  std::shared_ptr<const Inventory> inventory() const;
  // Lists /cluster/resources now unless the last list is younger than
  // min_refresh_interval (concurrent callers share one list). Listeners get
  // the changes against the previous inventory.
  Result<std::shared_ptr<const Inventory>> RefreshInventory();

  // Called after each refresh that found changes, with this runtime's key.
  using ChangeListener =
      std::function<void(const std::string& cluster_key, const std::vector<InventoryChange>&)>;
  void SetChangeListener(ChangeListener listener);

  VmidAllocator& vmids() { return vmids_; }
  StorageSlots& storage_slots() { return slots_; }
  PlacementLedger& placements() { return placements_; }

 private:
  const std::string key_;
  const api::ProxmoxClusterSpec spec_;
  std::unique_ptr<proxmox::PveClient> client_;
  const Clock& clock_;
  const ClusterRuntimeOptions options_;
  VmidAllocator vmids_;
  StorageSlots slots_;
  PlacementLedger placements_;

  std::mutex refresh_mu_;  // one list at a time
  mutable std::mutex mu_;  // guards inventory_, listener_
  std::shared_ptr<const Inventory> inventory_;
  ChangeListener listener_;
};

// The runtimes of all connected clusters, by ProxmoxCluster key.
class ClusterRegistry {
 public:
  // Null when the cluster is unknown or not connected.
  std::shared_ptr<ClusterRuntime> Get(const std::string& key) const;
  // Adds or replaces; the registry's change listener is attached to it.
  void Put(std::shared_ptr<ClusterRuntime> runtime);
  void Remove(const std::string& key);
  // Inventory changes of every cluster go here (set once, at wiring).
  void SetChangeListener(ClusterRuntime::ChangeListener listener);
  // Every runtime's storage slots wake waiters through this (set once, at wiring).
  void SetSlotWaker(StorageSlots::Waker waker);

 private:
  mutable std::mutex mu_;
  std::map<std::string, std::shared_ptr<ClusterRuntime>> runtimes_;
  ClusterRuntime::ChangeListener listener_;
  StorageSlots::Waker slot_waker_;
};

}  // namespace nixmox::controllers
