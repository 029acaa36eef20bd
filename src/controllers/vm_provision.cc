// Finding a ProxmoxVM's VM (by status.vmid, by its UID tag, or the one
// nixmox.io/adopt-vmid names) and, when there is none, choosing its VMID and
// node (written to status first) and creating it within the storage's bound.
#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdlib>
#include <utility>

#include "src/api/reasons.h"
#include "src/controllers/placement.h"
#include "src/controllers/resources.h"
#include "src/controllers/vm_reconcile.h"
#include "src/controllers/vm_status.h"
#include "src/kube/events.h"

namespace nixmox::controllers {
namespace {

namespace condition = api::condition;
namespace reason = api::reason;
using api::ConditionStatus;

constexpr std::chrono::milliseconds kAdoptRetry = std::chrono::seconds(30);
constexpr std::chrono::milliseconds kPlacementRetry = std::chrono::seconds(30);
constexpr std::chrono::milliseconds kVmidInUseRetry = std::chrono::minutes(5);
constexpr std::chrono::milliseconds kStorageRetry = std::chrono::seconds(30);

// nixmox.io/adopt-vmid as a number; nullopt when absent or not a number.
std::optional<int> AdoptVmid(const kube::Object& obj) {
  const std::string text = Annotation(obj, kAnnotationAdoptVmid);
  const auto digit = [](char c) { return std::isdigit(static_cast<unsigned char>(c)) != 0; };
  if (text.empty() || text.size() > 9 || !std::all_of(text.begin(), text.end(), digit)) {
    return std::nullopt;
  }
  return std::stoi(text);
}

// The fields of an inventory entry a config change could move, as one
// comparable string (not the power state: a start changes no config).
std::string Fingerprint(const proxmox::ClusterResource& r) {
  return r.node + "|" + r.name + "|" + Join(r.tags, ";") + "|" + r.lock + "|" +
         std::to_string(r.maxcpu) + "|" + std::to_string(r.maxmem) + "|" +
         std::to_string(r.maxdisk) + "|" + (r.is_template ? "t" : "");
}

std::string SortedTags(std::vector<std::string> tags) {
  std::sort(tags.begin(), tags.end());
  return Join(tags, ";");
}

// A VM re-created for a new image keeps its MACs (those the spec leaves open).
void KeepRecreateMacs(const kube::Object& obj, DesiredVm& desired) {
  const std::string macs = Annotation(obj, kAnnotationRecreateMacs);
  std::size_t start = 0;
  while (start < macs.size()) {
    std::size_t end = macs.find(',', start);
    if (end == std::string::npos) end = macs.size();
    const std::string entry = macs.substr(start, end - start);
    start = end + 1;
    const std::size_t eq = entry.find('=');
    if (eq == std::string::npos || !entry.starts_with("net")) continue;
    const std::size_t index = std::strtoul(entry.c_str() + 3, nullptr, 10);
    if (index < desired.nets.size() && desired.nets[index].macaddr.empty()) {
      desired.nets[index].macaddr = entry.substr(eq + 1);
    }
  }
}

}  // namespace

std::string InventoryView(const proxmox::ClusterResource& entry) {
  return entry.name + "|" + SortedTags(entry.tags) + "|" +
         std::to_string(std::llround(entry.maxcpu)) + "|" + std::to_string(entry.maxmem >> 20);
}

std::string InventoryView(const proxmox::VmConfig& config) {
  const std::int64_t vcpus =
      config.GetInt("vcpus").value_or(config.sockets().value_or(1) * config.cores().value_or(1));
  return config.name() + "|" + SortedTags(config.tags()) + "|" + std::to_string(vcpus) + "|" +
         std::to_string(config.memory_mib().value_or(512));
}

// ---------------------------------------------------------------------------
// Finding the VM

Step VmReconciler::Impl::FindVm(VmPass& p, std::optional<FoundVm>* found) {
  const std::optional<int> adopt = AdoptVmid(p.object);
  std::optional<int> vmid = p.status.vmid;
  std::string node = p.status.node;
  if (!vmid && p.memory->created_vmid) {
    vmid = p.memory->created_vmid;
    node = p.memory->created_node;
  }
  if (!vmid) vmid = adopt;
  if (!vmid) {
    const proxmox::ClusterResource* tagged = p.inventory->FindVmByTag(p.uid_tag);
    if (tagged == nullptr) return std::nullopt;
    vmid = tagged->vmid;
  }
  Result<std::optional<FoundVm>> located = Locate(p, *vmid, node);
  if (!located.ok()) {
    return ProxmoxFailure(p, located.status(), "looking for VM " + std::to_string(*vmid));
  }
  if (!located->has_value()) {
    p.memory->created_vmid.reset();
    if (adopt == vmid && !p.status.vmid) {
      const std::string message =
          "VM " + std::to_string(*vmid) + " named by " + kAnnotationAdoptVmid + " does not exist";
      Condition(p, condition::kProvisioned, ConditionStatus::kFalse, reason::kVmNotFound, message);
      Block(p, reason::kVmNotFound, message);
      return After(kAdoptRetry);
    }
    return std::nullopt;
  }
  FoundVm& vm = **located;
  switch (vm.owner) {
    case FoundVm::Owner::kUs:
      *found = std::move(vm);
      return std::nullopt;
    case FoundVm::Owner::kBeingCreated:
      p.status.phase = api::VmPhase::kProvisioning;
      Condition(p, condition::kProvisioned, ConditionStatus::kFalse, reason::kCreating,
                "VM " + std::to_string(vm.vmid) + " is being created");
      return After(options_.task_poll);
    case FoundVm::Owner::kOther:
      if (adopt == vm.vmid) return Adopt(p, vm);
      return VmidTaken(p, vm.vmid, vm.node);
  }
  return std::nullopt;
}

Result<std::optional<FoundVm>> VmReconciler::Impl::Locate(VmPass& p, int vmid,
                                                          const std::string& node_hint) {
  FoundVm vm;
  vm.vmid = vmid;
  vm.node = node_hint;
  VmMemory& memory = *p.memory;
  const bool outdated = memory.changed_vmid == vmid && p.inventory->fetched_at <= memory.changed_at;
  // Known gone (a destroy of ours finished) since the inventory was listed.
  if (outdated && memory.absent_vmid == vmid && !memory.created_vmid) {
    return std::optional<FoundVm>();
  }
  if (const proxmox::ClusterResource* entry = outdated ? nullptr : p.inventory->FindVm(vmid)) {
    vm.node = entry->node;
    vm.tags = entry->tags;
    vm.lock = entry->lock;
    vm.running = entry->status == "running";
    vm.fingerprint = Fingerprint(*entry);
    vm.view = InventoryView(*entry);
    if (HasTag(vm.tags, p.uid_tag)) {
      vm.owner = FoundVm::Owner::kUs;
      return std::optional<FoundVm>(std::move(vm));
    }
  }
  if (vm.node.empty()) return std::optional<FoundVm>();
  if (vm.fingerprint.empty() && !memory.created_vmid) {
    // Not in the inventory, and this process knows why (see VmMemory).
    if (memory.absent_vmid == vmid) return std::optional<FoundVm>();
    if (memory.ours_vmid == vmid) {
      vm.owner = FoundVm::Owner::kUs;
      vm.tags = memory.ours_tags;
      return std::optional<FoundVm>(std::move(vm));
    }
  }
  // The inventory can be a period old: a VM just created is not in it, and a
  // VM whose tags look foreign there may have been tagged since. Ask.
  Result<proxmox::VmConfig> config = p.runtime->client().GetVmConfig(vm.node, vmid);
  if (!config.ok()) {
    if (config.status().code() != Code::kNotFound) return config.status();
    if (!memory.created_vmid) memory.absent_vmid = vmid;
    return std::optional<FoundVm>();
  }
  vm.tags = config->tags();
  vm.lock = config->lock();
  vm.config = std::move(config).value();
  if (HasTag(vm.tags, p.uid_tag)) {
    memory.ours_vmid = vmid;
    memory.ours_tags = vm.tags;
    vm.owner = FoundVm::Owner::kUs;
  } else if (vm.lock == "create") {
    vm.owner = FoundVm::Owner::kBeingCreated;
  } else {
    vm.owner = FoundVm::Owner::kOther;
  }
  return std::optional<FoundVm>(std::move(vm));
}

Step VmReconciler::Impl::Adopt(VmPass& p, FoundVm& vm) {
  const std::string name = "VM " + std::to_string(vm.vmid);
  for (const std::string& tag : vm.tags) {
    if (IsUidTag(tag) && tag != p.uid_tag) {
      const std::string message = name + " belongs to another ProxmoxVM (" + tag + ")";
      Condition(p, condition::kProvisioned, ConditionStatus::kFalse, reason::kVmidInUse, message);
      Block(p, reason::kVmidInUse, message);
      Event(p, kube::kEventWarning, reason::kVmidInUse, message);
      return After(kVmidInUseRetry);
    }
  }
  if (p.observe_only) {
    return ObserveAbsent(p, name + " is to be adopted; nothing changes while observing only");
  }
  if (!p.image.ready) return WaitForImage(p);
  if (Status loaded = LoadConfig(p, vm); !loaded.ok()) {
    return ProxmoxFailure(p, loaded, "reading " + name);
  }
  // Only the tags change: ours added, a former owner's marks dropped.
  std::vector<std::string> tags;
  for (const std::string& tag : vm.tags) {
    if (tag != kUnmanagedTag && !tag.starts_with(kImageTagPrefix)) tags.push_back(tag);
  }
  tags.push_back(p.uid_tag);
  if (!p.image.store_path.empty()) tags.push_back(ImageTag(p.image.store_path));
  std::sort(tags.begin(), tags.end());
  proxmox::ConfigUpdate update;
  update.set.SetTags(tags);
  update.digest = vm.config->digest();
  if (Status s = p.runtime->client().UpdateVmConfigSync(vm.node, vm.vmid, update); !s.ok()) {
    return ProxmoxFailure(p, s, "tagging " + name);
  }
  p.status.vmid = vm.vmid;
  p.status.node = vm.node;
  p.status.image_store_path = p.image.store_path;
  const std::string message = "adopted " + name + " on " + vm.node;
  Condition(p, condition::kProvisioned, ConditionStatus::kTrue, reason::kAdopted, message);
  Event(p, kube::kEventNormal, reason::kAdopted, message);
  return After(kSoon);
}

Step VmReconciler::Impl::VmidTaken(VmPass& p, int vmid, const std::string& node) {
  const std::string name = "VM " + std::to_string(vmid);
  // A VMID we picked ourselves and never created anything with: pick another.
  if (!p.vm.spec.vmid && !IsVmConditionTrue(p.status, condition::kProvisioned)) {
    p.status.vmid.reset();
    p.status.node.clear();
    p.memory->created_vmid.reset();
    ReleaseClaims(p);
    Event(p, kube::kEventWarning, reason::kVmidInUse,
          "VMID " + std::to_string(vmid) + " was taken by another VM; choosing another");
    return After(kSoon);
  }
  const std::string message =
      name + " on " + node + " does not carry tag " + p.uid_tag + "; it is left alone";
  p.status.phase = api::VmPhase::kFailed;
  Condition(p, condition::kProvisioned, ConditionStatus::kFalse, reason::kVmidInUse, message);
  Block(p, reason::kVmidInUse, message);
  Event(p, kube::kEventWarning, reason::kVmidInUse, message);
  return After(kVmidInUseRetry);
}

// ---------------------------------------------------------------------------
// A VM that does not exist (yet)

Step VmReconciler::Impl::ObserveAbsent(VmPass& p, std::string message) {
  p.status.phase = api::VmPhase::kPending;
  Condition(p, condition::kProvisioned, ConditionStatus::kFalse, reason::kVmNotFound, message);
  Block(p, reason::kVmNotFound, std::move(message));
  return After(options_.config_resync);
}

Step VmReconciler::Impl::Allocate(VmPass& p) {
  if (p.observe_only) return ObserveAbsent(p, "no VM carries tag " + p.uid_tag);
  if (!p.image.ready) return WaitForImage(p);
  // No list just for this: the VMID goes to status before any create, so a
  // VM without one in status was never created by a process that got that
  // far, and FindVm already looked for our tag in an inventory listed after
  // this process connected. (Waiting for a fresh list here put a Proxmox
  // round trip between every new ProxmoxVM and its first action.)
  int vmid = 0;
  if (p.vm.spec.vmid) {
    vmid = *p.vm.spec.vmid;
  } else {
    Result<int> allocated = Status(Code::kInternal, "unset");
    if (options_.vmid_holders) {
      const std::string prefix =
          kube::NamespaceOf(p.object) + "/" + p.vm.spec.cluster_ref.name + "/";
      Status lookup = OkStatus();
      allocated = p.runtime->vmids().AllocateExcept(*p.inventory, [&](int candidate) {
        Result<std::vector<std::string>> holders =
            options_.vmid_holders(prefix + std::to_string(candidate));
        if (!holders.ok()) {
          lookup = holders.status();
          return true;
        }
        return std::any_of(holders->begin(), holders->end(),
                           [&](const std::string& key) { return key != p.key; });
      });
      if (!lookup.ok()) return Fail(lookup);
    } else {
      Result<std::set<int>> held = HeldVmids(p);
      if (!held.ok()) return Fail(held.status());
      allocated = p.runtime->vmids().Allocate(*p.inventory, *held);
    }
    if (!allocated.ok()) return Fail(allocated.status());
    vmid = *allocated;
    // Free in the inventory, held by nobody: no VM has it (a VM someone else
    // creates there meanwhile makes the create fail, see VmidTakenOnCreate).
    p.memory->absent_vmid = vmid;
  }
  std::string node;
  if (Step s = ChooseNode(p, &node)) return s;
  // Written before the create: a VMID in status is never lost, so a create
  // whose answer is lost is found again rather than repeated.
  p.status.vmid = vmid;
  p.status.node = node;
  p.status.phase = api::VmPhase::kProvisioning;
  Condition(p, condition::kProvisioned, ConditionStatus::kFalse, reason::kCreating,
            "VM " + std::to_string(vmid) + " goes to " + node);
  // Written now and the create follows in this pass: once the write is
  // acknowledged the VMID is not lost, and waiting for the write's watch
  // event would put a round trip in front of every new VM's create.
  if (Status written = WriteStatus(p); !written.ok()) return WriteFailed(written);
  // A VMID the spec names may be someone else's: the find step looks first.
  if (p.inventory->FindVm(vmid) != nullptr) return After(kAfterWrite);
  return Create(p);
}

Result<std::set<int>> VmReconciler::Impl::HeldVmids(VmPass& p) {
  const std::string ns = kube::NamespaceOf(p.object);
  ASSIGN_OR_RETURN(kube::ObjectList list, reader_.List(ProxmoxVms(), ns, kube::ListOptions{}));
  std::set<int> held;
  for (const kube::Object& item : list.items) {
    if (kube::KeyOf(item) == p.key) continue;
    if (kube::StringAt(item, {"spec", "clusterRef", "name"}) != p.vm.spec.cluster_ref.name) {
      continue;
    }
    const kube::Object& status = item.value("status", kube::Object::object());
    if (auto it = status.find("vmid"); it != status.end() && it->is_number_integer()) {
      held.insert(it->get<int>());
    }
  }
  return held;
}

Step VmReconciler::Impl::ChooseNode(VmPass& p, std::string* node) {
  const api::ProxmoxVmSpec& spec = p.vm.spec;
  const std::uint64_t memory = static_cast<std::uint64_t>(spec.memory_mib) * 1024 * 1024;
  if (!spec.node.empty()) {
    if (Status usable = CheckNode(spec.node, p.inventory->nodes, p.cluster.allowed_nodes);
        !usable.ok()) {
      const std::string_view why =
          usable.code() == Code::kInvalid ? reason::kNodeNotAllowed : reason::kPlacementFailed;
      Condition(p, condition::kProvisioned, ConditionStatus::kFalse, why, usable.message());
      Block(p, why, usable.message());
      return After(kPlacementRetry);
    }
    *node = spec.node;
  } else {
    Result<std::string> placed =
        PlaceVm(p.inventory->nodes, p.cluster.allowed_nodes, p.runtime->placements().Pending());
    if (!placed.ok()) {
      Condition(p, condition::kProvisioned, ConditionStatus::kFalse, reason::kPlacementFailed,
                placed.status().message());
      Block(p, reason::kPlacementFailed, placed.status().message());
      return After(kPlacementRetry);
    }
    *node = *placed;
  }
  p.runtime->placements().Add(p.key, *node, memory);
  p.memory->cluster_key = p.runtime->key();
  return std::nullopt;
}

Step VmReconciler::Impl::Create(VmPass& p) {
  const int vmid = *p.status.vmid;
  const std::string name = "VM " + std::to_string(vmid);
  p.status.ip_addresses.clear();
  p.status.primary_ip.clear();
  if (p.observe_only) return ObserveAbsent(p, name + " does not exist");
  if (!p.image.ready) return WaitForImage(p);
  if (p.status.node.empty()) {
    if (Step s = ChooseNode(p, &p.status.node)) return s;
    return After(kAfterWrite);
  }

  DesiredVm desired = Desire(Inputs(p));
  KeepRecreateMacs(p.object, desired);
  const std::string& node = p.status.node;
  const std::string slot = SlotName(*p.inventory, node, desired.root.storage);
  p.status.phase = api::VmPhase::kProvisioning;
  if (!p.runtime->storage_slots().TryAcquire(slot, p.key)) {
    const std::string message = "waiting for one of the " +
                                std::to_string(p.cluster.max_creates_per_storage) +
                                " creation slots of storage " + slot;
    Condition(p, condition::kProvisioned, ConditionStatus::kFalse, reason::kWaitingForStorage,
              message);
    Block(p, reason::kWaitingForStorage, message);
    // A release wakes the first in line; this is only the fallback.
    return After(kStorageRetry);
  }
  p.memory->cluster_key = p.runtime->key();
  p.memory->slot_storage = slot;
  p.memory->absent_vmid.reset();
  p.memory->ours_vmid.reset();

  Result<proxmox::Upid> upid = p.runtime->client().CreateVm(node, vmid, CreateParams(desired));
  if (!upid.ok()) {
    if (upid.status().code() == Code::kAlreadyExists) return VmidTakenOnCreate(p, vmid);
    if (upid.status().code() == Code::kOutcomeUnknown) {
      // Never sent again: the next pass looks for the VM first.
      p.memory->created_vmid = vmid;
      p.memory->created_node = node;
      return After(options_.task_poll);
    }
    ReleaseClaims(p);
    Status failed = upid.status();
    if (failed.code() == Code::kNotFound) {
      // Nothing was created: something the create names (the image volume on
      // this node's storage, a storage, the node) is missing. Not "the VM
      // went away": report it and back off until the spec or Proxmox changes.
      failed = Status(Code::kInvalid, failed.message());
    }
    return ProxmoxFailure(p, std::move(failed), "creating " + name);
  }
  p.memory->created_vmid = vmid;
  p.memory->created_node = node;
  KnowChanged(p, vmid);
  const std::string what = "create " + name + " on " + node;
  Condition(p, condition::kProvisioned, ConditionStatus::kFalse, reason::kCreating, what);
  Event(p, kube::kEventNormal, reason::kCreating,
        "creating " + name + " on " + node + " from " + p.image.volume);
  return RecordTask(p, *upid, what);
}

Step VmReconciler::Impl::VmidTakenOnCreate(VmPass& p, int vmid) {
  ReleaseClaims(p);
  Result<std::shared_ptr<const Inventory>> fresh = p.runtime->RefreshInventory();
  if (!fresh.ok()) return ProxmoxFailure(p, fresh.status(), "listing the cluster");
  p.inventory = *fresh;
  const proxmox::ClusterResource* entry = p.inventory->FindVm(vmid);
  if (entry != nullptr && HasTag(entry->tags, p.uid_tag)) return After(kSoon);
  return VmidTaken(p, vmid, entry ? entry->node : p.status.node);
}

}  // namespace nixmox::controllers
