#include "src/controllers/placement.h"

#include <gtest/gtest.h>

namespace nixmox::controllers {
namespace {

constexpr std::uint64_t kGiB = 1ULL << 30;

proxmox::ClusterResource Node(std::string name, std::uint64_t mem_gib, std::uint64_t maxmem_gib,
                              std::string status = "online") {
  proxmox::ClusterResource node;
  node.id = "node/" + name;
  node.type = "node";
  node.node = std::move(name);
  node.status = std::move(status);
  node.mem = mem_gib * kGiB;
  node.maxmem = maxmem_gib * kGiB;
  return node;
}

std::string Placed(const std::vector<proxmox::ClusterResource>& nodes,
                   const std::vector<std::string>& allowed = {},
                   const std::map<std::string, std::uint64_t>& pending = {}) {
  Result<std::string> node = PlaceVm(nodes, allowed, pending);
  EXPECT_TRUE(node.ok()) << node.status().ToString();
  return node.value_or("");
}

TEST(PlaceVmTest, PicksTheNodeWithTheMostFreeMemory) {
  // Free: pve1 16 GiB, pve2 40 GiB, pve3 24 GiB; pve2 is also the fullest in absolute use.
  EXPECT_EQ(Placed({Node("pve1", 48, 64), Node("pve2", 88, 128), Node("pve3", 8, 32)}), "pve2");
}

TEST(PlaceVmTest, CountsMemoryPromisedToVmsNotYetRunning) {
  const std::vector<proxmox::ClusterResource> nodes = {Node("pve1", 16, 64), Node("pve2", 8, 64)};
  EXPECT_EQ(Placed(nodes), "pve2");
  EXPECT_EQ(Placed(nodes, {}, {{"pve2", 12 * kGiB}}), "pve1");
  EXPECT_EQ(Placed(nodes, {}, {{"pve2", 12 * kGiB}, {"pve1", 6 * kGiB}}), "pve2");
}

TEST(PlaceVmTest, TiesGoToTheNameThatSortsFirst) {
  EXPECT_EQ(Placed({Node("pve3", 8, 32), Node("pve1", 8, 32), Node("pve2", 8, 32)}), "pve1");
}

TEST(PlaceVmTest, OnlyAllowedNodesAreConsidered) {
  const std::vector<proxmox::ClusterResource> nodes = {Node("pve1", 0, 128), Node("pve2", 8, 32),
                                                       Node("pve3", 16, 32)};
  EXPECT_EQ(Placed(nodes, {"pve2", "pve3"}), "pve2");
}

TEST(PlaceVmTest, OfflineNodesAreSkipped) {
  EXPECT_EQ(Placed({Node("pve1", 0, 128, "offline"), Node("pve2", 8, 32),
                    Node("pve3", 0, 256, "unknown")}),
            "pve2");
}

TEST(PlaceVmTest, ANodeShortOfMemoryIsStillChosenWhenItIsTheBest) {
  EXPECT_EQ(Placed({Node("pve1", 31, 32), Node("pve2", 62, 64)}, {}, {{"pve1", 4 * kGiB}}), "pve2");
}

TEST(PlaceVmTest, NoAllowedNodeOnlineIsRetryable) {
  const std::vector<proxmox::ClusterResource> nodes = {Node("pve1", 0, 64, "offline"),
                                                       Node("pve2", 0, 64)};
  EXPECT_EQ(PlaceVm(nodes, {"pve1", "pve9"}, {}).status().code(), Code::kRetryable);
  EXPECT_EQ(PlaceVm({}, {}, {}).status().code(), Code::kRetryable);
}

TEST(CheckNodeTest, OnlineAllowedNodeIsFine) {
  const std::vector<proxmox::ClusterResource> nodes = {Node("pve1", 0, 64), Node("pve2", 0, 64)};
  EXPECT_TRUE(CheckNode("pve2", nodes, {}).ok());
  EXPECT_TRUE(CheckNode("pve2", nodes, {"pve2"}).ok());
}

TEST(CheckNodeTest, NodeOutsideAllowedNodesOrUnknownIsInvalid) {
  const std::vector<proxmox::ClusterResource> nodes = {Node("pve1", 0, 64), Node("pve2", 0, 64)};
  EXPECT_EQ(CheckNode("pve2", nodes, {"pve1"}).code(), Code::kInvalid);
  EXPECT_EQ(CheckNode("pve7", nodes, {}).code(), Code::kInvalid);
}

TEST(CheckNodeTest, OfflineNodeIsRetryable) {
  const std::vector<proxmox::ClusterResource> nodes = {Node("pve1", 0, 64, "offline")};
  Status status = CheckNode("pve1", nodes, {});
  EXPECT_EQ(status.code(), Code::kRetryable);
  EXPECT_NE(status.message().find("pve1"), std::string::npos) << status.message();
}

}  // namespace
}  // namespace nixmox::controllers
