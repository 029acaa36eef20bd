#include "src/kube/leader_election.h"

#include <gtest/gtest.h>

#include "src/kube/fake_client.h"
#include "src/kube/time.h"

namespace nixmox::kube {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

class LeaderElectionTest : public ::testing::Test {
 protected:
  std::unique_ptr<LeaderElector> Elector(const std::string& id, FakeClock& clock) {
    LeaderElectionConfig c;
    c.lock = lock_.get();
    c.identity = id;
    c.lease_duration = seconds(15);
    c.renew_deadline = seconds(10);
    c.retry_period = seconds(2);
    c.clock = &clock;
    auto e = LeaderElector::New(c);
    EXPECT_TRUE(e.ok()) << e.status().ToString();
    return std::move(*e);
  }
  Object Lease() { return *client_.Get(resources::Leases(), "nixmox-system", "nixmox-leader"); }

  FakeClock clock_a_, clock_b_;
  FakeClient client_{clock_a_};
  std::unique_ptr<LeaseLock> lock_ = NewLeaseLock(client_, "nixmox-system", "nixmox-leader");
};

TEST_F(LeaderElectionTest, FirstCandidateCreatesLeaseWithMicroTimes) {
  auto a = Elector("a", clock_a_);
  EXPECT_TRUE(a->TryAcquireOrRenew());
  EXPECT_TRUE(a->IsLeader());
  Object lease = Lease();
  EXPECT_EQ(lease["spec"]["holderIdentity"], "a");
  EXPECT_EQ(lease["spec"]["leaseDurationSeconds"], 15);
  EXPECT_EQ(lease["spec"]["leaseTransitions"], 0);
  // MicroTime: exactly six fractional digits.
  const std::string renew = lease["spec"]["renewTime"];
  EXPECT_EQ(renew, "2026-01-01T00:00:00.000000Z");
  EXPECT_EQ(lease["spec"]["acquireTime"], renew);
}

TEST_F(LeaderElectionTest, SecondCandidateWaitsForLeaseToExpireOnItsOwnClock) {
  auto a = Elector("a", clock_a_);
  auto b = Elector("b", clock_b_);
  ASSERT_TRUE(a->TryAcquireOrRenew());
  EXPECT_FALSE(b->TryAcquireOrRenew());  // b first sees the record now
  EXPECT_EQ(b->leader(), "a");
  clock_b_.Advance(seconds(14));
  EXPECT_FALSE(b->TryAcquireOrRenew());
  clock_b_.Advance(seconds(1));  // 15 s without a change, by b's clock
  EXPECT_TRUE(b->TryAcquireOrRenew());
  EXPECT_EQ(Lease()["spec"]["holderIdentity"], "b");
  EXPECT_EQ(Lease()["spec"]["leaseTransitions"], 1);
  // a cannot renew a lease someone else holds now; it is out once its deadline passes.
  EXPECT_FALSE(a->TryAcquireOrRenew());
  clock_a_.Advance(seconds(10));
  EXPECT_FALSE(a->IsLeader());
  EXPECT_TRUE(a->RenewDeadlinePassed());
}

TEST_F(LeaderElectionTest, RenewalsKeepOthersOut) {
  auto a = Elector("a", clock_a_);
  auto b = Elector("b", clock_b_);
  ASSERT_TRUE(a->TryAcquireOrRenew());
  const std::string acquired = Lease()["spec"]["acquireTime"];
  for (int i = 0; i < 20; ++i) {
    clock_a_.Advance(seconds(2));
    clock_b_.Advance(seconds(2));
    ASSERT_TRUE(a->TryAcquireOrRenew());
    ASSERT_FALSE(b->TryAcquireOrRenew()) << "round " << i;  // never two leaders
  }
  EXPECT_EQ(Lease()["spec"]["acquireTime"], acquired);  // renewals keep acquireTime
  EXPECT_NE(Lease()["spec"]["renewTime"], acquired);
}

TEST_F(LeaderElectionTest, ReleaseLetsOtherTakeOverAtOnce) {
  auto a = Elector("a", clock_a_);
  auto b = Elector("b", clock_b_);
  ASSERT_TRUE(a->TryAcquireOrRenew());
  EXPECT_FALSE(b->TryAcquireOrRenew());
  ASSERT_TRUE(a->Release().ok());
  EXPECT_FALSE(a->IsLeader());
  EXPECT_FALSE(Lease()["spec"].contains("holderIdentity"));
  EXPECT_TRUE(b->TryAcquireOrRenew());  // no waiting for expiry
}

TEST_F(LeaderElectionTest, ConcurrentWriteLosesOnConflict) {
  auto a = Elector("a", clock_a_);
  ASSERT_TRUE(a->TryAcquireOrRenew());
  client_.FailNext("update", ConflictError("the object has been modified"));
  clock_a_.Advance(seconds(2));
  EXPECT_FALSE(a->TryAcquireOrRenew());
  EXPECT_TRUE(a->IsLeader());  // still within the renew deadline
  clock_a_.Advance(seconds(2));
  EXPECT_TRUE(a->TryAcquireOrRenew());
}

TEST_F(LeaderElectionTest, ApiErrorsNeverGrantLeadership) {
  auto a = Elector("a", clock_a_);
  client_.FailNext("get", RetryableError("connection refused"));
  EXPECT_FALSE(a->TryAcquireOrRenew());
  client_.FailNext("create", ForbiddenError("cannot create leases"));
  EXPECT_FALSE(a->TryAcquireOrRenew());
  EXPECT_FALSE(a->IsLeader());
}

TEST_F(LeaderElectionTest, LosesLeadershipWhenRenewDeadlinePasses) {
  auto a = Elector("a", clock_a_);
  ASSERT_TRUE(a->TryAcquireOrRenew());
  for (int i = 0; i < 5; ++i) {
    client_.FailNext("get", RetryableError("apiserver down"));
    clock_a_.Advance(seconds(2));
    EXPECT_FALSE(a->TryAcquireOrRenew());
  }
  EXPECT_TRUE(a->RenewDeadlinePassed());
  EXPECT_FALSE(a->IsLeader());
}

TEST_F(LeaderElectionTest, RunStopsAndReleasesOnStop) {
  auto a = Elector("a", clock_a_);
  Stop stop;
  bool started = false, stopped = false;
  // on_started_leading requests stop, so Run goes straight to release.
  a->Run(
      stop,
      [&] {
        started = true;
        stop.Request();
      },
      [&] { stopped = true; });
  EXPECT_TRUE(started);
  EXPECT_TRUE(stopped);
  EXPECT_FALSE(Lease()["spec"].contains("holderIdentity"));
}

TEST_F(LeaderElectionTest, RejectsInconsistentDurations) {
  LeaderElectionConfig c;
  c.lock = lock_.get();
  c.identity = "a";
  c.lease_duration = seconds(10);
  c.renew_deadline = seconds(10);
  EXPECT_EQ(LeaderElector::New(c).status().code(), Code::kInvalid);
  c.lease_duration = seconds(15);
  c.retry_period = seconds(10);
  EXPECT_EQ(LeaderElector::New(c).status().code(), Code::kInvalid);
  c.retry_period = seconds(2);
  c.identity = "";
  EXPECT_EQ(LeaderElector::New(c).status().code(), Code::kInvalid);
}

TEST(LeaseSpecTest, RoundTrips) {
  LeaderElectionRecord r;
  r.holder_identity = "pod-1";
  r.lease_duration_seconds = 15;
  r.acquire_time = *ParseTime("2026-11-22T13:10:53.191000Z");
  r.renew_time = *ParseTime("2026-11-22T13:11:03.5Z");
  r.lease_transitions = 3;
  auto spec = LeaseSpecFromRecord(r);
  EXPECT_EQ(spec["acquireTime"], "2026-11-22T13:10:53.191000Z");
  EXPECT_EQ(spec["renewTime"], "2026-11-22T13:11:03.500000Z");
  EXPECT_EQ(*RecordFromLeaseSpec(spec), r);
  EXPECT_EQ(RecordFromLeaseSpec({{"renewTime", "yesterday"}}).status().code(), Code::kInvalid);
}

}  // namespace
}  // namespace nixmox::kube
