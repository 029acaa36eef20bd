#include "src/kube/controller.h"

#include <spdlog/spdlog.h>

namespace nixmox::kube {

namespace {

// A resync (or a relist that found nothing new) delivers the object as it was:
// the same resourceVersion, or, for objects without one, the same content.
bool Unchanged(const Object& old, const Object& cur) {
  if (&old == &cur) return true;
  const std::string rv = ResourceVersionOf(cur);
  return rv.empty() ? old == cur : ResourceVersionOf(old) == rv;
}

}  // namespace

bool IsTerminal(const Status& status) { return status.code() == Code::kInvalid; }

Controller::Controller(std::string name, Reconciler& reconciler, ControllerOptions options)
    : name_(std::move(name)),
      reconciler_(reconciler),
      options_(std::move(options)),
      clock_(options_.clock ? *options_.clock : RealClock()) {
  WorkQueueOptions qo;
  qo.name = name_;
  qo.clock = &clock_;
  qo.rate_limiter = std::move(options_.rate_limiter);
  qo.registry = options_.registry;
  qo.poll = options_.queue_poll;
  queue_ = std::make_unique<WorkQueue>(std::move(qo));

  if (auto* r = options_.registry) {
    // Every result series exists from start-up, at zero.
    auto& total = prometheus::BuildCounter()
                      .Name("nixmox_controller_reconcile_total")
                      .Help("Reconciles by controller and result")
                      .Register(*r);
    auto counter = [&](const char* result) {
      return &total.Add({{"controller", name_}, {"result", result}});
    };
    metrics_.success = counter("success");
    metrics_.requeue = counter("requeue");
    metrics_.requeue_after = counter("requeue_after");
    metrics_.error = counter("error");
    metrics_.terminal = counter("terminal_error");
    metrics_.exception = counter("exception");
    metrics_.errors_total =
        &prometheus::BuildCounter()
             .Name("nixmox_controller_reconcile_errors_total")
             .Help("Reconciles that failed (errors, terminal errors, exceptions)")
             .Register(*r)
             .Add({{"controller", name_}});
    metrics_.duration = &prometheus::BuildHistogram()
                             .Name("nixmox_controller_reconcile_time_seconds")
                             .Help("Time per reconcile")
                             .Register(*r)
                             .Add({{"controller", name_}}, prometheus::Histogram::BucketBoundaries{
                                                               0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                                               0.5, 1, 2.5, 5, 10, 30, 60});
  }
}

Controller::~Controller() {
  queue_->ShutDown();
  for (auto& w : workers_) {
    if (w.joinable()) w.join();
  }
}

void Controller::Watch(Informer& informer) {
  WatchMapped(informer, [](const Object& obj) { return std::vector<std::string>{KeyOf(obj)}; });
}

void Controller::WatchMapped(Informer& informer,
                             std::function<std::vector<std::string>(const Object&)> map) {
  auto enqueue = [this, map](const Object& obj, Priority priority) {
    for (const auto& key : map(obj)) queue_->Add(key, priority);
  };
  EventHandlers h;
  h.on_add = [enqueue](const Object& obj) { enqueue(obj, Priority::kHigh); };
  h.on_initial_add = [enqueue](const Object& obj) { enqueue(obj, Priority::kLow); };
  h.on_update = [enqueue](const Object& old, const Object& cur) {
    enqueue(cur, Unchanged(old, cur) ? Priority::kLow : Priority::kHigh);
  };
  h.on_delete = [enqueue](const Object& obj) { enqueue(obj, Priority::kHigh); };
  informer.AddHandlers(std::move(h));
}

void Controller::Start() {
  std::lock_guard lock(mu_);
  if (started_) return;
  started_ = true;
  for (int i = 0; i < std::max(1, options_.workers); ++i) {
    workers_.emplace_back([this] {
      while (ProcessNext()) {
      }
    });
  }
}

bool Controller::ProcessNext() {
  auto key = queue_->Get();
  if (!key) return false;
  const auto start = clock_.Now();
  auto [ns, name] = SplitKey(*key);
  bool threw = false;
  std::string what;
  Result<ReconcileResult> result = InternalError("reconcile did not run");
  try {
    result = reconciler_.Reconcile(Request{ns, name});
  } catch (const std::exception& e) {
    threw = true;
    what = e.what();
  } catch (...) {
    threw = true;
    what = "unknown exception";
  }
  if (metrics_.duration) {
    metrics_.duration->Observe(std::chrono::duration<double>(clock_.Now() - start).count());
  }
  File(*key, result, threw, what);
  queue_->Done(*key);
  return true;
}

void Controller::File(const std::string& key, const Result<ReconcileResult>& result, bool threw,
                      const std::string& what) {
  auto count = [](prometheus::Counter* c) {
    if (c) c->Increment();
  };
  if (threw) {
    spdlog::error("{}: reconcile {} threw: {}", name_, key, what);
    count(metrics_.exception);
    count(metrics_.errors_total);
    queue_->AddRateLimited(key);
    return;
  }
  if (!result.ok()) {
    const Status& s = result.status();
    count(metrics_.errors_total);
    if (IsTerminal(s)) {
      spdlog::error("{}: reconcile {} failed, not retrying until it changes: {}", name_, key,
                    s.ToString());
      count(metrics_.terminal);
      queue_->Forget(key);
      return;
    }
    spdlog::warn("{}: reconcile {} failed, will retry: {}", name_, key, s.ToString());
    count(metrics_.error);
    // When the server said how long to wait (Retry-After), wait at least that.
    queue_->AddRateLimited(key, s.retry_after().value_or(std::chrono::milliseconds(0)));
    return;
  }
  const ReconcileResult& r = *result;
  if (r.requeue_after.count() > 0) {
    count(metrics_.requeue_after);
    queue_->Forget(key);
    queue_->AddAfter(key, r.requeue_after);
  } else if (r.requeue) {
    count(metrics_.requeue);
    queue_->AddRateLimited(key);
  } else {
    count(metrics_.success);
    queue_->Forget(key);
  }
}

bool Controller::Stop(std::chrono::milliseconds grace) {
  queue_->ShutDown();
  // The queue counts keys from the moment a worker takes them, so a reconcile
  // about to start is never missed. Real time: the grace period is the process's.
  return queue_->WaitForIdle(grace);
}

}  // namespace nixmox::kube
