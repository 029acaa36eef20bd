#include "src/kube/stop.h"

namespace nixmox::kube {

Stop::Stop() : token_(std::make_shared<http::CancelToken>()) {}

void Stop::Request() {
  // Cancel in-flight requests first, and wake waiters last and under the lock:
  // a woken waiter may destroy this Stop (main returning after a signal), so
  // nothing here may touch it after the lock is released.
  token_->Cancel();
  std::lock_guard lock(mu_);
  requested_ = true;
  cv_.notify_all();
}

bool Stop::requested() const {
  std::lock_guard lock(mu_);
  return requested_;
}

bool Stop::WaitFor(std::chrono::nanoseconds d) const {
  std::unique_lock lock(mu_);
  return cv_.wait_for(lock, d, [&] { return requested_; });
}

void Stop::Wait() const {
  std::unique_lock lock(mu_);
  cv_.wait(lock, [&] { return requested_; });
}

}  // namespace nixmox::kube
