#include "src/controllers/addresses.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace nixmox::controllers {
namespace {

using api::AddressFamily;
using api::AddressScope;
using ::testing::IsEmpty;

proxmox::GuestInterface Iface(std::string name, std::vector<std::string> addresses) {
  proxmox::GuestInterface iface;
  iface.name = std::move(name);
  iface.hardware_address = "bc:24:11:2a:3b:4c";
  for (std::string& address : addresses) {
    const bool v6 = address.find(':') != std::string::npos;
    iface.ip_addresses.push_back({std::move(address), v6 ? "ipv6" : "ipv4", v6 ? 64 : 24});
  }
  return iface;
}

api::VmAddress Address(std::string address, AddressFamily family, AddressScope scope,
                       std::string iface = "ens18") {
  return api::VmAddress{std::move(address), family, scope, std::move(iface), false};
}

TEST(FamilyOfTest, TellsIpv4FromIpv6AndRejectsTheRest) {
  EXPECT_EQ(FamilyOf("10.0.0.1"), AddressFamily::kIPv4);
  EXPECT_EQ(FamilyOf("2001:db8::1"), AddressFamily::kIPv6);
  EXPECT_EQ(FamilyOf("::ffff:10.0.0.1"), AddressFamily::kIPv6);
  EXPECT_EQ(FamilyOf("10.0.0.256"), std::nullopt);
  EXPECT_EQ(FamilyOf("10.0.0.1/24"), std::nullopt);
  EXPECT_EQ(FamilyOf("web.example.org"), std::nullopt);
  EXPECT_EQ(FamilyOf(""), std::nullopt);
}

struct ClassifyCase {
  std::string address;
  std::optional<api::VmAddress> expected;  // nullopt: dropped
};

class ClassifyAddressTableTest : public ::testing::TestWithParam<ClassifyCase> {};

TEST_P(ClassifyAddressTableTest, OneAddressOnAGuestNic) {
  const std::vector<api::VmAddress> got = ClassifyAddresses({Iface("ens18", {GetParam().address})});
  if (GetParam().expected) {
    EXPECT_THAT(got, ::testing::ElementsAre(*GetParam().expected));
  } else {
    EXPECT_THAT(got, IsEmpty());
  }
}

INSTANTIATE_TEST_SUITE_P(
    Table, ClassifyAddressTableTest,
    ::testing::Values(
        ClassifyCase{"10.1.2.3", Address("10.1.2.3", AddressFamily::kIPv4, AddressScope::kPrivate)},
        ClassifyCase{"172.16.0.9",
                     Address("172.16.0.9", AddressFamily::kIPv4, AddressScope::kPrivate)},
        ClassifyCase{"172.32.0.9",
                     Address("172.32.0.9", AddressFamily::kIPv4, AddressScope::kPublic)},
        ClassifyCase{"192.168.1.20",
                     Address("192.168.1.20", AddressFamily::kIPv4, AddressScope::kPrivate)},
        ClassifyCase{"100.64.0.1",
                     Address("100.64.0.1", AddressFamily::kIPv4, AddressScope::kPrivate)},
        ClassifyCase{"100.127.255.254",
                     Address("100.127.255.254", AddressFamily::kIPv4, AddressScope::kPrivate)},
        ClassifyCase{"100.128.0.1",
                     Address("100.128.0.1", AddressFamily::kIPv4, AddressScope::kPublic)},
        ClassifyCase{"203.0.113.7",
                     Address("203.0.113.7", AddressFamily::kIPv4, AddressScope::kPublic)},
        ClassifyCase{"FD99::1A", Address("fd99::1a", AddressFamily::kIPv6, AddressScope::kPrivate)},
        ClassifyCase{"fc00::1", Address("fc00::1", AddressFamily::kIPv6, AddressScope::kPrivate)},
        ClassifyCase{"2001:0db8:0000:0000:0000:0000:0000:0001",
                     Address("2001:db8::1", AddressFamily::kIPv6, AddressScope::kPublic)},
        ClassifyCase{"127.0.0.1", std::nullopt}, ClassifyCase{"127.8.8.8", std::nullopt},
        ClassifyCase{"::1", std::nullopt}, ClassifyCase{"169.254.10.1", std::nullopt},
        ClassifyCase{"fe80::be24:11ff:fe2a:3b4c", std::nullopt},
        ClassifyCase{"febf::1", std::nullopt}, ClassifyCase{"0.0.0.0", std::nullopt},
        ClassifyCase{"::", std::nullopt}, ClassifyCase{"not-an-ip", std::nullopt},
        ClassifyCase{"", std::nullopt}));

TEST(ClassifyAddressesTest, KeepsTheAgentsOrderAndSkipsTheLoopbackInterface) {
  const std::vector<api::VmAddress> got = ClassifyAddresses({
      Iface("lo", {"127.0.0.1", "::1", "10.9.9.9"}),
      Iface("ens18", {"10.99.0.5", "fe80::1", "fd99::5"}),
      Iface("ens19", {"203.0.113.7"}),
  });
  EXPECT_THAT(got,
              ::testing::ElementsAre(
                  Address("10.99.0.5", AddressFamily::kIPv4, AddressScope::kPrivate),
                  Address("fd99::5", AddressFamily::kIPv6, AddressScope::kPrivate),
                  Address("203.0.113.7", AddressFamily::kIPv4, AddressScope::kPublic, "ens19")));
}

// addresses[i] with probes[i]: R reachable, U unreachable, ? not probed, P first probe under way.
struct PrimaryCase {
  std::string name;
  std::vector<std::pair<std::string, char>> addresses;
  AddressFamily preferred;
  std::string expected;
};

class SelectPrimaryTableTest : public ::testing::TestWithParam<PrimaryCase> {};

TEST_P(SelectPrimaryTableTest, Chooses) {
  std::vector<api::VmAddress> addresses;
  std::vector<Probe> probes;
  for (const auto& [address, probe] : GetParam().addresses) {
    addresses.push_back(Address(address, *FamilyOf(address), AddressScope::kPrivate));
    probes.push_back(probe == 'R'   ? Probe::kReachable
                     : probe == 'U' ? Probe::kUnreachable
                     : probe == 'P' ? Probe::kPending
                                    : Probe::kUnknown);
  }
  EXPECT_EQ(SelectPrimary(addresses, probes, GetParam().preferred), GetParam().expected);
}

INSTANTIATE_TEST_SUITE_P(
    Table, SelectPrimaryTableTest,
    ::testing::Values(
        PrimaryCase{"PreferredFamilyFirst",
                    {{"fd99::1", 'R'}, {"10.0.0.1", 'R'}, {"10.0.0.2", 'R'}},
                    AddressFamily::kIPv4,
                    "10.0.0.1"},
        PrimaryCase{"PreferredIpv6",
                    {{"10.0.0.1", 'R'}, {"fd99::1", 'R'}},
                    AddressFamily::kIPv6,
                    "fd99::1"},
        PrimaryCase{"FallsBackToTheOtherFamily",
                    {{"10.0.0.1", 'U'}, {"fd99::1", 'R'}},
                    AddressFamily::kIPv4,
                    "fd99::1"},
        PrimaryCase{"ReachableBeatsNotProbed",
                    {{"10.0.0.1", '?'}, {"fd99::1", 'R'}},
                    AddressFamily::kIPv4,
                    "fd99::1"},
        PrimaryCase{"NeverAFailedOne",
                    {{"10.0.0.1", 'U'}, {"10.0.0.2", '?'}},
                    AddressFamily::kIPv4,
                    "10.0.0.2"},
        PrimaryCase{"UnknownInPreferenceOrder",
                    {{"fd99::1", '?'}, {"10.0.0.1", '?'}},
                    AddressFamily::kIPv4,
                    "10.0.0.1"},
        PrimaryCase{"UnknownOfTheOtherFamily",
                    {{"fd99::1", '?'}, {"10.0.0.1", 'U'}},
                    AddressFamily::kIPv4,
                    "fd99::1"},
        PrimaryCase{"NeverOneAwaitingItsFirstProbe",
                    {{"10.0.0.1", 'P'}, {"fd99::1", 'P'}},
                    AddressFamily::kIPv4,
                    ""},
        PrimaryCase{"NotProbedBeatsAwaitingAProbe",
                    {{"10.0.0.1", 'P'}, {"fd99::1", '?'}},
                    AddressFamily::kIPv4,
                    "fd99::1"},
        PrimaryCase{"AllFailed", {{"10.0.0.1", 'U'}, {"fd99::1", 'U'}}, AddressFamily::kIPv4, ""},
        PrimaryCase{"NoAddresses", {}, AddressFamily::kIPv4, ""}),
    [](const ::testing::TestParamInfo<PrimaryCase>& info) { return info.param.name; });

TEST(SelectPrimaryTest, AddressesWithoutAProbeResultCountAsNotProbed) {
  const std::vector<api::VmAddress> addresses = {
      Address("10.0.0.1", AddressFamily::kIPv4, AddressScope::kPrivate),
      Address("10.0.0.2", AddressFamily::kIPv4, AddressScope::kPrivate)};
  EXPECT_EQ(SelectPrimary(addresses, {Probe::kUnreachable}, AddressFamily::kIPv4), "10.0.0.2");
}

}  // namespace
}  // namespace nixmox::controllers
