#include "src/common/backoff.h"

#include <gtest/gtest.h>

#include "src/common/clock.h"

namespace nixmox {
namespace {

using std::chrono::milliseconds;

TEST(BackoffTest, DoublesFromInitialUpToMax) {
  BackoffPolicy p{milliseconds(100), milliseconds(1000), 2.0, 0.0};
  EXPECT_EQ(BackoffDelay(p, 0, 0.5), milliseconds(100));
  EXPECT_EQ(BackoffDelay(p, 1, 0.5), milliseconds(200));
  EXPECT_EQ(BackoffDelay(p, 3, 0.5), milliseconds(800));
  EXPECT_EQ(BackoffDelay(p, 4, 0.5), milliseconds(1000));
  EXPECT_EQ(BackoffDelay(p, 60, 0.5), milliseconds(1000));
}

TEST(BackoffTest, JitterStaysWithinBandAndUnderMax) {
  BackoffPolicy p{milliseconds(1000), milliseconds(10000), 2.0, 0.2};
  EXPECT_EQ(BackoffDelay(p, 0, 0.0), milliseconds(800));
  EXPECT_EQ(BackoffDelay(p, 0, 1.0), milliseconds(1200));
  EXPECT_EQ(BackoffDelay(p, 10, 1.0), milliseconds(10000));
}

TEST(BackoffTest, SeededSequenceGrowsAndResets) {
  Backoff b(BackoffPolicy{milliseconds(10), milliseconds(100000), 2.0, 0.1}, 42);
  milliseconds prev{0};
  for (int i = 0; i < 8; ++i) {
    auto d = b.Next();
    EXPECT_GT(d, prev) << "attempt " << i;
    prev = d;
  }
  EXPECT_EQ(b.attempts(), 8);
  b.Reset();
  EXPECT_LE(b.Next(), milliseconds(11));
}

TEST(FakeClockTest, MovesOnlyWhenAdvanced) {
  FakeClock clock;
  auto t0 = clock.Now();
  auto w0 = clock.WallNow();
  EXPECT_EQ(clock.Now(), t0);
  clock.Advance(std::chrono::seconds(30));
  EXPECT_EQ(clock.Now() - t0, std::chrono::seconds(30));
  EXPECT_EQ(clock.WallNow() - w0, std::chrono::seconds(30));
}

}  // namespace
}  // namespace nixmox
