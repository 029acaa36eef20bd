// The ProxmoxVM pass, top to bottom: read the object, check the spec, hold the
// finalizer, find the cluster and the image, follow the Proxmox task in
// flight, then find the VM (vm_provision.cc) and either manage it
// (vm_existing.cc) or create it (vm_provision.cc). Status is written once, at
// the end, and only when it changed. The helpers every part uses are here too.
#include "src/controllers/vm_controller.h"

#include <algorithm>
#include <cstdlib>
#include <utility>

#include "src/api/json.h"
#include "src/api/reasons.h"
#include "src/api/validation.h"
#include "src/controllers/resources.h"
#include "src/controllers/vm_metrics.h"
#include "src/controllers/vm_reconcile.h"
#include "src/controllers/vm_status.h"
#include "src/kube/events.h"

namespace nixmox::controllers {
namespace {

namespace condition = api::condition;
namespace reason = api::reason;
using api::ConditionStatus;
using kube::ReconcileResult;

constexpr std::chrono::milliseconds kClusterNotFoundRetry = std::chrono::seconds(30);
constexpr std::chrono::milliseconds kClusterNotReadyRetry = std::chrono::seconds(10);
constexpr std::chrono::milliseconds kImageRetry = std::chrono::seconds(30);

bool Deleting(const kube::Object& obj) {
  return !kube::StringAt(obj, {"metadata", "deletionTimestamp"}).empty();
}

std::string DescribeTaskOutcome(const proxmox::TaskStatus& task) {
  return task.exitstatus.empty() ? std::string("failed") : task.exitstatus;
}

}  // namespace

std::string Annotation(const kube::Object& obj, const char* name) {
  return kube::StringAt(obj, {"metadata", "annotations", name});
}

bool HasFinalizer(const kube::Object& obj) {
  const auto metadata = obj.find("metadata");
  if (metadata == obj.end() || !metadata->is_object()) return false;
  const auto finalizers = metadata->find("finalizers");
  if (finalizers == metadata->end() || !finalizers->is_array()) return false;
  return std::find(finalizers->begin(), finalizers->end(), kFinalizer) != finalizers->end();
}

Status AddFinalizer(kube::Writer& writer, const kube::ResourceType& type, kube::Object& obj) {
  if (HasFinalizer(obj)) return OkStatus();
  kube::Object next = obj;
  next["metadata"]["finalizers"].push_back(kFinalizer);
  ASSIGN_OR_RETURN(obj, writer.Update(type, next));
  return OkStatus();
}

bool HasTag(const std::vector<std::string>& tags, std::string_view tag) {
  return std::find(tags.begin(), tags.end(), tag) != tags.end();
}

std::string ImageTagIn(const std::vector<std::string>& tags) {
  for (const std::string& tag : tags) {
    if (tag.starts_with(kImageTagPrefix)) return tag;
  }
  return "";
}

std::string Join(const std::vector<std::string>& lines, std::string_view separator) {
  std::string out;
  for (const std::string& line : lines) {
    if (!out.empty()) out += separator;
    out += line;
  }
  return out;
}

// ---------------------------------------------------------------------------
// VmReconciler

VmReconciler::VmReconciler(kube::Reader& reader, kube::Writer& writer, kube::EventRecorder& events,
                           ClusterRegistry& registry, VmControllerOptions options)
    : impl_(std::make_unique<Impl>(reader, writer, events, registry, options)) {}

VmReconciler::~VmReconciler() = default;

Result<kube::ReconcileResult> VmReconciler::Reconcile(const kube::Request& request) {
  return impl_->Reconcile(request);
}

VmReconciler::Impl::Impl(kube::Reader& reader, kube::Writer& writer, kube::EventRecorder& events,
                         ClusterRegistry& registry, VmControllerOptions options)
    : reader_(reader),
      writer_(writer),
      events_(events),
      registry_(registry),
      options_(options),
      clock_(options.clock ? *options.clock : RealClock()) {}

Result<kube::ReconcileResult> VmReconciler::Impl::Reconcile(const kube::Request& request) {
  const std::string key = request.Key();
  Result<kube::Object> got = reader_.Get(ProxmoxVms(), request.ns, request.name);
  if (!got.ok()) {
    if (got.status().code() != Code::kNotFound) return got.status();
    Forget(key);
    return ReconcileResult{};
  }
  VmPass p;
  p.key = key;
  p.object = std::move(got).value();
  p.memory = &MemoryFor(key);
  // The cache has not caught up with this process's own write yet; the
  // write's watch event brings the key back.
  std::vector<std::string>& superseded = p.memory->superseded;
  if (std::find(superseded.begin(), superseded.end(), kube::ResourceVersionOf(p.object)) !=
      superseded.end()) {
    return ReconcileResult{.requeue_after = kAfterWrite};
  }
  superseded.clear();
  p.uid_tag = UidTag(kube::UidOf(p.object));
  Result<api::ProxmoxVm> decoded = api::ProxmoxVmFromJson(p.object);
  if (!decoded.ok()) {
    std::vector<FieldError> errors = decoded.status().field_errors();
    if (errors.empty()) errors.push_back({"", decoded.status().message()});
    return Finish(p, RejectSpec(p, errors));
  }
  p.vm = std::move(decoded).value();
  p.read_status = p.status = p.vm.status;

  // Paused: hands off entirely, deletion included; status keeps saying what
  // was last seen (observedGeneration shows the spec is not being acted on).
  const std::string mode = Annotation(p.object, kAnnotationReconcile);
  if (mode == "Paused") return ReconcileResult{};
  p.observe_only = mode == "ObserveOnly";

  // Deletion goes first: an object whose spec became invalid can still go.
  Step step = Deleting(p.object) ? ReconcileDeletion(p) : ReconcileLiving(p);
  return Finish(p, std::move(step));
}

Step VmReconciler::Impl::ReconcileLiving(VmPass& p) {
  if (std::vector<FieldError> errors = api::Validate(p.vm.spec); !errors.empty()) {
    return RejectSpec(p, errors);
  }
  // A failure is re-established by the pass that meets it again.
  if (p.status.phase == api::VmPhase::kFailed) p.status.phase = api::VmPhase::kPending;
  if (Step s = EnsureFinalizer(p)) return s;
  if (Step s = ResolveCluster(p)) return s;
  if (Step s = ResolveImage(p)) return s;
  if (Step s = FollowTask(p)) return s;
  std::optional<FoundVm> found;
  if (Step s = FindVm(p, &found)) return s;
  if (found) return ManageExisting(p, *found);
  if (!p.status.vmid) return Allocate(p);
  return Create(p);
}

Result<kube::ReconcileResult> VmReconciler::Impl::Finish(VmPass& p, Step step) {
  Result<ReconcileResult> outcome = step ? std::move(*step) : ReconcileResult{};
  if (!p.write_status) return outcome;
  if (Status written = WriteStatus(p); !written.ok()) return *WriteFailed(written);
  return outcome;
}

Status VmReconciler::Impl::WriteStatus(VmPass& p) {
  if (p.blocked) {
    Condition(p, condition::kReady, ConditionStatus::kFalse, p.blocked->first, p.blocked->second);
  } else {
    ReadySummary ready = SummarizeReady(p.vm.spec, p.status);
    Condition(p, condition::kReady, ready.value, ready.reason, ready.message);
  }
  p.status.observed_generation = p.generation();
  RecordVmPhase(p.key, p.status.phase);
  if (p.status == p.read_status) return OkStatus();
  kube::Object next = p.object;
  next["status"] = api::ToJson(p.status);
  Result<kube::Object> written = writer_.UpdateStatus(ProxmoxVms(), next);
  if (!written.ok()) return written.status();
  Wrote(p, std::move(written).value());
  p.read_status = p.status;
  return OkStatus();
}

void VmReconciler::Impl::Wrote(VmPass& p, kube::Object written) {
  p.memory->superseded.push_back(kube::ResourceVersionOf(p.object));
  p.object = std::move(written);
}

Step VmReconciler::Impl::RejectSpec(VmPass& p, const std::vector<FieldError>& errors) {
  std::vector<std::string> lines;
  for (const FieldError& e : errors) {
    lines.push_back(e.field.empty() ? e.message : e.field + ": " + e.message);
  }
  const std::string message = Join(lines, "; ");
  p.status.phase = api::VmPhase::kFailed;
  Block(p, reason::kInvalidSpec, message);
  // Terminal: nothing is retried until the object changes.
  return Fail(InvalidError("invalid spec: " + message));
}

Step VmReconciler::Impl::EnsureFinalizer(VmPass& p) {
  if (HasFinalizer(p.object)) return std::nullopt;
  kube::Object next = p.object;
  if (Status s = AddFinalizer(writer_, ProxmoxVms(), next); !s.ok()) return WriteFailed(s);
  Wrote(p, std::move(next));
  return std::nullopt;
}

Step VmReconciler::Impl::ResolveCluster(VmPass& p) {
  const std::string ns = kube::NamespaceOf(p.object);
  const std::string& name = p.vm.spec.cluster_ref.name;
  Result<kube::Object> got = reader_.Get(ProxmoxClusters(), ns, name);
  if (!got.ok()) {
    if (got.status().code() != Code::kNotFound) return Fail(got.status());
    p.cluster_missing = true;
    const std::string message = "ProxmoxCluster " + name + " not found";
    Condition(p, condition::kClusterReady, ConditionStatus::kFalse, reason::kClusterNotFound,
              message);
    Block(p, reason::kClusterNotFound, message);
    return After(kClusterNotFoundRetry);
  }
  Result<api::ProxmoxCluster> cluster = api::ProxmoxClusterFromJson(*got);
  p.runtime = registry_.Get(kube::MakeKey(ns, name));
  p.inventory = p.runtime ? p.runtime->inventory() : nullptr;
  if (!cluster.ok() || p.inventory == nullptr) {
    const std::string message = "ProxmoxCluster " + name + " is not connected yet";
    Condition(p, condition::kClusterReady, ConditionStatus::kFalse, reason::kClusterNotReady,
              message);
    Block(p, reason::kClusterNotReady, message);
    return After(kClusterNotReadyRetry);
  }
  p.cluster = cluster->spec;
  Condition(p, condition::kClusterReady, ConditionStatus::kTrue, reason::kConnected,
            "ProxmoxCluster " + name + " is connected");
  return std::nullopt;
}

Step VmReconciler::Impl::ResolveImage(VmPass& p) {
  const api::ProxmoxVmSpec& spec = p.vm.spec;
  if (!spec.image_ref) {
    p.image = {true, spec.source_volume, ""};
    Condition(p, condition::kImageReady, ConditionStatus::kTrue, reason::kImageReady,
              "source volume " + spec.source_volume);
    return std::nullopt;
  }
  const std::string& name = spec.image_ref->name;
  Result<kube::Object> got = reader_.Get(NixImages(), kube::NamespaceOf(p.object), name);
  if (!got.ok()) {
    if (got.status().code() != Code::kNotFound) return Fail(got.status());
    Condition(p, condition::kImageReady, ConditionStatus::kFalse, reason::kImageNotFound,
              "NixImage " + name + " not found");
    return std::nullopt;
  }
  // A built image stays usable while a newer build runs or fails: the
  // volume in status is only ever replaced by a finished upload.
  Result<api::NixImage> image = api::NixImageFromJson(*got);
  if (!image.ok() || image->status.volume_id.empty() || image->status.store_path.empty()) {
    const std::string phase =
        image.ok() ? std::string(api::EnumName(image->status.phase)) : "unreadable";
    Condition(p, condition::kImageReady, ConditionStatus::kFalse, reason::kImageNotReady,
              "NixImage " + name + " is " + phase);
    return std::nullopt;
  }
  p.image = {true, image->status.volume_id, image->status.store_path,
             kube::MakeKey(kube::NamespaceOf(p.object), name),
             image->spec.rollout.max_unavailable};
  Condition(p, condition::kImageReady, ConditionStatus::kTrue, reason::kImageReady,
            "NixImage " + name + " is " + image->status.store_path);
  return std::nullopt;
}

Step VmReconciler::Impl::WaitForImage(VmPass& p) {
  const api::Condition* image = FindVmCondition(p.status, condition::kImageReady);
  Block(p, image ? image->reason : std::string(reason::kImageNotReady),
        image ? image->message : "waiting for the image");
  return After(kImageRetry);
}

// ---------------------------------------------------------------------------
// The task in flight

Step VmReconciler::Impl::FollowTask(VmPass& p) {
  if (!p.status.last_task || p.memory->finished_task == p.status.last_task->upid) {
    return std::nullopt;
  }
  const std::string raw = p.status.last_task->upid;
  Result<proxmox::Upid> upid = proxmox::ParseUpid(raw);
  if (!upid.ok()) {
    p.memory->finished_task = raw;
    return std::nullopt;
  }
  Result<proxmox::TaskStatus> task = p.runtime->client().GetTaskStatus(*upid);
  if (!task.ok()) {
    // A task Proxmox no longer knows (its node was reinstalled): nothing to wait for.
    if (task.status().code() != Code::kNotFound) {
      return ProxmoxFailure(p, task.status(), "reading task " + raw);
    }
  } else if (task->running()) {
    return After(options_.task_poll);
  }
  p.memory->finished_task = raw;
  ReleaseClaims(p);
  if (!task.ok()) return std::nullopt;
  const auto started = std::chrono::system_clock::time_point(std::chrono::seconds(upid->starttime));
  RecordTaskDuration(upid->type, task->succeeded(),
                     std::chrono::duration_cast<std::chrono::seconds>(
                         std::max(clock_.WallNow() - started, Clock::WallTime::duration::zero())));

  std::string& message = p.status.last_task->message;
  const std::string what = message.substr(0, message.find(": "));
  message = what + ": " + DescribeTaskOutcome(*task);
  if (task->succeeded()) {
    if (upid->type == "qmcreate") Event(p, kube::kEventNormal, reason::kCreated, what + ": done");
    // A create (never with a start) or power task that succeeded says the
    // power state without another read.
    const int vmid = std::atoi(upid->id.c_str());
    if (upid->type == "qmcreate" || upid->type == "qmstop" || upid->type == "qmshutdown") {
      KnowRunning(p, vmid, false);
    } else if (upid->type == "qmstart") {
      KnowRunning(p, vmid, true);
    } else if (upid->type == "qmdestroy") {
      p.memory->absent_vmid = vmid;
      KnowChanged(p, vmid);
    }
    return std::nullopt;
  }
  if (upid->type == "qmcreate") {
    // Proxmox removes a VM whose create failed.
    p.status.phase = api::VmPhase::kFailed;
    Condition(p, condition::kProvisioned, ConditionStatus::kFalse, reason::kTaskFailed, message);
  }
  Block(p, reason::kTaskFailed, message);
  Event(p, kube::kEventWarning, reason::kTaskFailed, message);
  // Backoff, then the next pass plans again from what exists.
  return Fail(RetryableError(message));
}

Step VmReconciler::Impl::RecordTask(VmPass& p, const proxmox::Upid& upid, std::string what) {
  p.status.last_task = api::TaskRef{upid.raw, std::move(what)};
  if (upid.type == "qmdestroy") p.memory->ours_vmid.reset();
  p.memory->known_running.reset();
  return After(options_.task_poll);
}

// ---------------------------------------------------------------------------
// Shared helpers

Status VmReconciler::Impl::LoadConfig(VmPass& p, FoundVm& vm) {
  if (vm.config) return OkStatus();
  ASSIGN_OR_RETURN(proxmox::VmConfig config, p.runtime->client().GetVmConfig(vm.node, vm.vmid));
  vm.tags = config.tags();
  vm.lock = config.lock();
  vm.config = std::move(config);
  return OkStatus();
}

Result<bool> VmReconciler::Impl::IsRunning(VmPass& p, FoundVm& vm) {
  if (vm.running_confirmed) return *vm.running;
  const VmMemory& memory = *p.memory;
  if (memory.known_running && memory.known_running_vmid == vm.vmid &&
      p.inventory->fetched_at <= memory.known_running_at) {
    vm.running = memory.known_running;
  } else {
    ASSIGN_OR_RETURN(proxmox::VmStatus live, p.runtime->client().GetVmStatus(vm.node, vm.vmid));
    vm.running = live.running();
    vm.lock = live.lock;
    KnowRunning(p, vm.vmid, *vm.running);
  }
  vm.running_confirmed = true;
  return *vm.running;
}

void VmReconciler::Impl::KnowChanged(VmPass& p, int vmid) {
  p.memory->changed_vmid = vmid;
  p.memory->changed_at = clock_.Now();
}

void VmReconciler::Impl::KnowRunning(VmPass& p, int vmid, bool running) {
  p.memory->known_running = running;
  p.memory->known_running_vmid = vmid;
  p.memory->known_running_at = clock_.Now();
}

Step VmReconciler::Impl::ProxmoxFailure(VmPass& p, Status status, std::string_view what) {
  status.Annotate(what);
  switch (status.code()) {
    case Code::kLocked:
      Block(p, reason::kVmLocked, status.message());
      return After(kLockedRetry);
    case Code::kConflict:  // the VM changed under us (digest, power state): look again
    case Code::kNotFound:  // it went away meanwhile
      p.memory->compared_at.reset();
      p.memory->ours_vmid.reset();
      p.memory->absent_vmid.reset();
      return After(kSoon);
    case Code::kOutcomeUnknown:  // never resent: the next pass re-observes
      return After(options_.task_poll);
    case Code::kInvalid:
      // Proxmox refused the request itself; the spec or the cluster must
      // change. A backoff rather than a terminal error: the cluster may.
      Block(p, reason::kProxmoxError, status.message());
      Event(p, kube::kEventWarning, reason::kProxmoxError, status.message());
      return Fail(RetryableError(status.message()));
    default:
      if (!status.IsTransient()) Block(p, reason::kProxmoxError, status.message());
      return Fail(std::move(status));
  }
}

Step VmReconciler::Impl::Locked(VmPass& p, const FoundVm& vm) {
  Block(p, reason::kVmLocked, "VM " + std::to_string(vm.vmid) + " is locked (" + vm.lock + ")");
  return After(kLockedRetry);
}

Step VmReconciler::Impl::WriteFailed(const Status& status) {
  // A stale object: the cache catches up and the next pass sees the new one.
  if (status.code() == Code::kConflict) return Result<ReconcileResult>(ReconcileResult{true});
  if (status.code() == Code::kNotFound) return Done();
  return Fail(status);
}

void VmReconciler::Impl::Condition(VmPass& p, std::string_view type, ConditionStatus value,
                                   std::string_view reason, std::string message) {
  SetVmCondition(p.status, type, value, reason, std::move(message), p.generation(),
                 clock_.WallNow());
}

void VmReconciler::Impl::Block(VmPass& p, std::string_view reason, std::string message) {
  p.blocked.emplace(std::string(reason), std::move(message));
}

void VmReconciler::Impl::Event(VmPass& p, std::string_view type, std::string_view reason,
                               const std::string& message) {
  // Best effort: the recorder logs its own failures.
  static_cast<void>(events_.Event(p.object, type, reason, message));
}

PlanInputs VmReconciler::Impl::Inputs(const VmPass& p) const {
  return PlanInputs{&p.vm, &p.cluster, p.image.volume, p.image.store_path};
}

void VmReconciler::Impl::ReleaseClaims(VmPass& p) {
  if (!p.runtime) return;
  if (!p.memory->slot_storage.empty()) {
    p.runtime->storage_slots().Release(p.memory->slot_storage, p.key);
    p.memory->slot_storage.clear();
  }
  p.runtime->placements().Remove(p.key);
}

VmMemory& VmReconciler::Impl::MemoryFor(const std::string& key) {
  std::lock_guard lock(mu_);
  return memory_[key];
}

void VmReconciler::Impl::Forget(const std::string& key) {
  ForgetVmPhase(key);
  LeaveRollout(key);
  VmMemory forgotten;
  {
    std::lock_guard lock(mu_);
    auto it = memory_.find(key);
    if (it == memory_.end()) return;
    forgotten = std::move(it->second);
    memory_.erase(it);
  }
  if (forgotten.cluster_key.empty()) return;
  if (std::shared_ptr<ClusterRuntime> runtime = registry_.Get(forgotten.cluster_key)) {
    if (!forgotten.slot_storage.empty()) {
      runtime->storage_slots().Release(forgotten.slot_storage, key);
    }
    runtime->placements().Remove(key);
  }
}

}  // namespace nixmox::controllers
