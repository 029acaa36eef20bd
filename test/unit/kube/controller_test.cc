#include "src/kube/controller.h"

#include <gtest/gtest.h>

#include <deque>
#include <stdexcept>

#include "src/common/metrics.h"

namespace nixmox::kube {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

// Answers each Reconcile from a script and records the keys it saw.
class ScriptedReconciler : public Reconciler {
 public:
  enum class Outcome { kOk, kRequeue, kRequeueAfter, kTransient, kTerminal, kThrow, kThrottled };
  std::deque<Outcome> script;
  std::vector<std::string> seen;

  Result<ReconcileResult> Reconcile(const Request& r) override {
    seen.push_back(r.Key());
    Outcome o = script.empty() ? Outcome::kOk : script.front();
    if (!script.empty()) script.pop_front();
    switch (o) {
      case Outcome::kOk:
        return ReconcileResult{};
      case Outcome::kRequeue:
        return ReconcileResult{true, milliseconds(0)};
      case Outcome::kRequeueAfter:
        return ReconcileResult{false, seconds(30)};
      case Outcome::kTransient:
        return RetryableError("proxmox is down");
      case Outcome::kTerminal:
        return InvalidError("spec.cores must be positive");
      case Outcome::kThrow:
        throw std::runtime_error("bug");
      case Outcome::kThrottled:
        return Status(Code::kTooManyRequests, "slow down").WithRetryAfter(seconds(20));
    }
    return ReconcileResult{};
  }
};

class ControllerTest : public ::testing::Test {
 protected:
  ControllerTest() {
    ControllerOptions o;
    o.clock = &clock_;
    o.registry = &registry_;
    o.rate_limiter = std::make_unique<ItemExponentialRateLimiter>(milliseconds(100), seconds(60));
    controller_ = std::make_unique<Controller>("proxmoxvm", reconciler_, std::move(o));
  }
  // Runs one queued key (it must be ready: ProcessNext would block otherwise).
  void RunOne() {
    ASSERT_GT(controller_->queue().Len(), 0u);
    ASSERT_TRUE(controller_->ProcessNext());
  }
  std::string Metrics() { return SerializeMetrics(registry_); }
  bool Has(const std::string& needle) { return Metrics().find(needle) != std::string::npos; }

  FakeClock clock_;
  prometheus::Registry registry_;
  ScriptedReconciler reconciler_;
  std::unique_ptr<Controller> controller_;
};

TEST_F(ControllerTest, MetricSeriesExistAtZeroOnStartUp) {
  for (const char* result :
       {"success", "requeue", "requeue_after", "error", "terminal_error", "exception"}) {
    EXPECT_TRUE(
        Has(std::string("nixmox_controller_reconcile_total{controller=\"proxmoxvm\",result=\"") +
            result + "\"} 0"))
        << result << "\n"
        << Metrics();
  }
  EXPECT_TRUE(Has("nixmox_controller_reconcile_errors_total{controller=\"proxmoxvm\"} 0"));
  EXPECT_TRUE(Has("nixmox_controller_reconcile_time_seconds_count{controller=\"proxmoxvm\"} 0"));
  EXPECT_TRUE(Has("nixmox_workqueue_depth{name=\"proxmoxvm\"} 0"));
}

TEST_F(ControllerTest, SuccessForgetsAndDoesNotRequeue) {
  controller_->queue().Add("ns/web");
  RunOne();
  EXPECT_EQ(reconciler_.seen, (std::vector<std::string>{"ns/web"}));
  EXPECT_EQ(controller_->queue().Len(), 0u);
  EXPECT_EQ(controller_->queue().NumWaiting(), 0u);
  EXPECT_TRUE(Has("result=\"success\"} 1"));
}

TEST_F(ControllerTest, TransientErrorRetriesWithGrowingBackoff) {
  reconciler_.script = {ScriptedReconciler::Outcome::kTransient,
                        ScriptedReconciler::Outcome::kTransient, ScriptedReconciler::Outcome::kOk};
  controller_->queue().Add("ns/web");
  RunOne();
  EXPECT_EQ(controller_->queue().Len(), 0u);
  clock_.Advance(milliseconds(100));
  RunOne();  // first retry after 100 ms
  clock_.Advance(milliseconds(199));
  EXPECT_EQ(controller_->queue().Len(), 0u);  // second waits 200 ms
  clock_.Advance(milliseconds(1));
  RunOne();
  EXPECT_EQ(reconciler_.seen.size(), 3u);
  EXPECT_EQ(controller_->queue().NumRequeues("ns/web"), 0);  // success forgot the history
  EXPECT_TRUE(Has("result=\"error\"} 2"));
  EXPECT_TRUE(Has("nixmox_controller_reconcile_errors_total{controller=\"proxmoxvm\"} 2"));
}

TEST_F(ControllerTest, TerminalErrorIsNotRetriedUntilObjectChanges) {
  reconciler_.script = {ScriptedReconciler::Outcome::kTerminal};
  controller_->queue().Add("ns/bad");
  RunOne();
  clock_.Advance(std::chrono::hours(1));
  EXPECT_EQ(controller_->queue().Len(), 0u);
  EXPECT_EQ(controller_->queue().NumWaiting(), 0u);
  EXPECT_TRUE(Has("result=\"terminal_error\"} 1"));
  EXPECT_TRUE(Has("nixmox_controller_reconcile_errors_total{controller=\"proxmoxvm\"} 1"));
  // The user fixes the spec: the watch event enqueues the key again.
  controller_->queue().Add("ns/bad");
  RunOne();
  EXPECT_EQ(reconciler_.seen.size(), 2u);
}

TEST_F(ControllerTest, ExceptionIsCaughtCountedAndRetried) {
  reconciler_.script = {ScriptedReconciler::Outcome::kThrow};
  controller_->queue().Add("ns/web");
  RunOne();
  EXPECT_TRUE(Has("result=\"exception\"} 1"));
  clock_.Advance(milliseconds(100));
  RunOne();
  EXPECT_EQ(reconciler_.seen.size(), 2u);
  EXPECT_TRUE(Has("result=\"success\"} 1"));
}

TEST_F(ControllerTest, RequeueAfterComesBackAfterThatLong) {
  reconciler_.script = {ScriptedReconciler::Outcome::kRequeueAfter};
  controller_->queue().Add("ns/web");
  RunOne();
  clock_.Advance(seconds(29));
  EXPECT_EQ(controller_->queue().Len(), 0u);
  clock_.Advance(seconds(1));
  RunOne();
  EXPECT_TRUE(Has("result=\"requeue_after\"} 1"));
}

TEST_F(ControllerTest, RequeueUsesRateLimiter) {
  reconciler_.script = {ScriptedReconciler::Outcome::kRequeue};
  controller_->queue().Add("ns/web");
  RunOne();
  EXPECT_EQ(controller_->queue().NumRequeues("ns/web"), 1);
  clock_.Advance(milliseconds(100));
  RunOne();
  EXPECT_TRUE(Has("result=\"requeue\"} 1"));
}

TEST_F(ControllerTest, ThrottledErrorWaitsForRetryAfter) {
  reconciler_.script = {ScriptedReconciler::Outcome::kThrottled};
  controller_->queue().Add("ns/web");
  RunOne();
  clock_.Advance(milliseconds(19999));
  EXPECT_EQ(controller_->queue().Len(), 0u);
  clock_.Advance(milliseconds(1));
  RunOne();
}

TEST_F(ControllerTest, ReconcileDurationIsObserved) {
  controller_->queue().Add("a");
  RunOne();
  EXPECT_TRUE(Has("nixmox_controller_reconcile_time_seconds_count{controller=\"proxmoxvm\"} 1"));
}

TEST_F(ControllerTest, WorkersStopOnShutdownAndFinishInFlight) {
  // A reconciler that blocks until released, to observe an in-flight reconcile.
  struct Blocking : Reconciler {
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
  } blocking;
  ControllerOptions o;
  o.workers = 2;
  Controller c("blocking", blocking, std::move(o));
  c.Start();
  c.queue().Add("a");
  {
    std::unique_lock lock(blocking.mu);
    blocking.cv.wait(lock, [&] { return blocking.started; });
  }
  EXPECT_EQ(c.in_flight(), 1);
  EXPECT_FALSE(c.Stop(milliseconds(1)));  // still running: the grace period ran out
  c.queue().Add("b");                     // no new work after stop
  {
    std::lock_guard lock(blocking.mu);
    blocking.release = true;
  }
  blocking.cv.notify_all();
  EXPECT_TRUE(c.Stop(seconds(30)));
  EXPECT_EQ(c.in_flight(), 0);
}

// Scripted list and watch rounds for an informer the controller watches.
class ScriptedListerWatcher : public ListerWatcher {
 public:
  std::deque<ObjectList> lists;
  std::deque<std::vector<WatchEvent>> watches;

  Result<ObjectList> List(const ListOptions&) override {
    if (lists.empty()) return InternalError("no scripted list");
    ObjectList l = std::move(lists.front());
    lists.pop_front();
    return l;
  }
  Status Watch(const ListOptions&, const std::function<bool(const WatchEvent&)>& on_event,
               std::shared_ptr<http::CancelToken>) override {
    if (watches.empty()) return GoneError("no scripted watch: relist");
    auto events = std::move(watches.front());
    watches.pop_front();
    for (const auto& e : events) on_event(e);
    return OkStatus();
  }
};

Object Vm(const std::string& name, const std::string& rv) {
  return {{"metadata", {{"name", name}, {"namespace", "n"}, {"resourceVersion", rv}}}};
}

class ControllerWatchTest : public ControllerTest {
 protected:
  ControllerWatchTest() {
    InformerOptions o;
    o.clock = &clock_;
    o.resync_period = std::chrono::minutes(10);
    informer_ = std::make_unique<Informer>(
        lw_, ResourceType{"nixmox.io", "v1alpha1", "proxmoxvms", true, "ProxmoxVM"}, std::move(o));
  }
  // One list (when the informer needs one) and one watch, delivered in order.
  void Round() { (void)informer_->reflector().ListAndWatch(nullptr); }
  // Reconciles every ready key; returns the keys in the order the workers got them.
  std::vector<std::string> RunReady() {
    reconciler_.seen.clear();
    while (controller_->queue().Len() > 0) controller_->ProcessNext();
    return reconciler_.seen;
  }

  ScriptedListerWatcher lw_;
  std::unique_ptr<Informer> informer_;
};

TEST_F(ControllerWatchTest, NewObjectIsReconciledBeforeTheInitialList) {
  controller_->Watch(*informer_);
  lw_.lists.push_back({{Vm("a", "1"), Vm("b", "2")}, "10", ""});
  lw_.watches.push_back({{WatchEvent::Type::kAdded, Vm("c", "11")}});
  Round();
  controller_->queue().Add("n/urgent");  // a caller's nudge is high too
  EXPECT_EQ(RunReady(), (std::vector<std::string>{"n/c", "n/urgent", "n/a", "n/b"}));
}

TEST_F(ControllerWatchTest, ChangedAndDeletedObjectsJumpTheInitialList) {
  controller_->Watch(*informer_);
  lw_.lists.push_back({{Vm("a", "1"), Vm("b", "2"), Vm("c", "3")}, "10", ""});
  lw_.watches.push_back(
      {{WatchEvent::Type::kModified, Vm("c", "11")}, {WatchEvent::Type::kDeleted, Vm("b", "12")}});
  Round();
  EXPECT_EQ(RunReady(), (std::vector<std::string>{"n/c", "n/b", "n/a"}));
}

TEST_F(ControllerWatchTest, ResyncIsLowPriority) {
  controller_->Watch(*informer_);
  lw_.lists.push_back({{Vm("a", "1"), Vm("b", "2")}, "10", ""});
  lw_.watches.push_back({});
  Round();
  RunReady();
  clock_.Advance(std::chrono::minutes(10));
  informer_->ResyncIfDue();  // a and b again, unchanged
  controller_->queue().Add("n/new");
  EXPECT_EQ(RunReady(), (std::vector<std::string>{"n/new", "n/a", "n/b"}));
}

TEST_F(ControllerWatchTest, RequeueAfterWaitsBehindAChange) {
  controller_->Watch(*informer_);
  lw_.lists.push_back({{Vm("a", "1")}, "10", ""});
  lw_.watches.push_back({});
  Round();
  reconciler_.script = {ScriptedReconciler::Outcome::kRequeueAfter};  // a: look again in 30 s
  RunReady();
  clock_.Advance(seconds(30));
  lw_.watches.push_back({{WatchEvent::Type::kAdded, Vm("b", "11")}});
  Round();
  EXPECT_EQ(RunReady(), (std::vector<std::string>{"n/b", "n/a"}));
}

TEST_F(ControllerWatchTest, RelistFindingNewObjectsIsHighPriority) {
  controller_->Watch(*informer_);
  lw_.lists.push_back({{Vm("a", "1"), Vm("b", "2")}, "10", ""});
  // No watch scripted: the watch ends with 410 Gone and the next round relists.
  Round();
  RunReady();
  clock_.Advance(std::chrono::minutes(10));
  informer_->ResyncIfDue();  // a and b queued low
  // While the watch was down: b changed and c was created; a is as it was.
  lw_.lists.push_back({{Vm("a", "1"), Vm("b", "20"), Vm("c", "21")}, "30", ""});
  lw_.watches.push_back({});
  Round();
  EXPECT_EQ(RunReady(), (std::vector<std::string>{"n/c", "n/b", "n/a"}));
}

TEST_F(ControllerWatchTest, LateWatchSeesCachedObjectsAsInitialList) {
  lw_.lists.push_back({{Vm("a", "1"), Vm("b", "2")}, "10", ""});
  lw_.watches.push_back({});
  Round();
  ASSERT_TRUE(informer_->HasSynced());
  controller_->WatchMapped(*informer_, [](const Object& vm) {
    return std::vector<std::string>{"images/" + NameOf(vm)};
  });
  controller_->queue().Add("images/new");
  EXPECT_EQ(RunReady(), (std::vector<std::string>{"images/new", "images/a", "images/b"}));
}

TEST(IsTerminalTest, OnlyInvalidIsTerminal) {
  EXPECT_TRUE(IsTerminal(InvalidError("bad spec")));
  EXPECT_FALSE(IsTerminal(ConflictError("stale")));
  EXPECT_FALSE(IsTerminal(RetryableError("down")));
  EXPECT_FALSE(IsTerminal(ForbiddenError("rbac")));
}

}  // namespace
}  // namespace nixmox::kube
