// Controller: N workers draining a WorkQueue into a Reconciler.
//
// What happens to a key after Reconcile:
//   ok, no requeue           -> Forget (backoff history cleared)
//   ok, requeue_after = d    -> Forget, AddAfter(d)
//   ok, requeue = true       -> AddRateLimited
//   any other error          -> AddRateLimited (per-key backoff); Retry-After honoured
//   terminal error (Invalid) -> logged, counted, Forget; not retried until the
//                               object changes and a watch event enqueues it
//   exception                -> caught, logged, counted, AddRateLimited
// Requeues and retries go in the queue's low lane; watch events for changed
// objects, and WorkQueue::Add, in the high lane (see work_queue.h).
#pragma once

#include <prometheus/counter.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <chrono>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "src/common/clock.h"
#include "src/common/status.h"
#include "src/kube/informer.h"
#include "src/kube/work_queue.h"

namespace nixmox::kube {

struct Request {
  std::string ns;  // "" for cluster-scoped objects
  std::string name;
  std::string Key() const { return MakeKey(ns, name); }
};

struct ReconcileResult {
  bool requeue = false;                        // retry with the rate limiter's backoff
  std::chrono::milliseconds requeue_after{0};  // > 0: look again after this long
};

// A terminal error: retrying the same spec cannot help (a bad spec).
bool IsTerminal(const Status& status);

class Reconciler {
 public:
  virtual ~Reconciler() = default;
  // Called from worker threads, never twice at once for the same key.
  virtual Result<ReconcileResult> Reconcile(const Request& request) = 0;
};

struct ControllerOptions {
  int workers = 1;
  Clock* clock = nullptr;                     // RealClock() when null
  std::unique_ptr<RateLimiter> rate_limiter;  // DefaultControllerRateLimiter when null
  prometheus::Registry* registry = nullptr;   // metrics here when set
  std::chrono::milliseconds queue_poll{1000};
};

class Controller {
 public:
  // `reconciler` must outlive the controller. `name` is a metrics label: keep it fixed.
  Controller(std::string name, Reconciler& reconciler, ControllerOptions options = {});
  ~Controller();  // stops and joins the workers

  const std::string& name() const { return name_; }
  WorkQueue& queue() { return *queue_; }

  // Enqueues the object's key on every add, update and delete of `informer`:
  // at high priority when the object changed (an add after the initial list,
  // an update that moved its resourceVersion, a delete), at low priority for
  // the initial list and resyncs, so that what a user just did is reconciled
  // before re-checks of what was already there.
  void Watch(Informer& informer);
  // Like Watch, enqueueing the keys `map` returns (e.g. the ProxmoxVMs that use
  // a NixImage).
  void WatchMapped(Informer& informer, std::function<std::vector<std::string>(const Object&)> map);

  // Starts the workers. Thread-safe; once.
  void Start();
  // Takes one key, reconciles it and files the outcome. Blocks for a key;
  // false once the queue is shut down. Start's workers loop on it; tests call it.
  bool ProcessNext();
  // Stops handing out work and waits up to `grace` for in-flight reconciles.
  // True when all finished; otherwise the workers are still joined by the
  // destructor (the caller decides whether to wait or exit).
  bool Stop(std::chrono::milliseconds grace);

  // Keys being reconciled right now.
  int in_flight() { return static_cast<int>(queue_->NumProcessing()); }

 private:
  void File(const std::string& key, const Result<ReconcileResult>& result, bool threw,
            const std::string& what);

  const std::string name_;
  Reconciler& reconciler_;
  ControllerOptions options_;
  Clock& clock_;
  std::unique_ptr<WorkQueue> queue_;
  std::vector<std::thread> workers_;
  std::mutex mu_;
  bool started_ = false;

  struct Metrics {
    prometheus::Counter* success = nullptr;
    prometheus::Counter* requeue = nullptr;
    prometheus::Counter* requeue_after = nullptr;
    prometheus::Counter* error = nullptr;
    prometheus::Counter* terminal = nullptr;
    prometheus::Counter* exception = nullptr;
    prometheus::Counter* errors_total = nullptr;
    prometheus::Histogram* duration = nullptr;
  } metrics_;
};

}  // namespace nixmox::kube
