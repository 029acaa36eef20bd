#include "src/kube/work_queue.h"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>

#include "src/common/metrics.h"

namespace nixmox::kube {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

std::unique_ptr<RateLimiter> Exponential(milliseconds base, milliseconds max) {
  return std::make_unique<ItemExponentialRateLimiter>(base, max);
}

TEST(RateLimiterTest, ItemExponentialDoublesPerItemAndForgets) {
  ItemExponentialRateLimiter r(milliseconds(5), milliseconds(1000));
  EXPECT_EQ(r.When("a"), milliseconds(5));
  EXPECT_EQ(r.When("a"), milliseconds(10));
  EXPECT_EQ(r.When("a"), milliseconds(20));
  EXPECT_EQ(r.When("b"), milliseconds(5));  // independent per item
  EXPECT_EQ(r.NumRequeues("a"), 3);
  for (int i = 0; i < 100; ++i) r.When("a");
  EXPECT_EQ(r.When("a"), milliseconds(1000));  // capped, no overflow
  r.Forget("a");
  EXPECT_EQ(r.NumRequeues("a"), 0);
  EXPECT_EQ(r.When("a"), milliseconds(5));
}

TEST(RateLimiterTest, BucketAllowsBurstThenPacesAtQps) {
  FakeClock clock;
  BucketRateLimiter r(10.0, 3, clock);
  EXPECT_EQ(r.When("x"), milliseconds(0));
  EXPECT_EQ(r.When("y"), milliseconds(0));
  EXPECT_EQ(r.When("z"), milliseconds(0));
  EXPECT_EQ(r.When("w"), milliseconds(100));  // next token in 1/qps
  EXPECT_EQ(r.When("v"), milliseconds(200));  // reservations queue up
  clock.Advance(seconds(10));                 // refills, but never above burst
  EXPECT_EQ(r.When("a"), milliseconds(0));
  EXPECT_EQ(r.When("b"), milliseconds(0));
  EXPECT_EQ(r.When("c"), milliseconds(0));
  EXPECT_EQ(r.When("d"), milliseconds(100));
}

TEST(RateLimiterTest, MaxOfTakesLongest) {
  FakeClock clock;
  std::vector<std::unique_ptr<RateLimiter>> ls;
  ls.push_back(Exponential(milliseconds(50), seconds(10)));
  ls.push_back(std::make_unique<BucketRateLimiter>(1.0, 1, clock));
  MaxOfRateLimiter r(std::move(ls));
  EXPECT_EQ(r.When("a"), milliseconds(50));    // bucket had a token
  EXPECT_EQ(r.When("a"), milliseconds(1000));  // bucket empty: 1s beats 100ms
  EXPECT_EQ(r.NumRequeues("a"), 2);
  r.Forget("a");
  EXPECT_EQ(r.NumRequeues("a"), 0);
}

class WorkQueueTest : public ::testing::Test {
 protected:
  WorkQueue MakeQueue() {
    WorkQueueOptions o;
    o.name = "test";
    o.clock = &clock_;
    o.rate_limiter = Exponential(milliseconds(100), seconds(10));
    o.registry = &registry_;
    return WorkQueue(std::move(o));
  }
  FakeClock clock_;
  prometheus::Registry registry_;
};

TEST_F(WorkQueueTest, DeduplicatesWhileQueued) {
  WorkQueue q = MakeQueue();
  q.Add("a");
  q.Add("b");
  q.Add("a");
  EXPECT_EQ(q.Len(), 2u);
  EXPECT_EQ(q.TryGet(), "a");
  EXPECT_EQ(q.TryGet(), "b");
  EXPECT_EQ(q.TryGet(), std::nullopt);
}

TEST_F(WorkQueueTest, KeyAddedDuringProcessingWaitsForDone) {
  WorkQueue q = MakeQueue();
  q.Add("a");
  auto k = q.TryGet();
  ASSERT_EQ(k, "a");
  q.Add("a");  // changed while a worker has it
  q.Add("a");
  EXPECT_EQ(q.TryGet(), std::nullopt);  // a second worker must not get it
  q.Done("a");
  EXPECT_EQ(q.TryGet(), "a");  // once, de-duplicated
  q.Done("a");
  EXPECT_EQ(q.TryGet(), std::nullopt);
}

TEST_F(WorkQueueTest, AddAfterWaitsForClock) {
  WorkQueue q = MakeQueue();
  q.AddAfter("a", seconds(5));
  q.AddAfter("a", seconds(2));  // an earlier time wins
  q.AddAfter("a", seconds(9));
  EXPECT_EQ(q.NumWaiting(), 1u);
  EXPECT_EQ(q.TryGet(), std::nullopt);
  clock_.Advance(milliseconds(1999));
  EXPECT_EQ(q.Len(), 0u);
  clock_.Advance(milliseconds(1));
  EXPECT_EQ(q.Len(), 1u);
  EXPECT_EQ(q.TryGet(), "a");
  EXPECT_EQ(q.NumWaiting(), 0u);
}

TEST_F(WorkQueueTest, AddRateLimitedBacksOffPerKey) {
  WorkQueue q = MakeQueue();
  q.AddRateLimited("a");  // 100 ms
  clock_.Advance(milliseconds(100));
  ASSERT_EQ(q.TryGet(), "a");
  q.Done("a");
  q.AddRateLimited("a");  // 200 ms
  clock_.Advance(milliseconds(150));
  EXPECT_EQ(q.TryGet(), std::nullopt);
  clock_.Advance(milliseconds(50));
  ASSERT_EQ(q.TryGet(), "a");
  EXPECT_EQ(q.NumRequeues("a"), 2);
  q.Forget("a");
  EXPECT_EQ(q.NumRequeues("a"), 0);
  q.Done("a");
  q.AddRateLimited("a", seconds(3));  // a server's Retry-After beats the backoff
  clock_.Advance(milliseconds(2999));
  EXPECT_EQ(q.TryGet(), std::nullopt);
  clock_.Advance(milliseconds(1));
  EXPECT_EQ(q.TryGet(), "a");
}

TEST_F(WorkQueueTest, ShutDownStopsHandingOutWorkAndWakesGetters) {
  WorkQueue q = MakeQueue();
  std::atomic<bool> returned{false};
  std::optional<std::string> got = "unset";
  std::thread getter([&] {
    got = q.Get();  // blocks: nothing queued
    returned = true;
  });
  q.ShutDown();
  getter.join();
  EXPECT_TRUE(returned);
  EXPECT_EQ(got, std::nullopt);
  q.Add("late");
  EXPECT_EQ(q.TryGet(), std::nullopt);
  EXPECT_TRUE(q.shutting_down());
}

TEST_F(WorkQueueTest, BlockingGetWakesOnAdd) {
  WorkQueue q = MakeQueue();
  std::optional<std::string> got;
  std::thread getter([&] { got = q.Get(); });
  q.Add("x");
  getter.join();
  EXPECT_EQ(got, "x");
}

TEST_F(WorkQueueTest, NeverTwoWorkersOnOneKey) {
  WorkQueueOptions o;
  o.rate_limiter = Exponential(milliseconds(1), milliseconds(1));
  WorkQueue q(std::move(o));
  std::mutex mu;
  std::map<std::string, int> active;
  std::atomic<int> violations{0};
  std::atomic<int> processed{0};
  std::vector<std::thread> workers;
  for (int w = 0; w < 4; ++w) {
    workers.emplace_back([&] {
      while (auto key = q.Get()) {
        {
          std::lock_guard lock(mu);
          if (++active[*key] > 1) ++violations;
        }
        std::this_thread::yield();
        {
          std::lock_guard lock(mu);
          --active[*key];
        }
        ++processed;
        q.Done(*key);
      }
    });
  }
  for (int i = 0; i < 2000; ++i) q.Add("k" + std::to_string(i % 3));
  // Drain: wait until nothing is queued or in flight.
  while (q.Len() > 0) std::this_thread::yield();
  q.ShutDown();
  for (auto& t : workers) t.join();
  EXPECT_EQ(violations, 0);
  EXPECT_GT(processed, 0);
}

TEST_F(WorkQueueTest, MetricsExistAtZeroAndTrackDepthAndLatency) {
  WorkQueue q = MakeQueue();
  std::string text = SerializeMetrics(registry_);
  EXPECT_NE(text.find("nixmox_workqueue_depth{name=\"test\"} 0"), std::string::npos) << text;
  EXPECT_NE(text.find("nixmox_workqueue_adds_total{name=\"test\"} 0"), std::string::npos);
  q.Add("a");
  q.Add("b");
  text = SerializeMetrics(registry_);
  EXPECT_NE(text.find("nixmox_workqueue_depth{name=\"test\"} 2"), std::string::npos) << text;
  clock_.Advance(seconds(2));
  ASSERT_TRUE(q.TryGet().has_value());
  text = SerializeMetrics(registry_);
  EXPECT_NE(text.find("nixmox_workqueue_queue_duration_seconds_sum{name=\"test\"} 2"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("nixmox_workqueue_depth{name=\"test\"} 1"), std::string::npos);
}

// Hands out every ready key, Done-ing each at once.
std::vector<std::string> Drain(WorkQueue& q) {
  std::vector<std::string> keys;
  while (auto key = q.TryGet()) {
    keys.push_back(*key);
    q.Done(*key);
  }
  return keys;
}

TEST_F(WorkQueueTest, HighPriorityIsHandedOutBeforeLowAndEachLaneIsFifo) {
  WorkQueue q = MakeQueue();
  q.AddAfter("requeue-1", seconds(30));  // periodic re-checks come due: low
  q.AddAfter("requeue-2", seconds(30));
  q.AddRateLimited("retry");  // 100 ms: low
  q.Add("resync", Priority::kLow);
  clock_.Advance(seconds(30));
  q.Add("new-1");  // a change: high by default
  q.Add("new-2", Priority::kHigh);
  EXPECT_EQ(q.Len(), 6u);
  // Low keys in the order they became ready: the retry was due first.
  EXPECT_EQ(Drain(q), (std::vector<std::string>{"new-1", "new-2", "resync", "retry", "requeue-1",
                                                "requeue-2"}));
}

TEST_F(WorkQueueTest, QueuedLowKeyAddedHighMovesUp) {
  WorkQueue q = MakeQueue();
  q.Add("a", Priority::kLow);
  q.Add("b", Priority::kLow);
  q.Add("c");
  q.Add("b");  // b changed while waiting for its re-check
  EXPECT_EQ(q.Len(), 3u);
  // b joins the high lane behind the earlier change c.
  EXPECT_EQ(Drain(q), (std::vector<std::string>{"c", "b", "a"}));
}

TEST_F(WorkQueueTest, DeduplicatesAcrossLanesAtTheHigherPriority) {
  WorkQueue q = MakeQueue();
  q.Add("low", Priority::kLow);
  q.Add("a");
  q.Add("a", Priority::kLow);  // a resync of a key already queued high: stays high
  q.AddAfter("a", milliseconds(10));
  clock_.Advance(milliseconds(10));  // the delayed add finds it queued
  EXPECT_EQ(q.Len(), 2u);
  EXPECT_EQ(Drain(q), (std::vector<std::string>{"a", "low"}));
  EXPECT_NE(SerializeMetrics(registry_).find("nixmox_workqueue_adds_total{name=\"test\"} 2"),
            std::string::npos);
}

TEST_F(WorkQueueTest, KeyReaddedHighWhileProcessingComesBackHigh) {
  WorkQueue q = MakeQueue();
  q.Add("a", Priority::kLow);
  ASSERT_EQ(q.TryGet(), "a");
  q.Add("a");                  // changed while a worker has it
  q.Add("a", Priority::kLow);  // and a resync: the higher priority wins
  q.Add("b", Priority::kLow);
  EXPECT_EQ(q.TryGet(), "b");  // not a: a worker still has it
  q.Add("c", Priority::kLow);
  q.Done("a");
  q.Done("b");
  EXPECT_EQ(Drain(q), (std::vector<std::string>{"a", "c"}));
}

TEST_F(WorkQueueTest, KeyReaddedLowWhileProcessingComesBackLow) {
  WorkQueue q = MakeQueue();
  q.Add("a");
  ASSERT_EQ(q.TryGet(), "a");
  q.Add("a", Priority::kLow);
  q.Add("b", Priority::kLow);
  q.Done("a");  // a goes to the back of the low lane, behind b
  q.Add("c");
  EXPECT_EQ(Drain(q), (std::vector<std::string>{"c", "b", "a"}));
}

TEST_F(WorkQueueTest, DepthCountsBothLanesAcrossPromotion) {
  WorkQueue q = MakeQueue();
  q.Add("a", Priority::kLow);
  q.Add("b", Priority::kLow);
  q.Add("a");
  EXPECT_NE(SerializeMetrics(registry_).find("nixmox_workqueue_depth{name=\"test\"} 2"),
            std::string::npos);
  ASSERT_EQ(q.TryGet(), "a");
  EXPECT_NE(SerializeMetrics(registry_).find("nixmox_workqueue_depth{name=\"test\"} 1"),
            std::string::npos);
}

TEST_F(WorkQueueTest, ShutDownDropsKeysOfBothLanes) {
  WorkQueue q = MakeQueue();
  q.Add("a", Priority::kLow);
  q.Add("b");
  ASSERT_EQ(q.TryGet(), "b");
  q.Add("b");  // held for Done
  q.ShutDown();
  q.Done("b");
  EXPECT_EQ(q.TryGet(), std::nullopt);
  EXPECT_EQ(q.Get(), std::nullopt);
}

}  // namespace
}  // namespace nixmox::kube
