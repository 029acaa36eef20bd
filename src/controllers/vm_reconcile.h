// The ProxmoxVM reconciler's insides, shared by its parts: vm_controller.cc
// (the pass: spec, finalizer, cluster, image, the Proxmox task in flight;
// status; shared helpers), vm_provision.cc (finding the VM, adopting one,
// choosing VMID and node, creating), vm_existing.cc (a VM that exists: config
// drift, image rollout, power, guest agent and addresses) and vm_delete.cc
// (the finalizer's cleanup). Internal to src/controllers.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "src/api/types.h"
#include "src/common/clock.h"
#include "src/common/status.h"
#include "src/controllers/cluster_runtime.h"
#include "src/controllers/resources.h"
#include "src/controllers/vm_controller.h"
#include "src/controllers/vm_plan.h"
#include "src/proxmox/types.h"

namespace nixmox::controllers {

// A step's verdict: nullopt = go on with the next step; otherwise the pass
// ends with this result (status is written first either way).
using Step = std::optional<Result<kube::ReconcileResult>>;

// What the reconciler remembers about one ProxmoxVM between passes. Losing
// it (a restart) costs a few extra reads, never a wrong action: everything
// that decides an action is in status or in Proxmox.
struct VmMemory {
  // The last config comparison. The config is read again when the spec's
  // generation or the VM's inventory entry moved, or config_resync passed.
  std::int64_t compared_generation = 0;
  std::string compared_entry;
  std::string compared_view;  // InventoryView of the config compared
  std::optional<Clock::SteadyTime> compared_at;
  // A config change was sent: ask Proxmox which keys wait for a restart.
  bool check_pending = false;
  // The next guest-agent query, and how many in a row went unanswered.
  std::optional<Clock::SteadyTime> agent_due;
  int agent_misses = 0;
  // The UPID in status.lastTask whose end was already acted on.
  std::string finished_task;
  // A create was sent for this VMID: it is looked for there even if the
  // status write that recorded it is lost.
  std::optional<int> created_vmid;
  std::string created_node;
  // What this process already knows about the VMID in status while the
  // inventory does not show it yet, so a pass need not ask Proxmox again:
  // no VM has it (chosen free here, or a read said so, and no create sent
  // since), or the VM is ours (a read saw our tag; `ours_tags` are its
  // tags). Both are dropped by anything that could change them (a create, a
  // destroy, a NotFound).
  std::optional<int> absent_vmid;
  // When a create or destroy of ours last changed whether VM `changed_vmid`
  // exists: an inventory listed before then shows it as it was, so its
  // entry for that VMID is not believed.
  int changed_vmid = 0;
  Clock::SteadyTime changed_at{};
  std::optional<int> ours_vmid;
  std::vector<std::string> ours_tags;
  // The power state a task of ours or a read told, and when: it stands in
  // for a read until an inventory listed later says otherwise, and is
  // dropped when another task starts.
  std::optional<bool> known_running;
  int known_running_vmid = 0;
  Clock::SteadyTime known_running_at{};
  // resourceVersions this process wrote over: a pass that reads one from
  // the cache runs ahead of it and waits for the watch to bring the write.
  std::vector<std::string> superseded;
  // The cluster whose storage slot / placement ledger holds an entry for us.
  std::string cluster_key;
  std::string slot_storage;
};

// Where the root disk comes from.
struct ImageSource {
  bool ready = false;
  std::string volume;      // NixImage status.volumeID, or spec.sourceVolume
  std::string store_path;  // empty for a sourceVolume
  std::string key;         // "ns/name" of the NixImage; empty for a sourceVolume
  int max_unavailable = 1;  // the NixImage's rollout.maxUnavailable
};

// A VM in Proxmox with the VMID a ProxmoxVM looks for.
struct FoundVm {
  enum class Owner {
    kUs,            // carries our UID tag
    kOther,         // does not: never touched (unless adopted)
    kBeingCreated,  // locked "create", tags not written yet: wait
  };
  Owner owner = Owner::kOther;
  int vmid = 0;
  std::string node;
  std::vector<std::string> tags;
  std::string lock;
  std::optional<bool> running;  // the inventory's view until confirmed
  bool running_confirmed = false;
  std::optional<proxmox::VmConfig> config;  // read in this pass
  std::string fingerprint;                  // the inventory entry's observable fields
  std::string view;                         // InventoryView of the entry
};

// One reconcile of one ProxmoxVM: what it read and the status it builds.
struct VmPass {
  std::string key;
  kube::Object object;  // as last written by this pass
  api::ProxmoxVm vm;
  api::ProxmoxVmStatus read_status;
  api::ProxmoxVmStatus status;  // written at the end when it differs from read_status
  VmMemory* memory = nullptr;
  std::string uid_tag;
  bool observe_only = false;
  bool write_status = true;  // false once the object is gone (or not ours to report on)

  api::ProxmoxClusterSpec cluster;
  bool cluster_missing = false;
  std::shared_ptr<ClusterRuntime> runtime;
  std::shared_ptr<const Inventory> inventory;
  ImageSource image;

  // Why Ready is False when a step stopped short; otherwise Ready is derived.
  std::optional<std::pair<std::string, std::string>> blocked;

  std::int64_t generation() const { return kube::GenerationOf(object); }
};

struct VmReconciler::Impl {
  Impl(kube::Reader& reader, kube::Writer& writer, kube::EventRecorder& events,
       ClusterRegistry& registry, VmControllerOptions options);

  Result<kube::ReconcileResult> Reconcile(const kube::Request& request);

  // vm_controller.cc: the pass.
  Step ReconcileLiving(VmPass& p);
  Step RejectSpec(VmPass& p, const std::vector<FieldError>& errors);
  Step EnsureFinalizer(VmPass& p);
  // Replaces p.object with what a write returned, remembering the old version.
  void Wrote(VmPass& p, kube::Object written);
  Step ResolveCluster(VmPass& p);
  Step ResolveImage(VmPass& p);
  Step WaitForImage(VmPass& p);
  Step FollowTask(VmPass& p);
  Result<kube::ReconcileResult> Finish(VmPass& p, Step step);
  // Writes status (Ready derived, observedGeneration) when it changed.
  Status WriteStatus(VmPass& p);

  // vm_provision.cc: finding the VM, or making it.
  Step FindVm(VmPass& p, std::optional<FoundVm>* found);
  Result<std::optional<FoundVm>> Locate(VmPass& p, int vmid, const std::string& node_hint);
  Step Adopt(VmPass& p, FoundVm& vm);
  Step VmidTaken(VmPass& p, int vmid, const std::string& node);
  Step Allocate(VmPass& p);
  Step ChooseNode(VmPass& p, std::string* node);
  Result<std::set<int>> HeldVmids(VmPass& p);
  Step Create(VmPass& p);
  Step VmidTakenOnCreate(VmPass& p, int vmid);
  Step ObserveAbsent(VmPass& p, std::string message);

  // vm_existing.cc: a VM that exists and is ours.
  Step ManageExisting(VmPass& p, FoundVm& vm);
  Step SyncConfig(VmPass& p, FoundVm& vm);
  Step CheckPending(VmPass& p, FoundVm& vm);
  Step ApplyConfig(VmPass& p, FoundVm& vm, const ConfigDiff& diff);
  Step RollOut(VmPass& p, FoundVm& vm);
  // Whether this VM may start re-creating for a new image now: fewer than
  // the image's maxUnavailable VMs are between their stop and Ready; if not,
  // it stands in line for the next slot.
  Result<bool> EnterRollout(VmPass& p);
  void LeaveRollout(const std::string& vm_key);
  Step RememberMacs(VmPass& p, FoundVm& vm);
  Step ForgetMacs(VmPass& p);
  Step ApplyPowerState(VmPass& p, FoundVm& vm);
  void ObserveGuest(VmPass& p, FoundVm& vm);
  std::chrono::milliseconds NextLook(VmPass& p, const FoundVm& vm);
  // agent_period, stretched so that re-checking every running VM of the
  // cluster takes at most half of its request budget.
  std::chrono::milliseconds AgentPeriod(const VmPass& p) const;

  // vm_delete.cc: the finalizer.
  Step ReconcileDeletion(VmPass& p);
  Step Destroy(VmPass& p, FoundVm& vm);
  Step Retain(VmPass& p, FoundVm& vm);
  Step LetGo(VmPass& p);

  // Shared helpers (vm_controller.cc).
  Status LoadConfig(VmPass& p, FoundVm& vm);
  Result<bool> IsRunning(VmPass& p, FoundVm& vm);
  void KnowRunning(VmPass& p, int vmid, bool running);
  // A create or destroy of ours changes whether VM `vmid` exists, from now.
  void KnowChanged(VmPass& p, int vmid);
  Step ProxmoxFailure(VmPass& p, Status status, std::string_view what);
  Step Locked(VmPass& p, const FoundVm& vm);
  Step WriteFailed(const Status& status);
  Step RecordTask(VmPass& p, const proxmox::Upid& upid, std::string what);
  void Condition(VmPass& p, std::string_view type, api::ConditionStatus value,
                 std::string_view reason, std::string message);
  void Block(VmPass& p, std::string_view reason, std::string message);
  void Event(VmPass& p, std::string_view type, std::string_view reason, const std::string& message);
  PlanInputs Inputs(const VmPass& p) const;
  void ReleaseClaims(VmPass& p);
  VmMemory& MemoryFor(const std::string& key);
  void Forget(const std::string& key);

  kube::Reader& reader_;
  kube::Writer& writer_;
  kube::EventRecorder& events_;
  ClusterRegistry& registry_;
  const VmControllerOptions options_;
  Clock& clock_;

  std::mutex mu_;  // guards memory_ (each entry is used by its key's worker only)
  std::map<std::string, VmMemory> memory_;
  // VMs admitted to a rollout and not yet Ready on the new image, per
  // NixImage key: the status in the cache lags, this does not.
  std::mutex rollout_mu_;
  std::map<std::string, std::set<std::string>> rolling_;
  // VMs turned away for want of a slot, in order, per NixImage key.
  std::map<std::string, std::deque<std::string>> rollout_line_;
};

// What both an inventory entry and a config say of a VM (name, tags, vCPUs,
// memory), in one comparable form.
std::string InventoryView(const proxmox::ClusterResource& entry);
std::string InventoryView(const proxmox::VmConfig& config);

// Small pieces the parts share.
std::string Annotation(const kube::Object& obj, const char* name);
bool HasFinalizer(const kube::Object& obj);
// Puts kFinalizer on `obj` (an Update) unless it is there; `obj` becomes
// what the server returned.
Status AddFinalizer(kube::Writer& writer, const kube::ResourceType& type, kube::Object& obj);
bool HasTag(const std::vector<std::string>& tags, std::string_view tag);
// The image tag among `tags` ("nixmox-image-..."), or "".
std::string ImageTagIn(const std::vector<std::string>& tags);
std::string Join(const std::vector<std::string>& lines, std::string_view separator);
inline Step After(std::chrono::milliseconds delay) {
  return Result<kube::ReconcileResult>(kube::ReconcileResult{.requeue_after = delay});
}
inline Step Done() { return Result<kube::ReconcileResult>(kube::ReconcileResult{}); }
inline Step Fail(Status status) { return Result<kube::ReconcileResult>(std::move(status)); }

// How soon a pass that wrote something the next one builds on comes back.
inline constexpr std::chrono::milliseconds kSoon{1000};
// How soon a locked VM is looked at again.
inline constexpr std::chrono::milliseconds kLockedRetry{3000};
// After a status write the next pass starts from: its watch event brings the
// key back at once; this is only the fallback should the event be lost.
inline constexpr std::chrono::milliseconds kAfterWrite{10000};

}  // namespace nixmox::controllers
