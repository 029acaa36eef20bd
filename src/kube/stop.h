// A one-shot "please stop" shared by the threads of one run: informers,
// controllers, the leader elector and the manager wait on it instead of
// sleeping, so shutdown interrupts every wait at once.
#pragma once

#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>

#include "src/http/http.h"

namespace nixmox::kube {

// Thread-safe.
class Stop {
 public:
  Stop();
  Stop(const Stop&) = delete;
  Stop& operator=(const Stop&) = delete;

  void Request();
  bool requested() const;
  // Waits up to `d` of real time; true when stop was requested (now or before).
  bool WaitFor(std::chrono::nanoseconds d) const;
  void Wait() const;
  // Fires when stop is requested: hand it to http requests and watches.
  std::shared_ptr<http::CancelToken> token() const { return token_; }

 private:
  mutable std::mutex mu_;
  mutable std::condition_variable cv_;
  bool requested_ = false;
  std::shared_ptr<http::CancelToken> token_;
};

}  // namespace nixmox::kube
