#include "src/kube/rate_limiter.h"

#include <algorithm>
#include <cmath>

namespace nixmox::kube {

using std::chrono::milliseconds;

ItemExponentialRateLimiter::ItemExponentialRateLimiter(milliseconds base, milliseconds max)
    : base_(base), max_(max) {}

milliseconds ItemExponentialRateLimiter::When(const std::string& item) {
  std::lock_guard lock(mu_);
  const int exp = failures_[item]++;
  // Computed in floating point so that large exponents saturate instead of overflowing.
  const double delay = static_cast<double>(base_.count()) * std::pow(2.0, exp);
  if (delay >= static_cast<double>(max_.count())) return max_;
  return milliseconds(static_cast<long long>(delay));
}

void ItemExponentialRateLimiter::Forget(const std::string& item) {
  std::lock_guard lock(mu_);
  failures_.erase(item);
}

int ItemExponentialRateLimiter::NumRequeues(const std::string& item) {
  std::lock_guard lock(mu_);
  auto it = failures_.find(item);
  return it == failures_.end() ? 0 : it->second;
}

BucketRateLimiter::BucketRateLimiter(double qps, int burst, Clock& clock)
    : qps_(qps), burst_(burst), clock_(clock), tokens_(burst), last_(clock.Now()) {}

milliseconds BucketRateLimiter::When(const std::string&) {
  std::lock_guard lock(mu_);
  const auto now = clock_.Now();
  if (now > last_) {
    const double elapsed = std::chrono::duration<double>(now - last_).count();
    tokens_ = std::min(burst_, tokens_ + elapsed * qps_);
    last_ = now;
  }
  // Reserve a token; a negative balance is the queue of reservations ahead.
  tokens_ -= 1.0;
  if (tokens_ >= 0.0) return milliseconds(0);
  return milliseconds(static_cast<long long>(std::ceil(-tokens_ / qps_ * 1000.0)));
}

MaxOfRateLimiter::MaxOfRateLimiter(std::vector<std::unique_ptr<RateLimiter>> limiters)
    : limiters_(std::move(limiters)) {}

milliseconds MaxOfRateLimiter::When(const std::string& item) {
  milliseconds longest{0};
  for (auto& l : limiters_) longest = std::max(longest, l->When(item));
  return longest;
}

void MaxOfRateLimiter::Forget(const std::string& item) {
  for (auto& l : limiters_) l->Forget(item);
}

int MaxOfRateLimiter::NumRequeues(const std::string& item) {
  int most = 0;
  for (auto& l : limiters_) most = std::max(most, l->NumRequeues(item));
  return most;
}

std::unique_ptr<RateLimiter> DefaultControllerRateLimiter(Clock& clock) {
  std::vector<std::unique_ptr<RateLimiter>> limiters;
  limiters.push_back(
      std::make_unique<ItemExponentialRateLimiter>(milliseconds(5), milliseconds(1000 * 1000)));
  limiters.push_back(std::make_unique<BucketRateLimiter>(10.0, 100, clock));
  return std::make_unique<MaxOfRateLimiter>(std::move(limiters));
}

}  // namespace nixmox::kube
