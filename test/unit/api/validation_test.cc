#include "src/api/validation.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "src/api/defaults.h"
#include "src/api/json.h"
#include "test/unit/api/fixtures.h"

namespace nixmox::api {
namespace {

using ::testing::Contains;
using ::testing::ElementsAre;
using testing::Fields;
using ::testing::IsEmpty;
using ::testing::UnorderedElementsAre;

// ---- Valid objects --------------------------------------------------------

TEST(ValidationTest, ValidFullObjectsHaveNoErrors) {
  EXPECT_THAT(Validate(testing::ValidCluster().spec), IsEmpty());
  EXPECT_THAT(Validate(testing::FullImage().spec), IsEmpty());
  EXPECT_THAT(Validate(testing::ValidVm().spec), IsEmpty());
}

TEST(ValidationTest, MinimalObjectsWithDefaultsHaveNoErrors) {
  EXPECT_THAT(Validate(ProxmoxClusterFromJson(testing::MinimalClusterJson())->spec), IsEmpty());
  EXPECT_THAT(Validate(NixImageFromJson(testing::MinimalImageJson())->spec), IsEmpty());
  EXPECT_THAT(Validate(ProxmoxVmFromJson(testing::MinimalVmJson())->spec), IsEmpty());
}

TEST(ValidationTest, EmptySpecsNameEveryRequiredField) {
  EXPECT_THAT(Fields(Validate(ProxmoxClusterSpec{})),
              UnorderedElementsAre("spec.endpoint", "spec.credentialsRef.name"));
  EXPECT_THAT(Fields(Validate(NixImageSpec{})),
              UnorderedElementsAre("spec.flake", "spec.attribute", "spec.clusterRef.name"));
  EXPECT_THAT(Fields(Validate(ProxmoxVmSpec{})),
              UnorderedElementsAre("spec.clusterRef.name", "spec.imageRef"));
}

// ---- ProxmoxCluster -------------------------------------------------------

std::vector<FieldError> WithEndpoint(const std::string& url) {
  ProxmoxClusterSpec s = testing::ValidCluster().spec;
  s.endpoint = url;
  return Validate(s);
}

TEST(ClusterValidationTest, EndpointMustBeHttpsHostAndPortOnly) {
  EXPECT_THAT(WithEndpoint("https://pve.example.org"), IsEmpty());
  EXPECT_THAT(WithEndpoint("https://10.0.0.2:8006/"), IsEmpty());
  EXPECT_THAT(WithEndpoint("https://[2001:db8::2]:8006"), IsEmpty());
  for (const char* bad :
       {"http://pve:8006", "pve:8006", "https://pve:8006/api2/json", "https://user@pve:8006",
        "https://pve:0", "https://pve:99999", "https://pve:", "https://[2001:db8::2",
        "https://:8006", "https://2001:db8::2", "https://pve_1:8006"}) {
    EXPECT_THAT(Fields(WithEndpoint(bad)), ElementsAre("spec.endpoint")) << bad;
  }
}

TEST(ClusterValidationTest, TlsAllowsOneCaSourceAndNoCaWithSkipVerify) {
  ProxmoxClusterSpec s = testing::FullCluster().spec;  // caBundle, caRef and skip-verify all set
  EXPECT_THAT(Fields(Validate(s)),
              UnorderedElementsAre("spec.tls.caRef", "spec.tls.insecureSkipTLSVerify"));
  s = testing::ValidCluster().spec;
  s.tls.ca_bundle = "not a certificate";
  EXPECT_THAT(Validate(s), ElementsAre(FieldError{"spec.tls.caBundle",
                                                  "must hold at least one PEM certificate"}));
}

TEST(ClusterValidationTest, DuplicateAllowedNodesAreReportedByIndex) {
  ProxmoxClusterSpec s = testing::ValidCluster().spec;
  s.allowed_nodes = {"pve1", "pve2", "pve1", "bad_node"};
  EXPECT_THAT(Validate(s), UnorderedElementsAre(
                               FieldError{"spec.allowedNodes[2]", "duplicate"},
                               FieldError{"spec.allowedNodes[3]", "must be a Proxmox node name"}));
}

TEST(ClusterValidationTest, TokenKeysMustDiffer) {
  ProxmoxClusterSpec s = testing::ValidCluster().spec;
  s.credentials_ref.token_secret_key = s.credentials_ref.token_id_key;
  EXPECT_THAT(Fields(Validate(s)), ElementsAre("spec.credentialsRef.tokenSecretKey"));
}

// ---- NixImage -------------------------------------------------------------

std::vector<FieldError> WithFlake(const std::string& flake) {
  NixImageSpec s = testing::FullImage().spec;
  s.flake = flake;
  return Validate(s);
}

TEST(ImageValidationTest, FlakeMustBeFetchableByTheBuilderJob) {
  for (const char* ok : {"github:example/infra", "git+https://git.example.org/infra?ref=main",
                         "nixpkgs", "nixpkgs/nixos-24.11", "https://example.org/infra.tar.gz"}) {
    EXPECT_THAT(WithFlake(ok), IsEmpty()) << ok;
  }
  EXPECT_THAT(
      WithFlake("path:/home/me/infra"),
      ElementsAre(FieldError{"spec.flake", "a local path cannot be fetched by the builder Job"}));
  for (const char* bad :
       {"./infra", "/srv/infra", "git+file:///srv/infra", "svn:foo", "github:", "github:a b"}) {
    EXPECT_THAT(Fields(WithFlake(bad)), ElementsAre("spec.flake")) << bad;
  }
}

TEST(ImageValidationTest, LocalFlakesOnlyWhenAllowed) {
  NixImageSpec s = testing::FullImage().spec;
  for (const char* local : {"path:/srv/infra", "/srv/infra", "./infra", "git+file:///srv/infra"}) {
    s.flake = local;
    EXPECT_THAT(Fields(Validate(s)), ElementsAre("spec.flake")) << local;
    EXPECT_THAT(Validate(s, /*allow_local_flakes=*/true), IsEmpty()) << local;
  }
  s.flake = "svn:foo";  // still not a flake reference
  EXPECT_THAT(Fields(Validate(s, true)), ElementsAre("spec.flake"));
}

TEST(ImageValidationTest, VmaCannotBeUploaded) {
  NixImageSpec s = testing::FullImage().spec;
  s.format = ImageFormat::kVma;
  EXPECT_THAT(Fields(Validate(s)), ElementsAre("spec.format"));
}

TEST(ImageValidationTest, ExtraOptionsMayNotShadowOwnFieldsOrSpanLines) {
  NixImageSpec s = testing::FullImage().spec;
  s.nix.extra_options = {{"substituters", "https://x"},
                         {"access-tokens", "github.com=x"},
                         {"post-build-hook", "/bin/true\nsandbox = false"},
                         {"Bad_Name", "1"}};
  EXPECT_THAT(
      Validate(s),
      UnorderedElementsAre(
          FieldError{"spec.nix.extraOptions[substituters]", "set through spec.nix.substituters"},
          FieldError{"spec.nix.extraOptions[access-tokens]",
                     "set through spec.nix.accessTokensSecretRef"},
          FieldError{"spec.nix.extraOptions[post-build-hook]", "may not contain a newline"},
          FieldError{"spec.nix.extraOptions[Bad_Name]", "must be a nix.conf option name"}));
}

TEST(ImageValidationTest, CachesKeysAndQuantitiesAreChecked) {
  NixImageSpec s = testing::FullImage().spec;
  s.nix.substituters = {"https://cache.nixos.org", "cache.example.org", "https://cache.nixos.org"};
  s.nix.trusted_public_keys = {"cache.nixos.org-1:short="};
  s.builder.resources.requests["memory"] = Quantity{"4 GB"};
  s.generations = 0;
  s.refresh_interval_seconds = 10;
  EXPECT_THAT(Fields(Validate(s)),
              UnorderedElementsAre("spec.nix.substituters[1]", "spec.nix.substituters[2]",
                                   "spec.nix.trustedPublicKeys[0]",
                                   "spec.builder.resources.requests[memory]", "spec.generations",
                                   "spec.refreshIntervalSeconds"));
}

TEST(ImageValidationTest, ClusterRefMayNotChange) {
  NixImageSpec before = testing::FullImage().spec;
  NixImageSpec after = before;
  after.generations = 7;
  EXPECT_THAT(ValidateUpdate(before, after), IsEmpty());
  after.cluster_ref.name = "other";
  EXPECT_THAT(ValidateUpdate(before, after),
              ElementsAre(FieldError{"spec.clusterRef", "is immutable"}));
}

// ---- ProxmoxVM ------------------------------------------------------------

TEST(VmValidationTest, DuplicateDiskSlotsAreReportedWithTheirPath) {
  ProxmoxVmSpec s = testing::ValidVm().spec;
  s.disks = {{"scsi1", "", 10}, {"scsi1", "", 20}, {"virtio0", "", 5}};  // root is virtio0
  EXPECT_THAT(Validate(s),
              UnorderedElementsAre(FieldError{"spec.disks[1].slot", "duplicate"},
                                   FieldError{"spec.disks[2].slot", "used by rootDisk"}));
}

TEST(VmValidationTest, CloudInitDriveOwnsIde2) {
  ProxmoxVmSpec s = testing::ValidVm().spec;
  s.disks = {{"ide2", "", 10}};
  s.cloud_init.reset();
  EXPECT_THAT(Validate(s), IsEmpty()) << "ide2 is free without cloud-init";
  s.cloud_init = CloudInit{};
  EXPECT_THAT(Validate(s),
              ElementsAre(FieldError{"spec.disks[0].slot", "ide2 holds the cloud-init drive"}));
}

TEST(VmValidationTest, SlotsMustExistOnTheirBus) {
  ProxmoxVmSpec s = testing::ValidVm().spec;
  s.root_disk.slot = "scsi31";
  s.disks = {{"virtio15", "", 1}, {"sata6", "", 1}, {"nvme0", "", 1}, {"scsi01", "", 1}};
  EXPECT_THAT(Fields(Validate(s)),
              UnorderedElementsAre("spec.rootDisk.slot", "spec.disks[1].slot", "spec.disks[2].slot",
                                   "spec.disks[3].slot"));
}

TEST(VmValidationTest, ExactlyOneOfImageRefAndSourceVolume) {
  ProxmoxVmSpec s = testing::FullVm().spec;  // both set
  EXPECT_THAT(Validate(s), ElementsAre(FieldError{"spec.sourceVolume",
                                                  "may not be set together with imageRef"}));
  s.image_ref.reset();
  EXPECT_THAT(Validate(s), IsEmpty());
  s.source_volume = "no-colon";
  EXPECT_THAT(Fields(Validate(s)), ElementsAre("spec.sourceVolume"));
}

TEST(VmValidationTest, MacsMustBeUnicastAndUniqueIgnoringCase) {
  ProxmoxVmSpec s = testing::ValidVm().spec;
  s.networks = {{NicModel::kVirtio, "vmbr0", std::nullopt, "bc:24:11:00:00:01"},
                {NicModel::kVirtio, "vmbr0", std::nullopt, "BC:24:11:00:00:01"},
                {NicModel::kVirtio, "vmbr0", std::nullopt, "01:00:5E:00:00:01"},
                {NicModel::kVirtio, "", 5000, ""}};
  EXPECT_THAT(Validate(s),
              UnorderedElementsAre(
                  FieldError{"spec.networks[1].mac", "duplicate"},
                  FieldError{"spec.networks[2].mac",
                             "must be a unicast address (the first octet must be even)"},
                  FieldError{"spec.networks[3].bridge", "must be a Linux bridge name like vmbr0"},
                  FieldError{"spec.networks[3].vlan", "must be between 1 and 4094"}));
}

TEST(VmValidationTest, CloudInitAddressesMatchTheInterfaces) {
  ProxmoxVmSpec s = testing::ValidVm().spec;
  s.networks.clear();  // one NIC by default
  s.cloud_init->ip_config = {{"10.0.0.5/33", "10.0.0.1", "fe80::1", ""},
                             {"dhcp", "10.0.0.1", "", "2001:db8::1"}};
  s.cloud_init->nameservers = {"dns.example.org"};
  EXPECT_THAT(
      Fields(Validate(s)),
      UnorderedElementsAre("spec.cloudInit.ipConfig[0].ipv4", "spec.cloudInit.ipConfig[0].ipv6",
                           "spec.cloudInit.ipConfig[1]", "spec.cloudInit.ipConfig[1].gateway4",
                           "spec.cloudInit.ipConfig[1].gateway6", "spec.cloudInit.nameservers[0]"));
}

TEST(VmValidationTest, SshKeysAreSingleOpenSshLines) {
  ProxmoxVmSpec s = testing::ValidVm().spec;
  s.cloud_init->ssh_keys = {"ssh-ed25519 AAAAC3Nz me@host", "ssh-rsa AAAA\nssh-rsa BBBB",
                            "-----BEGIN OPENSSH PRIVATE KEY-----"};
  EXPECT_THAT(Fields(Validate(s)),
              UnorderedElementsAre("spec.cloudInit.sshKeys[1]", "spec.cloudInit.sshKeys[2]"));
}

TEST(VmValidationTest, TagsAreUniqueIgnoringCaseAndAvoidTheReservedPrefix) {
  ProxmoxVmSpec s = testing::ValidVm().spec;
  s.tags = {"web", "Web", "nixmox-uid-123", "bad tag"};
  EXPECT_THAT(Fields(Validate(s)),
              UnorderedElementsAre("spec.tags[1]", "spec.tags[2]", "spec.tags[3]"));
}

TEST(VmValidationTest, RangesAreCheckedEvenWithoutTheApiServer) {
  ProxmoxVmSpec s = testing::ValidVm().spec;
  s.vmid = 99;
  s.cpu.cores = 0;
  s.memory_mib = 8;
  s.reachability.probe_port = 70000;
  EXPECT_THAT(Fields(Validate(s)),
              UnorderedElementsAre("spec.vmid", "spec.cpu.cores", "spec.memoryMiB",
                                   "spec.reachability.probePort"));
}

TEST(VmValidationTest, VmidOnceSetMayNotChangeAndClusterRefNever) {
  ProxmoxVmSpec before = testing::ValidVm().spec;
  before.vmid.reset();
  ProxmoxVmSpec after = before;
  after.vmid = 150;  // setting it later is allowed
  EXPECT_THAT(ValidateUpdate(before, after), IsEmpty());
  before = after;
  after.vmid = 151;
  EXPECT_THAT(Fields(ValidateUpdate(before, after)), ElementsAre("spec.vmid"));
  after.vmid.reset();
  EXPECT_THAT(Fields(ValidateUpdate(before, after)), ElementsAre("spec.vmid"));
  after = before;
  after.cluster_ref.name = "elsewhere";
  EXPECT_THAT(Fields(ValidateUpdate(before, after)), ElementsAre("spec.clusterRef"));
}

// ---- Status and defaults that need another object -------------------------

TEST(ValidationTest, ToStatusCarriesEveryFieldError) {
  EXPECT_TRUE(ToStatus({}).ok());
  Status s = ToStatus({{"spec.disks[1].slot", "duplicate"}, {"spec.vmid", "out of range"}});
  EXPECT_EQ(s.code(), Code::kInvalid);
  EXPECT_EQ(s.field_errors().size(), 2u);
  EXPECT_EQ(s.message(), "invalid spec: spec.disks[1].slot: duplicate (and 1 more)");
}

TEST(DefaultsTest, StorageAndNetworksFallBackToTheCluster) {
  ProxmoxClusterSpec cluster = testing::ValidCluster().spec;
  ProxmoxVmSpec vm;
  EXPECT_EQ(RootDiskStorage(vm, cluster), "ceph-vm");
  vm.root_disk.storage = "fast";
  EXPECT_EQ(RootDiskStorage(vm, cluster), "fast");
  EXPECT_EQ(DiskStorage(ExtraDisk{"scsi1", "", 1}, cluster), "ceph-vm");
  EXPECT_EQ(DiskStorage(ExtraDisk{"scsi1", "slow", 1}, cluster), "slow");
  NixImageSpec image;
  EXPECT_EQ(ImageStorage(image, cluster), "cephfs");
  image.storage = "local";
  EXPECT_EQ(ImageStorage(image, cluster), "local");
  EXPECT_THAT(EffectiveNetworks(vm), ElementsAre(NetworkInterface{}));
  vm.networks = {{NicModel::kE1000, "vmbr9", 3, ""}};
  EXPECT_EQ(EffectiveNetworks(vm), vm.networks);
}

}  // namespace
}  // namespace nixmox::api
