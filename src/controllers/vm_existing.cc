// A VM that exists and carries our tag, one step per pass, in this order:
// its config against the spec, its image against the NixImage's, its power
// state against spec.powerState, and (no mutation) what its guest agent says.
#include <algorithm>
#include <set>
#include <utility>

#include "src/api/json.h"
#include "src/api/reasons.h"
#include "src/controllers/addresses.h"
#include "src/controllers/resources.h"
#include "src/controllers/vm_reconcile.h"
#include "src/controllers/vm_status.h"
#include "src/kube/events.h"

namespace nixmox::controllers {
namespace {

namespace condition = api::condition;
namespace reason = api::reason;
using api::ConditionStatus;

// A graceful shutdown gets this long before Proxmox stops the VM hard.
constexpr int kShutdownTimeoutSeconds = 120;
std::chrono::milliseconds Remaining(Clock::SteadyTime due, Clock::SteadyTime now) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(due - now);
}

}  // namespace

Step VmReconciler::Impl::ManageExisting(VmPass& p, FoundVm& vm) {
  const std::string name = "VM " + std::to_string(vm.vmid);
  if (!p.status.vmid) {
    // Found by its tag: the status write that named it was lost. Record it
    // before anything else is done with it.
    p.status.vmid = vm.vmid;
    p.status.node = vm.node;
    Event(p, kube::kEventNormal, reason::kAdopted, "found " + name + " on " + vm.node);
    return After(kSoon);
  }
  if (p.status.node != vm.node) {
    Event(p, kube::kEventNormal, reason::kMoved,
          name + " moved from " + p.status.node + " to " + vm.node);
    p.status.node = vm.node;
  }
  p.memory->created_vmid.reset();
  p.runtime->placements().Remove(p.key);
  Condition(p, condition::kProvisioned, ConditionStatus::kTrue, reason::kCreated,
            name + " exists on " + vm.node);
  if (Step s = SyncConfig(p, vm)) return s;
  if (Step s = RollOut(p, vm)) return s;
  if (Step s = ApplyPowerState(p, vm)) return s;
  ObserveGuest(p, vm);
  return After(NextLook(p, vm));
}

// ---------------------------------------------------------------------------
// Config

Step VmReconciler::Impl::SyncConfig(VmPass& p, FoundVm& vm) {
  VmMemory& memory = *p.memory;
  const Clock::SteadyTime now = clock_.Now();
  // Nothing that could have changed the config moved: skip the read.
  if (memory.compared_at && memory.compared_generation == p.generation() &&
      memory.compared_entry == vm.fingerprint &&
      now - *memory.compared_at < options_.config_resync) {
    return std::nullopt;
  }
  // A VM compared before the inventory showed it (just created) appears
  // there: when it shows what the config compared then said, nothing moved.
  if (memory.compared_at && memory.compared_generation == p.generation() &&
      memory.compared_entry.empty() && !vm.fingerprint.empty() &&
      now - *memory.compared_at < options_.config_resync && memory.compared_view == vm.view &&
      !memory.check_pending) {
    memory.compared_entry = vm.fingerprint;
    return std::nullopt;
  }
  const std::string name = "VM " + std::to_string(vm.vmid);
  if (Status loaded = LoadConfig(p, vm); !loaded.ok()) {
    return ProxmoxFailure(p, loaded, "reading the config of " + name);
  }
  if (Step s = CheckPending(p, vm)) return s;
  // Diff keeps the image tag the VM has: only a rollout changes it.
  const ConfigDiff diff = Diff(Desire(Inputs(p)), *vm.config);
  const std::string left_alone =
      diff.unfixable.empty() ? "" : "; left alone: " + Join(diff.unfixable, "; ");
  if (diff.empty()) {
    if (diff.unfixable.empty()) {
      Condition(p, condition::kInSync, ConditionStatus::kTrue, reason::kUpToDate,
                name + " matches the spec");
    } else {
      Condition(p, condition::kInSync, ConditionStatus::kFalse, reason::kUnfixableDrift,
                "left alone: " + Join(diff.unfixable, "; "));
    }
  } else {
    Condition(p, condition::kInSync, ConditionStatus::kFalse, reason::kConfigDrift,
              Join(diff.drift, "; ") + left_alone);
  }
  if (diff.empty() || p.observe_only) {
    memory.compared_generation = p.generation();
    memory.compared_entry = vm.fingerprint;
    memory.compared_view = InventoryView(*vm.config);
    memory.compared_at = now;
    return std::nullopt;
  }
  Event(p, kube::kEventNormal, reason::kConfigDrift,
        name + " differs from the spec: " + Join(diff.drift, "; "));
  if (!vm.lock.empty()) return Locked(p, vm);
  // Read again next pass: that read confirms the change and asks what waits
  // for a restart.
  memory.compared_at.reset();
  memory.check_pending = true;
  return ApplyConfig(p, vm, diff);
}

Step VmReconciler::Impl::ApplyConfig(VmPass& p, FoundVm& vm, const ConfigDiff& diff) {
  const std::string name = "VM " + std::to_string(vm.vmid);
  proxmox::PveClient& client = p.runtime->client();
  std::optional<proxmox::Upid> task;
  std::string what;
  p.memory->ours_vmid.reset();  // its tags may change: read them again
  if (!diff.update.set.empty() || !diff.update.delete_keys.empty()) {
    what = "update the config of " + name;
    if (diff.allocates) {
      // Allocating a disk is slow: as a task, never as a synchronous PUT.
      Result<std::optional<proxmox::Upid>> sent =
          client.UpdateVmConfig(vm.node, vm.vmid, diff.update);
      if (!sent.ok()) return ProxmoxFailure(p, sent.status(), what);
      task = *sent;
    } else if (Status s = client.UpdateVmConfigSync(vm.node, vm.vmid, diff.update); !s.ok()) {
      return ProxmoxFailure(p, s, what);
    }
  } else {
    const Resize& resize = diff.resizes.front();
    what = "resize " + resize.slot + " of " + name + " to " + resize.size;
    Result<std::optional<proxmox::Upid>> sent =
        client.ResizeDisk(vm.node, vm.vmid, resize.slot, resize.size);
    if (!sent.ok()) return ProxmoxFailure(p, sent.status(), what);
    task = *sent;
  }
  Event(p, kube::kEventNormal, reason::kConfigUpdated, what + ": " + Join(diff.drift, "; "));
  if (task) return RecordTask(p, *task, what);
  return After(kSoon);
}

Step VmReconciler::Impl::CheckPending(VmPass& p, FoundVm& vm) {
  VmMemory& memory = *p.memory;
  const bool reported = IsVmConditionTrue(p.status, condition::kRestartRequired);
  if (!memory.check_pending && !reported) return std::nullopt;
  Result<std::vector<proxmox::PendingEntry>> pending =
      p.runtime->client().GetVmPending(vm.node, vm.vmid);
  if (!pending.ok()) {
    return ProxmoxFailure(p, pending.status(),
                          "reading the pending changes of VM " + std::to_string(vm.vmid));
  }
  memory.check_pending = false;
  const std::vector<std::string> keys = KeysAwaitingRestart(*pending);
  if (!keys.empty()) {
    // The spec has no restart policy: nixmox never restarts a VM for a
    // config change on its own, it says so and leaves the VM running.
    Condition(p, condition::kRestartRequired, ConditionStatus::kTrue, reason::kPendingChanges,
              Join(keys, ", ") + " take effect when the VM restarts");
  } else if (reported || FindVmCondition(p.status, condition::kRestartRequired)) {
    Condition(p, condition::kRestartRequired, ConditionStatus::kFalse, reason::kNoPendingChanges,
              "no change waits for a restart");
  }
  return std::nullopt;
}

// ---------------------------------------------------------------------------
// Image rollout

// A sibling (another ProxmoxVM of the same NixImage) is unavailable for the
// rollout while it re-creates (UpdateAvailable/Recreating) or runs the new
// image without being Ready yet.
static bool UnavailableForRollout(const api::ProxmoxVmStatus& status, const std::string& store_path) {
  const api::Condition* update = FindVmCondition(status, condition::kUpdateAvailable);
  if (update && update->status == ConditionStatus::kTrue && update->reason == reason::kRecreating) {
    return true;
  }
  return status.image_store_path == store_path && !IsVmConditionTrue(status, condition::kReady);
}

Result<bool> VmReconciler::Impl::EnterRollout(VmPass& p) {
  // Admitted before a restart: its status says it is re-creating.
  if (const api::Condition* update = FindVmCondition(p.status, condition::kUpdateAvailable);
      update && update->status == ConditionStatus::kTrue && update->reason == reason::kRecreating) {
    std::lock_guard lock(rollout_mu_);
    rolling_[p.image.key].insert(p.key);
    return true;
  }
  std::set<std::string> busy;
  if (options_.rollout_busy) {
    for (const std::string& path : {std::string(), p.image.store_path}) {
      ASSIGN_OR_RETURN(std::vector<std::string> keys,
                       options_.rollout_busy(ImagePathValue(p.image.key, path)));
      busy.insert(keys.begin(), keys.end());
    }
  } else {
    ASSIGN_OR_RETURN(kube::ObjectList all,
                     reader_.List(ProxmoxVms(), kube::NamespaceOf(p.object), {}));
    const std::string image = p.vm.spec.image_ref->name;
    for (const kube::Object& obj : all.items) {
      if (kube::StringAt(obj, {"spec", "imageRef", "name"}) != image) continue;
      Result<api::ProxmoxVm> vm = api::ProxmoxVmFromJson(obj);
      if (vm.ok() && UnavailableForRollout(vm->status, p.image.store_path)) {
        busy.insert(kube::KeyOf(obj));
      }
    }
  }
  busy.erase(p.key);
  std::lock_guard lock(rollout_mu_);
  std::set<std::string>& rolling = rolling_[p.image.key];
  std::deque<std::string>& line = rollout_line_[p.image.key];
  if (rolling.contains(p.key)) return true;
  busy.insert(rolling.begin(), rolling.end());
  if (static_cast<int>(busy.size()) < std::max(1, p.image.max_unavailable)) {
    rolling.insert(p.key);
    std::erase(line, p.key);
    if (line.empty()) rollout_line_.erase(p.image.key);
    return true;
  }
  if (std::find(line.begin(), line.end(), p.key) == line.end()) line.push_back(p.key);
  return false;
}

std::string VmReconciler::TakeRolloutWaiter(const std::string& image_key) {
  std::lock_guard lock(impl_->rollout_mu_);
  auto line = impl_->rollout_line_.find(image_key);
  if (line == impl_->rollout_line_.end()) return "";
  std::string next = std::move(line->second.front());
  line->second.pop_front();
  if (line->second.empty()) impl_->rollout_line_.erase(line);
  return next;
}

void VmReconciler::Impl::LeaveRollout(const std::string& vm_key) {
  std::lock_guard lock(rollout_mu_);
  for (auto it = rolling_.begin(); it != rolling_.end();) {
    it->second.erase(vm_key);
    it = it->second.empty() ? rolling_.erase(it) : std::next(it);
  }
  for (auto it = rollout_line_.begin(); it != rollout_line_.end();) {
    std::erase(it->second, vm_key);
    it = it->second.empty() ? rollout_line_.erase(it) : std::next(it);
  }
}

Step VmReconciler::Impl::RollOut(VmPass& p, FoundVm& vm) {
  if (!p.vm.spec.image_ref || !p.image.ready) return std::nullopt;
  const std::string want = ImageTag(p.image.store_path);
  const std::string have = ImageTagIn(vm.tags);
  const std::string name = "VM " + std::to_string(vm.vmid);
  // No image tag: the config step puts one back; nothing to compare yet.
  if (have.empty()) return std::nullopt;
  if (have == want) {
    LeaveRollout(p.key);
    p.status.image_store_path = p.image.store_path;
    if (FindVmCondition(p.status, condition::kUpdateAvailable)) {
      Condition(p, condition::kUpdateAvailable, ConditionStatus::kFalse, reason::kUpToDate,
                name + " runs " + p.image.store_path);
    }
    return ForgetMacs(p);
  }
  const std::string news = "NixImage " + p.vm.spec.image_ref->name + " moved to " +
                           p.image.store_path + "; " + name + " runs " + have;
  if (p.vm.spec.update_policy == api::UpdatePolicy::kManual) {
    Condition(p, condition::kUpdateAvailable, ConditionStatus::kTrue, reason::kUpdatePending,
              news + " (updatePolicy Manual)");
    return std::nullopt;
  }
  if (p.vm.spec.protection) {  // a protected VM is never destroyed, not even to update it
    Condition(p, condition::kUpdateAvailable, ConditionStatus::kTrue, reason::kProtected,
              news + " (not re-created while protected)");
    return std::nullopt;
  }
  if (p.observe_only) {
    Condition(p, condition::kUpdateAvailable, ConditionStatus::kTrue, reason::kUpdatePending,
              news + " (observing only)");
    return std::nullopt;
  }
  Result<bool> admitted = EnterRollout(p);
  if (!admitted.ok()) return Fail(admitted.status());
  if (!*admitted) {
    // No names here: they change with every sibling's step, and rewriting
    // the status of every waiting VM each time would flood the API server.
    Condition(p, condition::kUpdateAvailable, ConditionStatus::kTrue, reason::kRolloutWaiting,
              news + "; waiting: maxUnavailable " + std::to_string(p.image.max_unavailable) +
                  " reached (VMs re-creating or not Ready on the new image)");
    return After(options_.rollout_poll);
  }
  // Recreate: stop, remember the MACs, destroy; the VM is then absent and
  // the create path builds it again with the same VMID from the new image.
  p.status.phase = api::VmPhase::kUpdating;
  Condition(p, condition::kUpdateAvailable, ConditionStatus::kTrue, reason::kRecreating, news);
  Result<bool> running = IsRunning(p, vm);
  if (!running.ok()) return ProxmoxFailure(p, running.status(), "reading the state of " + name);
  if (!vm.lock.empty()) return Locked(p, vm);
  proxmox::PveClient& client = p.runtime->client();
  if (*running) {
    const std::string what = "stop " + name + " to re-create it";
    Result<proxmox::Upid> upid = client.StopVm(vm.node, vm.vmid, proxmox::StopOptions{});
    if (!upid.ok()) return ProxmoxFailure(p, upid.status(), what);
    Event(p, kube::kEventNormal, reason::kStopping, what + " from " + p.image.store_path);
    return RecordTask(p, *upid, what);
  }
  if (Step s = RememberMacs(p, vm)) return s;
  const std::string what = "destroy " + name + " to re-create it";
  Result<proxmox::Upid> upid =
      client.DeleteVm(vm.node, vm.vmid, {.purge = true, .destroy_unreferenced_disks = true});
  if (!upid.ok()) return ProxmoxFailure(p, upid.status(), what);
  Event(p, kube::kEventNormal, reason::kRecreating, what + " from " + p.image.store_path);
  return RecordTask(p, *upid, what);
}

Step VmReconciler::Impl::RememberMacs(VmPass& p, FoundVm& vm) {
  if (Status loaded = LoadConfig(p, vm); !loaded.ok()) {
    return ProxmoxFailure(p, loaded, "reading the config of VM " + std::to_string(vm.vmid));
  }
  std::vector<std::string> macs;
  for (int index : vm.config->NetIndexes()) {
    Result<proxmox::NetConfig> net = vm.config->net(index);
    if (net.ok() && !net->macaddr.empty()) {
      macs.push_back("net" + std::to_string(index) + "=" + net->macaddr);
    }
  }
  const std::string value = Join(macs, ",");
  if (kube::StringAt(p.object, {"metadata", "annotations", kAnnotationRecreateMacs}) == value) {
    return std::nullopt;
  }
  kube::Object next = p.object;
  next["metadata"]["annotations"][kAnnotationRecreateMacs] = value;
  Result<kube::Object> updated = writer_.Update(ProxmoxVms(), next);
  if (!updated.ok()) return WriteFailed(updated.status());
  Wrote(p, std::move(updated).value());
  return std::nullopt;
}

Step VmReconciler::Impl::ForgetMacs(VmPass& p) {
  if (!p.object["metadata"].contains("annotations") ||
      !p.object["metadata"]["annotations"].contains(kAnnotationRecreateMacs)) {
    return std::nullopt;
  }
  kube::Object next = p.object;
  next["metadata"]["annotations"].erase(kAnnotationRecreateMacs);
  Result<kube::Object> updated = writer_.Update(ProxmoxVms(), next);
  if (!updated.ok()) return WriteFailed(updated.status());
  Wrote(p, std::move(updated).value());
  return std::nullopt;
}

// ---------------------------------------------------------------------------
// Power

Step VmReconciler::Impl::ApplyPowerState(VmPass& p, FoundVm& vm) {
  const std::string name = "VM " + std::to_string(vm.vmid);
  const bool want = p.vm.spec.power_state == api::PowerState::kRunning;
  // The inventory may be a period old: confirm before acting on a mismatch.
  if (!vm.running || *vm.running != want) {
    Result<bool> running = IsRunning(p, vm);
    if (!running.ok()) {
      return ProxmoxFailure(p, running.status(), "reading the state of " + name);
    }
  }
  const bool running = *vm.running;
  if (running == want || p.observe_only) {
    p.status.phase = running ? api::VmPhase::kRunning : api::VmPhase::kStopped;
    return std::nullopt;
  }
  if (!vm.lock.empty()) return Locked(p, vm);
  proxmox::PveClient& client = p.runtime->client();
  if (want) {
    const std::string what = "start " + name;
    Result<proxmox::Upid> upid = client.StartVm(vm.node, vm.vmid);
    if (!upid.ok()) return ProxmoxFailure(p, upid.status(), what);
    p.status.phase = api::VmPhase::kStarting;
    // The guest needs a moment to boot before its agent can answer.
    p.memory->agent_due = clock_.Now() + std::min(options_.agent_retry, options_.agent_period);
    p.memory->agent_misses = 0;
    Event(p, kube::kEventNormal, reason::kStarting, "starting " + name + " on " + vm.node);
    return RecordTask(p, *upid, what);
  }
  const std::string what = "shut down " + name;
  Result<proxmox::Upid> upid = client.ShutdownVm(
      vm.node, vm.vmid, {.timeout_seconds = kShutdownTimeoutSeconds, .force_stop = true});
  if (!upid.ok()) return ProxmoxFailure(p, upid.status(), what);
  p.status.phase = api::VmPhase::kRunning;
  Event(p, kube::kEventNormal, reason::kStopping, "shutting down " + name + " on " + vm.node);
  return RecordTask(p, *upid, what);
}

// ---------------------------------------------------------------------------
// Guest agent, addresses, reachability

void VmReconciler::Impl::ObserveGuest(VmPass& p, FoundVm& vm) {
  VmMemory& memory = *p.memory;
  const std::string name = "VM " + std::to_string(vm.vmid);
  if (!vm.running.value_or(false)) {
    memory.agent_due.reset();
    memory.agent_misses = 0;
    p.status.ip_addresses.clear();
    p.status.primary_ip.clear();
    Condition(p, condition::kAgentConnected, ConditionStatus::kFalse, reason::kStopped,
              name + " is stopped");
    Condition(p, condition::kReachable, ConditionStatus::kFalse, reason::kStopped,
              name + " is stopped");
    return;
  }
  const Clock::SteadyTime now = clock_.Now();
  if (memory.agent_due && now < *memory.agent_due) return;

  Result<std::vector<proxmox::GuestInterface>> ifaces =
      p.runtime->client().AgentNetworkInterfaces(vm.node, vm.vmid);
  if (!ifaces.ok()) {
    // Not a failure: the guest boots, or has no agent. The last addresses stay.
    ++memory.agent_misses;
    const auto backoff = options_.agent_retry * (1 << std::min(memory.agent_misses - 1, 6));
    memory.agent_due = now + std::min<std::chrono::milliseconds>(backoff, options_.agent_period);
    Condition(p, condition::kAgentConnected, ConditionStatus::kFalse, reason::kAgentNotRunning,
              "the guest agent of " + name + " does not answer: " + ifaces.status().message());
    return;
  }
  memory.agent_misses = 0;
  memory.agent_due = now + AgentPeriod(p);
  Condition(p, condition::kAgentConnected, ConditionStatus::kTrue, reason::kAgentResponding,
            "the guest agent of " + name + " answers");

  std::vector<api::VmAddress> addresses = ClassifyAddresses(*ifaces);
  std::vector<Probe> probes;
  bool awaiting_probe = false;
  const api::Reachability& reach = p.vm.spec.reachability;
  for (api::VmAddress& address : addresses) {
    std::optional<bool> answered;
    if (options_.prober != nullptr) {
      answered = options_.prober->Check(address.address, reach.probe_port,
                                        std::chrono::seconds(reach.timeout_seconds),
                                        options_.agent_period, [] {});
    }
    const bool pending = !answered && options_.prober != nullptr &&
                         options_.prober->Allowed(address.address);
    awaiting_probe |= pending;
    address.reachable = answered.value_or(false);
    probes.push_back(pending     ? Probe::kPending
                     : !answered ? Probe::kUnknown
                     : *answered ? Probe::kReachable
                                 : Probe::kUnreachable);
  }
  // A probe was only scheduled: look for its result soon.
  if (awaiting_probe) {
    memory.agent_due = now + std::min(options_.agent_retry, options_.agent_period);
  }
  p.status.primary_ip = SelectPrimary(addresses, probes, reach.address_family);
  p.status.ip_addresses = std::move(addresses);

  const std::string port = std::to_string(reach.probe_port);
  auto reachable = std::find(probes.begin(), probes.end(), Probe::kReachable);
  if (p.status.ip_addresses.empty()) {
    Condition(p, condition::kReachable, ConditionStatus::kFalse, reason::kNoAddress,
              "the guest agent reports no usable address");
  } else if (reachable != probes.end()) {
    Condition(
        p, condition::kReachable, ConditionStatus::kTrue, reason::kProbeSucceeded,
        p.status.ip_addresses[reachable - probes.begin()].address + " answers on port " + port);
  } else if (std::find(probes.begin(), probes.end(), Probe::kUnknown) == probes.end()) {
    Condition(p, condition::kReachable, ConditionStatus::kFalse, reason::kProbeFailed,
              "no address answers on port " + port);
  } else {
    Condition(p, condition::kReachable, ConditionStatus::kUnknown, reason::kNotProbed,
              options_.prober ? "no probe result yet" : "probing is off");
  }
}

std::chrono::milliseconds VmReconciler::Impl::AgentPeriod(const VmPass& p) const {
  const int running = p.inventory ? p.inventory->managed_running : 0;
  const double share = std::max(1, p.cluster.max_requests_per_second) / 2.0;
  const auto spread = std::chrono::milliseconds(static_cast<long long>(running * 1000.0 / share));
  return std::max(options_.agent_period, spread);
}

std::chrono::milliseconds VmReconciler::Impl::NextLook(VmPass& p, const FoundVm& vm) {
  std::chrono::milliseconds next = options_.config_resync;
  if (vm.running.value_or(false) && p.memory->agent_due) {
    next = std::min(next, Remaining(*p.memory->agent_due, clock_.Now()));
  }
  return std::max(next, kSoon);
}

}  // namespace nixmox::controllers
