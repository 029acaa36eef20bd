#include "src/common/backoff.h"

#include <algorithm>
#include <cmath>

namespace nixmox {

std::chrono::milliseconds BackoffDelay(const BackoffPolicy& p, int attempt, double u) {
  const double base = static_cast<double>(p.initial.count()) *
                      std::pow(p.multiplier, static_cast<double>(std::max(attempt, 0)));
  const double capped = std::min(base, static_cast<double>(p.max.count()));
  const double factor = 1.0 + p.jitter * (2.0 * std::clamp(u, 0.0, 1.0) - 1.0);
  const double jittered = std::min(capped * factor, static_cast<double>(p.max.count()));
  return std::chrono::milliseconds(static_cast<std::int64_t>(std::max(jittered, 0.0)));
}

Backoff::Backoff(BackoffPolicy policy, std::uint64_t seed) : policy_(policy), rng_(seed) {}

std::chrono::milliseconds Backoff::Next() {
  std::uniform_real_distribution<double> dist(0.0, 1.0);
  return BackoffDelay(policy_, attempt_++, dist(rng_));
}

}  // namespace nixmox
