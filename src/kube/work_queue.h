// The controller work queue, with client-go's guarantees:
//  - de-duplicating: a key added many times before a worker takes it is
//    processed once;
//  - never two workers on one key: a key added while being processed is held
//    back and handed out again only after Done();
//  - delayed adds (AddAfter) and rate-limited adds (AddRateLimited);
//  - ShutDown stops handing out work at once; queued keys are dropped.
//
// Two priority lanes, after controller-runtime's priority queue: a change a
// user just made (high) is handed out before periodic re-checks, retries and
// resyncs (low), so one new object does not wait behind the requeues of a
// thousand others. Get takes from the high lane first; within a lane, first
// in, first out. A key is queued once, at the higher of the priorities it was
// added with: a queued low key added high moves to the back of the high lane.
// The low lane waits while high work keeps coming; high adds are meant to be
// rare (watch events and explicit nudges), so it drains between bursts.
#pragma once

#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <chrono>
#include <condition_variable>
#include <cstdint>
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

enum class Priority {
  kLow,   // delayed adds, retries, resyncs, the initial list
  kHigh,  // a watched object changed, or a caller says it is urgent
};

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

  // Adds at high priority.
  void Add(const std::string& key);
  void Add(const std::string& key, Priority priority);
  // Adds at low priority once `delay` has passed by the clock; an earlier
  // pending time wins.
  void AddAfter(const std::string& key, std::chrono::milliseconds delay);
  // Adds at low priority after the rate limiter's delay for the key, or
  // `at_least` when longer (counts a retry).
  void AddRateLimited(const std::string& key,
                      std::chrono::milliseconds at_least = std::chrono::milliseconds(0));
  // Clears the key's retry history (after a success or a terminal error).
  void Forget(const std::string& key);
  int NumRequeues(const std::string& key);

  // Blocks until a key is ready, then hands it out, high lane first; every key
  // handed out must be given back with Done(). Empty once ShutDown() was called.
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

  // Keys ready to hand out in both lanes (delayed keys whose time has come included).
  size_t Len();
  // Keys waiting for their AddAfter time.
  size_t NumWaiting();

 private:
  struct Queued {
    Priority priority;
    std::uint64_t seq;  // place in its lane
  };

  void AddLocked(const std::string& key, Priority priority);
  void EnqueueLocked(const std::string& key, Priority priority);
  void PromoteDueLocked();
  std::optional<std::string> PopLocked();
  std::map<std::uint64_t, std::string>& Lane(Priority p) { return lanes_[static_cast<int>(p)]; }

  WorkQueueOptions options_;
  Clock& clock_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  // The keys ready to hand out: where each is, and each lane in add order.
  std::map<std::string, Queued, std::less<>> queued_;
  std::map<std::uint64_t, std::string> lanes_[2];  // indexed by Priority
  std::uint64_t next_seq_ = 0;
  // Keys re-added while processing, at the highest priority asked; queued at Done().
  std::map<std::string, Priority, std::less<>> held_;
  std::set<std::string, std::less<>> processing_;              // handed out, not Done yet
  std::map<std::string, Clock::SteadyTime> added_at_;          // for queue latency
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
