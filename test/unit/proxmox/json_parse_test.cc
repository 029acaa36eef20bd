#include "src/proxmox/json_parse.h"

#include <gtest/gtest.h>

namespace nixmox::proxmox::internal {
namespace {

using nlohmann::json;

TEST(PveLenientJsonTest, NumbersFromNumbersOrStrings) {
  EXPECT_EQ(LenientInt(json(101)), 101);
  EXPECT_EQ(LenientInt(json("101")), 101);
  EXPECT_EQ(LenientInt(json("12.0")), 12);
  EXPECT_EQ(LenientInt(json(3.9)), 3);
  EXPECT_FALSE(LenientInt(json("abc")).has_value());
  EXPECT_FALSE(LenientInt(json(nullptr)).has_value());
  EXPECT_EQ(LenientDouble(json("0.25")), 0.25);
}

TEST(PveLenientJsonTest, BooleansInEveryProxmoxSpelling) {
  EXPECT_EQ(LenientBool(json(1)), true);
  EXPECT_EQ(LenientBool(json(0)), false);
  EXPECT_EQ(LenientBool(json("1")), true);
  EXPECT_EQ(LenientBool(json("0")), false);
  EXPECT_EQ(LenientBool(json("")), false);
  EXPECT_EQ(LenientBool(json(true)), true);
  EXPECT_FALSE(LenientBool(json("perhaps")).has_value());
  EXPECT_FALSE(BoolField(json::object(), "template"));
}

TEST(PveParseTest, ClusterResourcesWithStringlyValues) {
  const json data = json::parse(R"([
    {"id":"qemu/100","type":"qemu","vmid":"100","node":"pve1","status":"running","name":"web",
     "template":"","tags":"nixmox;uid-abc","lock":"","maxmem":"2147483648","cpu":0.5},
    {"id":"node/pve1","type":"node","node":"pve1","status":"online","maxcpu":8},
    {"id":"storage/pve1/local","type":"storage","node":"pve1","storage":"local",
     "plugintype":"dir","shared":0,"content":"iso,import","status":"available"}])");
  auto res = ParseClusterResources(data);
  ASSERT_TRUE(res.ok()) << res.status().ToString();
  ASSERT_EQ(res->size(), 3u);
  const ClusterResource& vm = (*res)[0];
  EXPECT_EQ(vm.vmid, 100);
  EXPECT_FALSE(vm.is_template);
  EXPECT_EQ(vm.tags, (std::vector<std::string>{"nixmox", "uid-abc"}));
  EXPECT_EQ(vm.maxmem, 2147483648ULL);
  EXPECT_DOUBLE_EQ(vm.cpu, 0.5);
  EXPECT_FALSE((*res)[1].vmid.has_value());
  EXPECT_EQ((*res)[1].maxcpu, 8);
  EXPECT_EQ((*res)[2].plugintype, "dir");
  EXPECT_FALSE((*res)[2].shared);
  EXPECT_EQ(ParseClusterResources(json::object()).status().code(), Code::kInternal);
}

TEST(PveParseTest, VmConfigKeepsValuesAsStringsAndDigestApart) {
  const json data = json::parse(R"({"name":"web","memory":"2048","cores":2,"onboot":1,
    "net0":"virtio=BC:24:11:2A:3B:4C,bridge=vmbr0","scsi0":"local-lvm:vm-100-disk-0,size=10G",
    "ide2":"local-lvm:vm-100-cloudinit,media=cdrom","tags":"b;a","protection":0,
    "sshkeys":"ssh-ed25519%20AAAA%2B%2F%3D%20me%40host%0A","digest":"0123abcd"})");
  auto config = ParseVmConfig(data);
  ASSERT_TRUE(config.ok());
  EXPECT_EQ(config->digest(), "0123abcd");
  EXPECT_FALSE(config->Has("digest"));
  EXPECT_EQ(config->name(), "web");
  EXPECT_EQ(config->memory_mib(), 2048);
  EXPECT_EQ(config->cores(), 2);
  EXPECT_EQ(config->GetBool("onboot"), true);
  EXPECT_FALSE(config->protection());
  EXPECT_EQ(config->tags(), (std::vector<std::string>{"b", "a"}));
  EXPECT_EQ(config->sshkeys(), "ssh-ed25519 AAAA+/= me@host\n");
  auto net = config->net(0);
  ASSERT_TRUE(net.ok());
  EXPECT_EQ(net->bridge, "vmbr0");
  EXPECT_EQ(config->net(1).status().code(), Code::kNotFound);
  EXPECT_EQ(config->NetIndexes(), (std::vector<int>{0}));
  EXPECT_EQ(config->DiskKeys(), (std::vector<std::string>{"ide2", "scsi0"}));
  EXPECT_EQ(config->disk("scsi0")->size_bytes, 10ULL << 30);
}

TEST(PveParseTest, MemoryInPropertyStringForm) {
  auto config = ParseVmConfig(json{{"memory", "current=4096"}});
  ASSERT_TRUE(config.ok());
  EXPECT_EQ(config->memory_mib(), 4096);
}

TEST(PveParseTest, GuestInterfacesAndAgentErrors) {
  const json ok = json::parse(R"({"result":[
    {"name":"lo","hardware-address":"00:00:00:00:00:00",
     "ip-addresses":[{"ip-address":"127.0.0.1","ip-address-type":"ipv4","prefix":8}]},
    {"name":"ens18","hardware-address":"bc:24:11:2a:3b:4c",
     "ip-addresses":[{"ip-address":"10.0.0.5","ip-address-type":"ipv4","prefix":24},
                     {"ip-address":"fe80::1","ip-address-type":"ipv6","prefix":64}]}]})");
  auto ifaces = ParseGuestInterfaces(ok);
  ASSERT_TRUE(ifaces.ok());
  ASSERT_EQ(ifaces->size(), 2u);
  EXPECT_EQ((*ifaces)[1].hardware_address, "bc:24:11:2a:3b:4c");
  ASSERT_EQ((*ifaces)[1].ip_addresses.size(), 2u);
  EXPECT_EQ((*ifaces)[1].ip_addresses[0].address, "10.0.0.5");
  EXPECT_EQ((*ifaces)[1].ip_addresses[1].prefix, 64);

  const json err =
      json::parse(R"({"result":{"error":{"class":"GenericError","desc":"command not allowed"}}})");
  auto failed = ParseGuestInterfaces(err);
  EXPECT_EQ(failed.status().code(), Code::kRetryable);
  EXPECT_NE(failed.status().message().find("command not allowed"), std::string::npos);
}

TEST(PveParseTest, TaskStatusFallsBackToUpidFields) {
  auto upid = ParseUpid("UPID:pve2:00001234:00ABCDEF:6650F00D:qmstart:100:root@pam:");
  ASSERT_TRUE(upid.ok());
  auto t = ParseTaskStatus(json{{"status", "stopped"}, {"exitstatus", "WARNINGS: 2"}}, *upid);
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(t->node, "pve2");
  EXPECT_EQ(t->type, "qmstart");
  EXPECT_TRUE(t->succeeded());
  EXPECT_FALSE(t->running());
  EXPECT_FALSE(ParseTaskStatus(json::object(), *upid).ok());
}

TEST(PveParamsTest, TypedSettersWriteWhatProxmoxParses) {
  Params p;
  p.SetBool("onboot", true).SetBool("protection", false).SetInt("memory", 2048);
  p.SetTags({"nixmox", "uid-1"});
  NetConfig net;
  net.bridge = "vmbr0";
  p.SetNet(0, net);
  p.Set("memory", "4096");  // replaces, keeps position
  EXPECT_EQ(p.entries(), (PropertyList{{"onboot", "1"},
                                       {"protection", "0"},
                                       {"memory", "4096"},
                                       {"tags", "nixmox;uid-1"},
                                       {"net0", "virtio,bridge=vmbr0"}}));
}

}  // namespace
}  // namespace nixmox::proxmox::internal
