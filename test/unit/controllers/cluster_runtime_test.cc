#include "src/controllers/cluster_runtime.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "test/unit/controllers/sim_world.h"

namespace nixmox::controllers {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;
using ::testing::UnorderedElementsAre;
using testing::SimWorld;

proxmox::ClusterResource Vm(int vmid, std::string status, std::vector<std::string> tags = {}) {
  proxmox::ClusterResource r;
  r.type = "qemu";
  r.id = "qemu/" + std::to_string(vmid);
  r.vmid = vmid;
  r.node = "pve1";
  r.status = std::move(status);
  r.tags = std::move(tags);
  return r;
}

TEST(InventoryTest, SplitsByTypeAndFindsVmsByIdAndTag) {
  proxmox::ClusterResource node;
  node.type = "node";
  node.node = "pve1";
  proxmox::ClusterResource storage;
  storage.type = "storage";
  storage.storage = "local";
  Inventory inv = Inventory::FromResources(
      {node, storage, Vm(100, "running", {"nixmox-uid-a", "web"}), Vm(101, "stopped")}, {});
  EXPECT_EQ(inv.nodes.size(), 1u);
  EXPECT_EQ(inv.storages.size(), 1u);
  ASSERT_NE(inv.FindVm(101), nullptr);
  EXPECT_EQ(inv.FindVm(101)->status, "stopped");
  EXPECT_EQ(inv.FindVm(102), nullptr);
  ASSERT_NE(inv.FindVmByTag(UidTag("a")), nullptr);
  EXPECT_EQ(inv.FindVmByTag(UidTag("a"))->vmid, 100);
  EXPECT_EQ(inv.FindVmByTag(UidTag("b")), nullptr);
}

TEST(InventoryTest, DiffReportsWhatAProxmoxVmMustLookAtAndIgnoresUsage) {
  auto usage = Vm(102, "running");
  Inventory before = Inventory::FromResources(
      {Vm(100, "running", {"nixmox-uid-a"}), Vm(101, "running"), usage}, {});
  usage.cpu = 0.9;  // load and memory use move all the time
  usage.mem = 1234;
  usage.uptime = 99;
  Inventory after = Inventory::FromResources(
      {Vm(100, "stopped", {"nixmox-uid-a"}), usage, Vm(103, "running", {"x"})}, {});
  std::vector<InventoryChange> changes = DiffInventories(before, after);
  ASSERT_EQ(changes.size(), 3u);
  EXPECT_EQ(changes[0].kind, InventoryChange::Kind::kChanged);
  EXPECT_EQ(changes[0].vmid, 100);
  EXPECT_THAT(changes[0].tags, ElementsAre("nixmox-uid-a"));
  EXPECT_EQ(changes[1].kind, InventoryChange::Kind::kAdded);
  EXPECT_EQ(changes[1].vmid, 103);
  EXPECT_EQ(changes[2].kind, InventoryChange::Kind::kRemoved);
  EXPECT_EQ(changes[2].vmid, 101);
}

TEST(InventoryTest, TagChangesCarryOldAndNewTags) {
  Inventory before = Inventory::FromResources({Vm(100, "running", {"nixmox-uid-a"})}, {});
  Inventory after = Inventory::FromResources({Vm(100, "running", {"other"})}, {});
  std::vector<InventoryChange> changes = DiffInventories(before, after);
  ASSERT_EQ(changes.size(), 1u);
  EXPECT_THAT(changes[0].tags, ElementsAre("nixmox-uid-a", "other"));
}

TEST(VmidAllocatorTest, SkipsIdsInProxmoxHeldByObjectsOrRecentlyHandedOut) {
  FakeClock clock;
  VmidAllocator allocator({.min_vmid = 100, .max_vmid = 200, .hold = std::chrono::minutes(5)},
                          clock);
  Inventory inv = Inventory::FromResources({Vm(100, "running"), Vm(102, "running")}, {});
  EXPECT_EQ(allocator.Allocate(inv, {101}).value(), 103);
  EXPECT_EQ(allocator.Allocate(inv, {101}).value(), 104);  // 103 is held for a while
  allocator.Release(103);
  EXPECT_EQ(allocator.Allocate(inv, {101}).value(), 103);
  clock.Advance(std::chrono::minutes(6));  // holds expire: the status write has landed by then
  EXPECT_EQ(allocator.Allocate(inv, {}).value(), 101);
}

TEST(VmidAllocatorTest, ExhaustedRangeIsRetryable) {
  FakeClock clock;
  VmidAllocator allocator({.min_vmid = 100, .max_vmid = 101}, clock);
  Inventory inv = Inventory::FromResources({Vm(100, "running")}, {});
  EXPECT_EQ(allocator.Allocate(inv, {}).value(), 101);
  Result<int> none = allocator.Allocate(inv, {});
  ASSERT_FALSE(none.ok());
  EXPECT_EQ(none.status().code(), Code::kRetryable);
}

TEST(StorageSlotsTest, BoundsHoldersPerStorageAndExpiresForgottenOnes) {
  FakeClock clock;
  StorageSlots slots(2, std::chrono::minutes(30), clock);
  EXPECT_TRUE(slots.TryAcquire("local-lvm", "ns/a"));
  EXPECT_TRUE(slots.TryAcquire("local-lvm", "ns/b"));
  EXPECT_TRUE(slots.TryAcquire("local-lvm", "ns/a"));  // already held: still ok
  EXPECT_FALSE(slots.TryAcquire("local-lvm", "ns/c"));
  EXPECT_TRUE(slots.TryAcquire("other", "ns/c"));  // per storage
  slots.Release("local-lvm", "ns/a");
  EXPECT_TRUE(slots.TryAcquire("local-lvm", "ns/c"));
  EXPECT_EQ(slots.InUse("local-lvm"), 2);
  clock.Advance(std::chrono::minutes(31));
  EXPECT_EQ(slots.InUse("local-lvm"), 0);
}

TEST(StorageSlotsTest, AReleaseWakesTheFirstInLineOnly) {
  FakeClock clock;
  StorageSlots slots(1, std::chrono::minutes(30), clock);
  std::vector<std::string> woken;
  slots.SetWaker([&](const std::string& holder) { woken.push_back(holder); });
  EXPECT_TRUE(slots.TryAcquire("s", "ns/a"));
  EXPECT_FALSE(slots.TryAcquire("s", "ns/b"));
  EXPECT_FALSE(slots.TryAcquire("s", "ns/c"));
  EXPECT_FALSE(slots.TryAcquire("s", "ns/b"));  // asking again keeps its place
  slots.Release("s", "ns/a");
  EXPECT_THAT(woken, ElementsAre("ns/b"));
  EXPECT_TRUE(slots.TryAcquire("s", "ns/b"));
  slots.Release("s", "ns/c");  // c gives up its place: nobody to wake for it
  slots.Release("s", "ns/b");
  EXPECT_THAT(woken, ElementsAre("ns/b"));
  EXPECT_EQ(slots.InUse("s"), 0);
}

TEST(StorageSlotsTest, LocalStoragesAreBoundPerNodeSharedOnesOnce) {
  proxmox::ClusterResource local1{
      .id = "storage/pve1/local-lvm", .type = "storage", .node = "pve1"};
  local1.storage = "local-lvm";
  proxmox::ClusterResource local2 = local1;
  local2.id = "storage/pve2/local-lvm";
  local2.node = "pve2";
  proxmox::ClusterResource ceph{.id = "storage/pve1/ceph", .type = "storage", .node = "pve1"};
  ceph.storage = "ceph";
  ceph.shared = true;
  const Inventory inv = Inventory::FromResources({local1, local2, ceph}, {});
  EXPECT_EQ(SlotName(inv, "pve1", "local-lvm"), "pve1/local-lvm");
  EXPECT_EQ(SlotName(inv, "pve2", "local-lvm"), "pve2/local-lvm");
  EXPECT_EQ(SlotName(inv, "pve2", "ceph"), "ceph");
  EXPECT_EQ(SlotName(inv, "pve1", "unknown"), "unknown");  // not listed: the careful bound
}

TEST(InventoryTest, CountsTheRunningVmsNixmoxManages) {
  const Inventory inv = Inventory::FromResources(
      {Vm(100, "running", {"nixmox-uid-a"}), Vm(101, "stopped", {"nixmox-uid-b"}),
       Vm(102, "running", {"web"}), Vm(103, "running", {"nixmox-uid-c", "prod"})},
      {});
  EXPECT_EQ(inv.managed_running, 2);
}

TEST(VmidAllocatorTest, AsksWhetherEachCandidateIsHeld) {
  FakeClock clock;
  VmidAllocator allocator({.min_vmid = 100, .max_vmid = 200}, clock);
  Inventory inv = Inventory::FromResources({Vm(100, "running")}, {});
  std::vector<int> asked;
  Result<int> got = allocator.AllocateExcept(inv, [&](int vmid) {
    asked.push_back(vmid);
    return vmid < 103;
  });
  EXPECT_EQ(got.value(), 103);
  EXPECT_THAT(asked, ElementsAre(101, 102, 103));  // never about a VMID the inventory shows
}

TEST(PlacementLedgerTest, SumsPromisedMemoryPerNode) {
  PlacementLedger ledger;
  ledger.Add("ns/a", "pve1", 1024);
  ledger.Add("ns/b", "pve1", 2048);
  ledger.Add("ns/c", "pve2", 512);
  ledger.Add("ns/a", "pve2", 1024);  // re-placed
  EXPECT_THAT(ledger.Pending(),
              UnorderedElementsAre(std::pair<const std::string, std::uint64_t>("pve1", 2048),
                                   std::pair<const std::string, std::uint64_t>("pve2", 1536)));
  ledger.Remove("ns/b");
  ledger.Remove("ns/c");
  EXPECT_THAT(ledger.Pending(),
              ElementsAre(std::pair<const std::string, std::uint64_t>("pve2", 1024)));
}

TEST(ClusterRuntimeTest, RefreshListsOnceAPeriodAndReportsChanges) {
  SimWorld world;
  ClusterRuntime runtime("default/lab", api::ProxmoxClusterSpec{}, world.NewClient(), world.clock,
                         {.min_refresh_interval = std::chrono::seconds(1)});
  std::vector<InventoryChange> seen;
  runtime.SetChangeListener([&](const std::string& key, const std::vector<InventoryChange>& c) {
    EXPECT_EQ(key, "default/lab");
    seen.insert(seen.end(), c.begin(), c.end());
  });
  EXPECT_EQ(runtime.inventory(), nullptr);

  auto first = runtime.RefreshInventory();
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  EXPECT_EQ((*first)->nodes.size(), 3u);
  EXPECT_THAT((*first)->vms, IsEmpty());
  EXPECT_THAT(seen, IsEmpty());

  proxmox::Params params;
  params.Set("name", "web").SetTags({"nixmox-uid-u1"}).Set("memory", "512");
  auto upid = runtime.client().CreateVm("pve2", 150, params);
  ASSERT_TRUE(upid.ok()) << upid.status().ToString();

  // Within the interval the same list is returned: no second request.
  EXPECT_EQ(runtime.RefreshInventory().value(), first.value());
  EXPECT_THAT(seen, IsEmpty());

  world.Advance(std::chrono::seconds(5));
  auto second = runtime.RefreshInventory();
  ASSERT_TRUE(second.ok());
  ASSERT_NE((*second)->FindVmByTag(UidTag("u1")), nullptr);
  EXPECT_EQ((*second)->FindVmByTag(UidTag("u1"))->node, "pve2");
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(seen[0].kind, InventoryChange::Kind::kAdded);
  EXPECT_EQ(seen[0].vmid, 150);
}

TEST(ClusterRuntimeTest, FailedListKeepsTheLastInventory) {
  SimWorld world;
  ClusterRuntime runtime("default/lab", api::ProxmoxClusterSpec{}, world.NewClient("wrong"),
                         world.clock);
  auto refreshed = runtime.RefreshInventory();
  ASSERT_FALSE(refreshed.ok());
  EXPECT_EQ(refreshed.status().code(), Code::kUnauthorized);
  EXPECT_EQ(runtime.inventory(), nullptr);
}

TEST(ClusterRegistryTest, AttachesItsListenerToEveryRuntime) {
  SimWorld world;
  ClusterRegistry registry;
  auto early = std::make_shared<ClusterRuntime>("ns/early", api::ProxmoxClusterSpec{},
                                                world.NewClient(), world.clock);
  registry.Put(early);
  std::vector<std::string> keys;
  registry.SetChangeListener(
      [&](const std::string& key, const std::vector<InventoryChange>&) { keys.push_back(key); });
  auto late = std::make_shared<ClusterRuntime>("ns/late", api::ProxmoxClusterSpec{},
                                               world.NewClient(), world.clock);
  registry.Put(late);
  EXPECT_EQ(registry.Get("ns/late"), late);
  EXPECT_EQ(registry.Get("ns/none"), nullptr);

  ASSERT_TRUE(early->RefreshInventory().ok());
  ASSERT_TRUE(late->RefreshInventory().ok());
  ASSERT_TRUE(early->client().CreateVm("pve1", 100, proxmox::Params().Set("name", "a")).ok());
  world.Advance(std::chrono::seconds(5));
  ASSERT_TRUE(early->RefreshInventory().ok());
  ASSERT_TRUE(late->RefreshInventory().ok());  // the same Proxmox: it sees the VM too
  EXPECT_THAT(keys, ElementsAre("ns/early", "ns/late"));

  registry.Remove("ns/late");
  EXPECT_EQ(registry.Get("ns/late"), nullptr);
}

}  // namespace
}  // namespace nixmox::controllers
