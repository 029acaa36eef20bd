#include "src/api/json.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "test/unit/api/fixtures.h"

namespace nixmox::api {
namespace {

using nlohmann::json;
using ::testing::ElementsAre;
using testing::Fields;
using ::testing::UnorderedElementsAre;

TEST(JsonTest, FullClusterRoundTripsUnchanged) {
  ProxmoxCluster full = testing::FullCluster();
  auto back = ProxmoxClusterFromJson(ToJson(full));
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(*back, full);
  EXPECT_EQ(ToJson(*back), ToJson(full));
}

TEST(JsonTest, FullImageRoundTripsUnchanged) {
  NixImage full = testing::FullImage();
  auto back = NixImageFromJson(ToJson(full));
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(*back, full);
}

TEST(JsonTest, FullVmRoundTripsUnchanged) {
  ProxmoxVm full = testing::FullVm();
  auto back = ProxmoxVmFromJson(ToJson(full));
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(*back, full);
}

TEST(JsonTest, MinimalObjectsRoundTripStably) {
  auto vm = ProxmoxVmFromJson(testing::MinimalVmJson());
  ASSERT_TRUE(vm.ok());
  auto again = ProxmoxVmFromJson(ToJson(*vm));
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(*again, *vm);
  auto image = NixImageFromJson(testing::MinimalImageJson());
  ASSERT_TRUE(image.ok());
  EXPECT_EQ(*NixImageFromJson(ToJson(*image)), *image);
  auto cluster = ProxmoxClusterFromJson(testing::MinimalClusterJson());
  ASSERT_TRUE(cluster.ok());
  EXPECT_EQ(*ProxmoxClusterFromJson(ToJson(*cluster)), *cluster);
}

TEST(JsonTest, MinimalVmGetsTheApiDefaults) {
  auto vm = ProxmoxVmFromJson(testing::MinimalVmJson());
  ASSERT_TRUE(vm.ok()) << vm.status().ToString();
  const ProxmoxVmSpec& s = vm->spec;
  EXPECT_EQ(s.cluster_ref.name, "pve");
  EXPECT_EQ(s.image_ref, LocalObjectReference{"web"});
  EXPECT_EQ(s.node, "");
  EXPECT_EQ(s.vmid, std::nullopt);
  EXPECT_EQ(s.cpu.cores, 1);
  EXPECT_EQ(s.cpu.sockets, 1);
  EXPECT_EQ(s.cpu.type, "x86-64-v2-AES");
  EXPECT_EQ(s.memory_mib, 2048);
  EXPECT_EQ(s.root_disk.slot, "scsi0");
  EXPECT_EQ(s.root_disk.size_gib, std::nullopt);
  ASSERT_EQ(s.disks.size(), 1u);
  EXPECT_EQ(s.disks[0].storage, "");
  ASSERT_EQ(s.networks.size(), 1u);
  EXPECT_EQ(s.networks[0].model, NicModel::kVirtio);
  EXPECT_EQ(s.networks[0].bridge, "vmbr0");
  EXPECT_EQ(s.networks[0].vlan, std::nullopt);
  EXPECT_EQ(s.power_state, PowerState::kRunning);
  EXPECT_FALSE(s.protection);
  EXPECT_EQ(s.deletion_policy, DeletionPolicy::kDelete);
  EXPECT_EQ(s.update_policy, UpdatePolicy::kRecreate);
  EXPECT_EQ(s.reachability.address_family, AddressFamily::kIPv4);
  EXPECT_EQ(s.reachability.probe_port, 22);
  EXPECT_EQ(s.reachability.timeout_seconds, 5);
  EXPECT_EQ(vm->status.phase, VmPhase::kPending);
}

TEST(JsonTest, MinimalClusterAndImageGetTheApiDefaults) {
  auto cluster = ProxmoxClusterFromJson(testing::MinimalClusterJson());
  ASSERT_TRUE(cluster.ok());
  EXPECT_EQ(cluster->spec.credentials_ref.token_id_key, "tokenID");
  EXPECT_EQ(cluster->spec.credentials_ref.token_secret_key, "tokenSecret");
  EXPECT_FALSE(cluster->spec.tls.insecure_skip_tls_verify);
  EXPECT_EQ(cluster->spec.default_storage, "local-lvm");
  EXPECT_EQ(cluster->spec.image_storage, "local");
  EXPECT_EQ(cluster->spec.inventory_period_seconds, 30);
  EXPECT_EQ(cluster->spec.max_concurrent_requests, 4);
  EXPECT_EQ(cluster->spec.max_creates_per_storage, 2);

  auto image = NixImageFromJson(testing::MinimalImageJson());
  ASSERT_TRUE(image.ok());
  EXPECT_EQ(image->spec.format, ImageFormat::kQcow2);
  EXPECT_EQ(image->spec.generations, 3);
  EXPECT_EQ(image->spec.rollout.max_unavailable, 1);
  EXPECT_EQ(image->spec.builder.timeout_seconds, 3600);
  EXPECT_EQ(image->spec.builder.kvm, KvmMode::kAuto);
  EXPECT_EQ(image->spec.refresh_interval_seconds, std::nullopt);
  EXPECT_EQ(image->spec.nix.access_tokens_secret_ref, std::nullopt);
}

TEST(JsonTest, WritesCamelCaseNamesAndEnumSpellings) {
  json j = ToJson(testing::FullVm());
  EXPECT_EQ(j["apiVersion"], "nixmox.io/v1alpha1");
  EXPECT_EQ(j["kind"], "ProxmoxVM");
  EXPECT_EQ(j["metadata"]["name"], "web-1");
  EXPECT_EQ(j["spec"]["protected"], true);
  EXPECT_EQ(j["spec"]["powerState"], "Stopped");
  EXPECT_EQ(j["spec"]["memoryMiB"], 8192);
  EXPECT_EQ(j["spec"]["rootDisk"]["sizeGiB"], 40);
  EXPECT_EQ(j["spec"]["networks"][0]["mac"], "BC:24:11:00:00:01");
  EXPECT_EQ(j["spec"]["networks"][1]["model"], "e1000");
  EXPECT_EQ(j["status"]["ipAddresses"][1]["interface"], "eth0");
  EXPECT_EQ(j["status"]["ipAddresses"][1]["scope"], "Public");
  EXPECT_EQ(j["status"]["conditions"][0]["status"], "True");
  EXPECT_EQ(j["status"]["lastTask"]["message"], "OK");
}

TEST(JsonTest, LeavesOutEmptyFieldsButWritesSetOptionals) {
  ProxmoxVm vm;
  vm.spec.cluster_ref.name = "pve";
  vm.spec.cloud_init = CloudInit{};  // set, though empty: a cloud-init drive with no settings
  json spec = ToJson(vm)["spec"];
  EXPECT_FALSE(spec.contains("node"));
  EXPECT_FALSE(spec.contains("vmid"));
  EXPECT_FALSE(spec.contains("imageRef"));
  EXPECT_FALSE(spec.contains("disks"));
  EXPECT_FALSE(spec.contains("tags"));
  EXPECT_EQ(spec["cloudInit"], json::object());
  EXPECT_EQ(spec["protected"], false);  // scalars are always written
  EXPECT_EQ(spec["rootDisk"], json({{"slot", "scsi0"}}));
}

TEST(JsonTest, StatusAloneMatchesTheStatusOfTheObject) {
  ProxmoxVm vm = testing::FullVm();
  EXPECT_EQ(ToJson(vm.status), ToJson(vm)["status"]);
  NixImage image = testing::FullImage();
  EXPECT_EQ(ToJson(image.status), ToJson(image)["status"]);
  ProxmoxCluster cluster = testing::FullCluster();
  EXPECT_EQ(ToJson(cluster.status), ToJson(cluster)["status"]);
}

TEST(JsonTest, MetadataIsKeptAsGiven) {
  json in = testing::MinimalVmJson();
  in["metadata"]["finalizers"] = {"nixmox.io/vm"};
  in["metadata"]["ownerReferences"] = json::array({{{"kind", "Thing"}, {"name", "x"}}});
  auto vm = ProxmoxVmFromJson(in);
  ASSERT_TRUE(vm.ok());
  EXPECT_EQ(ToJson(*vm)["metadata"], in["metadata"]);
}

TEST(JsonTest, ReportsEveryWrongTypeWithItsPath) {
  json in = testing::MinimalVmJson();
  in["spec"]["memoryMiB"] = "lots";
  in["spec"]["disks"] =
      json::array({{{"slot", "scsi1"}, {"sizeGiB", 1}}, {{"slot", "scsi2"}, {"sizeGiB", "ten"}}});
  in["spec"]["powerState"] = "Paused";
  in["spec"]["tags"] = "web";
  in["spec"]["cpu"] = 4;
  in["status"]["ipAddresses"] = json::array({{{"reachable", "yes"}}});
  auto vm = ProxmoxVmFromJson(in);
  ASSERT_FALSE(vm.ok());
  EXPECT_EQ(vm.status().code(), Code::kInvalid);
  EXPECT_THAT(Fields(vm.status().field_errors()),
              UnorderedElementsAre("spec.memoryMiB", "spec.disks[1].sizeGiB", "spec.powerState",
                                   "spec.tags", "spec.cpu", "status.ipAddresses[0].reachable"));
  for (const auto& e : vm.status().field_errors()) {
    if (e.field == "spec.powerState") {
      EXPECT_EQ(e.message, R"(unsupported value "Paused": must be one of "Running", "Stopped")");
    }
  }
}

TEST(JsonTest, IntegersOutOfRangeAreRejected) {
  json in = testing::MinimalVmJson();
  in["spec"]["vmid"] = 5000000000LL;
  in["spec"]["cpu"] = {{"cores", -1}};  // in range for int32; validation's business
  auto vm = ProxmoxVmFromJson(in);
  ASSERT_FALSE(vm.ok());
  EXPECT_THAT(vm.status().field_errors(), ElementsAre(FieldError{"spec.vmid", "out of range"}));
  in["spec"]["vmid"] = 1.5;
  EXPECT_THAT(Fields(ProxmoxVmFromJson(in).status().field_errors()), ElementsAre("spec.vmid"));
}

TEST(JsonTest, RejectsAnotherKindOrVersion) {
  json in = testing::MinimalVmJson();
  in["kind"] = "NixImage";
  EXPECT_THAT(Fields(ProxmoxVmFromJson(in).status().field_errors()), ElementsAre("kind"));
  in = testing::MinimalVmJson();
  in["apiVersion"] = "nixmox.io/v1";
  EXPECT_THAT(Fields(ProxmoxVmFromJson(in).status().field_errors()), ElementsAre("apiVersion"));
  EXPECT_EQ(ProxmoxVmFromJson(json::array()).status().code(), Code::kInvalid);
}

TEST(JsonTest, NullAndUnknownFieldsLeaveDefaults) {
  json in = testing::MinimalImageJson();
  in["spec"]["generations"] = nullptr;
  in["spec"]["somethingNew"] = {{"a", 1}};
  auto image = NixImageFromJson(in);
  ASSERT_TRUE(image.ok()) << image.status().ToString();
  EXPECT_EQ(image->spec.generations, 3);
  EXPECT_FALSE(ToJson(*image)["spec"].contains("somethingNew"));
}

TEST(JsonTest, QuantitiesAcceptIntegersAndStrings) {
  json in = testing::MinimalImageJson();
  in["spec"]["builder"] = {{"resources", {{"requests", {{"cpu", 2}, {"memory", "4Gi"}}}}}};
  auto image = NixImageFromJson(in);
  ASSERT_TRUE(image.ok()) << image.status().ToString();
  EXPECT_EQ(image->spec.builder.resources.requests.at("cpu"), Quantity{"2"});
  EXPECT_EQ(image->spec.builder.resources.requests.at("memory"), Quantity{"4Gi"});
  in["spec"]["builder"]["resources"]["limits"] = {{"cpu", 1.5}};
  EXPECT_THAT(Fields(NixImageFromJson(in).status().field_errors()),
              ElementsAre("spec.builder.resources.limits[cpu]"));
}

TEST(JsonTest, EnumNamesParseBack) {
  for (auto phase : {VmPhase::kPending, VmPhase::kUpdating, VmPhase::kFailed}) {
    EXPECT_EQ(ParseEnum<VmPhase>(EnumName(phase)), phase);
  }
  EXPECT_EQ(EnumName(ImageFormat::kVma), "vma");
  EXPECT_EQ(ParseEnum<ImageFormat>("QCOW2"), std::nullopt);
}

TEST(JsonTest, DescribesNestedListAndMapFields) {
  auto fields = DescribeFields(Kind::kNixImage);
  auto find = [&](const std::string& path) -> const FieldInfo* {
    for (const auto& f : fields) {
      if (f.path == path) return &f;
    }
    return nullptr;
  };
  ASSERT_NE(find("spec.nix.extraOptions{}"), nullptr);
  EXPECT_EQ(find("spec.nix.extraOptions{}")->type, JsonType::kString);
  ASSERT_NE(find("spec.builder.resources.limits{}"), nullptr);
  EXPECT_EQ(find("spec.builder.resources.limits{}")->type, JsonType::kIntOrString);
  ASSERT_NE(find("status.generations[].narHash"), nullptr);
  ASSERT_NE(find("spec.format"), nullptr);
  EXPECT_THAT(find("spec.format")->enum_values, ElementsAre("qcow2", "raw", "vma"));
}

}  // namespace
}  // namespace nixmox::api
