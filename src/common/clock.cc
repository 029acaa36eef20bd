#include "src/common/clock.h"

namespace nixmox {
namespace {
class SystemClock final : public Clock {
 public:
  SteadyTime Now() const override { return std::chrono::steady_clock::now(); }
  WallTime WallNow() const override { return std::chrono::system_clock::now(); }
};
}  // namespace

Clock& RealClock() {
  static SystemClock clock;
  return clock;
}

// Starts at a fixed, recognisable instant: 2026-01-01T00:00:00Z.
FakeClock::FakeClock()
    : steady_(std::chrono::hours(1000)), wall_(std::chrono::seconds(1767225600)) {}

Clock::SteadyTime FakeClock::Now() const {
  std::lock_guard lock(mu_);
  return steady_;
}

Clock::WallTime FakeClock::WallNow() const {
  std::lock_guard lock(mu_);
  return wall_;
}

void FakeClock::Advance(std::chrono::nanoseconds d) {
  std::lock_guard lock(mu_);
  steady_ += std::chrono::duration_cast<SteadyTime::duration>(d);
  wall_ += std::chrono::duration_cast<WallTime::duration>(d);
}

}  // namespace nixmox
