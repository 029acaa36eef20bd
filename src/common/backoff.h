// Jittered exponential backoff.
#pragma once

#include <chrono>
#include <cstdint>
#include <random>

namespace nixmox {

struct BackoffPolicy {
  std::chrono::milliseconds initial{1000};
  std::chrono::milliseconds max{60000};
  double multiplier = 2.0;
  // Each delay is drawn from [d * (1 - jitter), d * (1 + jitter)], then capped at max.
  double jitter = 0.2;
};

// The delay before retry number `attempt` (0-based) for a uniform draw `u` in [0, 1).
// Pure, so the curve is testable without randomness.
std::chrono::milliseconds BackoffDelay(const BackoffPolicy& policy, int attempt, double u);

// Stateful backoff for one retry loop. Not thread-safe.
class Backoff {
 public:
  explicit Backoff(BackoffPolicy policy, std::uint64_t seed = std::random_device{}());
  // The delay to wait before the next attempt; each call counts one attempt.
  std::chrono::milliseconds Next();
  void Reset() { attempt_ = 0; }
  int attempts() const { return attempt_; }

 private:
  BackoffPolicy policy_;
  std::mt19937_64 rng_;
  int attempt_ = 0;
};

}  // namespace nixmox
