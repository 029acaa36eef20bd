// Client-side limits for one Proxmox cluster: at most N requests in flight and
// a QPS budget (token bucket).
//
// Proxmox has no rate limiting of its own: three pvedaemon workers serve every
// protected call one at a time, and callers that pile up get 596s and lock
// timeouts. One limiter per cluster keeps the operator a polite client.
#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>

#include "src/common/clock.h"

namespace nixmox::proxmox {

// Waits for a duration. Injected so that tests advance a FakeClock instead of sleeping.
using Sleeper = std::function<void(std::chrono::nanoseconds)>;
// std::this_thread::sleep_for.
Sleeper RealSleeper();

struct LimiterOptions {
  int max_in_flight = 4;  // <= 0: no limit
  double qps = 10.0;      // sustained requests per second; <= 0: no limit
  int burst = 10;         // requests allowed at once after a quiet period (>= 1)
};

// Thread-safe. The clock must outlive the limiter.
class RequestLimiter {
 public:
  // Holds one in-flight slot until destroyed.
  class Permit {
   public:
    Permit() = default;
    Permit(Permit&& other) noexcept : limiter_(other.limiter_) { other.limiter_ = nullptr; }
    Permit& operator=(Permit&& other) noexcept;
    Permit(const Permit&) = delete;
    Permit& operator=(const Permit&) = delete;
    ~Permit() { Release(); }
    void Release();

   private:
    friend class RequestLimiter;
    explicit Permit(RequestLimiter* limiter) : limiter_(limiter) {}
    RequestLimiter* limiter_ = nullptr;
  };

  RequestLimiter(LimiterOptions options, const Clock& clock, Sleeper sleeper);

  // Takes a token (sleeping through the sleeper when the bucket is empty),
  // then waits for a free slot. The first wait is time, the second is other
  // requests finishing.
  Permit Acquire();

  int in_flight() const;
  // Callers blocked waiting for a slot.
  int waiting() const;

 private:
  // Reserves a token and returns how long to wait for it.
  std::chrono::nanoseconds ReserveToken();
  void ReleaseSlot();

  const LimiterOptions options_;
  const Clock& clock_;
  const Sleeper sleeper_;

  mutable std::mutex mu_;
  std::condition_variable slot_freed_;
  int in_flight_ = 0;
  int waiting_ = 0;
  double tokens_;  // may go negative: tokens promised to callers now sleeping
  Clock::SteadyTime last_refill_;
};

}  // namespace nixmox::proxmox
