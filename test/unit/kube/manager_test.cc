#include "src/kube/manager.h"

#include <gtest/gtest.h>

#include <condition_variable>
#include <future>

#include "src/kube/fake_client.h"

namespace nixmox::kube {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

const ResourceType kVms{"nixmox.io", "v1alpha1", "proxmoxvms", true, "ProxmoxVM"};

// Records keys and lets the test wait for one.
class RecordingReconciler : public Reconciler {
 public:
  Result<ReconcileResult> Reconcile(const Request& r) override {
    std::lock_guard lock(mu_);
    seen_.push_back(r.Key());
    cv_.notify_all();
    return ReconcileResult{};
  }
  bool WaitFor(const std::string& key) {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, seconds(20),
                        [&] { return std::find(seen_.begin(), seen_.end(), key) != seen_.end(); });
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::string> seen_;
};

class ManagerTest : public ::testing::Test {
 protected:
  ManagerOptions Options() {
    ManagerOptions o;
    o.client = &client_;
    o.registry = &registry_;
    o.graceful_shutdown = seconds(5);
    LeaderElectionOptions le;
    le.lease_namespace = "nixmox-system";
    le.lease_name = "nixmox";
    le.identity = "me";
    le.lease_duration = milliseconds(600);
    le.renew_deadline = milliseconds(400);
    le.retry_period = milliseconds(50);
    o.leader_election = le;
    return o;
  }
  Object Lease() { return *client_.Get(resources::Leases(), "nixmox-system", "nixmox"); }

  FakeClient client_;
  prometheus::Registry registry_;
  RecordingReconciler reconciler_;
};

TEST_F(ManagerTest, LeadsReconcilesFromCacheAndReleasesOnStop) {
  ASSERT_TRUE(client_.Create(kVms, {{"metadata", {{"name", "web"}, {"namespace", "n"}}}}).ok());
  Manager m(Options());
  Informer& inf = m.AddInformer(kVms);
  EXPECT_EQ(&m.AddInformer(kVms), &inf);  // one informer per type
  m.AddController("proxmoxvm", reconciler_).Watch(inf);
  Stop stop;
  auto run = std::async(std::launch::async, [&] { return m.Run(stop); });
  ASSERT_TRUE(reconciler_.WaitFor("n/web"));
  EXPECT_TRUE(m.leading());
  EXPECT_EQ(Lease()["spec"]["holderIdentity"], "me");
  auto cached = m.reader().Get(kVms, "n", "web");
  EXPECT_TRUE(cached.ok());
  stop.Request();
  EXPECT_TRUE(run.get().ok());
  EXPECT_FALSE(m.leading());
  EXPECT_FALSE(Lease()["spec"].contains("holderIdentity"));  // released for the next leader
}

TEST_F(ManagerTest, LostLeaseStopsControllersAndReturnsError) {
  Manager m(Options());
  m.AddController("proxmoxvm", reconciler_);
  Stop stop;
  auto run = std::async(std::launch::async, [&] { return m.Run(stop); });
  // Wait until it leads, then let another holder take the lease behind its back.
  for (int i = 0; i < 2000 && !m.leading(); ++i) stop.WaitFor(milliseconds(10));
  ASSERT_TRUE(m.leading());
  Object lease = Lease();
  lease["spec"]["holderIdentity"] = "usurper";
  lease["spec"]["leaseDurationSeconds"] = 3600;
  ASSERT_TRUE(client_.Update(resources::Leases(), lease).ok());
  ASSERT_EQ(run.wait_for(seconds(20)), std::future_status::ready);
  Status s = run.get();
  EXPECT_EQ(s.code(), Code::kCancelled);
  EXPECT_FALSE(m.leading());
  EXPECT_EQ(Lease()["spec"]["holderIdentity"], "usurper");  // never released someone else's
}

TEST_F(ManagerTest, KeepsLeaseWhenReconcilesOutlastGracePeriod) {
  // A reconcile that runs until the test lets it go.
  struct Stuck : Reconciler {
    std::mutex mu;
    std::condition_variable cv;
    bool started = false, release = false;
    Result<ReconcileResult> Reconcile(const Request&) override {
      std::unique_lock lock(mu);
      started = true;
      cv.notify_all();
      cv.wait(lock, [&] { return release; });
      return ReconcileResult{};
    }
  } stuck;
  ASSERT_TRUE(client_.Create(kVms, {{"metadata", {{"name", "slow"}, {"namespace", "n"}}}}).ok());
  ManagerOptions o = Options();
  o.graceful_shutdown = milliseconds(20);
  Manager m(std::move(o));
  m.AddController("proxmoxvm", stuck).Watch(m.AddInformer(kVms));
  Stop stop;
  auto run = std::async(std::launch::async, [&] { return m.Run(stop); });
  {
    std::unique_lock lock(stuck.mu);
    ASSERT_TRUE(stuck.cv.wait_for(lock, seconds(20), [&] { return stuck.started; }));
  }
  stop.Request();
  EXPECT_TRUE(run.get().ok());
  // Still writing, so the lease is left to expire rather than handed over.
  EXPECT_EQ(Lease()["spec"]["holderIdentity"], "me");
  {
    std::lock_guard lock(stuck.mu);
    stuck.release = true;
  }
  stuck.cv.notify_all();
}

TEST_F(ManagerTest, WithoutLeaderElectionRunsUntilStopped) {
  ASSERT_TRUE(client_.Create(kVms, {{"metadata", {{"name", "db"}, {"namespace", "n"}}}}).ok());
  ManagerOptions o = Options();
  o.leader_election.reset();
  Manager m(std::move(o));
  m.AddController("proxmoxvm", reconciler_).Watch(m.AddInformer(kVms));
  Stop stop;
  auto run = std::async(std::launch::async, [&] { return m.Run(stop); });
  ASSERT_TRUE(reconciler_.WaitFor("n/db"));
  stop.Request();
  EXPECT_TRUE(run.get().ok());
}

}  // namespace
}  // namespace nixmox::kube
