// How long an item waits before its next try: per-item exponential backoff
// (one item failing often does not slow the others) combined with an overall
// token bucket (many items failing at once do not flood the API server).
#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "src/common/clock.h"

namespace nixmox::kube {

// Thread-safe in every implementation.
class RateLimiter {
 public:
  virtual ~RateLimiter() = default;
  // The delay before `item` may be retried; counts one failure.
  virtual std::chrono::milliseconds When(const std::string& item) = 0;
  // The item succeeded: its history is cleared.
  virtual void Forget(const std::string& item) = 0;
  virtual int NumRequeues(const std::string& item) = 0;
};

// base * 2^failures, capped at max.
class ItemExponentialRateLimiter final : public RateLimiter {
 public:
  ItemExponentialRateLimiter(std::chrono::milliseconds base, std::chrono::milliseconds max);
  std::chrono::milliseconds When(const std::string& item) override;
  void Forget(const std::string& item) override;
  int NumRequeues(const std::string& item) override;

 private:
  const std::chrono::milliseconds base_, max_;
  std::mutex mu_;
  std::map<std::string, int> failures_;
};

// A token bucket of `burst` tokens refilled at `qps`; When() reserves the next
// token and returns how long until it is available. Time from `clock`.
class BucketRateLimiter final : public RateLimiter {
 public:
  BucketRateLimiter(double qps, int burst, Clock& clock);
  std::chrono::milliseconds When(const std::string& item) override;
  void Forget(const std::string&) override {}
  int NumRequeues(const std::string&) override { return 0; }

 private:
  const double qps_;
  const double burst_;
  Clock& clock_;
  std::mutex mu_;
  double tokens_;
  Clock::SteadyTime last_;
};

// The longest delay of several limiters; Forget and NumRequeues reach all.
class MaxOfRateLimiter final : public RateLimiter {
 public:
  explicit MaxOfRateLimiter(std::vector<std::unique_ptr<RateLimiter>> limiters);
  std::chrono::milliseconds When(const std::string& item) override;
  void Forget(const std::string& item) override;
  int NumRequeues(const std::string& item) override;

 private:
  std::vector<std::unique_ptr<RateLimiter>> limiters_;
};

// controller-runtime's default: 5 ms .. 1000 s per item, 10 qps with a burst of 100.
std::unique_ptr<RateLimiter> DefaultControllerRateLimiter(Clock& clock);

}  // namespace nixmox::kube
