// Reachability probed for real without leaving the machine: pve-sim hands the
// guests addresses from a range routed into a network namespace (see
// netns.sh); the test gives the namespace one VM's addresses and a listener
// on the probe port, and leaves another VM's addresses out. The operator may
// probe only that range. Skipped where namespaces cannot be made (not root,
// no `ip netns`).
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "test/e2e/probe_network.h"
#include "test/e2e/world.h"

namespace nixmox::e2e {
namespace {

using namespace std::chrono_literals;

constexpr int kProbePort = 2222;

std::vector<std::string> Addresses(const Json& vm) {
  std::vector<std::string> out;
  for (const Json& a : At(vm, "/status/ipAddresses")) out.push_back(a.value("address", ""));
  return out;
}

bool AllReachable(const Json& vm, bool reachable) {
  const Json addresses = At(vm, "/status/ipAddresses");
  if (addresses.empty()) return false;
  for (const Json& a : addresses) {
    if (a.value("reachable", false) != reachable) return false;
  }
  return true;
}

std::string AddressOfFamily(const Json& vm, const std::string& family) {
  for (const Json& a : At(vm, "/status/ipAddresses")) {
    if (a.value("family", "") == family) return a.value("address", "");
  }
  return "";
}

class Reachability : public WorldTest {
 protected:
  static void SetUpTestSuite() {
    skip_ = ProbeNetwork::Unavailable();
    if (!skip_.empty()) return;
    auto net = ProbeNetwork::Create();
    if (!net.ok()) {
      net_error_ = net.status().ToString();
      return;
    }
    net_ = std::move(net).value().release();
    if (Status listening = net_->Listen(kProbePort); !listening.ok()) {
      net_error_ = listening.ToString();
      return;
    }
    StartWorld({.name = "reach",
                .guest_ipv4_cidr = net_->ipv4_cidr(),
                .guest_ipv6_cidr = net_->ipv6_cidr(),
                .probe_networks = net_->ipv4_cidr() + "," + net_->ipv6_cidr()});
  }
  static void TearDownTestSuite() {
    WorldTest::TearDownTestSuite();
    delete net_;
    net_ = nullptr;
  }
  void SetUp() override {
    if (!skip_.empty()) GTEST_SKIP() << "no network namespace for the probes: " << skip_;
    ASSERT_EQ(net_error_, "") << "making the probe network failed";
    WorldTest::SetUp();
  }

  // Applies a VM probed on kProbePort and waits until the agent reported its addresses.
  Json CreateVmWithAddresses(const std::string& name, const Json& spec = Json::object()) {
    Json reach = {{"reachability", {{"probePort", kProbePort}, {"timeoutSeconds", 1}}}};
    reach.merge_patch(spec);
    const auto applied = world().Apply(world().VmManifest(name, reach).dump());
    EXPECT_EQ(applied.exit_code, 0) << applied.output;
    return world().WaitFor("proxmoxvm", name,
                           [](const Json& v) { return !At(v, "/status/ipAddresses").empty(); });
  }

  static inline ProbeNetwork* net_ = nullptr;
  static inline std::string skip_;       // why this machine cannot make the namespace
  static inline std::string net_error_;  // how making it failed where it should work
};

TEST_F(Reachability, OnlyTheAddressesThatAnswerAreReachableAndPrimary) {
  const Json open = CreateVmWithAddresses("reach-open");
  const Json closed = CreateVmWithAddresses("reach-closed");
  ASSERT_FALSE(Addresses(open).empty()) << open.dump(2);
  ASSERT_FALSE(Addresses(closed).empty()) << closed.dump(2);
  ASSERT_TRUE(net_->AddAddresses(Addresses(open)).ok());

  const Json reachable = world().WaitFor("proxmoxvm", "reach-open", [](const Json& v) {
    return AllReachable(v, true) && !PrimaryIp(v).empty();
  });
  EXPECT_TRUE(AllReachable(reachable, true)) << reachable.dump(2);
  EXPECT_EQ(PrimaryIp(reachable), AddressOfFamily(reachable, "IPv4")) << reachable.dump(2);
  EXPECT_EQ(StringAt(ConditionOf(reachable, "Reachable"), "/status"), "True") << reachable.dump(2);

  const Json unreachable = world().WaitFor("proxmoxvm", "reach-closed", [](const Json& v) {
    return AllReachable(v, false) && StringAt(ConditionOf(v, "Reachable"), "/status") == "False";
  });
  EXPECT_TRUE(AllReachable(unreachable, false)) << unreachable.dump(2);
  EXPECT_EQ(PrimaryIp(unreachable), "") << "an address that failed its probe was made primary";
  EXPECT_EQ(StringAt(ConditionOf(unreachable, "Reachable"), "/status"), "False")
      << unreachable.dump(2);
}

// addresses.h: with no reachable address, primaryIP may only be an address
// that is never probed. One awaiting its first probe is not one of those, so
// an unreachable VM must never show a primaryIP, not even for a moment. A
// watch sees every status the operator writes.
TEST_F(Reachability, UnreachableVmNeverShowsAPrimaryIp) {
  auto watch =
      world().KubectlInBackground({"get", "proxmoxvms", "--watch", "-o",
                                   R"(jsonpath={.metadata.name}={.status.primaryIP}{"\n"})"});
  ASSERT_TRUE(watch.ok()) << watch.status().ToString();
  const Json vm = CreateVmWithAddresses("reach-silent");
  const Json settled = world().WaitFor("proxmoxvm", "reach-silent", [](const Json& v) {
    return StringAt(ConditionOf(v, "Reachable"), "/status") == "False";
  });
  ASSERT_EQ(StringAt(ConditionOf(settled, "Reachable"), "/reason"), "ProbeFailed")
      << settled.dump(2);

  std::vector<std::string> shown;
  for (auto line = watch->ReadLine(2s); line.ok(); line = watch->ReadLine(2s)) {
    if (line->starts_with("reach-silent=") && *line != "reach-silent=") shown.push_back(*line);
  }
  EXPECT_THAT(shown, ::testing::IsEmpty()) << "primaryIP values the watch saw";
}

TEST_F(Reachability, PreferredFamilyPicksTheReachableIpv6Address) {
  const Json vm =
      CreateVmWithAddresses("reach-v6", {{"reachability", {{"addressFamily", "IPv6"}}}});
  ASSERT_FALSE(Addresses(vm).empty()) << vm.dump(2);
  ASSERT_TRUE(net_->AddAddresses(Addresses(vm)).ok());

  const Json reachable = world().WaitFor("proxmoxvm", "reach-v6", [](const Json& v) {
    return AllReachable(v, true) && !PrimaryIp(v).empty();
  });
  EXPECT_TRUE(AllReachable(reachable, true)) << reachable.dump(2);
  EXPECT_EQ(PrimaryIp(reachable), AddressOfFamily(reachable, "IPv6")) << reachable.dump(2);
  EXPECT_THAT(PrimaryIp(reachable), ::testing::StartsWith("fd13:"));
}

}  // namespace
}  // namespace nixmox::e2e
