// nixmox-operator killed with SIGKILL in the middle of creating a VM, then
// started again: it converges to the same world, with exactly one VM carrying
// the ProxmoxVM's UID tag. The create task is slowed down (a slow import) so
// that the kill lands while it runs.
#include <gtest/gtest.h>

#include <set>
#include <thread>

#include "test/e2e/world.h"

namespace nixmox::e2e {
namespace {

using namespace std::chrono_literals;

class OperatorRestart : public WorldTest {
 protected:
  static void SetUpTestSuite() { StartWorld({.name = "restart", .import_ms_per_gib = 3000}); }

  std::set<int> VmidsNow() {
    std::set<int> vmids;
    for (const auto& vm : world().Vms()) vmids.insert(vm.vmid.value_or(0));
    return vmids;
  }

  // Restarts the operator and checks that `name` converges onto one VM.
  void RestartAndExpectOneVm(const std::string& name) {
    ASSERT_TRUE(world().StartOperator().ok()) << world().Logs();
    const Json vm = world().WaitFor(
        "proxmoxvm", name,
        [](const Json& v) { return Phase(v) == "Running" && !PrimaryIp(v).empty(); }, 90s);
    ASSERT_EQ(Phase(vm), "Running") << vm.dump(2);
    const auto owned = world().VmsOwnedBy(StringAt(vm, "/metadata/uid"));
    ASSERT_EQ(owned.size(), 1u) << "VMs tagged for " << name << ": " << owned.size();
    EXPECT_EQ(owned[0].vmid, StatusVmid(vm));
    EXPECT_EQ(owned[0].status, "running");
  }
};

TEST_F(OperatorRestart, KilledWhileTheCreateTaskRunsConvergesOnOneVm) {
  const std::set<int> before = VmidsNow();
  const auto applied = world().Apply(world().VmManifest("restart-in-task").dump());
  ASSERT_EQ(applied.exit_code, 0) << applied.output;

  // The moment a new VM appears under the create lock, the operator dies.
  bool caught = false;
  const auto deadline = std::chrono::steady_clock::now() + 60s;
  while (!caught && std::chrono::steady_clock::now() < deadline) {
    for (const auto& vm : world().Vms()) {
      caught |= vm.lock == "create" && !before.contains(vm.vmid.value_or(0));
    }
    if (!caught) std::this_thread::sleep_for(20ms);
  }
  world().KillOperator();
  ASSERT_TRUE(caught) << "no create task was seen";
  RestartAndExpectOneVm("restart-in-task");
}

TEST_F(OperatorRestart, KilledRightAfterTheVmidIsRecordedConvergesOnOneVm) {
  const auto applied = world().Apply(world().VmManifest("restart-at-vmid").dump());
  ASSERT_EQ(applied.exit_code, 0) << applied.output;
  const Json recorded = world().WaitFor("proxmoxvm", "restart-at-vmid",
                                        [](const Json& v) { return StatusVmid(v).has_value(); });
  world().KillOperator();
  ASSERT_TRUE(StatusVmid(recorded).has_value()) << recorded.dump(2);
  RestartAndExpectOneVm("restart-at-vmid");
}

}  // namespace
}  // namespace nixmox::e2e
