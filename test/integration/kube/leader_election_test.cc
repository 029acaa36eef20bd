// Leader election between real processes over a real API server.
#include "src/kube/leader_election.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>

#include "test/integration/kube/test_cluster.h"

namespace nixmox::kube {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;
using testing::Subprocess;

constexpr long long kLeaseMs = 2000, kRenewMs = 1500, kRetryMs = 200;

long long NowUs() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// The timestamp of a probe's "<us> WHAT id" line.
long long Stamp(const std::string& line) { return std::stoll(line.substr(0, line.find(' '))); }

class LeaderElectionIT : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_EQ(cluster_.error(), ""); }

  std::unique_ptr<Subprocess> Probe(const std::string& id) {
    auto p = std::make_unique<Subprocess>(std::vector<std::string>{
        LEADER_PROBE_PATH, cluster_.kubeconfig(), cluster_.ns(), "nixmox-leader", id,
        std::to_string(kLeaseMs), std::to_string(kRenewMs), std::to_string(kRetryMs)});
    EXPECT_TRUE(p->started());
    return p;
  }
  static std::optional<std::string> Line(Subprocess& p, const std::string& what,
                                         milliseconds timeout) {
    return p.WaitForLine(
        [&](const std::string& l) { return l.find(" " + what + " ") != std::string::npos; },
        timeout);
  }
  std::string Holder() {
    auto lease = cluster_.client().Get(resources::Leases(), cluster_.ns(), "nixmox-leader");
    return lease.ok() ? StringAt(*lease, {"spec", "holderIdentity"}) : "";
  }

  testing::TestCluster cluster_;
};

TEST_F(LeaderElectionIT, OneLeaderAndReleaseOnShutdownHandsOverAtOnce) {
  auto a = Probe("a");
  ASSERT_TRUE(Line(*a, "LEADING", seconds(20)));
  auto b = Probe("b");
  // Over two whole lease durations of renewals, b never leads.
  EXPECT_FALSE(Line(*b, "LEADING", milliseconds(2 * kLeaseMs)));
  EXPECT_EQ(Holder(), "a");

  a->Signal(SIGTERM);
  auto a_stopped = Line(*a, "STOPPED", seconds(20));
  ASSERT_TRUE(a_stopped);
  EXPECT_TRUE(Line(*a, "RELEASED", seconds(20)));
  auto status = a->Wait(seconds(20));
  ASSERT_TRUE(status.has_value());
  EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0);

  auto b_leads = Line(*b, "LEADING", seconds(20));
  ASSERT_TRUE(b_leads);
  EXPECT_GT(Stamp(*b_leads), Stamp(*a_stopped));  // never two leaders
  // Released, b did not wait for the lease to expire.
  EXPECT_LT(Stamp(*b_leads) - Stamp(*a_stopped), (kLeaseMs - kRetryMs) * 1000);
  EXPECT_EQ(Holder(), "b");
}

TEST_F(LeaderElectionIT, FailoverAfterLeaseExpiresWhenLeaderDies) {
  auto a = Probe("a");
  ASSERT_TRUE(Line(*a, "LEADING", seconds(20)));
  auto b = Probe("b");
  EXPECT_FALSE(Line(*b, "LEADING", milliseconds(kLeaseMs)));
  const long long killed_us = NowUs();
  a->Signal(SIGKILL);  // no release: b must wait out the lease
  ASSERT_TRUE(a->Wait(seconds(10)).has_value());
  auto b_leads = Line(*b, "LEADING", seconds(30));
  ASSERT_TRUE(b_leads);
  // a's last renewal was at most one retry period before the kill; b counts a
  // full lease duration from when it saw that renewal.
  EXPECT_GE(Stamp(*b_leads) - killed_us, (kLeaseMs - kRetryMs) * 1000);
  EXPECT_EQ(Holder(), "b");
}

TEST_F(LeaderElectionIT, LeaseTimesAreMicroTime) {
  auto a = Probe("a");
  ASSERT_TRUE(Line(*a, "LEADING", seconds(20)));
  auto lease = cluster_.client().Get(resources::Leases(), cluster_.ns(), "nixmox-leader");
  ASSERT_TRUE(lease.ok());
  const std::string renew = StringAt(*lease, {"spec", "renewTime"});
  ASSERT_EQ(renew.size(), 27u) << renew;  // 2026-11-22T13:10:53.191000Z
  EXPECT_EQ(renew[19], '.');
  EXPECT_EQ(renew.back(), 'Z');
}

}  // namespace
}  // namespace nixmox::kube
