// Uploading the image: which nodes, skipping what is there already, and
// waiting for Proxmox's import task. The real PveClient runs against pve-sim
// in-process on a FakeClock.
#include "src/nix/upload.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "test/sim/pve/in_process_client.h"
#include "test/sim/pve/pve_sim.h"
#include "test/support/subprocess.h"

namespace nixmox::nix {
namespace {

using nixmox::testing::RunCommand;
using nixmox::testing::TempDir;
using proxmox::ClusterResource;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

ClusterResource NodeEntry(std::string node, std::string status = "online") {
  ClusterResource r;
  r.type = "node";
  r.id = "node/" + node;
  r.node = std::move(node);
  r.status = std::move(status);
  return r;
}

ClusterResource StorageEntry(std::string node, std::string storage, bool shared,
                             std::string content = "iso,import,vztmpl") {
  ClusterResource r;
  r.type = "storage";
  r.id = "storage/" + node + "/" + storage;
  r.node = std::move(node);
  r.storage = std::move(storage);
  r.shared = shared;
  r.content = std::move(content);
  r.status = "available";
  return r;
}

TEST(ChooseUploadNodes, LocalStorageGetsEveryOnlineNodeThatHasIt) {
  auto nodes = ChooseUploadNodes(
      {NodeEntry("pve2"), NodeEntry("pve1"), NodeEntry("pve3", "offline"), NodeEntry("pve4"),
       StorageEntry("pve2", "local", false), StorageEntry("pve1", "local", false),
       StorageEntry("pve3", "local", false), StorageEntry("pve4", "other", false)},
      "local");
  ASSERT_TRUE(nodes.ok()) << nodes.status().ToString();
  EXPECT_THAT(*nodes, ElementsAre("pve1", "pve2"));
}

TEST(ChooseUploadNodes, SharedStorageGetsOneUpload) {
  auto nodes =
      ChooseUploadNodes({NodeEntry("pve1", "offline"), NodeEntry("pve2"), NodeEntry("pve3"),
                         StorageEntry("pve1", "nfs", true), StorageEntry("pve2", "nfs", true),
                         StorageEntry("pve3", "nfs", true)},
                        "nfs");
  ASSERT_TRUE(nodes.ok()) << nodes.status().ToString();
  EXPECT_THAT(*nodes, ElementsAre("pve2"));
}

TEST(ChooseUploadNodes, SkipsAStorageTheNodeCannotReach) {
  ClusterResource unknown = StorageEntry("pve1", "nfs", true);
  unknown.status = "unknown";
  auto nodes = ChooseUploadNodes(
      {NodeEntry("pve1"), NodeEntry("pve2"), unknown, StorageEntry("pve2", "nfs", true)}, "nfs");
  ASSERT_TRUE(nodes.ok());
  EXPECT_THAT(*nodes, ElementsAre("pve2"));
}

TEST(ChooseUploadNodes, SaysWhyNoNodeFits) {
  EXPECT_EQ(ChooseUploadNodes({NodeEntry("pve1"), StorageEntry("pve1", "local", false)}, "nfs")
                .status()
                .code(),
            Code::kNotFound);
  EXPECT_EQ(ChooseUploadNodes({NodeEntry("pve1", "offline"), StorageEntry("pve1", "local", false)},
                              "local")
                .status()
                .code(),
            Code::kRetryable);
  auto no_import = ChooseUploadNodes(
      {NodeEntry("pve1"), StorageEntry("pve1", "local-lvm", false, "images,rootdir")}, "local-lvm");
  EXPECT_EQ(no_import.status().code(), Code::kInvalid);
  EXPECT_THAT(no_import.status().message(), HasSubstr("import"));
}

constexpr char kToken[] = "root@pam!builder=0b6f2a3c-1d4e-4f5a-8b7c-9d0e1f2a3b4c";

class UploadTest : public ::testing::Test {
 protected:
  void SetUp() override {
    pvesim::Options o;
    o.nodes = {"pve1", "pve2"};
    o.tokens = {kToken};
    o.task_duration = std::chrono::milliseconds(2000);
    o.auth_fail_delay = std::chrono::milliseconds(0);
    o.extra_storages = {"isos:dir:iso;vztmpl"};
    o.sleep = [](std::chrono::milliseconds) {};
    auto sim = pvesim::PveSim::Create(o, clock_);
    ASSERT_TRUE(sim.ok()) << sim.status().ToString();
    sim_ = std::move(sim).value();
    proxmox::PveClientOptions po;
    po.token = proxmox::ApiToken::Parse(kToken).value();
    po.clock = &clock_;
    po.sleeper = [](std::chrono::nanoseconds) {};
    po.retry.max_attempts = 1;
    pve_ = proxmox::NewPveClient(po, std::make_shared<pvesim::InProcessClient>(*sim_));

    image_ = dir_.File("offline.qcow2");
    auto made = RunCommand({"qemu-img", "create", "-q", "-f", "qcow2", image_, "64M"});
    ASSERT_EQ(made.exit_code, 0) << made.output;
  }

  UploadSpec Spec() {
    UploadSpec spec;
    spec.file = image_;
    spec.filename = "nixmox-web-0c8mv1s3s0j7ba7f8d2vn5bz4qz8wgky.qcow2";
    spec.storage = "local";
    spec.listed_size = 64u * 1024 * 1024;
    spec.progress_interval = std::chrono::milliseconds(1);
    return spec;
  }

  Result<UploadOutcome> Upload(const UploadSpec& spec) {
    return UploadImage(
        *pve_, spec, [this](const Progress& p) { progress_.push_back(p); }, clock_,
        [this](std::chrono::nanoseconds d) {
          clock_.Advance(d);
          sim_->Tick();
        });
  }

  // How many upload requests pve-sim has answered.
  int Uploads() {
    http::ServerRequest r;
    r.method = "GET";
    r.path = "/_sim/requests";
    auto counters = nlohmann::json::parse(sim_->Handle(r).body);
    return counters.value("POST /nodes/{node}/storage/{storage}/upload", 0);
  }

  std::vector<proxmox::StorageContent> Listed(const std::string& node) {
    auto listed = pve_->ListStorageContent(node, "local", "import");
    EXPECT_TRUE(listed.ok()) << listed.status().ToString();
    return listed.ok() ? *listed : std::vector<proxmox::StorageContent>{};
  }

  FakeClock clock_;
  std::unique_ptr<pvesim::PveSim> sim_;
  std::unique_ptr<proxmox::PveClient> pve_;
  TempDir dir_;
  std::string image_;
  std::vector<Progress> progress_;
};

TEST_F(UploadTest, UploadsToEveryNodeOfALocalStorageAndWaitsForTheImport) {
  auto done = Upload(Spec());
  ASSERT_TRUE(done.ok()) << done.status().ToString();
  EXPECT_EQ(done->volume_id, "local:import/nixmox-web-0c8mv1s3s0j7ba7f8d2vn5bz4qz8wgky.qcow2");
  EXPECT_THAT(done->nodes, ElementsAre("pve1", "pve2"));
  EXPECT_TRUE(done->uploaded);
  for (const std::string node : {"pve1", "pve2"}) {
    auto listed = Listed(node);
    ASSERT_EQ(listed.size(), 1u) << node;
    EXPECT_EQ(listed[0].volid, done->volume_id);
    EXPECT_EQ(listed[0].size, 64u * 1024 * 1024);  // qcow2: the virtual size
    EXPECT_EQ(listed[0].format, "qcow2");
  }
  EXPECT_EQ(Uploads(), 2);
  ASSERT_FALSE(progress_.empty());
  EXPECT_EQ(progress_.back().stage, Stage::kUpload);
  EXPECT_EQ(progress_.back().percent, 100);
  EXPECT_THAT(progress_.front().message, HasSubstr("to pve1"));
}

TEST_F(UploadTest, SkipsNodesThatHaveTheVolumeWithTheSameSize) {
  UploadSpec only_pve1 = Spec();
  only_pve1.nodes = {"pve1"};
  ASSERT_TRUE(Upload(only_pve1).ok());
  ASSERT_EQ(Uploads(), 1);

  auto done = Upload(Spec());
  ASSERT_TRUE(done.ok()) << done.status().ToString();
  EXPECT_TRUE(done->uploaded);
  EXPECT_EQ(Uploads(), 2) << "only pve2 lacked it";

  auto again = Upload(Spec());
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  EXPECT_FALSE(again->uploaded);
  EXPECT_THAT(again->nodes, ElementsAre("pve1", "pve2"));
  EXPECT_EQ(Uploads(), 2);
}

TEST_F(UploadTest, UploadsAgainWhenTheSizeDiffers) {
  UploadSpec spec = Spec();
  spec.nodes = {"pve1"};
  ASSERT_TRUE(Upload(spec).ok());
  spec.listed_size += 1;  // as if the volume there were a different file
  auto done = Upload(spec);
  ASSERT_TRUE(done.ok()) << done.status().ToString();
  EXPECT_TRUE(done->uploaded);
  EXPECT_EQ(Uploads(), 2);
}

TEST_F(UploadTest, StorageWithoutImportContentFailsBeforeUploading) {
  UploadSpec spec = Spec();
  spec.storage = "isos";
  auto done = Upload(spec);
  ASSERT_FALSE(done.ok());
  EXPECT_EQ(done.status().code(), Code::kInvalid);
  EXPECT_THAT(done.status().message(), HasSubstr("import"));
  EXPECT_EQ(Uploads(), 0);
}

TEST_F(UploadTest, RefusalByProxmoxNamesTheNode) {
  UploadSpec spec = Spec();
  spec.nodes = {"pve2"};
  spec.storage = "local-lvm";  // block storage: Proxmox refuses uploads
  auto done = Upload(spec);
  ASSERT_FALSE(done.ok());
  EXPECT_THAT(done.status().message(), HasSubstr("pve2"));
}

TEST(FileReadPosition, FollowsAnOpenStream) {
  TempDir dir;
  const std::string file = dir.File("f");
  std::ofstream(file) << std::string(100000, 'x');
  EXPECT_EQ(FileReadPosition(file), std::nullopt);
  std::ifstream in(file, std::ios::binary);
  ASSERT_EQ(FileReadPosition(file), 0u);
  char buf[1000];
  in.read(buf, sizeof buf);
  auto pos = FileReadPosition(file);
  ASSERT_TRUE(pos.has_value());
  EXPECT_GE(*pos, 1000u);  // the stream may read ahead into its buffer
  EXPECT_LE(*pos, 100000u);
}

}  // namespace
}  // namespace nixmox::nix
