// Time behind an interface, so backoff, requeue and lease expiry are testable
// without sleeping.
#pragma once

#include <chrono>
#include <mutex>

namespace nixmox {

class Clock {
 public:
  using SteadyTime = std::chrono::steady_clock::time_point;
  using WallTime = std::chrono::system_clock::time_point;

  virtual ~Clock() = default;
  // Monotonic time for durations and deadlines.
  virtual SteadyTime Now() const = 0;
  // Calendar time for timestamps written to APIs.
  virtual WallTime WallNow() const = 0;
};

// The process-wide real clock. Thread-safe.
Clock& RealClock();

// A clock that moves only when told to. Thread-safe.
class FakeClock : public Clock {
 public:
  FakeClock();
  SteadyTime Now() const override;
  WallTime WallNow() const override;
  void Advance(std::chrono::nanoseconds d);

 private:
  mutable std::mutex mu_;
  SteadyTime steady_;
  WallTime wall_;
};

}  // namespace nixmox
