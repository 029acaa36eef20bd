#include "src/controllers/image_controller.h"

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <optional>
#include <set>
#include <utility>

#include "src/api/json.h"
#include "src/api/reasons.h"
#include "src/api/validation.h"
#include "src/common/metrics.h"
#include "src/controllers/resources.h"
#include "src/controllers/vm_controller.h"
#include "src/controllers/vm_reconcile.h"
#include "src/controllers/vm_status.h"
#include "src/kube/time.h"
#include "src/nix/build_key.h"
#include "src/nix/result.h"

namespace nixmox::controllers {
namespace {

using api::ConditionStatus;
using api::ImagePhase;
using kube::ReconcileResult;
namespace condition = api::condition;
namespace reason = api::reason;

// How soon a pass that waits on something a watch does not report looks again.
constexpr std::chrono::milliseconds kClusterRetry{std::chrono::seconds(30)};
constexpr std::chrono::milliseconds kInUseRetry{std::chrono::seconds(30)};
constexpr std::chrono::milliseconds kProxmoxRetry{std::chrono::seconds(15)};
constexpr int kLogTailLines = 20;

prometheus::Family<prometheus::Counter>& BuildsCounter() {
  static auto* family = &prometheus::BuildCounter()
                             .Name("nixmox_image_builds_total")
                             .Help("Finished NixImage builder Jobs by result "
                                   "(succeeded, failed, unchanged: a refresh found nothing new)")
                             .Register(MetricsRegistry());
  return *family;
}

void CountBuild(std::string_view result) {
  BuildsCounter().Add({{"result", std::string(result)}}).Increment();
}

// How a builder Job stands.
enum class JobState { kRunning, kSucceeded, kFailed };

JobState StateOf(const kube::Object& job) {
  const nlohmann::json& status = job.value("status", nlohmann::json::object());
  for (const nlohmann::json& c : status.value("conditions", nlohmann::json::array())) {
    if (c.value("status", "") != "True") continue;
    const std::string type = c.value("type", "");
    if (type == "Complete" || type == "SuccessCriteriaMet") return JobState::kSucceeded;
    if (type == "Failed" || type == "FailureTarget") return JobState::kFailed;
  }
  if (status.value("succeeded", 0) > 0) return JobState::kSucceeded;
  if (status.value("failed", 0) > 0) return JobState::kFailed;
  return JobState::kRunning;
}

// The Job's failure condition ("DeadlineExceeded: Job was active longer than...").
std::pair<std::string, std::string> JobFailure(const kube::Object& job) {
  const nlohmann::json& status = job.value("status", nlohmann::json::object());
  for (const nlohmann::json& c : status.value("conditions", nlohmann::json::array())) {
    const std::string type = c.value("type", "");
    if ((type == "Failed" || type == "FailureTarget") && c.value("status", "") == "True") {
      return {c.value("reason", ""), c.value("message", "")};
    }
  }
  return {"", ""};
}

// When the Job ended, for the retry backoff; nullopt when it does not say.
std::optional<Clock::WallTime> JobEnded(const kube::Object& job) {
  const nlohmann::json& status = job.value("status", nlohmann::json::object());
  for (const nlohmann::json& c : status.value("conditions", nlohmann::json::array())) {
    const std::string type = c.value("type", "");
    if ((type == "Failed" || type == "Complete") && c.value("status", "") == "True") {
      if (auto t = kube::ParseTime(c.value("lastTransitionTime", "")); t.ok()) return *t;
    }
  }
  if (auto t = kube::ParseTime(status.value("completionTime", "")); t.ok()) return *t;
  return std::nullopt;
}

// The termination message of the Pod's builder container, if it ended.
std::optional<std::string> TerminationMessage(const kube::Object& pod) {
  const nlohmann::json& status = pod.value("status", nlohmann::json::object());
  for (const nlohmann::json& cs : status.value("containerStatuses", nlohmann::json::array())) {
    if (cs.value("name", "") != nix::kContainerName) continue;
    auto state = cs.find("state");
    if (state == cs.end() || !state->contains("terminated")) return std::nullopt;
    return (*state)["terminated"].value("message", "");
  }
  return std::nullopt;
}

std::string Timestamp(std::string_view rfc3339) {
  // "2026-11-23T17:31:29Z" -> "20261123173129": a Job name suffix.
  std::string out;
  for (char c : rfc3339) {
    if (c >= '0' && c <= '9') out += c;
  }
  return out;
}

std::string StorageOf(std::string_view volume_id) {
  return std::string(volume_id.substr(0, volume_id.find(':')));
}

struct ImagePass {
  std::string key;
  kube::Object object;
  api::NixImage image;
  api::NixImageStatus read_status;
  api::NixImageStatus status;
  bool write_status = true;
  // Set by ResolveCluster.
  api::ProxmoxClusterSpec cluster;
  std::string storage;
  std::string build_key;
  // The ProxmoxVMs whose imageRef names this image.
  std::vector<ImageUser> users;

  std::int64_t generation() const { return kube::GenerationOf(object); }
};

}  // namespace

struct ImageReconciler::Impl {
  Impl(kube::Reader& cache, kube::Writer& writer, kube::EventRecorder& events,
       ClusterRegistry& registry, ImageControllerOptions options)
      : cache_(cache),
        writer_(writer),
        events_(events),
        registry_(registry),
        options_(std::move(options)),
        clock_(options_.clock ? *options_.clock : RealClock()) {}

  Result<ReconcileResult> Reconcile(const kube::Request& request);

  Step Living(ImagePass& p);
  Step Deletion(ImagePass& p);
  Step EnsureFinalizer(ImagePass& p);
  Step ResolveCluster(ImagePass& p);
  Step Build(ImagePass& p);
  Step UntilRefresh(ImagePass& p);
  Step StartJob(ImagePass& p, const std::string& job_name, bool refresh);
  Step Running(ImagePass& p, bool refresh);
  Step Succeeded(ImagePass& p, const std::string& job_name, const nix::BuildResult& result,
                 bool refresh);
  Step Failed(ImagePass& p, const kube::Object& job, const std::string& error,
              nix::Stage stage, bool refresh);
  void DeleteOldJobs(ImagePass& p, const std::set<std::string>& keep);
  Status CollectGenerations(ImagePass& p);
  Status DeleteVolume(ImagePass& p, const std::string& volume_id);
  Status LoadUsers(ImagePass& p);
  void UpdateRollout(ImagePass& p);
  std::optional<kube::Object> PodOf(ImagePass& p, const std::string& job_name);
  Result<ReconcileResult> Finish(ImagePass& p, Step step);

  void Condition(ImagePass& p, std::string_view type, ConditionStatus value,
                 std::string_view why, std::string message) {
    SetApiCondition(p.status.conditions, type, value, why, std::move(message), p.generation(),
                    clock_.WallNow());
  }
  void Event(ImagePass& p, std::string_view type, std::string_view why,
             std::string_view message) {
    if (Status s = events_.Event(p.object, type, why, message); !s.ok()) {
      spdlog::debug("event for NixImage {}: {}", p.key, s.ToString());
    }
  }
  std::chrono::milliseconds Backoff(int failures) const {
    auto delay = options_.retry_base;
    for (int i = 1; i < failures && delay < options_.retry_max; ++i) delay *= 2;
    return std::min(delay, options_.retry_max);
  }

  kube::Reader& cache_;
  kube::Writer& writer_;
  kube::EventRecorder& events_;
  ClusterRegistry& registry_;
  const ImageControllerOptions options_;
  Clock& clock_;
};

ImageReconciler::ImageReconciler(kube::Reader& cache, kube::Writer& writer,
                                 kube::EventRecorder& events, ClusterRegistry& registry,
                                 ImageControllerOptions options)
    : impl_(std::make_unique<Impl>(cache, writer, events, registry, std::move(options))) {}

ImageReconciler::~ImageReconciler() = default;

Result<ReconcileResult> ImageReconciler::Reconcile(const kube::Request& request) {
  return impl_->Reconcile(request);
}

std::vector<std::string> ImageKeysForBuilderObject(const kube::Object& object) {
  const std::string image = kube::StringAt(object, {"metadata", "labels", nix::kImageLabel});
  if (image.empty()) return {};
  return {kube::MakeKey(kube::NamespaceOf(object), image)};
}

// ---------------------------------------------------------------------------
// The pass

Result<ReconcileResult> ImageReconciler::Impl::Reconcile(const kube::Request& request) {
  Result<kube::Object> got = cache_.Get(NixImages(), request.ns, request.name);
  if (!got.ok()) {
    if (got.status().code() == Code::kNotFound) return ReconcileResult{};
    return got.status();
  }
  ImagePass p;
  p.key = request.Key();
  p.object = std::move(got).value();
  Result<api::NixImage> decoded = api::NixImageFromJson(p.object);
  if (!decoded.ok()) {
    // Types the schema should have refused: say so, do nothing else.
    p.status.phase = ImagePhase::kFailed;
    Condition(p, condition::kReady, ConditionStatus::kFalse, reason::kInvalidSpec,
              decoded.status().message());
    return Finish(p, Done());
  }
  p.image = std::move(decoded).value();
  p.read_status = p.status = p.image.status;
  if (Status s = LoadUsers(p); !s.ok()) return s;
  const bool deleting =
      !kube::StringAt(p.object, {"metadata", "deletionTimestamp"}).empty();
  return Finish(p, deleting ? Deletion(p) : Living(p));
}

Step ImageReconciler::Impl::Living(ImagePass& p) {
  if (auto errors = api::Validate(p.image.spec, options_.allow_local_flakes); !errors.empty()) {
    std::vector<std::string> lines;
    for (const FieldError& e : errors) lines.push_back(e.field + ": " + e.message);
    p.status.phase = ImagePhase::kFailed;
    Condition(p, condition::kReady, ConditionStatus::kFalse, reason::kInvalidSpec,
              Join(lines, "; "));
    return Done();  // a new spec brings the next pass
  }
  if (Step s = EnsureFinalizer(p)) return s;
  if (Step s = ResolveCluster(p)) return s;
  Step step = Build(p);
  if (Status s = CollectGenerations(p); !s.ok()) {
    spdlog::warn("NixImage {}: removing old image volumes: {}", p.key, s.ToString());
  }
  UpdateRollout(p);
  return step;
}

Step ImageReconciler::Impl::EnsureFinalizer(ImagePass& p) {
  if (Status s = AddFinalizer(writer_, NixImages(), p.object); !s.ok()) return Fail(s);
  return std::nullopt;
}

Step ImageReconciler::Impl::ResolveCluster(ImagePass& p) {
  const std::string ns = kube::NamespaceOf(p.object);
  const std::string& name = p.image.spec.cluster_ref.name;
  Result<kube::Object> got = cache_.Get(ProxmoxClusters(), ns, name);
  if (!got.ok() && got.status().code() != Code::kNotFound) return Fail(got.status());
  Result<api::ProxmoxCluster> cluster =
      got.ok() ? api::ProxmoxClusterFromJson(*got) : Result<api::ProxmoxCluster>(got.status());
  if (!cluster.ok()) {
    Condition(p, condition::kReady, ConditionStatus::kFalse, reason::kClusterNotFound,
              "ProxmoxCluster " + name + " not found");
    if (p.status.generations.empty()) p.status.phase = ImagePhase::kPending;
    return After(kClusterRetry);
  }
  if (!cluster->status.ready) {
    Condition(p, condition::kReady, ConditionStatus::kFalse, reason::kClusterNotReady,
              "ProxmoxCluster " + name + " is not ready: the builder could not upload");
    if (p.status.generations.empty()) p.status.phase = ImagePhase::kPending;
    return After(kClusterRetry);
  }
  p.cluster = cluster->spec;
  p.storage = p.image.spec.storage.empty() ? p.cluster.image_storage : p.image.spec.storage;
  p.build_key = nix::BuildKey(p.image.spec, p.storage,
                              Annotation(p.object, nix::kRebuildAnnotation));
  return std::nullopt;
}

// Which Job should exist now, from spec and status alone, so that a restart
// at any moment picks the same one:
//   a new build key           -> "<image>-<key8>" (attempt 1)
//   the key built, refresh due -> "<image>-<key8>-r<checkedAt>" (a revision check)
//   the key built             -> none
//   the key failed n times     -> "<image>-<key8>-<n+1>", after the backoff
//   the key building           -> the Job in status
Step ImageReconciler::Impl::Build(ImagePass& p) {
  api::NixImageStatus& st = p.status;
  const std::string name = kube::NameOf(p.object);
  const std::string ns = kube::NamespaceOf(p.object);
  const bool new_key = st.build_key != p.build_key;
  const bool built = !new_key && st.phase == ImagePhase::kReady && !st.store_path.empty() &&
                     st.failed_attempts == 0;

  if (new_key) {
    st.failed_attempts = 0;
    return StartJob(p, nix::JobName(name, p.build_key), /*refresh=*/false);
  }

  if (built) {
    Condition(p, condition::kReady, ConditionStatus::kTrue, reason::kImageAvailable,
              st.store_path + " is in " + st.volume_id);
    if (Step wait = UntilRefresh(p)) {
      DeleteOldJobs(p, {st.job_name});
      return wait;
    }
    const std::string& last = st.checked_at.empty() ? st.built_at : st.checked_at;
    return StartJob(p, nix::JobName(name, p.build_key, "r" + Timestamp(last)), /*refresh=*/true);
  }

  // The key's build is running or failed.
  const std::string job_name = st.job_name.empty() ? nix::JobName(name, p.build_key) : st.job_name;
  if (st.phase == ImagePhase::kFailed) {
    // The failure is counted: the next attempt gets its own Job, after the
    // backoff (at once when the failed Job is gone).
    Result<kube::Object> job = cache_.Get(kube::resources::Jobs(), ns, job_name);
    if (job.ok()) {
      const auto retry_at = JobEnded(*job).value_or(clock_.WallNow()) + Backoff(st.failed_attempts);
      if (clock_.WallNow() < retry_at) {
        return After(
            std::chrono::duration_cast<std::chrono::milliseconds>(retry_at - clock_.WallNow()));
      }
    }
    return StartJob(p,
                    nix::JobName(name, p.build_key, std::to_string(st.failed_attempts + 1)),
                    /*refresh=*/false);
  }
  return StartJob(p, job_name, /*refresh=*/false);
}

// Done, or a requeue at the next refresh check, when none is due yet;
// nullopt when one is due now.
Step ImageReconciler::Impl::UntilRefresh(ImagePass& p) {
  const auto& interval = p.image.spec.refresh_interval_seconds;
  if (!interval || *interval <= 0) return Done();
  const api::NixImageStatus& st = p.status;
  const auto last = kube::ParseTime(st.checked_at.empty() ? st.built_at : st.checked_at);
  const auto due = (last.ok() ? *last : clock_.WallNow()) + std::chrono::seconds(*interval);
  if (clock_.WallNow() >= due) return std::nullopt;
  return After(std::chrono::duration_cast<std::chrono::milliseconds>(due - clock_.WallNow()));
}

// Makes sure `job_name` exists, then follows it.
Step ImageReconciler::Impl::StartJob(ImagePass& p, const std::string& job_name, bool refresh) {
  api::NixImageStatus& st = p.status;
  const std::string ns = kube::NamespaceOf(p.object);
  Result<kube::Object> job = cache_.Get(kube::resources::Jobs(), ns, job_name);
  if (!job.ok() && job.status().code() != Code::kNotFound) return Fail(job.status());
  if (!job.ok()) {
    nix::BuildJobRequest request;
    request.job_name = job_name;
    request.build_key = p.build_key;
    request.image_metadata = p.object["metadata"];
    request.spec = p.image.spec;
    request.cluster = p.cluster;
    request.storage = p.storage;
    if (refresh) request.expect_revision = st.flake_revision;
    Result<kube::Object> created =
        writer_.Create(kube::resources::Jobs(), nix::RenderBuildJob(request, options_.builder));
    if (!created.ok() && created.status().code() != Code::kAlreadyExists) {
      Condition(p, condition::kBuilt, ConditionStatus::kFalse, reason::kBuildFailed,
                "creating the builder Job " + job_name + ": " + created.status().message());
      return Fail(created.status());
    }
    if (created.ok()) {
      const std::string what = refresh ? "checking whether " + p.image.spec.flake + " moved"
                                       : "building " + p.image.spec.flake + "#" +
                                             p.image.spec.attribute;
      Event(p, kube::kEventNormal, reason::kBuilding, what + " in Job " + job_name);
      job = std::move(created);
    }
  }
  st.build_key = p.build_key;
  if (!refresh) {
    st.job_name = job_name;
    if (st.phase != ImagePhase::kUploading) st.phase = ImagePhase::kBuilding;
    Condition(p, condition::kBuilt, ConditionStatus::kFalse, reason::kBuilding,
              "Job " + job_name + " builds " + p.image.spec.flake + "#" + p.image.spec.attribute);
    Condition(p, condition::kReady, ConditionStatus::kFalse, reason::kBuilding,
              st.store_path.empty()
                  ? "the first build is running"
                  : "a new build is running; ProxmoxVMs keep using " + st.store_path);
  }
  if (!job.ok()) return After(kSoon);  // created by an earlier pass, not cached yet
  DeleteOldJobs(p, {job_name, st.job_name});

  switch (StateOf(*job)) {
    case JobState::kRunning:
      return Running(p, refresh);
    case JobState::kSucceeded: {
      std::optional<kube::Object> pod = PodOf(p, job_name);
      std::optional<std::string> message = pod ? TerminationMessage(*pod) : std::nullopt;
      if (!message) return After(kSoon);  // the Pod's status is on its way
      Result<nix::BuildResult> result = nix::ParseResult(*message);
      if (!result.ok()) {
        return Failed(p, *job, "the builder's result is unreadable: " + result.status().message(),
                      nix::Stage::kBuild, refresh);
      }
      if (!result->ok) return Failed(p, *job, result->error, result->stage, refresh);
      return Succeeded(p, job_name, *result, refresh);
    }
    case JobState::kFailed: {
      std::optional<kube::Object> pod = PodOf(p, job_name);
      std::optional<std::string> message = pod ? TerminationMessage(*pod) : std::nullopt;
      if (message) {
        if (Result<nix::BuildResult> result = nix::ParseResult(*message);
            result.ok() && !result->ok) {
          return Failed(p, *job, result->error, result->stage, refresh);
        }
      }
      auto [why, text] = JobFailure(*job);
      std::string error = why.empty() ? "the builder Job failed" : why + ": " + text;
      if (message && !message->empty()) error += "\n" + nix::Tail(*message, 20, 2048);
      return Failed(p, *job, error, nix::Stage::kBuild, refresh);
    }
  }
  return Done();
}

Step ImageReconciler::Impl::Running(ImagePass& p, bool refresh) {
  if (options_.logs && !refresh) {
    if (std::optional<kube::Object> pod = PodOf(p, p.status.job_name)) {
      Result<std::string> log = options_.logs->PodLogTail(
          kube::NamespaceOf(*pod), kube::NameOf(*pod), nix::kContainerName, kLogTailLines);
      std::optional<nix::Progress> progress =
          log.ok() ? nix::LastProgress(*log) : std::nullopt;
      if (progress) {
        std::string line = std::string(nix::StageName(progress->stage));
        if (progress->percent >= 0) line += " " + std::to_string(progress->percent) + "%";
        if (!progress->message.empty()) line += ": " + progress->message;
        p.status.progress = line;
        p.status.phase = progress->stage == nix::Stage::kUpload ? ImagePhase::kUploading
                                                                 : ImagePhase::kBuilding;
        if (progress->stage == nix::Stage::kUpload) {
          Condition(p, condition::kBuilt, ConditionStatus::kTrue, reason::kBuildSucceeded,
                    "nix build finished; uploading");
          Condition(p, condition::kUploaded, ConditionStatus::kFalse, reason::kUploading, line);
        }
      }
    }
  }
  return After(options_.build_poll);
}

Step ImageReconciler::Impl::Succeeded(ImagePass& p, const std::string& job_name,
                                      const nix::BuildResult& r, bool refresh) {
  api::NixImageStatus& st = p.status;
  const std::string now = kube::FormatTime(clock_.WallNow());
  if (refresh && (r.unchanged || r.store_path == st.store_path)) {
    if (st.checked_at.empty() || st.checked_at < now) {
      CountBuild("unchanged");
      st.checked_at = now;
    }
    if (!r.flake_revision.empty()) st.flake_revision = r.flake_revision;
    Condition(p, condition::kBuilt, ConditionStatus::kTrue, reason::kRevisionUnchanged,
              p.image.spec.flake + " is still at " + st.flake_revision + ": nothing to build");
    return After(kSoon);
  }
  CountBuild("succeeded");
  st.store_path = r.store_path;
  st.nar_hash = r.nar_hash;
  st.size = r.size;
  st.volume_id = r.volume_id;
  st.built_at = now;
  st.checked_at = now;
  st.flake_revision = r.flake_revision;
  st.progress.clear();
  st.failed_attempts = 0;
  st.phase = ImagePhase::kReady;
  st.job_name = job_name;
  std::erase_if(st.generations, [&](const api::ImageGeneration& g) {
    return g.store_path == r.store_path;
  });
  st.generations.insert(st.generations.begin(),
                        api::ImageGeneration{r.store_path, r.nar_hash, r.volume_id, now});

  std::string nodes = Join(r.nodes, ", ");
  Condition(p, condition::kBuilt, ConditionStatus::kTrue, reason::kBuildSucceeded,
            "built " + r.store_path + " (" + r.nar_hash + ") in " +
                std::to_string(static_cast<long long>(r.build_seconds)) + " s");
  Condition(p, condition::kUploaded, ConditionStatus::kTrue, reason::kUploadSucceeded,
            r.volume_id + (nodes.empty() ? "" : " on " + nodes) +
                (r.uploaded ? "" : " (already there)"));
  Condition(p, condition::kReady, ConditionStatus::kTrue, reason::kImageAvailable,
            r.store_path + " is in " + r.volume_id);
  if (r.kvm) {
    Condition(p, condition::kAccelerated, ConditionStatus::kTrue, reason::kKvm, "the build used /dev/kvm");
  } else {
    Condition(p, condition::kAccelerated, ConditionStatus::kFalse, reason::kKvmUnavailable,
              "the build ran without /dev/kvm: VM steps of NixOS image builds were emulated "
              "(slow); see spec.builder.kvm and the operator's --builder-kvm-resource");
  }
  Event(p, kube::kEventNormal, reason::kBuildSucceeded,
        "built " + r.store_path + ", uploaded as " + r.volume_id);
  if (Step wait = UntilRefresh(p)) return wait;
  return After(kSoon);  // a check is due already
}

Step ImageReconciler::Impl::Failed(ImagePass& p, const kube::Object& job, const std::string& error,
                                   nix::Stage stage, bool refresh) {
  api::NixImageStatus& st = p.status;
  const std::string job_name = kube::NameOf(job);
  const std::string tail = nix::Tail(error, 20, 4000);
  if (refresh) {
    // The image in status is still good; try again at the next interval.
    const std::string now = kube::FormatTime(clock_.WallNow());
    if (st.checked_at.empty() || st.checked_at < now) {
      CountBuild("failed");
      st.checked_at = now;
      Event(p, kube::kEventWarning, reason::kRefreshFailed, "Job " + job_name + ": " + tail);
    }
    return After(kSoon);
  }
  // Counted once per Job, whatever this pass set on the way here.
  const bool first_sight =
      p.read_status.phase != ImagePhase::kFailed || p.read_status.job_name != job_name;
  if (first_sight) {
    CountBuild("failed");
    ++st.failed_attempts;
    Event(p, kube::kEventWarning,
          stage == nix::Stage::kUpload ? reason::kUploadFailed : reason::kBuildFailed,
          "Job " + job_name + ": " + tail);
  }
  st.phase = ImagePhase::kFailed;
  st.progress.clear();
  const auto [job_reason, job_message] = JobFailure(job);
  std::string_view why = stage == nix::Stage::kUpload ? reason::kUploadFailed
                         : job_reason == "DeadlineExceeded" ? reason::kBuildTimedOut
                                                            : reason::kBuildFailed;
  if (stage == nix::Stage::kUpload) {
    Condition(p, condition::kBuilt, ConditionStatus::kTrue, reason::kBuildSucceeded,
              "nix build finished");
    Condition(p, condition::kUploaded, ConditionStatus::kFalse, why, tail);
  } else {
    Condition(p, condition::kBuilt, ConditionStatus::kFalse, why, tail);
  }
  const auto retry = Backoff(st.failed_attempts);
  Condition(p, condition::kReady, ConditionStatus::kFalse, why,
            "Job " + job_name + " failed (attempt " + std::to_string(st.failed_attempts) +
                "; next in " + std::to_string(retry.count() / 1000) + " s)" +
                (st.store_path.empty() ? "" : "; ProxmoxVMs keep using " + st.store_path));
  return After(retry);
}

// Builder Jobs of this image other than `keep` go: superseded builds stop,
// finished ones stop cluttering. Owner references take their Pods along.
void ImageReconciler::Impl::DeleteOldJobs(ImagePass& p, const std::set<std::string>& keep) {
  kube::ListOptions options;
  options.label_selector = std::string(nix::kImageLabel) + "=" + kube::NameOf(p.object);
  Result<kube::ObjectList> jobs =
      cache_.List(kube::resources::Jobs(), kube::NamespaceOf(p.object), options);
  if (!jobs.ok()) return;
  for (const kube::Object& job : jobs->items) {
    const std::string name = kube::NameOf(job);
    if (keep.contains(name) ||
        !kube::StringAt(job, {"metadata", "deletionTimestamp"}).empty()) {
      continue;
    }
    kube::DeleteOptions del;
    del.propagation_policy = "Background";
    del.precondition_uid = kube::UidOf(job);
    Status s = writer_.Delete(kube::resources::Jobs(), kube::NamespaceOf(job), name, del);
    if (!s.ok() && s.code() != Code::kNotFound) {
      spdlog::warn("NixImage {}: deleting old builder Job {}: {}", p.key, name, s.ToString());
    }
  }
}

std::optional<kube::Object> ImageReconciler::Impl::PodOf(ImagePass& p,
                                                         const std::string& job_name) {
  kube::ListOptions options;
  options.label_selector = std::string(nix::kJobNameLabel) + "=" + job_name;
  Result<kube::ObjectList> pods =
      cache_.List(kube::resources::Pods(), kube::NamespaceOf(p.object), options);
  if (!pods.ok() || pods->items.empty()) return std::nullopt;
  // The newest Pod speaks for the Job.
  return *std::max_element(pods->items.begin(), pods->items.end(),
                           [](const kube::Object& a, const kube::Object& b) {
                             return kube::StringAt(a, {"metadata", "creationTimestamp"}) <
                                    kube::StringAt(b, {"metadata", "creationTimestamp"});
                           });
}

// ---------------------------------------------------------------------------
// Generations, volumes and users

// Fails rather than guess: an empty list lets volumes be deleted.
Status ImageReconciler::Impl::LoadUsers(ImagePass& p) {
  if (options_.users) {
    Result<std::vector<ImageUser>> users = options_.users(p.key);
    if (!users.ok()) return users.status();
    p.users = std::move(users).value();
    return OkStatus();
  }
  Result<kube::ObjectList> all = cache_.List(ProxmoxVms(), kube::NamespaceOf(p.object), {});
  if (!all.ok()) return all.status();
  const std::string name = kube::NameOf(p.object);
  for (const kube::Object& vm : all->items) {
    if (kube::StringAt(vm, {"spec", "imageRef", "name"}) != name) continue;
    p.users.push_back({kube::NameOf(vm), kube::StringAt(vm, {"status", "imageStorePath"})});
  }
  return OkStatus();
}

void ImageReconciler::Impl::UpdateRollout(ImagePass& p) {
  api::RolloutStatus rollout;
  rollout.total = static_cast<std::int32_t>(p.users.size());
  for (const ImageUser& vm : p.users) {
    if (!p.status.store_path.empty() && vm.store_path == p.status.store_path) {
      ++rollout.updated;
    }
  }
  p.status.rollout = rollout;
}

// Keeps the newest spec.generations images, and older ones while a
// ProxmoxVM still runs them; the volumes of the rest are deleted.
Status ImageReconciler::Impl::CollectGenerations(ImagePass& p) {
  std::vector<api::ImageGeneration>& gens = p.status.generations;
  const std::size_t keep = static_cast<std::size_t>(std::max(1, p.image.spec.generations));
  if (gens.size() <= keep) return OkStatus();
  std::set<std::string> running;
  for (const ImageUser& vm : p.users) running.insert(vm.store_path);
  Status first_error;
  std::vector<api::ImageGeneration> kept(gens.begin(), gens.begin() + keep);
  for (std::size_t i = keep; i < gens.size(); ++i) {
    const api::ImageGeneration& g = gens[i];
    if (running.contains(g.store_path) || g.volume_id == p.status.volume_id) {
      kept.push_back(g);
      continue;
    }
    if (Status s = DeleteVolume(p, g.volume_id); !s.ok()) {
      if (first_error.ok()) first_error = s;
      kept.push_back(g);  // tried again on the next pass
      continue;
    }
    Event(p, kube::kEventNormal, reason::kVolumeDeleted,
          "deleted " + g.volume_id + " of " + g.store_path + ": no ProxmoxVM runs it");
  }
  gens = std::move(kept);
  return first_error;
}

// Deletes the volume on every node that can hold it: once for shared
// storage, on each node for local storage (the builder uploaded it to each).
Status ImageReconciler::Impl::DeleteVolume(ImagePass& p, const std::string& volume_id) {
  const std::string cluster_key =
      kube::MakeKey(kube::NamespaceOf(p.object), p.image.spec.cluster_ref.name);
  std::shared_ptr<ClusterRuntime> runtime = registry_.Get(cluster_key);
  if (!runtime) return Status(Code::kRetryable, "ProxmoxCluster " + cluster_key + " is not connected");
  std::shared_ptr<const Inventory> inventory = runtime->inventory();
  if (!inventory) return Status(Code::kRetryable, "no inventory of " + cluster_key + " yet");
  const std::string storage = StorageOf(volume_id);
  for (const proxmox::ClusterResource& s : inventory->storages) {
    if (s.storage != storage || s.status != "available") continue;
    Result<std::optional<proxmox::Upid>> deleted =
        runtime->client().DeleteVolume(s.node, storage, volume_id);
    if (!deleted.ok() && deleted.status().code() != Code::kNotFound) return deleted.status();
    if (s.shared) break;
  }
  return OkStatus();
}

// ---------------------------------------------------------------------------
// Deletion

Step ImageReconciler::Impl::Deletion(ImagePass& p) {
  if (!HasFinalizer(p.object)) {
    p.write_status = false;
    return Done();
  }
  if (!p.users.empty()) {
    std::vector<std::string> names;
    for (const ImageUser& vm : p.users) names.push_back(vm.name);
    if (names.size() > 5) names.resize(5), names.push_back("...");
    Condition(p, condition::kReady, ConditionStatus::kFalse, reason::kInUse,
              "deletion waits for the ProxmoxVMs that use this image: " + Join(names, ", "));
    return After(kInUseRetry);
  }
  for (const api::ImageGeneration& g : p.status.generations) {
    Status s = DeleteVolume(p, g.volume_id);
    if (s.ok()) continue;
    // A cluster that is gone for good cannot hold the image back: the volumes
    // stay, and the event says so.
    Result<kube::Object> cluster = cache_.Get(ProxmoxClusters(), kube::NamespaceOf(p.object),
                                              p.image.spec.cluster_ref.name);
    if (!cluster.ok() && cluster.status().code() == Code::kNotFound) {
      Event(p, kube::kEventWarning, reason::kClusterNotFound,
            "ProxmoxCluster " + p.image.spec.cluster_ref.name + " is gone: " + g.volume_id +
                " is left in storage");
      continue;
    }
    Condition(p, condition::kReady, ConditionStatus::kFalse, reason::kProxmoxError,
              "deleting " + g.volume_id + ": " + s.message());
    return After(kProxmoxRetry);
  }
  kube::Object next = p.object;
  nlohmann::json& finalizers = next["metadata"]["finalizers"];
  finalizers.erase(std::remove(finalizers.begin(), finalizers.end(), kFinalizer),
                   finalizers.end());
  Result<kube::Object> updated = writer_.Update(NixImages(), next);
  if (!updated.ok() && updated.status().code() != Code::kNotFound) return Fail(updated.status());
  p.write_status = false;
  Event(p, kube::kEventNormal, reason::kDeleted,
        std::to_string(p.status.generations.size()) + " image volume(s) deleted");
  return Done();
}

Result<ReconcileResult> ImageReconciler::Impl::Finish(ImagePass& p, Step step) {
  Result<ReconcileResult> outcome = step ? std::move(*step) : ReconcileResult{};
  if (!p.write_status) return outcome;
  p.status.observed_generation = p.generation();
  if (p.status == p.read_status) return outcome;
  kube::Object next = p.object;
  next["status"] = api::ToJson(p.status);
  Result<kube::Object> written = writer_.UpdateStatus(NixImages(), next);
  if (!written.ok()) {
    if (written.status().code() == Code::kNotFound) return ReconcileResult{};
    return written.status();
  }
  return outcome;
}

}  // namespace nixmox::controllers
