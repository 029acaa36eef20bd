#include "src/controllers/image_controller.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fstream>
#include <functional>

#include "src/api/json.h"
#include "src/api/reasons.h"
#include "src/controllers/resources.h"
#include "src/kube/fake_client.h"
#include "src/kube/time.h"
#include "src/nix/build_key.h"
#include "src/nix/result.h"
#include "test/unit/controllers/sim_world.h"

namespace nixmox::controllers {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;
using ::testing::Contains;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;
using testing::SimWorld;

constexpr char kNs[] = "default";
constexpr char kPathA[] = "/nix/store/0c3kxwjl5yhy7m1s0cdmpqmcjhq4mzxs-nixos.qcow2";
constexpr char kPathB[] = "/nix/store/9xg1hz8mq6r3lppxm2jq0wb3c5ndjf0a-nixos.qcow2";

class ImageControllerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    cluster_.endpoint = "https://pve.example:8006";
    cluster_.credentials_ref.name = "pve-token";
    cluster_.allowed_nodes = {"pve1", "pve2"};
    runtime_ =
        std::make_shared<ClusterRuntime>("default/lab", cluster_, world_.NewClient(), world_.clock);
    registry_.Put(runtime_);
    ASSERT_TRUE(runtime_->RefreshInventory().ok());

    api::ProxmoxCluster cluster;
    cluster.metadata = {{"name", "lab"}, {"namespace", kNs}};
    cluster.spec = cluster_;
    cluster.status.ready = true;
    Create(ProxmoxClusters(), api::ToJson(cluster));

    ImageControllerOptions options;
    options.clock = &world_.clock;
    options.builder.image = "registry.example/nixmox-builder:test";
    options.builder.nix_options = {"sandbox=false"};
    options.logs = &kube_;
    reconciler_ = std::make_unique<ImageReconciler>(kube_, kube_, events_, registry_, options);
  }

  void Create(const kube::ResourceType& type, const kube::Object& obj) {
    auto created = kube_.Create(type, obj);
    ASSERT_TRUE(created.ok()) << created.status().ToString();
  }

  static api::NixImage NewImage() {
    api::NixImage image;
    image.metadata = {{"name", "web"}, {"namespace", kNs}};
    image.spec.flake = "github:example/infra";
    image.spec.attribute = "nixosConfigurations.web.config.system.build.image";
    image.spec.cluster_ref.name = "lab";
    image.spec.generations = 1;
    return image;
  }

  kube::Object Object() {
    auto got = kube_.Get(NixImages(), kNs, "web");
    EXPECT_TRUE(got.ok()) << got.status().ToString();
    return got.ok() ? *got : kube::Object::object();
  }
  api::NixImage Image() {
    auto image = api::NixImageFromJson(Object());
    EXPECT_TRUE(image.ok()) << image.status().ToString();
    return image.ok() ? *image : api::NixImage{};
  }
  std::string ConditionOf(std::string_view type) {
    for (const api::Condition& c : Image().status.conditions) {
      if (c.type == type) return std::string(api::EnumName(c.status)) + "/" + c.reason;
    }
    return "";
  }
  void EditSpec(const std::function<void(kube::Object&)>& change) {
    kube::Object obj = Object();
    change(obj);
    auto updated = kube_.Update(NixImages(), obj);
    ASSERT_TRUE(updated.ok()) << updated.status().ToString();
  }

  Result<kube::ReconcileResult> Pass() { return reconciler_->Reconcile({kNs, "web"}); }

  std::vector<std::string> JobNames() {
    std::vector<std::string> names;
    auto jobs = kube_.List(kube::resources::Jobs(), kNs, {});
    EXPECT_TRUE(jobs.ok());
    for (const kube::Object& job : jobs->items) names.push_back(kube::NameOf(job));
    return names;
  }
  kube::Object Job(const std::string& name) {
    auto job = kube_.Get(kube::resources::Jobs(), kNs, name);
    EXPECT_TRUE(job.ok()) << name << ": " << job.status().ToString();
    return job.ok() ? *job : kube::Object::object();
  }

  // Plays the Job controller and the kubelet: the Job ends, its Pod carries
  // the builder's termination message.
  void FinishJob(const std::string& job_name, const nix::BuildResult& result) {
    FinishJob(job_name, result.ok, nix::ToMessage(result));
  }
  void FinishJob(const std::string& job_name, bool ok, const std::string& message) {
    kube::Object pod = {
        {"apiVersion", "v1"},
        {"kind", "Pod"},
        {"metadata",
         {{"name", job_name + "-x1"},
          {"namespace", kNs},
          {"labels", {{"job-name", job_name}, {nix::kImageLabel, "web"}}}}},
        {"status",
         {{"phase", ok ? "Succeeded" : "Failed"},
          {"containerStatuses",
           {{{"name", "builder"},
             {"state",
              {{"terminated",
                {{"exitCode", ok ? 0 : nix::kExitBuildFailed},
                 {"message", message}}}}}}}}}}};
    Create(kube::resources::Pods(), pod);
    kube::Object job = Job(job_name);
    job["status"] = {{ok ? "succeeded" : "failed", 1},
                     {"conditions",
                      {{{"type", ok ? "Complete" : "Failed"},
                        {"status", "True"},
                        {"reason", ok ? "" : "BackoffLimitExceeded"},
                        {"message", ok ? "" : "Job has reached the specified backoff limit"},
                        {"lastTransitionTime", kube::FormatTime(world_.clock.WallNow())}}}}};
    auto updated = kube_.UpdateStatus(kube::resources::Jobs(), job);
    ASSERT_TRUE(updated.ok()) << updated.status().ToString();
  }

  // A successful result for `store_path`, its volume uploaded to pve-sim's
  // `local` storage on both allowed nodes as the builder would.
  nix::BuildResult Built(const std::string& store_path) {
    nix::BuildResult r;
    r.ok = true;
    r.store_path = store_path;
    r.nar_hash = "sha256-" + nix::StoreHash(store_path);
    r.size = 64;
    r.format = "qcow2";
    const std::string file = nix::VolumeFileName("web", store_path, "qcow2");
    r.volume_id = "local:import/" + file;
    r.nodes = {"pve1", "pve2"};
    r.uploaded = true;
    r.flake_revision = "rev-" + nix::StoreHash(store_path).substr(0, 6);
    r.build_seconds = 12;
    const std::string path = ::testing::TempDir() + file;
    std::ofstream(path, std::ios::binary) << std::string(64, 'q');
    for (const char* node : {"pve1", "pve2"}) {
      auto upid = runtime_->client().UploadToStorage(node, "local", {"import", path, file, "", ""});
      EXPECT_TRUE(upid.ok()) << upid.status().ToString();
    }
    world_.Advance(seconds(5));
    EXPECT_TRUE(runtime_->RefreshInventory().ok());
    return r;
  }

  bool VolumeExists(const std::string& volume_id, const std::string& node = "pve1") {
    auto content = runtime_->client().ListStorageContent(node, "local", "import");
    EXPECT_TRUE(content.ok());
    for (const proxmox::StorageContent& c : *content) {
      if (c.volid == volume_id) return true;
    }
    return false;
  }

  std::string Key() {
    api::NixImage image = Image();
    return nix::BuildKey(image.spec, "local",
                         kube::StringAt(Object(), {"metadata", "annotations", nix::kRebuildAnnotation}));
  }

  // Builds kPathA to Ready.
  void BuildFirst() {
    Create(NixImages(), api::ToJson(NewImage()));
    ASSERT_TRUE(Pass().ok());
    FinishJob(nix::JobName("web", Key()), Built(kPathA));
    ASSERT_TRUE(Pass().ok());
    ASSERT_EQ(Image().status.phase, api::ImagePhase::kReady);
  }

  std::vector<std::string> ObjectWrites() {
    std::vector<std::string> out;
    for (const std::string& action : kube_.actions()) {
      if (action.find(" events ") == std::string::npos) out.push_back(action);
    }
    return out;
  }

  SimWorld world_;
  kube::FakeClient kube_{world_.clock};
  kube::EventRecorder events_{kube_, {.clock = &world_.clock}};
  api::ProxmoxClusterSpec cluster_;
  ClusterRegistry registry_;
  std::shared_ptr<ClusterRuntime> runtime_;
  std::unique_ptr<ImageReconciler> reconciler_;
};

TEST_F(ImageControllerTest, FirstPassAddsFinalizerAndStartsABuilderJob) {
  Create(NixImages(), api::ToJson(NewImage()));
  auto result = Pass();
  ASSERT_TRUE(result.ok()) << result.status().ToString();

  const std::string job_name = nix::JobName("web", Key());
  EXPECT_THAT(JobNames(), ElementsAre(job_name));
  EXPECT_THAT(Object()["metadata"]["finalizers"], Contains(kFinalizer));
  api::NixImage image = Image();
  EXPECT_EQ(image.status.phase, api::ImagePhase::kBuilding);
  EXPECT_EQ(image.status.job_name, job_name);
  EXPECT_EQ(image.status.build_key, Key());
  EXPECT_EQ(ConditionOf("Built"), "False/Building");
  EXPECT_EQ(ConditionOf("Ready"), "False/Building");

  kube::Object job = Job(job_name);
  EXPECT_EQ(job["metadata"]["ownerReferences"][0]["kind"], "NixImage");
  EXPECT_EQ(job["metadata"]["ownerReferences"][0]["uid"], kube::UidOf(Object()));
  const nlohmann::json& container = job["spec"]["template"]["spec"]["containers"][0];
  EXPECT_EQ(container["image"], "registry.example/nixmox-builder:test");
  std::vector<std::string> args = container["args"].get<std::vector<std::string>>();
  EXPECT_THAT(args, Contains("github:example/infra"));
  EXPECT_THAT(args, Contains("sandbox=false"));
  EXPECT_THAT(args, Contains("pve2"));  // an allowed node
  EXPECT_THAT(container["env"].dump(), Not(HasSubstr("5f0a3c1e")));  // the token by reference only
  // The running Job is followed, not re-created.
  ASSERT_TRUE(Pass().ok());
  EXPECT_THAT(JobNames(), ElementsAre(job_name));
}

TEST_F(ImageControllerTest, SuccessfulBuildFillsStatusAndThenNothingIsWritten) {
  BuildFirst();
  api::NixImage image = Image();
  EXPECT_EQ(image.status.store_path, kPathA);
  EXPECT_EQ(image.status.volume_id,
            "local:import/" + nix::VolumeFileName("web", kPathA, "qcow2"));
  EXPECT_EQ(image.status.nar_hash, std::string("sha256-") + nix::StoreHash(kPathA));
  EXPECT_EQ(image.status.size, 64);
  EXPECT_FALSE(image.status.built_at.empty());
  ASSERT_EQ(image.status.generations.size(), 1u);
  EXPECT_EQ(image.status.generations[0].store_path, kPathA);
  EXPECT_EQ(ConditionOf("Built"), "True/BuildSucceeded");
  EXPECT_EQ(ConditionOf("Uploaded"), "True/UploadSucceeded");
  EXPECT_EQ(ConditionOf("Ready"), "True/ImageAvailable");
  EXPECT_EQ(ConditionOf("Accelerated"), "False/KvmUnavailable");

  const std::size_t writes = ObjectWrites().size();
  auto again = Pass();
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(ObjectWrites().size(), writes) << "a pass with nothing new wrote to Kubernetes";
  EXPECT_EQ(again->requeue_after, milliseconds(0));
}

TEST_F(ImageControllerTest, ProgressFromTheBuilderLogIsShownWhileItRuns) {
  Create(NixImages(), api::ToJson(NewImage()));
  ASSERT_TRUE(Pass().ok());
  const std::string job_name = nix::JobName("web", Key());
  kube::Object pod = {{"apiVersion", "v1"},
                      {"kind", "Pod"},
                      {"metadata",
                       {{"name", job_name + "-x1"},
                        {"namespace", kNs},
                        {"labels", {{"job-name", job_name}}}}},
                      {"status", {{"phase", "Running"}}}};
  Create(kube::resources::Pods(), pod);
  kube_.SetPodLog(kNs, job_name + "-x1",
                  "building...\n" + nix::FormatProgress({nix::Stage::kUpload, 45, "120/260 MiB to pve1"}) +
                      "\n");
  ASSERT_TRUE(Pass().ok());
  EXPECT_EQ(Image().status.phase, api::ImagePhase::kUploading);
  EXPECT_EQ(Image().status.progress, "upload 45%: 120/260 MiB to pve1");
  EXPECT_EQ(ConditionOf("Uploaded"), "False/Uploading");
}

TEST_F(ImageControllerTest, FailedBuildReportsTheErrorBacksOffAndRetries) {
  Create(NixImages(), api::ToJson(NewImage()));
  ASSERT_TRUE(Pass().ok());
  const std::string first = nix::JobName("web", Key());
  nix::BuildResult failed;
  failed.ok = false;
  failed.stage = nix::Stage::kBuild;
  failed.error = "error: attribute 'web' missing\n       at /nix/store/x-source/flake.nix:3:5";
  FinishJob(first, failed);

  auto result = Pass();
  ASSERT_TRUE(result.ok());
  api::NixImage image = Image();
  EXPECT_EQ(image.status.phase, api::ImagePhase::kFailed);
  EXPECT_EQ(image.status.failed_attempts, 1);
  EXPECT_EQ(ConditionOf("Built"), "False/BuildFailed");
  for (const api::Condition& c : image.status.conditions) {
    if (c.type == "Built") {
      EXPECT_THAT(c.message, HasSubstr("attribute 'web' missing"));
    }
  }
  EXPECT_EQ(result->requeue_after, seconds(30));

  // Before the backoff: nothing new, and the count does not climb.
  ASSERT_TRUE(Pass().ok());
  EXPECT_THAT(JobNames(), ElementsAre(first));
  EXPECT_EQ(Image().status.failed_attempts, 1);

  world_.Advance(seconds(31));
  ASSERT_TRUE(Pass().ok());
  EXPECT_THAT(JobNames(), Contains(nix::JobName("web", Key(), "2")));
  EXPECT_EQ(Image().status.phase, api::ImagePhase::kBuilding);
}

TEST_F(ImageControllerTest, UnreadableResultCountsAsOneFailedAttempt) {
  Create(NixImages(), api::ToJson(NewImage()));
  ASSERT_TRUE(Pass().ok());
  const std::string job = nix::JobName("web", Key());
  FinishJob(job, /*ok=*/true, "");  // exited 0 without writing its result
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(Pass().ok());
  EXPECT_EQ(Image().status.phase, api::ImagePhase::kFailed);
  EXPECT_EQ(Image().status.failed_attempts, 1);
  EXPECT_EQ(ConditionOf("Built"), "False/BuildFailed");
  EXPECT_THAT(JobNames(), ElementsAre(job));
  world_.Advance(seconds(31));
  ASSERT_TRUE(Pass().ok());
  EXPECT_THAT(JobNames(), Contains(nix::JobName("web", Key(), "2")));
}

TEST_F(ImageControllerTest, FixedSpecRecoversWithoutWaiting) {
  Create(NixImages(), api::ToJson(NewImage()));
  ASSERT_TRUE(Pass().ok());
  nix::BuildResult failed;
  failed.ok = false;
  failed.error = "error: flake 'github:example/infra' does not provide attribute";
  FinishJob(nix::JobName("web", Key()), failed);
  ASSERT_TRUE(Pass().ok());
  ASSERT_EQ(Image().status.phase, api::ImagePhase::kFailed);

  EditSpec([](kube::Object& obj) {
    obj["spec"]["attribute"] = "nixosConfigurations.web2.config.system.build.image";
  });
  ASSERT_TRUE(Pass().ok());
  const std::string fixed = nix::JobName("web", Key());
  EXPECT_THAT(JobNames(), ElementsAre(fixed));  // the failed Job is cleaned up
  EXPECT_EQ(Image().status.failed_attempts, 0);
  FinishJob(fixed, Built(kPathA));
  ASSERT_TRUE(Pass().ok());
  EXPECT_EQ(Image().status.phase, api::ImagePhase::kReady);
  EXPECT_EQ(ConditionOf("Ready"), "True/ImageAvailable");
}

TEST_F(ImageControllerTest, NewBuildKeepsOldImageInUseAndDeletesUnusedVolumes) {
  BuildFirst();
  const std::string volume_a = Image().status.volume_id;
  // A VM runs generation A.
  api::ProxmoxVm vm;
  vm.metadata = {{"name", "vm1"}, {"namespace", kNs}};
  vm.spec.cluster_ref.name = "lab";
  vm.spec.image_ref = api::LocalObjectReference{"web"};
  vm.status.image_store_path = kPathA;
  Create(ProxmoxVms(), api::ToJson(vm));

  EditSpec([](kube::Object& obj) { obj["metadata"]["annotations"][nix::kRebuildAnnotation] = "1"; });
  ASSERT_TRUE(Pass().ok());
  EXPECT_EQ(Image().status.phase, api::ImagePhase::kBuilding);
  EXPECT_EQ(Image().status.store_path, kPathA) << "the old image stays usable while building";
  FinishJob(nix::JobName("web", Key()), Built(kPathB));
  ASSERT_TRUE(Pass().ok());

  api::NixImage image = Image();
  EXPECT_EQ(image.status.store_path, kPathB);
  ASSERT_EQ(image.status.generations.size(), 2u) << "A is kept: vm1 runs it";
  EXPECT_TRUE(VolumeExists(volume_a));
  EXPECT_EQ(image.status.rollout.total, 1);
  EXPECT_EQ(image.status.rollout.updated, 0);

  // vm1 moves to B: A goes, on every node that had it.
  kube::Object obj = *kube_.Get(ProxmoxVms(), kNs, "vm1");
  obj["status"]["imageStorePath"] = kPathB;
  ASSERT_TRUE(kube_.UpdateStatus(ProxmoxVms(), obj).ok());
  ASSERT_TRUE(Pass().ok());
  world_.Advance(seconds(5));
  image = Image();
  ASSERT_EQ(image.status.generations.size(), 1u);
  EXPECT_EQ(image.status.generations[0].store_path, kPathB);
  EXPECT_FALSE(VolumeExists(volume_a, "pve1"));
  EXPECT_FALSE(VolumeExists(volume_a, "pve2"));
  EXPECT_TRUE(VolumeExists(image.status.volume_id));
  EXPECT_EQ(image.status.rollout.updated, 1);
}

TEST_F(ImageControllerTest, RefreshChecksTheRevisionAndBuildsNothingWhenItDidNotMove) {
  api::NixImage spec = NewImage();
  spec.spec.refresh_interval_seconds = 600;
  Create(NixImages(), api::ToJson(spec));
  ASSERT_TRUE(Pass().ok());
  FinishJob(nix::JobName("web", Key()), Built(kPathA));
  auto ready = Pass();
  ASSERT_TRUE(ready.ok());
  ASSERT_EQ(Image().status.phase, api::ImagePhase::kReady);
  EXPECT_GT(ready->requeue_after, seconds(500));
  const std::size_t jobs_before = JobNames().size();

  world_.Advance(seconds(601));
  ASSERT_TRUE(Pass().ok());
  std::vector<std::string> jobs = JobNames();
  ASSERT_EQ(jobs.size(), jobs_before + 1);
  const std::string check = jobs.back() == Image().status.job_name ? jobs.front() : jobs.back();
  std::vector<std::string> args =
      Job(check)["spec"]["template"]["spec"]["containers"][0]["args"].get<std::vector<std::string>>();
  EXPECT_THAT(args, Contains("--expect-revision"));
  EXPECT_THAT(args, Contains(Image().status.flake_revision));
  EXPECT_EQ(Image().status.phase, api::ImagePhase::kReady) << "a check does not hide the image";

  nix::BuildResult same;
  same.ok = true;
  same.unchanged = true;
  same.flake_revision = Image().status.flake_revision;
  const std::string built_at = Image().status.built_at;
  FinishJob(check, same);
  ASSERT_TRUE(Pass().ok());
  api::NixImage image = Image();
  EXPECT_EQ(image.status.store_path, kPathA);
  EXPECT_EQ(image.status.built_at, built_at);
  EXPECT_EQ(image.status.generations.size(), 1u);
  EXPECT_NE(image.status.checked_at, built_at);
  // The next check is an interval away, and the check's Job is cleaned up.
  auto next = Pass();
  ASSERT_TRUE(next.ok());
  EXPECT_GT(next->requeue_after, seconds(500));
  EXPECT_THAT(JobNames(), Not(Contains(check)));
}

TEST_F(ImageControllerTest, InvalidSpecIsReportedAndNothingIsBuilt) {
  api::NixImage image = NewImage();
  image.spec.flake = "path:/home/me/infra";
  Create(NixImages(), api::ToJson(image));
  auto result = Pass();
  ASSERT_TRUE(result.ok());
  EXPECT_EQ(Image().status.phase, api::ImagePhase::kFailed);
  EXPECT_EQ(ConditionOf("Ready"), "False/InvalidSpec");
  EXPECT_THAT(JobNames(), IsEmpty());
}

TEST_F(ImageControllerTest, DeletionWaitsForItsVmsThenRemovesTheVolumes) {
  BuildFirst();
  const std::string volume = Image().status.volume_id;
  api::ProxmoxVm vm;
  vm.metadata = {{"name", "vm1"}, {"namespace", kNs}};
  vm.spec.cluster_ref.name = "lab";
  vm.spec.image_ref = api::LocalObjectReference{"web"};
  Create(ProxmoxVms(), api::ToJson(vm));

  ASSERT_TRUE(kube_.Delete(NixImages(), kNs, "web").ok());
  auto waiting = Pass();
  ASSERT_TRUE(waiting.ok());
  EXPECT_GT(waiting->requeue_after, milliseconds(0));
  EXPECT_EQ(ConditionOf("Ready"), "False/InUse");
  EXPECT_TRUE(VolumeExists(volume));

  ASSERT_TRUE(kube_.Delete(ProxmoxVms(), kNs, "vm1").ok());
  ASSERT_TRUE(Pass().ok());
  world_.Advance(seconds(5));
  EXPECT_FALSE(kube_.Get(NixImages(), kNs, "web").ok()) << "the finalizer is gone";
  EXPECT_FALSE(VolumeExists(volume, "pve1"));
  EXPECT_FALSE(VolumeExists(volume, "pve2"));
}

TEST_F(ImageControllerTest, ClusterNotReadyWaits) {
  kube::Object cluster = *kube_.Get(ProxmoxClusters(), kNs, "lab");
  cluster["status"]["ready"] = false;
  ASSERT_TRUE(kube_.UpdateStatus(ProxmoxClusters(), cluster).ok());
  Create(NixImages(), api::ToJson(NewImage()));
  auto result = Pass();
  ASSERT_TRUE(result.ok());
  EXPECT_EQ(ConditionOf("Ready"), "False/ClusterNotReady");
  EXPECT_EQ(Image().status.phase, api::ImagePhase::kPending);
  EXPECT_THAT(JobNames(), IsEmpty());
  EXPECT_GT(result->requeue_after, milliseconds(0));
}

}  // namespace
}  // namespace nixmox::controllers
