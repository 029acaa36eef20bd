#include "src/controllers/cluster_runtime.h"

#include <algorithm>
#include <tuple>
#include <utility>

namespace nixmox::controllers {

std::string UidTag(std::string_view uid) {
  // Proxmox lower-cases tags; UIDs are lower-case already.
  return std::string(kUidTagPrefix) + std::string(uid);
}

// ---------------------------------------------------------------------------
// Inventory

const proxmox::ClusterResource* Inventory::FindVm(int vmid) const {
  auto it = vms.find(vmid);
  return it == vms.end() ? nullptr : &it->second;
}

const proxmox::ClusterResource* Inventory::FindVmByTag(std::string_view tag) const {
  auto it = vmid_by_tag.find(std::string(tag));
  return it == vmid_by_tag.end() ? nullptr : FindVm(it->second);
}

bool Inventory::StorageShared(std::string_view storage) const {
  bool seen = false;
  for (const proxmox::ClusterResource& s : storages) {
    if (s.storage != storage) continue;
    if (s.shared) return true;
    seen = true;
  }
  return !seen;
}

Inventory Inventory::FromResources(std::vector<proxmox::ClusterResource> resources,
                                   Clock::SteadyTime fetched_at) {
  Inventory inv;
  inv.fetched_at = fetched_at;
  for (proxmox::ClusterResource& r : resources) {
    if (r.type == "node") {
      inv.nodes.push_back(std::move(r));
    } else if (r.type == "storage") {
      inv.storages.push_back(std::move(r));
    } else if (r.type == "qemu" && r.vmid) {
      int vmid = *r.vmid;
      bool managed = false;
      for (const std::string& tag : r.tags) {
        inv.vmid_by_tag[tag] = vmid;
        managed |= IsUidTag(tag);
      }
      if (managed && r.status == "running") ++inv.managed_running;
      inv.vms[vmid] = std::move(r);
    }
  }
  return inv;
}

namespace {

// The fields of a VM entry whose change a ProxmoxVM must look at. Usage
// figures (cpu, mem, disk I/O, uptime) move all the time and are left out.
auto Observable(const proxmox::ClusterResource& r) {
  return std::tie(r.status, r.node, r.name, r.tags, r.lock, r.maxcpu, r.maxmem, r.maxdisk,
                  r.is_template);
}

std::vector<std::string> MergedTags(const std::vector<std::string>& a,
                                    const std::vector<std::string>& b) {
  std::vector<std::string> out = a;
  out.insert(out.end(), b.begin(), b.end());
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

}  // namespace

std::vector<InventoryChange> DiffInventories(const Inventory& before, const Inventory& after) {
  std::vector<InventoryChange> changes;
  for (const auto& [vmid, now] : after.vms) {
    const proxmox::ClusterResource* was = before.FindVm(vmid);
    if (was == nullptr) {
      changes.push_back({InventoryChange::Kind::kAdded, vmid, MergedTags({}, now.tags)});
    } else if (Observable(*was) != Observable(now)) {
      changes.push_back({InventoryChange::Kind::kChanged, vmid, MergedTags(was->tags, now.tags)});
    }
  }
  for (const auto& [vmid, was] : before.vms) {
    if (after.FindVm(vmid) == nullptr) {
      changes.push_back({InventoryChange::Kind::kRemoved, vmid, MergedTags(was.tags, {})});
    }
  }
  return changes;
}

// ---------------------------------------------------------------------------
// VmidAllocator

VmidAllocator::VmidAllocator(Options options, const Clock& clock)
    : options_(options), clock_(clock) {}

Result<int> VmidAllocator::Allocate(const Inventory& inventory,
                                    const std::set<int>& held_by_objects) {
  return AllocateExcept(inventory, [&](int vmid) { return held_by_objects.contains(vmid); });
}

Result<int> VmidAllocator::AllocateExcept(const Inventory& inventory,
                                          const std::function<bool(int vmid)>& held_by_objects) {
  std::lock_guard lock(mu_);
  const Clock::SteadyTime now = clock_.Now();
  std::erase_if(handed_out_, [&](const auto& entry) { return entry.second <= now; });
  for (int vmid = options_.min_vmid; vmid <= options_.max_vmid; ++vmid) {
    if (inventory.vms.count(vmid) || handed_out_.count(vmid) || held_by_objects(vmid)) {
      continue;
    }
    handed_out_[vmid] = now + options_.hold;
    return vmid;
  }
  return Status(Code::kRetryable, "no free VMID between " + std::to_string(options_.min_vmid) +
                                      " and " + std::to_string(options_.max_vmid));
}

void VmidAllocator::Release(int vmid) {
  std::lock_guard lock(mu_);
  handed_out_.erase(vmid);
}

// ---------------------------------------------------------------------------
// StorageSlots

StorageSlots::StorageSlots(int per_storage, std::chrono::milliseconds expiry, const Clock& clock)
    : per_storage_(per_storage), expiry_(expiry), clock_(clock) {}

void StorageSlots::ExpireLocked(std::map<std::string, Clock::SteadyTime>& holders,
                                Clock::SteadyTime now) {
  std::erase_if(holders, [&](const auto& entry) { return entry.second <= now; });
}

bool StorageSlots::TryAcquire(const std::string& storage, const std::string& holder) {
  std::lock_guard lock(mu_);
  const Clock::SteadyTime now = clock_.Now();
  auto& holders = held_[storage];
  ExpireLocked(holders, now);
  if (auto it = holders.find(holder); it != holders.end()) {
    it->second = now + expiry_;
    return true;
  }
  std::deque<std::string>& line = waiting_[storage];
  if (per_storage_ > 0 && static_cast<int>(holders.size()) >= per_storage_) {
    if (std::find(line.begin(), line.end(), holder) == line.end()) line.push_back(holder);
    return false;
  }
  std::erase(line, holder);
  holders[holder] = now + expiry_;
  return true;
}

void StorageSlots::Release(const std::string& storage, const std::string& holder) {
  std::vector<std::string> woken;
  Waker waker;
  {
    std::lock_guard lock(mu_);
    auto held = held_.find(storage);
    if (held != held_.end()) {
      held->second.erase(holder);
      ExpireLocked(held->second, clock_.Now());
    }
    auto line = waiting_.find(storage);
    if (line == waiting_.end()) return;
    std::erase(line->second, holder);
    // One waiter per free slot: each comes back and takes it (or, gone
    // meanwhile, never does; the slot is then free for the next TryAcquire).
    int free = per_storage_ - (held == held_.end() ? 0 : static_cast<int>(held->second.size()));
    while (free-- > 0 && !line->second.empty()) {
      woken.push_back(std::move(line->second.front()));
      line->second.pop_front();
    }
    if (line->second.empty()) waiting_.erase(line);
    waker = waker_;
  }
  if (!waker) return;
  for (const std::string& next : woken) waker(next);
}

int StorageSlots::InUse(const std::string& storage) {
  std::lock_guard lock(mu_);
  auto& holders = held_[storage];
  ExpireLocked(holders, clock_.Now());
  return static_cast<int>(holders.size());
}

void StorageSlots::SetWaker(Waker waker) {
  std::lock_guard lock(mu_);
  waker_ = std::move(waker);
}

std::string SlotName(const Inventory& inventory, const std::string& node,
                     const std::string& storage) {
  return inventory.StorageShared(storage) ? storage : node + "/" + storage;
}

// ---------------------------------------------------------------------------
// PlacementLedger

void PlacementLedger::Add(const std::string& holder, const std::string& node,
                          std::uint64_t memory_bytes) {
  std::lock_guard lock(mu_);
  by_holder_[holder] = {node, memory_bytes};
}

void PlacementLedger::Remove(const std::string& holder) {
  std::lock_guard lock(mu_);
  by_holder_.erase(holder);
}

std::map<std::string, std::uint64_t> PlacementLedger::Pending() const {
  std::lock_guard lock(mu_);
  std::map<std::string, std::uint64_t> out;
  for (const auto& [holder, placed] : by_holder_) out[placed.first] += placed.second;
  return out;
}

// ---------------------------------------------------------------------------
// ClusterRuntime

ClusterRuntime::ClusterRuntime(std::string key, api::ProxmoxClusterSpec spec,
                               std::unique_ptr<proxmox::PveClient> client, const Clock& clock,
                               ClusterRuntimeOptions options)
    : key_(std::move(key)),
      spec_(std::move(spec)),
      client_(std::move(client)),
      clock_(clock),
      options_(options),
      vmids_(options.vmids, clock),
      slots_(spec_.max_creates_per_storage, options.storage_slot_expiry, clock) {}

std::shared_ptr<const Inventory> ClusterRuntime::inventory() const {
  std::lock_guard lock(mu_);
  return inventory_;
}

void ClusterRuntime::SetChangeListener(ChangeListener listener) {
  std::lock_guard lock(mu_);
  listener_ = std::move(listener);
}

Result<std::shared_ptr<const Inventory>> ClusterRuntime::RefreshInventory() {
  std::lock_guard refresh(refresh_mu_);
  std::shared_ptr<const Inventory> previous = inventory();
  // A caller that waited for another's list gets that list.
  if (previous && clock_.Now() - previous->fetched_at < options_.min_refresh_interval) {
    return previous;
  }
  ASSIGN_OR_RETURN(std::vector<proxmox::ClusterResource> resources,
                   client_->ListClusterResources(proxmox::ResourceType::kAll));
  auto next = std::make_shared<const Inventory>(
      Inventory::FromResources(std::move(resources), clock_.Now()));
  std::vector<InventoryChange> changes;
  if (previous) changes = DiffInventories(*previous, *next);
  ChangeListener listener;
  {
    std::lock_guard lock(mu_);
    inventory_ = next;
    listener = listener_;
  }
  // The first list after a (re)start reports nothing: every ProxmoxVM is
  // reconciled once anyway when the informers first sync.
  if (listener && !changes.empty()) listener(key_, changes);
  return next;
}

// ---------------------------------------------------------------------------
// ClusterRegistry

std::shared_ptr<ClusterRuntime> ClusterRegistry::Get(const std::string& key) const {
  std::lock_guard lock(mu_);
  auto it = runtimes_.find(key);
  return it == runtimes_.end() ? nullptr : it->second;
}

void ClusterRegistry::Put(std::shared_ptr<ClusterRuntime> runtime) {
  std::lock_guard lock(mu_);
  if (listener_) runtime->SetChangeListener(listener_);
  if (slot_waker_) runtime->storage_slots().SetWaker(slot_waker_);
  runtimes_[runtime->key()] = std::move(runtime);
}

void ClusterRegistry::Remove(const std::string& key) {
  std::lock_guard lock(mu_);
  runtimes_.erase(key);
}

void ClusterRegistry::SetChangeListener(ClusterRuntime::ChangeListener listener) {
  std::lock_guard lock(mu_);
  listener_ = std::move(listener);
  for (auto& [key, runtime] : runtimes_) runtime->SetChangeListener(listener_);
}

void ClusterRegistry::SetSlotWaker(StorageSlots::Waker waker) {
  std::lock_guard lock(mu_);
  slot_waker_ = std::move(waker);
  for (auto& [key, runtime] : runtimes_) runtime->storage_slots().SetWaker(slot_waker_);
}

}  // namespace nixmox::controllers
