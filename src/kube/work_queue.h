// The controller work queue, with client-go's guarantees:
//  - de-duplicating: a key added many times before a worker takes it is
//    processed once;
//  - never two workers on one key: a key added while being processed is held
//    back and handed out again only after Done();
//  - delayed adds (AddAfter) and rate-limited adds (AddRateLimited);
//  - ShutDown stops handing out work at once; queued keys are dropped.
#pragma once

#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <chrono>
#include <condition_variable>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <utility>

#include "src/common/clock.h"
#include "src/kube/rate_limiter.h"

namespace nixmox::kube {

struct WorkQueueOptions {
  std::string name = "default";  // the metrics' `name` label: a controller name, never a key
  Clock* clock = nullptr;        // RealClock() when null
  std::unique_ptr<RateLimiter> rate_limiter;  // DefaultControllerRateLimiter when null
  // Metrics are registered here when set (nixmox_workqueue_*; series start at zero).
  prometheus::Registry* registry = nullptr;
  // The longest real-time wait in Get before it looks at the clock again, so
  // that delayed items become ready even under a fake clock.
  std::chrono::milliseconds poll{1000};
};

// Thread-safe.
class WorkQueue {
 public:
  explicit WorkQueue(WorkQueueOptions options = {});
  ~WorkQueue();

  void Add(const std::string& key);
  // Adds once `delay` has passed by the clock; an earlier pending time wins.
  void AddAfter(const std::string& key, std::chrono::milliseconds delay);
  // Adds after the rate limiter's delay for the key, or `at_least` when longer
  // (counts a retry).
  void AddRateLimited(const std::string& key,
                      std::chrono::milliseconds at_least = std::chrono::milliseconds(0));
  // Clears the key's retry history (after a success or a terminal error).
  void Forget(const std::string& key);
  int NumRequeues(const std::string& key);

  // Blocks until a key is ready, then hands it out; every key handed out must
  // be given back with Done(). Empty once ShutDown() was called.
  std::optional<std::string> Get();
  // Like Get, without blocking.
  std::optional<std::string> TryGet();
  void Done(const std::string& key);

  void ShutDown();
  bool shutting_down() const;
  // Waits up to `timeout` (real time) until every key handed out is Done; true if so.
  bool WaitForIdle(std::chrono::milliseconds timeout);
  // Keys handed out and not yet Done.
  size_t NumProcessing();

  // Keys ready to hand out (delayed keys whose time has come included).
  size_t Len();
  // Keys waiting for their AddAfter time.
  size_t NumWaiting();

 private:
  void AddLocked(const std::string& key);
  void PromoteDueLocked();
  std::optional<std::string> PopLocked();

  WorkQueueOptions options_;
  Clock& clock_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::string> queue_;
  std::set<std::string, std::less<>> dirty_;           // queued, or re-added while processing
  std::set<std::string, std::less<>> processing_;      // handed out, not Done yet
  std::map<std::string, Clock::SteadyTime> added_at_;  // for queue latency
  std::map<std::string, Clock::SteadyTime> processing_since_;  // for work duration
  std::map<std::string, Clock::SteadyTime> waiting_by_key_;
  std::set<std::pair<Clock::SteadyTime, std::string>> waiting_;
  bool shutting_down_ = false;

  prometheus::Gauge* depth_ = nullptr;
  prometheus::Counter* adds_ = nullptr;
  prometheus::Counter* retries_ = nullptr;
  prometheus::Histogram* queue_latency_ = nullptr;
  prometheus::Histogram* work_duration_ = nullptr;
};

}  // namespace nixmox::kube
