// The finalizer: a ProxmoxVM being deleted takes its VM with it (stop, then
// destroy, one task per pass), leaves it tagged nixmox-unmanaged (Retain), or
// refuses (spec.protected). A VM that does not carry the object's UID tag is
// never destroyed, whatever status says.
#include <algorithm>
#include <utility>

#include "src/api/reasons.h"
#include "src/controllers/resources.h"
#include "src/controllers/vm_reconcile.h"
#include "src/controllers/vm_status.h"
#include "src/kube/events.h"

namespace nixmox::controllers {
namespace {

namespace condition = api::condition;
namespace reason = api::reason;

}  // namespace

Step VmReconciler::Impl::ReconcileDeletion(VmPass& p) {
  if (!HasFinalizer(p.object)) {  // nothing of ours holds it: it goes by itself
    p.write_status = false;
    return Done();
  }
  const api::ProxmoxVmSpec& spec = p.vm.spec;
  p.status.phase = api::VmPhase::kDeleting;
  if (p.observe_only) {
    Block(p, reason::kDeleting,
          std::string("deletion waits: ") + kAnnotationReconcile +
              " is ObserveOnly, so the VM is not touched");
    return Done();
  }
  const bool destroy = spec.deletion_policy == api::DeletionPolicy::kDelete;
  if (destroy && spec.protection) {
    const std::string message =
        "not deleted: spec.protected is true; set it to false to let the VM go";
    Block(p, reason::kProtected, message);
    Event(p, kube::kEventWarning, reason::kProtected, message);
    return Done();  // the spec change that unsets it brings the object back
  }
  if (Step s = ResolveCluster(p)) {
    if (!p.cluster_missing) return s;
    // The ProxmoxCluster waits for its ProxmoxVMs before it goes; gone
    // anyway, nothing can be cleaned up any more.
    Event(p, kube::kEventWarning, reason::kClusterNotFound,
          "ProxmoxCluster " + spec.cluster_ref.name + " is gone; its VM is not cleaned up");
    return LetGo(p);
  }
  if (Step s = FollowTask(p)) return s;

  std::optional<int> vmid = p.status.vmid;
  std::string node = p.status.node;
  if (!vmid && p.memory->created_vmid) {
    vmid = p.memory->created_vmid;
    node = p.memory->created_node;
  }
  if (!vmid) {
    if (const proxmox::ClusterResource* tagged = p.inventory->FindVmByTag(p.uid_tag)) {
      vmid = tagged->vmid;
      node = tagged->node;
    }
  }
  if (!vmid) return LetGo(p);  // nothing was ever created
  const std::string name = "VM " + std::to_string(*vmid);
  Result<std::optional<FoundVm>> located = Locate(p, *vmid, node);
  if (!located.ok()) return ProxmoxFailure(p, located.status(), "looking for " + name);
  if (!located->has_value()) {
    if (IsVmConditionTrue(p.status, condition::kProvisioned)) {
      Event(p, kube::kEventNormal, reason::kDeleted, name + " is gone");
    }
    return LetGo(p);
  }
  FoundVm& vm = **located;
  if (vm.owner == FoundVm::Owner::kBeingCreated) return After(options_.task_poll);
  // The inventory's tags can be a period old: the live config decides.
  if (Status loaded = LoadConfig(p, vm); !loaded.ok()) {
    return ProxmoxFailure(p, loaded, "reading the config of " + name);
  }
  if (!HasTag(vm.tags, p.uid_tag)) {
    Event(p, kube::kEventWarning, reason::kVmidInUse,
          name + " does not carry tag " + p.uid_tag + "; it is left alone");
    return LetGo(p);
  }
  return destroy ? Destroy(p, vm) : Retain(p, vm);
}

Step VmReconciler::Impl::Destroy(VmPass& p, FoundVm& vm) {
  const std::string name = "VM " + std::to_string(vm.vmid);
  proxmox::PveClient& client = p.runtime->client();
  if (vm.config->protection()) {
    // spec.protected was just unset; Proxmox's flag follows before the destroy.
    proxmox::ConfigUpdate update;
    update.delete_keys = {"protection"};
    update.digest = vm.config->digest();
    if (Status s = client.UpdateVmConfigSync(vm.node, vm.vmid, update); !s.ok()) {
      return ProxmoxFailure(p, s, "unprotecting " + name);
    }
    return After(kSoon);
  }
  if (!vm.lock.empty()) return Locked(p, vm);
  Result<bool> running = IsRunning(p, vm);
  if (!running.ok()) return ProxmoxFailure(p, running.status(), "reading the state of " + name);
  if (*running) {
    const std::string what = "stop " + name + " to delete it";
    Result<proxmox::Upid> upid = client.StopVm(vm.node, vm.vmid, {.overrule_shutdown = true});
    if (!upid.ok()) return ProxmoxFailure(p, upid.status(), what);
    Event(p, kube::kEventNormal, reason::kStopping, "stopping " + name + " to delete it");
    return RecordTask(p, *upid, what);
  }
  const std::string what = "destroy " + name;
  Result<proxmox::Upid> upid =
      client.DeleteVm(vm.node, vm.vmid, {.purge = true, .destroy_unreferenced_disks = true});
  if (!upid.ok()) return ProxmoxFailure(p, upid.status(), what);
  Event(p, kube::kEventNormal, reason::kDeleting, "destroying " + name + " on " + vm.node);
  return RecordTask(p, *upid, what);
}

Step VmReconciler::Impl::Retain(VmPass& p, FoundVm& vm) {
  const std::string name = "VM " + std::to_string(vm.vmid);
  // The UID tag goes (the object it names is gone; without it the VM can be
  // adopted by another ProxmoxVM); the image tag stays as a record.
  std::vector<std::string> tags;
  for (const std::string& tag : vm.tags) {
    if (tag != p.uid_tag && tag != kUnmanagedTag) tags.push_back(tag);
  }
  tags.push_back(kUnmanagedTag);
  std::sort(tags.begin(), tags.end());
  proxmox::ConfigUpdate update;
  update.set.SetTags(tags);
  update.digest = vm.config->digest();
  if (Status s = p.runtime->client().UpdateVmConfigSync(vm.node, vm.vmid, update); !s.ok()) {
    return ProxmoxFailure(p, s, "untagging " + name);
  }
  Event(p, kube::kEventNormal, reason::kRetained,
        name + " on " + vm.node + " stays in Proxmox (deletionPolicy Retain), tagged " +
            kUnmanagedTag);
  return LetGo(p);
}

Step VmReconciler::Impl::LetGo(VmPass& p) {
  kube::Object next = p.object;
  kube::Object& finalizers = next["metadata"]["finalizers"];
  finalizers.erase(std::remove(finalizers.begin(), finalizers.end(), kFinalizer), finalizers.end());
  Result<kube::Object> updated = writer_.Update(ProxmoxVms(), next);
  if (!updated.ok()) return WriteFailed(updated.status());
  if (p.runtime && p.status.vmid) p.runtime->vmids().Release(*p.status.vmid);
  Forget(p.key);
  p.memory = nullptr;
  p.write_status = false;
  return Done();
}

}  // namespace nixmox::controllers
