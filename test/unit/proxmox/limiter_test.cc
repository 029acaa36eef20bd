#include "src/proxmox/limiter.h"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>
#include <vector>

namespace nixmox::proxmox {
namespace {

using std::chrono::milliseconds;
using std::chrono::nanoseconds;
using std::chrono::seconds;

// A sleeper that records each wait and moves the fake clock instead of sleeping.
struct RecordingSleeper {
  FakeClock* clock;
  std::vector<nanoseconds>* waits;
  void operator()(nanoseconds d) const {
    waits->push_back(d);
    clock->Advance(d);
  }
};

TEST(PveLimiterTest, BurstPassesThenWaitsForTokens) {
  FakeClock clock;
  std::vector<nanoseconds> waits;
  RequestLimiter limiter({.max_in_flight = 0, .qps = 2.0, .burst = 3}, clock,
                         RecordingSleeper{&clock, &waits});
  for (int i = 0; i < 3; ++i) limiter.Acquire();
  EXPECT_TRUE(waits.empty());
  limiter.Acquire();
  ASSERT_EQ(waits.size(), 1u);
  EXPECT_EQ(waits[0], milliseconds(500));  // one token at 2 QPS
  limiter.Acquire();
  ASSERT_EQ(waits.size(), 2u);
  EXPECT_EQ(waits[1], milliseconds(500));
}

TEST(PveLimiterTest, TokensRefillWithTimeUpToTheBurst) {
  FakeClock clock;
  std::vector<nanoseconds> waits;
  RequestLimiter limiter({.max_in_flight = 0, .qps = 1.0, .burst = 2}, clock,
                         RecordingSleeper{&clock, &waits});
  limiter.Acquire();
  limiter.Acquire();
  clock.Advance(seconds(60));  // refills to the burst of 2, not 60
  limiter.Acquire();
  limiter.Acquire();
  EXPECT_TRUE(waits.empty());
  limiter.Acquire();
  ASSERT_EQ(waits.size(), 1u);
  EXPECT_EQ(waits[0], seconds(1));
}

TEST(PveLimiterTest, ConcurrentCallersReserveDistinctTokens) {
  // Callers that wait at the same moment queue behind each other instead of
  // all waking together.
  FakeClock clock;
  std::vector<nanoseconds> waits;
  RequestLimiter limiter({.max_in_flight = 0, .qps = 10.0, .burst = 1}, clock,
                         [&](nanoseconds d) { waits.push_back(d); });  // clock stays put
  limiter.Acquire();
  limiter.Acquire();
  limiter.Acquire();
  ASSERT_EQ(waits.size(), 2u);
  EXPECT_EQ(waits[0], milliseconds(100));
  EXPECT_EQ(waits[1], milliseconds(200));
}

TEST(PveLimiterTest, NoQpsLimitNeverWaits) {
  FakeClock clock;
  std::vector<nanoseconds> waits;
  RequestLimiter limiter({.max_in_flight = 0, .qps = 0, .burst = 1}, clock,
                         RecordingSleeper{&clock, &waits});
  for (int i = 0; i < 100; ++i) limiter.Acquire();
  EXPECT_TRUE(waits.empty());
}

TEST(PveLimiterTest, PermitsCapRequestsInFlight) {
  FakeClock clock;
  RequestLimiter limiter({.max_in_flight = 2, .qps = 0, .burst = 1}, clock,
                         [](nanoseconds) { FAIL() << "no time limit configured"; });
  auto a = limiter.Acquire();
  auto b = limiter.Acquire();
  EXPECT_EQ(limiter.in_flight(), 2);

  std::atomic<bool> third_acquired{false};
  std::thread third([&] {
    auto c = limiter.Acquire();
    third_acquired = true;
  });
  // Wait (without sleeping) until the third caller is blocked on a slot.
  while (limiter.waiting() != 1) std::this_thread::yield();
  EXPECT_FALSE(third_acquired.load());
  EXPECT_EQ(limiter.in_flight(), 2);

  a.Release();
  third.join();
  EXPECT_TRUE(third_acquired.load());
  EXPECT_EQ(limiter.waiting(), 0);
  EXPECT_EQ(limiter.in_flight(), 1);  // b still held; c released when the thread ended
}

TEST(PveLimiterTest, MovedPermitReleasesOnce) {
  FakeClock clock;
  RequestLimiter limiter({.max_in_flight = 1, .qps = 0, .burst = 1}, clock, nullptr);
  {
    auto a = limiter.Acquire();
    RequestLimiter::Permit b = std::move(a);
    EXPECT_EQ(limiter.in_flight(), 1);
  }
  EXPECT_EQ(limiter.in_flight(), 0);
}

}  // namespace
}  // namespace nixmox::proxmox
