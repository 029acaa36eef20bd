#include "src/proxmox/property_string.h"

#include <gtest/gtest.h>

namespace nixmox::proxmox {
namespace {

TEST(PvePropertyStringTest, SplitsPartsAndNamesTheDefaultKey) {
  auto parts = ParsePropertyString("local-lvm:vm-100-disk-0,iothread=1,size=32G", "file");
  ASSERT_TRUE(parts.ok());
  EXPECT_EQ(*parts, (PropertyList{
                        {"file", "local-lvm:vm-100-disk-0"}, {"iothread", "1"}, {"size", "32G"}}));
}

TEST(PvePropertyStringTest, RejectsDuplicateKeysAndTwoKeylessParts) {
  EXPECT_EQ(ParsePropertyString("a=1,a=2", "x").status().code(), Code::kInvalid);
  EXPECT_EQ(ParsePropertyString("one,two", "x").status().code(), Code::kInvalid);
  EXPECT_EQ(ParsePropertyString("=1", "x").status().code(), Code::kInvalid);
}

TEST(PvePropertyStringTest, SkipsEmptyParts) {
  auto parts = ParsePropertyString("a=1,,b=2,", "x");
  ASSERT_TRUE(parts.ok());
  EXPECT_EQ(parts->size(), 2u);
}

TEST(PveSizeTest, ParsesBinaryUnits) {
  EXPECT_EQ(*ParseSize("10G"), 10ULL << 30);
  EXPECT_EQ(*ParseSize("512M"), 512ULL << 20);
  EXPECT_EQ(*ParseSize("1T"), 1ULL << 40);
  EXPECT_EQ(*ParseSize("4K"), 4096ULL);
  EXPECT_EQ(*ParseSize("1000"), 1000ULL);
  EXPECT_EQ(*ParseSize("1.5G"), 3ULL << 29);
}

TEST(PveSizeTest, RejectsGarbage) {
  for (const char* bad : {"", "G", "10X", "-1G", "+5G", "1.G", "ten", "99999999999999999999T"}) {
    EXPECT_FALSE(ParseSize(bad).ok()) << bad;
  }
}

TEST(PveSizeTest, FormatsWithTheLargestExactUnit) {
  EXPECT_EQ(FormatSize(10ULL << 30), "10G");
  EXPECT_EQ(FormatSize(512ULL << 20), "512M");
  EXPECT_EQ(FormatSize(1ULL << 40), "1T");
  EXPECT_EQ(FormatSize(2048ULL << 40), "2048T");
  EXPECT_EQ(FormatSize(1536ULL << 20), "1536M");
  EXPECT_EQ(FormatSize(1000), "1000");
  EXPECT_EQ(FormatSize(0), "0");
  for (std::uint64_t v : {1ULL, 4096ULL, 3ULL << 29, 123456789ULL, 5ULL << 40}) {
    EXPECT_EQ(*ParseSize(FormatSize(v)), v);
  }
}

TEST(PveNetConfigTest, ParsesModelWithMacAsKey) {
  auto net = ParseNetConfig("virtio=BC:24:11:2A:3B:4C,bridge=vmbr0,tag=10,firewall=1");
  ASSERT_TRUE(net.ok()) << net.status().ToString();
  EXPECT_EQ(net->model, "virtio");
  EXPECT_EQ(net->macaddr, "BC:24:11:2A:3B:4C");
  EXPECT_EQ(net->bridge, "vmbr0");
  EXPECT_EQ(net->tag, 10);
  EXPECT_EQ(net->firewall, true);
  EXPECT_FALSE(net->link_down.has_value());
}

TEST(PveNetConfigTest, ParsesExplicitKeysAndKeepsUnknownOnes) {
  auto net = ParseNetConfig(
      "model=e1000,macaddr=bc:24:11:00:00:01,link_down=0,mtu=1,rate=12.5,"
      "trunks=10;20-30,queues=4,newfeature=x");
  ASSERT_TRUE(net.ok()) << net.status().ToString();
  EXPECT_EQ(net->model, "e1000");
  EXPECT_EQ(net->macaddr, "bc:24:11:00:00:01");
  EXPECT_EQ(net->link_down, false);
  EXPECT_EQ(net->mtu, 1);
  EXPECT_EQ(net->rate, 12.5);
  EXPECT_EQ(net->trunks, "10;20-30");
  EXPECT_EQ(net->queues, 4);
  EXPECT_EQ(net->extra, (PropertyList{{"newfeature", "x"}}));
}

TEST(PveNetConfigTest, RejectsBadValues) {
  EXPECT_FALSE(ParseNetConfig("virtio,tag=ten").ok());
  EXPECT_FALSE(ParseNetConfig("virtio,firewall=maybe").ok());
  EXPECT_FALSE(ParseNetConfig("bridge=vmbr0").ok());  // no model
  EXPECT_FALSE(ParseNetConfig("virtio=AA:BB:CC:DD:EE:FF,e1000").ok());
}

TEST(PveNetConfigTest, FormatsLikeProxmox) {
  NetConfig net;
  net.model = "virtio";
  net.macaddr = "BC:24:11:2A:3B:4C";
  net.bridge = "vmbr0";
  net.firewall = true;
  net.tag = 10;
  EXPECT_EQ(FormatNetConfig(net), "virtio=BC:24:11:2A:3B:4C,bridge=vmbr0,firewall=1,tag=10");
  net.macaddr.clear();
  EXPECT_EQ(FormatNetConfig(net), "virtio,bridge=vmbr0,firewall=1,tag=10");
}

TEST(PveNetConfigTest, RoundTrips) {
  const std::string text =
      "virtio=BC:24:11:2A:3B:4C,bridge=vmbr0,firewall=1,link_down=1,mtu=9000,queues=2,rate=0.5,"
      "tag=10,trunks=1;2-5";
  auto net = ParseNetConfig(text);
  ASSERT_TRUE(net.ok());
  EXPECT_EQ(FormatNetConfig(*net), text);
  EXPECT_EQ(*ParseNetConfig(FormatNetConfig(*net)), *net);
}

TEST(PveDiskConfigTest, ParsesExistingVolume) {
  auto disk = ParseDiskConfig("local-lvm:vm-100-disk-0,iothread=1,size=10G");
  ASSERT_TRUE(disk.ok()) << disk.status().ToString();
  EXPECT_EQ(disk->file, "local-lvm:vm-100-disk-0");
  EXPECT_EQ(disk->storage(), "local-lvm");
  EXPECT_EQ(disk->volume_name(), "vm-100-disk-0");
  EXPECT_EQ(disk->size_bytes, 10ULL << 30);
  EXPECT_EQ(disk->iothread, true);
  EXPECT_FALSE(disk->is_cdrom());
}

TEST(PveDiskConfigTest, ParsesImportFromAndCdrom) {
  auto disk = ParseDiskConfig("local-lvm:0,import-from=local:import/nixos-abc.qcow2,discard=on");
  ASSERT_TRUE(disk.ok());
  EXPECT_EQ(disk->import_from, "local:import/nixos-abc.qcow2");
  EXPECT_EQ(disk->discard, "on");
  auto cd = ParseDiskConfig("local-lvm:vm-100-cloudinit,media=cdrom");
  ASSERT_TRUE(cd.ok());
  EXPECT_TRUE(cd->is_cdrom());
  EXPECT_TRUE(cd->is_cloudinit());
  EXPECT_FALSE(ParseDiskConfig("size=10G").ok());
  EXPECT_FALSE(ParseDiskConfig("local-lvm:1,size=big").ok());
}

TEST(PveDiskConfigTest, FormatsVolumeFirstThenSortedKeys) {
  DiskConfig disk;
  disk.file = "local-lvm:0";
  disk.import_from = "local:import/nixos.qcow2";
  disk.iothread = true;
  disk.discard = "on";
  disk.ssd = false;
  EXPECT_EQ(FormatDiskConfig(disk),
            "local-lvm:0,discard=on,import-from=local:import/nixos.qcow2,iothread=1,ssd=0");
  const std::string stored = "local-lvm:vm-100-disk-0,backup=0,cache=writeback,iothread=1,size=32G";
  EXPECT_EQ(FormatDiskConfig(*ParseDiskConfig(stored)), stored);
}

TEST(PveTagsTest, SplitsOnEverySeparatorProxmoxAccepts) {
  EXPECT_EQ(ParseTags("a;b;c"), (std::vector<std::string>{"a", "b", "c"}));
  EXPECT_EQ(ParseTags("a,b c;;"), (std::vector<std::string>{"a", "b", "c"}));
  EXPECT_TRUE(ParseTags("").empty());
}

TEST(PveTagsTest, FormatsWithSemicolons) {
  EXPECT_EQ(FormatTags({"nixmox", "img-1a2b"}), "nixmox;img-1a2b");
  EXPECT_EQ(FormatTags({}), "");
  EXPECT_EQ(ParseTags(FormatTags({"x", "y"})), (std::vector<std::string>{"x", "y"}));
}

TEST(PveTagsTest, NormalizesLikeProxmoxOnUpdate) {
  EXPECT_EQ(NormalizeTags({"Web", "prod", "web"}), (std::vector<std::string>{"prod", "web"}));
}

TEST(PveTagsTest, ValidatesTagCharacters) {
  EXPECT_TRUE(IsValidTag("uid-0a1b2c3d"));
  EXPECT_TRUE(IsValidTag("_x+y.z"));
  EXPECT_FALSE(IsValidTag("-leading"));
  EXPECT_FALSE(IsValidTag("has space"));
  EXPECT_FALSE(IsValidTag("semi;colon"));
  EXPECT_FALSE(IsValidTag(""));
}

}  // namespace
}  // namespace nixmox::proxmox
