#include "src/controllers/vm_plan.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>
#include <string>

#include "src/controllers/cluster_runtime.h"
#include "src/controllers/vm_status.h"
#include "test/support/subprocess.h"
#include "test/unit/controllers/sim_world.h"

namespace nixmox::controllers {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;
using ::testing::Pair;
using ::testing::UnorderedElementsAre;

constexpr char kUid[] = "6f1c2d3e-4a5b-4c6d-8e7f-0a1b2c3d4e5f";
constexpr char kStorePath[] = "/nix/store/0123456789abcdfghijklmnpqrsvwxyz-nixos-web.qcow2";
constexpr char kImageVolume[] = "local:import/nixmox-0123456789abcdfg.qcow2";
constexpr char kMac[] = "BC:24:11:2A:3B:4C";
constexpr char kSshKey1[] = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFa+b/9= alice@example.org";
constexpr char kSshKey2[] = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGb0bQ== bob@example.org";

// A typical ProxmoxVM: 2 cores, 4 GiB, a 20 GiB root disk and a 50 GiB data
// disk on the cluster's default storage, one NIC on VLAN 10, two user tags.
api::ProxmoxVm TypicalVm() {
  api::ProxmoxVm vm;
  vm.metadata = {{"name", "web-1"}, {"namespace", "default"}, {"uid", kUid}};
  vm.spec.cluster_ref.name = "pve";
  vm.spec.image_ref = api::LocalObjectReference{"nixos-web"};
  vm.spec.cpu = {.cores = 2, .sockets = 1, .type = "x86-64-v2-AES"};
  vm.spec.memory_mib = 4096;
  vm.spec.root_disk.size_gib = 20;
  vm.spec.disks = {api::ExtraDisk{.slot = "scsi1", .storage = "", .size_gib = 50}};
  vm.spec.networks = {api::NetworkInterface{.vlan = 10}};
  vm.spec.tags = {"Web", "prod"};
  return vm;
}

api::CloudInit TypicalCloudInit() {
  api::CloudInit ci;
  ci.user = "nixos";
  ci.ssh_keys = {kSshKey1, kSshKey2};
  ci.ip_config = {api::IpConfig{.ipv4 = "10.0.0.5/24", .gateway4 = "10.0.0.1", .ipv6 = "auto"}};
  ci.nameservers = {"10.0.0.53", "2001:db8::53"};
  ci.search_domain = "example.org";
  return ci;
}

api::ProxmoxClusterSpec Cluster() {
  api::ProxmoxClusterSpec cluster;
  cluster.default_storage = "local-lvm";
  return cluster;
}

DesiredVm DesireFor(const api::ProxmoxVm& vm, std::string store_path = kStorePath) {
  const api::ProxmoxClusterSpec cluster = Cluster();
  return Desire(PlanInputs{&vm, &cluster, kImageVolume, std::move(store_path)});
}

std::string TypicalTags() {
  return "nixmox-image-0123456789abcdfg;nixmox-uid-" + std::string(kUid) + ";prod;web";
}

// What Proxmox holds after creating TypicalVm from CreateParams and growing
// its root disk: our keys, the generated MAC, sizes, and its own additions.
proxmox::PropertyList TypicalObserved() {
  return {
      {"agent", "enabled=1"},
      {"boot", "order=scsi0"},
      {"cores", "2"},
      {"cpu", "x86-64-v2-AES"},
      {"memory", "4096"},
      {"meta", "creation-qemu=9.2.0,ctime=1718000000"},
      {"name", "web-1"},
      {"net0", std::string("virtio=") + kMac + ",bridge=vmbr0,tag=10"},
      {"ostype", "l26"},
      {"scsi0", "local-lvm:vm-100-disk-0,discard=on,iothread=1,size=20G"},
      {"scsi1", "local-lvm:vm-100-disk-1,discard=on,iothread=1,size=50G"},
      {"scsihw", "virtio-scsi-single"},
      {"serial0", "socket"},
      {"smbios1", "uuid=5b0e7f4c-2d1a-4c3b-9e8f-7a6b5c4d3e2f"},
      {"sockets", "1"},
      {"tags", TypicalTags()},
      {"vga", "serial0"},
      {"vmgenid", "9c8b7a6f-5e4d-4c3b-a291-8f7e6d5c4b3a"},
  };
}

// `entries` with `key` set to `value` (added when absent).
proxmox::PropertyList With(proxmox::PropertyList entries, const std::string& key,
                           const std::string& value) {
  auto it = std::find_if(entries.begin(), entries.end(),
                         [&](const auto& entry) { return entry.first == key; });
  if (it != entries.end()) {
    it->second = value;
  } else {
    entries.emplace_back(key, value);
  }
  return entries;
}

proxmox::PropertyList Without(proxmox::PropertyList entries, const std::string& key) {
  std::erase_if(entries, [&](const auto& entry) { return entry.first == key; });
  return entries;
}

proxmox::VmConfig Config(proxmox::PropertyList entries) {
  std::sort(entries.begin(), entries.end());
  return proxmox::VmConfig(std::move(entries), "3f1e0c9b8a7d6e5f4a3b2c1d0e9f8a7b6c5d4e3f");
}

// ---------------------------------------------------------------------------
// ImageTag, Desire, CreateParams

TEST(ImageTagTest, IsThePrefixAndTheFirstSixteenCharactersOfTheStoreHash) {
  EXPECT_EQ(ImageTag(kStorePath), "nixmox-image-0123456789abcdfg");
  EXPECT_EQ(ImageTag("/nix/store/short-x"), "nixmox-image-short");
  EXPECT_EQ(ImageTag(""), "");
}

TEST(DesireTest, ResolvesDefaultsAndNormalizesTags) {
  const DesiredVm desired = DesireFor(TypicalVm());
  EXPECT_EQ(desired.name, "web-1");
  EXPECT_EQ(desired.cores, 2);
  EXPECT_EQ(desired.sockets, 1);
  EXPECT_EQ(desired.cpu_type, "x86-64-v2-AES");
  EXPECT_EQ(desired.memory_mib, 4096);
  ASSERT_EQ(desired.nets.size(), 1u);
  EXPECT_EQ(desired.nets[0].model, "virtio");
  EXPECT_EQ(desired.nets[0].bridge, "vmbr0");
  EXPECT_EQ(desired.nets[0].tag, 10);
  EXPECT_EQ(desired.nets[0].macaddr, "");
  EXPECT_EQ(desired.root.slot, "scsi0");
  EXPECT_EQ(desired.root.storage, "local-lvm");
  EXPECT_EQ(desired.root.size_bytes, 20ull << 30);
  EXPECT_EQ(desired.import_from, kImageVolume);
  ASSERT_EQ(desired.disks.size(), 1u);
  EXPECT_EQ(desired.disks[0].slot, "scsi1");
  EXPECT_EQ(desired.disks[0].storage, "local-lvm");
  EXPECT_EQ(desired.disks[0].size_bytes, 50ull << 30);
  EXPECT_FALSE(desired.cloud_init.has_value());
  EXPECT_THAT(desired.tags,
              ElementsAre("nixmox-image-0123456789abcdfg", UidTag(kUid), "prod", "web"));
  EXPECT_FALSE(desired.protection);
}

TEST(DesireTest, SpecValuesWinOverDefaultsAndMacsAreUpperCase) {
  api::ProxmoxVm vm = TypicalVm();
  vm.spec.root_disk.storage = "fast";
  vm.spec.root_disk.size_gib.reset();
  vm.spec.disks[0].storage = "bulk";
  vm.spec.networks = {
      {.model = api::NicModel::kE1000, .bridge = "vmbr1", .mac = "bc:24:11:aa:bb:cc"}};
  vm.spec.protection = true;
  const DesiredVm desired = DesireFor(vm, /*store_path=*/"");
  EXPECT_EQ(desired.root.storage, "fast");
  EXPECT_EQ(desired.root.size_bytes, std::nullopt);
  EXPECT_EQ(desired.disks[0].storage, "bulk");
  ASSERT_EQ(desired.nets.size(), 1u);
  EXPECT_EQ(desired.nets[0].model, "e1000");
  EXPECT_EQ(desired.nets[0].macaddr, "BC:24:11:AA:BB:CC");
  EXPECT_EQ(desired.nets[0].tag, std::nullopt);
  EXPECT_THAT(desired.tags, ElementsAre(UidTag(kUid), "prod", "web"));  // no image: no image tag
  EXPECT_TRUE(desired.protection);
}

TEST(DesireTest, NoNetworksMeansOneDefaultNic) {
  api::ProxmoxVm vm = TypicalVm();
  vm.spec.networks.clear();
  const DesiredVm desired = DesireFor(vm);
  ASSERT_EQ(desired.nets.size(), 1u);
  EXPECT_EQ(proxmox::FormatNetConfig(desired.nets[0]), "virtio,bridge=vmbr0");
}

TEST(CreateParamsTest, TypicalVmWithoutCloudInit) {
  const proxmox::Params params = CreateParams(DesireFor(TypicalVm()));
  const proxmox::PropertyList expected = {
      {"name", "web-1"},
      {"cores", "2"},
      {"sockets", "1"},
      {"cpu", "x86-64-v2-AES"},
      {"memory", "4096"},
      {"scsihw", "virtio-scsi-single"},
      {"scsi0",
       "local-lvm:0,discard=on,import-from=local:import/nixmox-0123456789abcdfg.qcow2,iothread=1"},
      {"scsi1", "local-lvm:50,discard=on,iothread=1"},
      {"boot", "order=scsi0"},
      {"agent", "enabled=1"},
      {"serial0", "socket"},
      {"vga", "serial0"},
      {"ostype", "l26"},
      {"net0", "virtio,bridge=vmbr0,tag=10"},
      {"tags", TypicalTags()},
  };
  EXPECT_EQ(params.entries(), expected);
}

TEST(CreateParamsTest, TypicalVmWithCloudInitAndProtection) {
  api::ProxmoxVm vm = TypicalVm();
  vm.spec.cloud_init = TypicalCloudInit();
  vm.spec.protection = true;
  const proxmox::Params params = CreateParams(DesireFor(vm));
  EXPECT_EQ(params.Get("ide2"), "local-lvm:cloudinit");
  EXPECT_EQ(params.Get("ciuser"), "nixos");
  // One key a line, percent-encoded as Proxmox requires.
  EXPECT_EQ(params.Get("sshkeys"),
            "ssh-ed25519%20AAAAC3NzaC1lZDI1NTE5AAAAIFa%2Bb%2F9%3D%20alice%40example.org%0A"
            "ssh-ed25519%20AAAAC3NzaC1lZDI1NTE5AAAAIGb0bQ%3D%3D%20bob%40example.org");
  EXPECT_EQ(params.Get("ipconfig0"), "ip=10.0.0.5/24,gw=10.0.0.1,ip6=auto");
  EXPECT_EQ(params.Get("nameserver"), "10.0.0.53 2001:db8::53");
  EXPECT_EQ(params.Get("searchdomain"), "example.org");
  EXPECT_EQ(params.Get("protection"), "1");
  EXPECT_EQ(params.Get("tags"), TypicalTags());
}

TEST(CreateParamsTest, CloudInitLeavesOutWhatTheSpecLeavesEmpty) {
  api::ProxmoxVm vm = TypicalVm();
  vm.spec.cloud_init = api::CloudInit{};
  vm.spec.cloud_init->ip_config = {api::IpConfig{}, api::IpConfig{.ipv4 = "dhcp"}};
  const proxmox::Params params = CreateParams(DesireFor(vm));
  EXPECT_EQ(params.Get("ide2"), "local-lvm:cloudinit");
  EXPECT_EQ(params.Get("ciuser"), std::nullopt);
  EXPECT_EQ(params.Get("sshkeys"), std::nullopt);
  EXPECT_EQ(params.Get("ipconfig0"), std::nullopt);
  EXPECT_EQ(params.Get("ipconfig1"), "ip=dhcp");
  EXPECT_EQ(params.Get("nameserver"), std::nullopt);
  EXPECT_EQ(params.Get("searchdomain"), std::nullopt);
}

TEST(CreateParamsTest, VirtioRootDiskHasNoScsiOptionsAndRootIsTheBootDevice) {
  api::ProxmoxVm vm = TypicalVm();
  vm.spec.root_disk.slot = "virtio0";
  vm.spec.disks.clear();
  const proxmox::Params params = CreateParams(DesireFor(vm));
  EXPECT_EQ(params.Get("virtio0"),
            "local-lvm:0,import-from=local:import/nixmox-0123456789abcdfg.qcow2");
  EXPECT_EQ(params.Get("scsi0"), std::nullopt);
  EXPECT_EQ(params.Get("boot"), "order=virtio0");
}

// ---------------------------------------------------------------------------
// Diff

TEST(DiffTest, NothingToDoForWhatProxmoxMadeOfCreateParams) {
  const ConfigDiff diff = Diff(DesireFor(TypicalVm()), Config(TypicalObserved()));
  EXPECT_TRUE(diff.empty());
  EXPECT_THAT(diff.drift, IsEmpty());
  EXPECT_THAT(diff.unfixable, IsEmpty());
  EXPECT_FALSE(diff.allocates);
}

TEST(DiffTest, CoresAndMemoryDriftIsSetWithTheObservedDigest) {
  const proxmox::VmConfig observed =
      Config(With(With(TypicalObserved(), "cores", "4"), "memory", "current=2048"));
  const ConfigDiff diff = Diff(DesireFor(TypicalVm()), observed);
  EXPECT_THAT(diff.update.set.entries(), ElementsAre(Pair("cores", "2"), Pair("memory", "4096")));
  EXPECT_THAT(diff.update.delete_keys, IsEmpty());
  EXPECT_EQ(diff.update.digest, observed.digest());
  EXPECT_THAT(diff.drift, ElementsAre("cores: 4 -> 2", "memory: 2048 -> 4096"));
  EXPECT_FALSE(diff.allocates);
}

TEST(DiffTest, NameCpuSocketsAndProtectionDrift) {
  api::ProxmoxVm vm = TypicalVm();
  vm.spec.protection = true;
  proxmox::PropertyList observed = With(TypicalObserved(), "name", "renamed");
  observed = With(With(observed, "cpu", "host,flags=+aes"), "sockets", "2");
  const ConfigDiff diff = Diff(DesireFor(vm), Config(observed));
  EXPECT_THAT(diff.update.set.entries(),
              ElementsAre(Pair("name", "web-1"), Pair("sockets", "1"), Pair("cpu", "x86-64-v2-AES"),
                          Pair("protection", "1")));
  EXPECT_THAT(diff.drift, ElementsAre("name: renamed -> web-1", "sockets: 2 -> 1",
                                      "cpu: host -> x86-64-v2-AES", "protection: off -> on"));
}

TEST(DiffTest, AbsentKeysMeanProxmoxDefaults) {
  api::ProxmoxVm vm = TypicalVm();
  vm.spec.cpu.cores = 1;
  proxmox::PropertyList observed = Without(Without(TypicalObserved(), "cores"), "sockets");
  const ConfigDiff diff = Diff(DesireFor(vm), Config(observed));
  EXPECT_TRUE(diff.empty()) << ::testing::PrintToString(diff.drift);
}

TEST(DiffTest, TagsInAnotherOrderOrCaseAreNoDrift) {
  const std::string shuffled =
      "WEB;nixmox-uid-" + std::string(kUid) + ",Prod nixmox-image-0123456789abcdfg";
  const ConfigDiff diff =
      Diff(DesireFor(TypicalVm()), Config(With(TypicalObserved(), "tags", shuffled)));
  EXPECT_TRUE(diff.empty()) << ::testing::PrintToString(diff.drift);
}

TEST(DiffTest, TagAddedInProxmoxIsDrift) {
  const ConfigDiff diff = Diff(
      DesireFor(TypicalVm()), Config(With(TypicalObserved(), "tags", TypicalTags() + ";handmade")));
  EXPECT_THAT(diff.update.set.entries(), ElementsAre(Pair("tags", TypicalTags())));
  EXPECT_THAT(diff.drift, ElementsAre("tags: handmade;" + TypicalTags() + " -> " + TypicalTags()));
}

TEST(DiffTest, ImageTagIsLeftToTheRollout) {
  // The VM runs an older image: the tag must keep saying so until it is recreated.
  const std::string old_tags =
      "nixmox-image-ffffffffffffffff;nixmox-uid-" + std::string(kUid) + ";prod;web";
  const ConfigDiff diff =
      Diff(DesireFor(TypicalVm()), Config(With(TypicalObserved(), "tags", old_tags)));
  EXPECT_TRUE(diff.empty()) << ::testing::PrintToString(diff.drift);

  api::ProxmoxVm vm = TypicalVm();
  vm.spec.tags.push_back("new");
  const ConfigDiff with_user_tag =
      Diff(DesireFor(vm), Config(With(TypicalObserved(), "tags", old_tags)));
  EXPECT_THAT(with_user_tag.update.set.entries(),
              ElementsAre(Pair("tags", "new;nixmox-image-ffffffffffffffff;nixmox-uid-" +
                                           std::string(kUid) + ";prod;web")));
}

TEST(DiffTest, MissingUidTagIsAdded) {
  const ConfigDiff diff =
      Diff(DesireFor(TypicalVm()),
           Config(With(TypicalObserved(), "tags", "nixmox-image-0123456789abcdfg;prod;web")));
  EXPECT_THAT(diff.update.set.entries(), ElementsAre(Pair("tags", TypicalTags())));
}

TEST(DiffTest, NicBridgeChangeKeepsTheGeneratedMacAndTheFirewall) {
  const ConfigDiff diff =
      Diff(DesireFor(TypicalVm()),
           Config(With(TypicalObserved(), "net0",
                       std::string("virtio=") + kMac + ",bridge=vmbr1,firewall=1,tag=10")));
  EXPECT_THAT(
      diff.update.set.entries(),
      ElementsAre(Pair("net0", std::string("virtio=") + kMac + ",bridge=vmbr0,firewall=1,tag=10")));
  EXPECT_THAT(diff.drift, ElementsAre("net0: bridge vmbr1 -> vmbr0"));
}

TEST(DiffTest, NicModelAndVlanDrift) {
  const ConfigDiff diff =
      Diff(DesireFor(TypicalVm()),
           Config(With(TypicalObserved(), "net0", std::string("e1000=") + kMac + ",bridge=vmbr0")));
  EXPECT_THAT(diff.update.set.entries(),
              ElementsAre(Pair("net0", std::string("virtio=") + kMac + ",bridge=vmbr0,tag=10")));
  EXPECT_THAT(diff.drift, ElementsAre("net0: model e1000 -> virtio, vlan none -> 10"));
}

TEST(DiffTest, MacIsComparedOnlyWhenTheSpecSetsOneAndIgnoringCase) {
  api::ProxmoxVm vm = TypicalVm();
  vm.spec.networks[0].mac = "bc:24:11:2a:3b:4c";
  EXPECT_TRUE(Diff(DesireFor(vm), Config(TypicalObserved())).empty());

  vm.spec.networks[0].mac = "BC:24:11:00:00:01";
  const ConfigDiff diff = Diff(DesireFor(vm), Config(TypicalObserved()));
  EXPECT_THAT(diff.update.set.entries(),
              ElementsAre(Pair("net0", "virtio=BC:24:11:00:00:01,bridge=vmbr0,tag=10")));
  EXPECT_THAT(diff.drift, ElementsAre(std::string("net0: mac ") + kMac + " -> BC:24:11:00:00:01"));
}

TEST(DiffTest, NicNotInTheSpecIsDeletedAndAMissingOneAdded) {
  const ConfigDiff extra =
      Diff(DesireFor(TypicalVm()),
           Config(With(TypicalObserved(), "net1", "virtio=BC:24:11:00:00:02,bridge=vmbr9")));
  EXPECT_THAT(extra.update.set.entries(), IsEmpty());
  EXPECT_THAT(extra.update.delete_keys, ElementsAre("net1"));
  EXPECT_THAT(extra.drift, ElementsAre("net1: not in the spec, removed"));

  api::ProxmoxVm vm = TypicalVm();
  vm.spec.networks.push_back(api::NetworkInterface{.bridge = "vmbr1"});
  const ConfigDiff missing = Diff(DesireFor(vm), Config(TypicalObserved()));
  EXPECT_THAT(missing.update.set.entries(), ElementsAre(Pair("net1", "virtio,bridge=vmbr1")));
  EXPECT_THAT(missing.drift, ElementsAre("net1: missing"));
}

TEST(DiffTest, MissingExtraDiskIsAllocated) {
  const ConfigDiff diff = Diff(DesireFor(TypicalVm()), Config(Without(TypicalObserved(), "scsi1")));
  EXPECT_THAT(diff.update.set.entries(),
              ElementsAre(Pair("scsi1", "local-lvm:50,discard=on,iothread=1")));
  EXPECT_TRUE(diff.allocates);
  EXPECT_THAT(diff.drift, ElementsAre("scsi1: missing"));
}

TEST(DiffTest, RootDiskSmallerThanTheSpecIsResized) {
  // Right after the import the root disk has the image's size.
  const ConfigDiff diff =
      Diff(DesireFor(TypicalVm()),
           Config(With(TypicalObserved(), "scsi0",
                       "local-lvm:vm-100-disk-0,discard=on,iothread=1,size=2G")));
  EXPECT_FALSE(diff.empty());
  EXPECT_THAT(diff.update.set.entries(), IsEmpty());
  EXPECT_THAT(diff.resizes, ElementsAre(Resize{"scsi0", "20G"}));
  EXPECT_THAT(diff.drift, ElementsAre("scsi0: size 2G -> 20G"));
}

TEST(DiffTest, RootDiskWithoutASizeInTheSpecKeepsTheImageSize) {
  api::ProxmoxVm vm = TypicalVm();
  vm.spec.root_disk.size_gib.reset();
  const ConfigDiff diff = Diff(
      DesireFor(vm), Config(With(TypicalObserved(), "scsi0", "local-lvm:vm-100-disk-0,size=2G")));
  EXPECT_TRUE(diff.empty());
}

TEST(DiffTest, ShrinkIsRefusedAsUnfixable) {
  const ConfigDiff diff =
      Diff(DesireFor(TypicalVm()),
           Config(With(TypicalObserved(), "scsi1", "local-lvm:vm-100-disk-1,size=80G")));
  EXPECT_TRUE(diff.empty());
  EXPECT_THAT(diff.resizes, IsEmpty());
  EXPECT_THAT(diff.unfixable,
              ElementsAre("scsi1: 80G is larger than the spec's 50G; disks are never shrunk"));
}

TEST(DiffTest, DiskOnAnotherStorageIsReportedNotMoved) {
  const ConfigDiff diff =
      Diff(DesireFor(TypicalVm()),
           Config(With(TypicalObserved(), "scsi1", "bulk:vm-100-disk-1,size=50G")));
  EXPECT_TRUE(diff.empty());
  EXPECT_THAT(diff.unfixable,
              ElementsAre("scsi1: on storage bulk, the spec says local-lvm; disks are not moved"));
}

TEST(DiffTest, DisksTheSpecDoesNotNameAreLeftAlone) {
  proxmox::PropertyList observed = TypicalObserved();
  observed = With(observed, "scsi2", "local-lvm:vm-100-disk-2,size=8G");
  observed = With(observed, "unused0", "local-lvm:vm-100-disk-3");
  observed = With(observed, "ide0", "local:iso/nixos.iso,media=cdrom,size=1G");
  observed = With(observed, "ide2", "local-lvm:vm-100-cloudinit,media=cdrom");
  observed = With(observed, "efidisk0", "local-lvm:vm-100-disk-4,efitype=4m,size=4M");
  const ConfigDiff diff = Diff(DesireFor(TypicalVm()), Config(observed));
  EXPECT_TRUE(diff.empty());
  EXPECT_THAT(diff.update.delete_keys, IsEmpty());
  EXPECT_THAT(diff.unfixable, ElementsAre("scsi2: not in the spec; left in place"));
}

TEST(DiffTest, MissingRootDiskIsUnfixable) {
  const ConfigDiff diff = Diff(DesireFor(TypicalVm()), Config(Without(TypicalObserved(), "scsi0")));
  EXPECT_TRUE(diff.empty());
  EXPECT_THAT(diff.unfixable, ElementsAre("scsi0: the root disk is missing; recreate the VM"));
}

proxmox::PropertyList WithCloudInit(proxmox::PropertyList entries) {
  entries = With(entries, "ide2", "local-lvm:vm-100-cloudinit,media=cdrom");
  entries = With(entries, "ciuser", "nixos");
  // Proxmox keeps the keys percent-encoded; a trailing newline is no difference.
  entries = With(entries, "sshkeys",
                 "ssh-ed25519%20AAAAC3NzaC1lZDI1NTE5AAAAIFa%2Bb%2F9%3D%20alice%40example.org%0A"
                 "ssh-ed25519%20AAAAC3NzaC1lZDI1NTE5AAAAIGb0bQ%3D%3D%20bob%40example.org%0A");
  entries = With(entries, "ipconfig0", "gw=10.0.0.1,ip=10.0.0.5/24,ip6=auto");
  entries = With(entries, "nameserver", "10.0.0.53 2001:db8::53");
  return With(entries, "searchdomain", "example.org");
}

api::ProxmoxVm CloudInitVm() {
  api::ProxmoxVm vm = TypicalVm();
  vm.spec.cloud_init = TypicalCloudInit();
  return vm;
}

TEST(DiffTest, CloudInitAsCreatedIsNoDrift) {
  const ConfigDiff diff = Diff(DesireFor(CloudInitVm()), Config(WithCloudInit(TypicalObserved())));
  EXPECT_TRUE(diff.empty()) << ::testing::PrintToString(diff.drift);
  EXPECT_THAT(diff.unfixable, IsEmpty());
}

TEST(DiffTest, CloudInitKeysDrift) {
  proxmox::PropertyList observed = WithCloudInit(TypicalObserved());
  observed = With(observed, "ciuser", "root");
  observed = With(observed, "sshkeys",
                  "ssh-ed25519%20AAAAC3NzaC1lZDI1NTE5AAAAIGb0bQ%3D%3D%20bob%40example.org");
  observed = With(observed, "ipconfig1", "ip=dhcp");
  observed = With(observed, "nameserver", "1.1.1.1");
  observed = Without(observed, "searchdomain");
  const ConfigDiff diff = Diff(DesireFor(CloudInitVm()), Config(observed));
  EXPECT_THAT(
      diff.update.set.entries(),
      ElementsAre(Pair("ciuser", "nixos"), Pair("sshkeys", ::testing::StartsWith("ssh-ed25519%20")),
                  Pair("nameserver", "10.0.0.53 2001:db8::53"),
                  Pair("searchdomain", "example.org")));
  EXPECT_THAT(diff.update.delete_keys, ElementsAre("ipconfig1"));
  EXPECT_THAT(diff.drift,
              UnorderedElementsAre("ciuser: root -> nixos", "sshkeys: 1 key(s) -> 2 key(s)",
                                   "ipconfig1: ip=dhcp -> (unset)",
                                   "nameserver: 1.1.1.1 -> 10.0.0.53 2001:db8::53",
                                   "searchdomain: (unset) -> example.org"));
  EXPECT_FALSE(diff.allocates);
}

TEST(DiffTest, CloudInitValuesTheSpecDropsAreDeleted) {
  api::ProxmoxVm vm = CloudInitVm();
  vm.spec.cloud_init->user.clear();
  vm.spec.cloud_init->ssh_keys.clear();
  vm.spec.cloud_init->search_domain.clear();
  const ConfigDiff diff = Diff(DesireFor(vm), Config(WithCloudInit(TypicalObserved())));
  EXPECT_THAT(diff.update.set.entries(), IsEmpty());
  EXPECT_THAT(diff.update.delete_keys, UnorderedElementsAre("ciuser", "sshkeys", "searchdomain"));
}

TEST(DiffTest, CloudInitDriveIsAddedWhenMissing) {
  const ConfigDiff diff =
      Diff(DesireFor(CloudInitVm()), Config(Without(WithCloudInit(TypicalObserved()), "ide2")));
  EXPECT_THAT(diff.update.set.entries(), ElementsAre(Pair("ide2", "local-lvm:cloudinit")));
  EXPECT_TRUE(diff.allocates);
  EXPECT_THAT(diff.drift, ElementsAre("ide2: cloud-init drive missing"));
}

TEST(DiffTest, CloudInitKeysAreNotComparedWhenTheSpecHasNoCloudInit) {
  const ConfigDiff diff = Diff(DesireFor(TypicalVm()), Config(WithCloudInit(TypicalObserved())));
  EXPECT_TRUE(diff.empty()) << ::testing::PrintToString(diff.drift);
  EXPECT_THAT(diff.unfixable, IsEmpty());
}

// ---------------------------------------------------------------------------
// KeysAwaitingRestart

TEST(KeysAwaitingRestartTest, ManagedKeysWithAPendingChangeOrDeletion) {
  std::vector<proxmox::PendingEntry> pending = {
      {.key = "cores", .value = "2"},  // nothing pending
      {.key = "memory", .value = "2048", .pending = "4096"},
      {.key = "net1", .value = "virtio=BC:24:11:00:00:02", .pending_delete = true},
      {.key = "description", .value = "x", .pending = "y"},  // not ours
      {.key = "scsi1", .pending = "local-lvm:vm-100-disk-1,size=50G"},
      {.key = "ipconfig0", .value = "ip=dhcp", .pending = "ip=10.0.0.5/24"},
      {.key = "vmgenid", .pending_delete = true},  // not ours
  };
  EXPECT_THAT(KeysAwaitingRestart(pending), ElementsAre("memory", "net1", "scsi1", "ipconfig0"));
  EXPECT_THAT(KeysAwaitingRestart({}), IsEmpty());
}

// ---------------------------------------------------------------------------
// Against pve-sim: what CreateParams makes, read back, is in sync.

class DiffAgainstSimTest : public ::testing::Test {
 protected:
  void SetUp() override {
    client_ = world_.NewClient();
    const std::string file = dir_.File("nixos.raw");
    std::ofstream(file, std::ios::binary) << std::string(1 << 20, 'n');
    auto upload = client_->UploadToStorage("pve1", "local", {"import", file, "nixos.raw", "", ""});
    ASSERT_TRUE(upload.ok()) << upload.status().ToString();
    Wait(*upload);
  }

  void Wait(const proxmox::Upid& upid) {
    auto done =
        proxmox::WaitForTask(*client_, upid, {}, world_.clock, [this](std::chrono::nanoseconds d) {
          world_.Advance(std::chrono::duration_cast<std::chrono::milliseconds>(d));
        });
    ASSERT_TRUE(done.ok()) << done.status().ToString();
  }

  proxmox::VmConfig ReadConfig() {
    auto config = client_->GetVmConfig("pve1", kVmid);
    EXPECT_TRUE(config.ok()) << config.status().ToString();
    return config.ok() ? *config : proxmox::VmConfig();
  }

  static constexpr int kVmid = 100;
  testing::SimWorld world_;
  ::nixmox::testing::TempDir dir_;
  std::unique_ptr<proxmox::PveClient> client_;
};

TEST_F(DiffAgainstSimTest, CreatedVmIsInSyncOnceTheRootDiskIsGrown) {
  api::ProxmoxVm vm = CloudInitVm();
  vm.spec.root_disk.size_gib = 2;
  vm.spec.disks[0].size_gib = 1;
  vm.spec.protection = true;
  const api::ProxmoxClusterSpec cluster = Cluster();
  const DesiredVm desired = Desire(PlanInputs{&vm, &cluster, "local:import/nixos.raw", kStorePath});

  auto created = client_->CreateVm("pve1", kVmid, CreateParams(desired));
  ASSERT_TRUE(created.ok()) << created.status().ToString();
  Wait(*created);

  // The import took the image's size (1 MiB); the spec wants 2 GiB.
  ConfigDiff diff = Diff(desired, ReadConfig());
  EXPECT_THAT(diff.update.set.entries(), IsEmpty());
  EXPECT_THAT(diff.update.delete_keys, IsEmpty());
  EXPECT_THAT(diff.resizes, ElementsAre(Resize{"scsi0", "2G"}));
  EXPECT_THAT(diff.unfixable, IsEmpty());

  auto resized = client_->ResizeDisk("pve1", kVmid, "scsi0", diff.resizes[0].size);
  ASSERT_TRUE(resized.ok()) << resized.status().ToString();
  if (resized->has_value()) Wait(**resized);

  diff = Diff(desired, ReadConfig());
  EXPECT_TRUE(diff.empty()) << ::testing::PrintToString(diff.drift);
  EXPECT_THAT(diff.drift, IsEmpty());
  EXPECT_THAT(diff.unfixable, IsEmpty());
}

TEST_F(DiffAgainstSimTest, DriftCorrectedThroughTheApiLeavesNothingToDo) {
  api::ProxmoxVm vm = TypicalVm();
  vm.spec.root_disk.size_gib.reset();
  vm.spec.disks.clear();
  const api::ProxmoxClusterSpec cluster = Cluster();
  DesiredVm desired = Desire(PlanInputs{&vm, &cluster, "local:import/nixos.raw", kStorePath});
  auto created = client_->CreateVm("pve1", kVmid, CreateParams(desired));
  ASSERT_TRUE(created.ok()) << created.status().ToString();
  Wait(*created);

  // The spec changes after the VM exists: more memory, a data disk, a second NIC, a tag.
  vm.spec.memory_mib = 8192;
  vm.spec.disks = {api::ExtraDisk{.slot = "scsi1", .size_gib = 1}};
  vm.spec.networks.push_back(api::NetworkInterface{.bridge = "vmbr1"});
  vm.spec.tags.push_back("db");
  desired = Desire(PlanInputs{&vm, &cluster, "local:import/nixos.raw", kStorePath});
  const proxmox::VmConfig before = ReadConfig();
  ConfigDiff diff = Diff(desired, before);
  ASSERT_TRUE(diff.allocates);
  EXPECT_EQ(diff.update.digest, before.digest());
  auto updated = client_->UpdateVmConfig("pve1", kVmid, diff.update);
  ASSERT_TRUE(updated.ok()) << updated.status().ToString();
  if (updated->has_value()) Wait(**updated);

  const proxmox::VmConfig after = ReadConfig();
  diff = Diff(desired, after);
  EXPECT_TRUE(diff.empty()) << ::testing::PrintToString(diff.drift);
  // The MAC Proxmox generated at create is still the one net0 has.
  EXPECT_EQ(after.net(0)->macaddr, before.net(0)->macaddr);
}

}  // namespace
}  // namespace nixmox::controllers

namespace nixmox::controllers {
namespace {

TEST(SummarizeReadyTest, ReadyFollowsThePowerStateAskedFor) {
  api::ProxmoxVmSpec spec;
  api::ProxmoxVmStatus status;
  status.vmid = 101;
  status.node = "pve1";
  status.phase = api::VmPhase::kRunning;
  status.primary_ip = "10.0.0.5";
  ReadySummary ready = SummarizeReady(spec, status);
  EXPECT_EQ(ready.value, api::ConditionStatus::kTrue);
  EXPECT_EQ(ready.reason, "Running");

  // Asked to stop, still running: not Ready until it is stopped.
  spec.power_state = api::PowerState::kStopped;
  ready = SummarizeReady(spec, status);
  EXPECT_EQ(ready.value, api::ConditionStatus::kFalse);
  EXPECT_EQ(ready.reason, "Stopping");
  status.phase = api::VmPhase::kStopped;
  EXPECT_EQ(SummarizeReady(spec, status).value, api::ConditionStatus::kTrue);

  // Asked to run, stopped: not Ready.
  spec.power_state = api::PowerState::kRunning;
  EXPECT_EQ(SummarizeReady(spec, status).value, api::ConditionStatus::kFalse);
}

}  // namespace
}  // namespace nixmox::controllers
