// NixImages end to end: kubesim runs the builder Jobs as local processes, so
// the real nixmox-builder runs real nix (Debian's nix-bin) on the offline
// example flake (nix/examples/offline) and uploads to pve-sim over HTTPS;
// the operator follows the Jobs and VMs boot from the uploaded volumes.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "test/e2e/world.h"

namespace nixmox::e2e {
namespace {

using namespace std::chrono_literals;
using ::testing::HasSubstr;
using ::testing::StartsWith;

// The flake's system for this machine ("x86_64-linux").
std::string NixSystem() {
  utsname u{};
  uname(&u);
  return std::string(u.machine) + "-linux";
}

std::string Attribute(const std::string& name) {
  return "packages." + NixSystem() + "." + name;
}

// Whether this machine can run the builds: nix (nix-bin) without a daemon
// writes /nix itself, which only root may (CI runs as root).
bool NixWorks() {
  if (geteuid() != 0) return false;
  testing::CommandResult r = testing::RunCommand({"nix", "--version"});
  return r.exit_code == 0;
}

class NixImages : public WorldTest {
 protected:
  static void SetUpTestSuite() {
    if (!NixWorks()) return;
    WorldOptions options;
    options.name = "images";
    options.run_jobs = true;
    options.operator_flags = {
        {"--builder-command", NIXMOX_BUILDER_PATH},
        {"--allow-local-flakes", ""},
        // Offline and without nix's sandbox: the example flake calls the host's qemu-img.
        {"--builder-nix-option", "sandbox=false"},
        {"--builder-nix-option", "substituters="},
    };
    StartWorld(options);
  }
  void SetUp() override {
    if (!NixWorks()) GTEST_SKIP() << "needs root and nix (Debian package nix-bin)";
    WorldTest::SetUp();
  }

  static Json ImageManifest(const std::string& name, const std::string& attribute) {
    return {{"apiVersion", "nixmox.io/v1alpha1"},
            {"kind", "NixImage"},
            {"metadata", {{"name", name}}},
            {"spec",
             {{"flake", std::string("path:") + NIXMOX_OFFLINE_FLAKE},
              {"attribute", attribute},
              {"format", "qcow2"},
              {"clusterRef", {{"name", World::kClusterName}}},
              {"generations", 1}}}};
  }

  static Json WaitForImagePhase(const std::string& name, const std::string& phase,
                                const std::string& not_store_path = "") {
    return world().WaitFor(
        "niximage", name,
        [&](const Json& image) {
          return StringAt(image, "/status/phase") == phase &&
                 (not_store_path.empty() ||
                  StringAt(image, "/status/storePath") != not_store_path);
        },
        180s);
  }

  // The import volumes pve-sim's node pve1 holds.
  static std::vector<std::string> Volumes() {
    std::vector<std::string> out;
    auto content = world().pve().ListStorageContent("pve1", "local", "import");
    EXPECT_TRUE(content.ok()) << content.status().ToString();
    if (content.ok()) {
      for (const proxmox::StorageContent& c : *content) out.push_back(c.volid);
    }
    return out;
  }
};

TEST_F(NixImages, BuildsWithRealNixUploadsAndAVmBootsFromItThenRollsOut) {
  ASSERT_EQ(world().Apply(ImageManifest("app", Attribute("qcow2")).dump()).exit_code, 0);
  Json image = WaitForImagePhase("app", "Ready");
  ASSERT_EQ(StringAt(image, "/status/phase"), "Ready") << image.dump(2);
  const std::string store_path = StringAt(image, "/status/storePath");
  EXPECT_THAT(store_path, StartsWith("/nix/store/"));
  EXPECT_THAT(StringAt(image, "/status/narHash"), StartsWith("sha256"));
  EXPECT_GT(At(image, "/status/size").get<long long>(), 0);
  const std::string volume = StringAt(image, "/status/volumeID");
  EXPECT_THAT(volume, StartsWith("local:import/nixmox-app-"));
  EXPECT_THAT(Volumes(), ::testing::Contains(volume));
  EXPECT_EQ(StringAt(ConditionOf(image, "Ready"), "/status"), "True");
  EXPECT_FALSE(StringAt(image, "/status/jobName").empty());

  // A VM boots from it.
  Json vm_spec = {{"sourceVolume", nullptr}, {"imageRef", {{"name", "app"}}}};
  ASSERT_EQ(world().Apply(world().VmManifest("app-vm", vm_spec).dump()).exit_code, 0);
  Json vm = world().WaitFor("proxmoxvm", "app-vm",
                            [](const Json& v) { return Phase(v) == "Running"; }, 120s);
  ASSERT_EQ(Phase(vm), "Running") << vm.dump(2);
  EXPECT_EQ(StringAt(vm, "/status/imageStorePath"), store_path);
  const std::optional<int> vmid = StatusVmid(vm);

  // A new image: rebuilt, and the VM rolls out to it with the same VMID.
  ASSERT_EQ(world()
                .Kubectl({"patch", "niximage", "app", "--type", "merge", "-p",
                          Json{{"spec", {{"attribute", Attribute("qcow2-v2")}}}}.dump()})
                .exit_code,
            0);
  image = WaitForImagePhase("app", "Ready", store_path);
  const std::string new_path = StringAt(image, "/status/storePath");
  ASSERT_NE(new_path, store_path) << image.dump(2);
  vm = world().WaitFor(
      "proxmoxvm", "app-vm",
      [&](const Json& v) {
        return StringAt(v, "/status/imageStorePath") == new_path && Phase(v) == "Running";
      },
      180s);
  EXPECT_EQ(StringAt(vm, "/status/imageStorePath"), new_path) << vm.dump(2);
  EXPECT_EQ(StatusVmid(vm), vmid);
  image = world().WaitFor(
      "niximage", "app",
      [](const Json& i) { return At(i, "/status/rollout/updated") == Json(1); }, 60s);
  EXPECT_EQ(At(image, "/status/rollout/updated"), Json(1)) << image.dump(2);
  EXPECT_EQ(At(image, "/status/rollout/total"), Json(1));
  // The old volume goes once no VM runs it (generations: 1).
  EXPECT_TRUE(Eventually(
      [&] {
        std::vector<std::string> volumes = Volumes();
        return std::find(volumes.begin(), volumes.end(), StringAt(image, "/status/volumeID")) !=
                   volumes.end() &&
               std::find(volumes.begin(), volumes.end(), volume) == volumes.end();
      },
      60s));
}

TEST_F(NixImages, BrokenFlakeFailsWithNixsErrorAndAFixRecovers) {
  ASSERT_EQ(world().Apply(ImageManifest("broken", Attribute("broken")).dump()).exit_code, 0);
  Json image = WaitForImagePhase("broken", "Failed");
  ASSERT_EQ(StringAt(image, "/status/phase"), "Failed") << image.dump(2);
  Json built = ConditionOf(image, "Built");
  EXPECT_EQ(StringAt(built, "/status"), "False");
  EXPECT_EQ(StringAt(built, "/reason"), "BuildFailed");
  EXPECT_THAT(StringAt(built, "/message"), HasSubstr("fails on purpose"));

  ASSERT_EQ(world()
                .Kubectl({"patch", "niximage", "broken", "--type", "merge", "-p",
                          Json{{"spec", {{"attribute", Attribute("raw")}, {"format", "raw"}}}}
                              .dump()})
                .exit_code,
            0);
  image = WaitForImagePhase("broken", "Ready");
  EXPECT_EQ(StringAt(image, "/status/phase"), "Ready") << image.dump(2);
  EXPECT_THAT(StringAt(image, "/status/volumeID"), ::testing::EndsWith(".raw"));
}

}  // namespace
}  // namespace nixmox::e2e
