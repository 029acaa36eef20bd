// A ProxmoxVM's life with the real binaries: kubectl applies and edits it,
// nixmox-operator drives pve-sim, and the test checks both sides. The suite
// shares one world; every test uses its own VM names.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "test/e2e/world.h"

namespace nixmox::e2e {
namespace {

using ::testing::HasSubstr;
using namespace std::chrono_literals;

bool RunningWithPrimaryIp(const Json& vm) {
  return Phase(vm) == "Running" && !PrimaryIp(vm).empty();
}

class VmLifecycle : public WorldTest {
 protected:
  static void SetUpTestSuite() { StartWorld({.name = "lifecycle"}); }

  // Applies a VM and waits until it runs with a primary IP; returns it.
  Json CreateRunningVm(const std::string& name, const Json& spec = Json::object()) {
    const auto applied = world().Apply(world().VmManifest(name, spec).dump());
    EXPECT_EQ(applied.exit_code, 0) << applied.output;
    return world().WaitFor("proxmoxvm", name, RunningWithPrimaryIp);
  }

  // The VM's config in pve-sim, from the node and VMID in the object's status.
  proxmox::VmConfig Config(const Json& vm) {
    auto config =
        world().pve().GetVmConfig(StringAt(vm, "/status/node"), StatusVmid(vm).value_or(0));
    EXPECT_TRUE(config.ok()) << config.status().ToString();
    return config.ok() ? *config : proxmox::VmConfig();
  }

  bool VmExists(int vmid) {
    for (const auto& vm : world().Vms()) {
      if (vm.vmid == vmid) return true;
    }
    return false;
  }
};

TEST_F(VmLifecycle, CreatedVmConvergesToRunningWithItsUidTagAndAPrimaryIp) {
  const Json vm = CreateRunningVm("life-create", {{"cpu", {{"cores", 2}}}, {"memoryMiB", 512}});
  ASSERT_TRUE(RunningWithPrimaryIp(vm)) << vm.dump(2);

  const std::string uid = StringAt(vm, "/metadata/uid");
  const auto owned = world().VmsOwnedBy(uid);
  ASSERT_EQ(owned.size(), 1u);
  EXPECT_EQ(owned[0].vmid, StatusVmid(vm));
  EXPECT_EQ(owned[0].node, StringAt(vm, "/status/node"));
  EXPECT_EQ(owned[0].status, "running");
  const proxmox::VmConfig config = Config(vm);
  EXPECT_EQ(config.name(), "life-create");
  EXPECT_EQ(config.cores(), 2);
  EXPECT_EQ(config.memory_mib(), 512);

  // primaryIP is one of the reported addresses, from pve-sim's guest range.
  std::vector<std::string> addresses;
  for (const Json& a : At(vm, "/status/ipAddresses")) addresses.push_back(a.value("address", ""));
  EXPECT_THAT(addresses, ::testing::Contains(PrimaryIp(vm)));
  EXPECT_THAT(PrimaryIp(vm), ::testing::StartsWith("10.213."));
  EXPECT_EQ(StringAt(ConditionOf(vm, "Ready"), "/status"), "True") << vm.dump(2);
}

TEST_F(VmLifecycle, EditedCoresAndMemoryReachTheVmConfig) {
  const Json vm = CreateRunningVm("life-edit");
  ASSERT_TRUE(RunningWithPrimaryIp(vm)) << vm.dump(2);

  const auto patched = world().Kubectl({"patch", "proxmoxvm", "life-edit", "--type", "merge", "-p",
                                        R"({"spec":{"cpu":{"cores":3},"memoryMiB":768}})"});
  ASSERT_EQ(patched.exit_code, 0) << patched.output;
  EXPECT_TRUE(Eventually([&] {
    const proxmox::VmConfig config = Config(vm);
    return config.cores() == 3 && config.memory_mib() == 768;
  })) << "config: cores "
      << Config(vm).cores().value_or(-1) << ", memory " << Config(vm).memory_mib().value_or(-1);
  const Json after = world().WaitFor("proxmoxvm", "life-edit", [](const Json& v) {
    return At(v, "/status/observedGeneration") == At(v, "/metadata/generation") &&
           Phase(v) == "Running";
  });
  EXPECT_EQ(Phase(after), "Running") << after.dump(2);
  EXPECT_EQ(StatusVmid(after), StatusVmid(vm)) << "the edit must not recreate the VM";
}

TEST_F(VmLifecycle, VmStoppedByHandIsStartedAgain) {
  const Json vm = CreateRunningVm("life-restart");
  ASSERT_TRUE(RunningWithPrimaryIp(vm)) << vm.dump(2);
  const std::string node = StringAt(vm, "/status/node");
  const int vmid = StatusVmid(vm).value();

  auto stop = world().pve().StopVm(node, vmid, {});
  ASSERT_TRUE(stop.ok()) << stop.status().ToString();
  proxmox::WaitOptions wait;
  wait.timeout = 30s;
  wait.initial_interval = std::chrono::milliseconds(50);
  ASSERT_TRUE(
      proxmox::WaitForTask(world().pve(), *stop, wait, RealClock(), proxmox::RealSleeper()).ok());

  // The stop is seen (the inventory shows it) and undone.
  EXPECT_TRUE(Eventually([&] {
    auto status = world().pve().GetVmStatus(node, vmid);
    return status.ok() && status->running();
  })) << "the VM stayed stopped";
  const Json after = world().WaitFor("proxmoxvm", "life-restart", RunningWithPrimaryIp);
  EXPECT_TRUE(RunningWithPrimaryIp(after)) << after.dump(2);
  EXPECT_EQ(StatusVmid(after), vmid);
}

TEST_F(VmLifecycle, DeletedObjectTakesItsVmWithIt) {
  const Json vm = CreateRunningVm("life-delete");
  ASSERT_TRUE(RunningWithPrimaryIp(vm)) << vm.dump(2);
  const int vmid = StatusVmid(vm).value();

  const auto deleted = world().Kubectl({"delete", "proxmoxvm", "life-delete", "--wait=false"});
  ASSERT_EQ(deleted.exit_code, 0) << deleted.output;
  EXPECT_TRUE(Eventually([&] { return !world().Get("proxmoxvm", "life-delete"); }))
      << "the object is still there: " << world().Get("proxmoxvm", "life-delete")->dump(2);
  EXPECT_FALSE(VmExists(vmid)) << "VM " << vmid << " outlived its ProxmoxVM";
  EXPECT_TRUE(world().VmsOwnedBy(StringAt(vm, "/metadata/uid")).empty());
}

TEST_F(VmLifecycle, ProtectedVmSurvivesDeletionUntilUnprotected) {
  const Json vm = CreateRunningVm("life-protected", {{"protected", true}});
  ASSERT_TRUE(RunningWithPrimaryIp(vm)) << vm.dump(2);
  const int vmid = StatusVmid(vm).value();
  EXPECT_TRUE(Eventually([&] { return Config(vm).protection(); }))
      << "Proxmox's protection flag was never set";

  const auto deleted = world().Kubectl({"delete", "proxmoxvm", "life-protected", "--wait=false"});
  ASSERT_EQ(deleted.exit_code, 0) << deleted.output;
  const Json held = world().WaitFor("proxmoxvm", "life-protected",
                                    [](const Json& v) { return HasReason(v, "Protected"); });
  EXPECT_TRUE(HasReason(held, "Protected")) << held.dump(2);
  EXPECT_FALSE(At(held, "/metadata/deletionTimestamp").is_null());
  EXPECT_TRUE(VmExists(vmid)) << "a protected VM was destroyed";

  const auto unprotected = world().Kubectl({"patch", "proxmoxvm", "life-protected", "--type",
                                            "merge", "-p", R"({"spec":{"protected":false}})"});
  ASSERT_EQ(unprotected.exit_code, 0) << unprotected.output;
  EXPECT_TRUE(Eventually([&] { return !world().Get("proxmoxvm", "life-protected"); }))
      << "the object is still there after unprotecting it";
  EXPECT_FALSE(VmExists(vmid)) << "VM " << vmid << " outlived its ProxmoxVM";
}

TEST_F(VmLifecycle, ManifestsBreakingTheSchemaAreRejectedNamingTheField) {
  Json vm = world().VmManifest("life-invalid",
                               {{"memoryMiB", 1}, {"networks", {{{"mac", "BC:24:11:zz:00:01"}}}}});
  const auto applied = world().Apply(vm.dump());
  EXPECT_NE(applied.exit_code, 0);
  EXPECT_THAT(applied.output, HasSubstr("The ProxmoxVM \"life-invalid\" is invalid"));
  EXPECT_THAT(applied.output, HasSubstr("spec.memoryMiB: Invalid value: 1: spec.memoryMiB in body "
                                        "should be greater than or equal to 16"));
  EXPECT_THAT(applied.output,
              HasSubstr("spec.networks[0].mac: Invalid value: \"BC:24:11:zz:00:01\""));
  EXPECT_FALSE(world().Get("proxmoxvm", "life-invalid").has_value());
}

TEST_F(VmLifecycle, UnknownNodeIsReportedAsNodeNotAllowed) {
  const auto applied =
      world().Apply(world().VmManifest("life-nonode", {{"node", "nosuchnode"}}).dump());
  ASSERT_EQ(applied.exit_code, 0) << applied.output;
  const Json vm = world().WaitFor("proxmoxvm", "life-nonode",
                                  [](const Json& v) { return HasReason(v, "NodeNotAllowed"); });
  EXPECT_TRUE(HasReason(vm, "NodeNotAllowed")) << vm.dump(2);
  EXPECT_EQ(StringAt(ConditionOf(vm, "Ready"), "/status"), "False") << vm.dump(2);
  EXPECT_TRUE(world().VmsOwnedBy(StringAt(vm, "/metadata/uid")).empty());
  EXPECT_TRUE(world().OperatorRunning());
}

TEST_F(VmLifecycle, MissingNixImageIsReportedAsImageNotFound) {
  Json manifest = world().VmManifest("life-noimage", {{"imageRef", {{"name", "no-such-image"}}}});
  manifest["spec"].erase("sourceVolume");
  const auto applied = world().Apply(manifest.dump());
  ASSERT_EQ(applied.exit_code, 0) << applied.output;
  const Json vm = world().WaitFor("proxmoxvm", "life-noimage",
                                  [](const Json& v) { return HasReason(v, "ImageNotFound"); });
  EXPECT_TRUE(HasReason(vm, "ImageNotFound")) << vm.dump(2);
  EXPECT_EQ(StringAt(ConditionOf(vm, "Ready"), "/status"), "False") << vm.dump(2);
  EXPECT_TRUE(world().VmsOwnedBy(StringAt(vm, "/metadata/uid")).empty());
  EXPECT_TRUE(world().OperatorRunning());
}

}  // namespace
}  // namespace nixmox::e2e
