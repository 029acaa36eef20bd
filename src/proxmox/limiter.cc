#include "src/proxmox/limiter.h"

#include <algorithm>
#include <cmath>
#include <thread>

namespace nixmox::proxmox {

Sleeper RealSleeper() {
  return [](std::chrono::nanoseconds d) { std::this_thread::sleep_for(d); };
}

RequestLimiter::Permit& RequestLimiter::Permit::operator=(Permit&& other) noexcept {
  if (this != &other) {
    Release();
    limiter_ = other.limiter_;
    other.limiter_ = nullptr;
  }
  return *this;
}

void RequestLimiter::Permit::Release() {
  if (limiter_ != nullptr) {
    limiter_->ReleaseSlot();
    limiter_ = nullptr;
  }
}

RequestLimiter::RequestLimiter(LimiterOptions options, const Clock& clock, Sleeper sleeper)
    : options_(options),
      clock_(clock),
      sleeper_(sleeper ? std::move(sleeper) : RealSleeper()),
      tokens_(std::max(options.burst, 1)),
      last_refill_(clock.Now()) {}

std::chrono::nanoseconds RequestLimiter::ReserveToken() {
  if (options_.qps <= 0) return std::chrono::nanoseconds(0);
  std::lock_guard lock(mu_);
  const auto now = clock_.Now();
  if (now > last_refill_) {
    const double elapsed = std::chrono::duration<double>(now - last_refill_).count();
    tokens_ = std::min(static_cast<double>(std::max(options_.burst, 1)),
                       tokens_ + elapsed * options_.qps);
    last_refill_ = now;
  }
  tokens_ -= 1.0;
  if (tokens_ >= 0) return std::chrono::nanoseconds(0);
  const double wait_seconds = -tokens_ / options_.qps;
  return std::chrono::nanoseconds(static_cast<std::int64_t>(std::ceil(wait_seconds * 1e9)));
}

RequestLimiter::Permit RequestLimiter::Acquire() {
  const auto wait = ReserveToken();
  if (wait > std::chrono::nanoseconds(0)) sleeper_(wait);
  if (options_.max_in_flight <= 0) {
    std::lock_guard lock(mu_);
    ++in_flight_;
    return Permit(this);
  }
  std::unique_lock lock(mu_);
  if (in_flight_ >= options_.max_in_flight) {
    ++waiting_;
    slot_freed_.wait(lock, [&] { return in_flight_ < options_.max_in_flight; });
    --waiting_;
  }
  ++in_flight_;
  return Permit(this);
}

void RequestLimiter::ReleaseSlot() {
  {
    std::lock_guard lock(mu_);
    --in_flight_;
  }
  slot_freed_.notify_one();
}

int RequestLimiter::in_flight() const {
  std::lock_guard lock(mu_);
  return in_flight_;
}

int RequestLimiter::waiting() const {
  std::lock_guard lock(mu_);
  return waiting_;
}

}  // namespace nixmox::proxmox
