#include "src/kube/work_queue.h"

namespace nixmox::kube {
namespace {

prometheus::Histogram::BucketBoundaries LatencyBuckets() {
  return {0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 60, 300};
}

double Seconds(Clock::SteadyTime::duration d) { return std::chrono::duration<double>(d).count(); }

}  // namespace

WorkQueue::WorkQueue(WorkQueueOptions options)
    : options_(std::move(options)), clock_(options_.clock ? *options_.clock : RealClock()) {
  if (!options_.rate_limiter) options_.rate_limiter = DefaultControllerRateLimiter(clock_);
  if (auto* r = options_.registry) {
    const std::map<std::string, std::string> labels{{"name", options_.name}};
    depth_ = &prometheus::BuildGauge()
                  .Name("nixmox_workqueue_depth")
                  .Help("Keys waiting in the work queue")
                  .Register(*r)
                  .Add(labels);
    adds_ = &prometheus::BuildCounter()
                 .Name("nixmox_workqueue_adds_total")
                 .Help("Keys added to the work queue")
                 .Register(*r)
                 .Add(labels);
    retries_ = &prometheus::BuildCounter()
                    .Name("nixmox_workqueue_retries_total")
                    .Help("Rate-limited re-adds")
                    .Register(*r)
                    .Add(labels);
    queue_latency_ = &prometheus::BuildHistogram()
                          .Name("nixmox_workqueue_queue_duration_seconds")
                          .Help("Time a key waits in the queue before a worker takes it")
                          .Register(*r)
                          .Add(labels, LatencyBuckets());
    work_duration_ = &prometheus::BuildHistogram()
                          .Name("nixmox_workqueue_work_duration_seconds")
                          .Help("Time from a worker taking a key to Done")
                          .Register(*r)
                          .Add(labels, LatencyBuckets());
  }
}

WorkQueue::~WorkQueue() { ShutDown(); }

void WorkQueue::EnqueueLocked(const std::string& key, Priority priority) {
  const std::uint64_t seq = next_seq_++;
  queued_[key] = Queued{priority, seq};
  Lane(priority).emplace(seq, key);
  if (depth_) depth_->Set(static_cast<double>(queued_.size()));
  cv_.notify_one();
}

void WorkQueue::AddLocked(const std::string& key, Priority priority) {
  if (shutting_down_) return;
  if (auto it = queued_.find(key); it != queued_.end()) {
    // Already queued: once is enough, at the higher priority.
    if (priority > it->second.priority) {
      Lane(it->second.priority).erase(it->second.seq);
      queued_.erase(it);
      EnqueueLocked(key, priority);
    }
    return;
  }
  if (processing_.count(key)) {
    // A worker has it: queue it again at Done(), not now.
    auto [held, inserted] = held_.try_emplace(key, priority);
    if (!inserted) {
      held->second = std::max(held->second, priority);
      return;
    }
  } else {
    EnqueueLocked(key, priority);
  }
  if (adds_) adds_->Increment();
  added_at_.emplace(key, clock_.Now());
}

void WorkQueue::Add(const std::string& key) { Add(key, Priority::kHigh); }

void WorkQueue::Add(const std::string& key, Priority priority) {
  std::lock_guard lock(mu_);
  AddLocked(key, priority);
}

void WorkQueue::AddAfter(const std::string& key, std::chrono::milliseconds delay) {
  std::lock_guard lock(mu_);
  if (shutting_down_) return;
  if (delay.count() <= 0) {
    AddLocked(key, Priority::kLow);
    return;
  }
  const auto due = clock_.Now() + delay;
  auto it = waiting_by_key_.find(key);
  if (it != waiting_by_key_.end()) {
    if (it->second <= due) return;  // already due sooner
    waiting_.erase({it->second, key});
    it->second = due;
  } else {
    waiting_by_key_.emplace(key, due);
  }
  waiting_.insert({due, key});
  cv_.notify_all();  // a blocked Get may need to wake earlier
}

void WorkQueue::AddRateLimited(const std::string& key, std::chrono::milliseconds at_least) {
  const auto delay = std::max(options_.rate_limiter->When(key), at_least);
  if (retries_) retries_->Increment();
  AddAfter(key, delay);
}

void WorkQueue::Forget(const std::string& key) { options_.rate_limiter->Forget(key); }

int WorkQueue::NumRequeues(const std::string& key) {
  return options_.rate_limiter->NumRequeues(key);
}

void WorkQueue::PromoteDueLocked() {
  const auto now = clock_.Now();
  while (!waiting_.empty() && waiting_.begin()->first <= now) {
    std::string key = waiting_.begin()->second;
    waiting_.erase(waiting_.begin());
    waiting_by_key_.erase(key);
    AddLocked(key, Priority::kLow);
  }
}

std::optional<std::string> WorkQueue::PopLocked() {
  if (shutting_down_ || queued_.empty()) return std::nullopt;
  auto& lane = Lane(Priority::kHigh).empty() ? Lane(Priority::kLow) : Lane(Priority::kHigh);
  auto first = lane.begin();
  std::string key = std::move(first->second);
  lane.erase(first);
  queued_.erase(key);
  if (depth_) depth_->Set(static_cast<double>(queued_.size()));
  processing_.insert(key);
  const auto now = clock_.Now();
  if (auto it = added_at_.find(key); it != added_at_.end()) {
    if (queue_latency_) queue_latency_->Observe(Seconds(now - it->second));
    added_at_.erase(it);
  }
  processing_since_[key] = now;
  return key;
}

std::optional<std::string> WorkQueue::Get() {
  std::unique_lock lock(mu_);
  while (true) {
    if (shutting_down_) return std::nullopt;
    PromoteDueLocked();
    if (!queued_.empty()) return PopLocked();
    auto wait = options_.poll;
    if (!waiting_.empty()) {
      const auto until = waiting_.begin()->first - clock_.Now();
      wait = std::min(wait, std::chrono::ceil<std::chrono::milliseconds>(until));
      if (wait.count() < 1) wait = std::chrono::milliseconds(1);
    }
    cv_.wait_for(lock, wait);
  }
}

std::optional<std::string> WorkQueue::TryGet() {
  std::lock_guard lock(mu_);
  PromoteDueLocked();
  return PopLocked();
}

void WorkQueue::Done(const std::string& key) {
  std::lock_guard lock(mu_);
  processing_.erase(key);
  if (auto it = processing_since_.find(key); it != processing_since_.end()) {
    if (work_duration_) work_duration_->Observe(Seconds(clock_.Now() - it->second));
    processing_since_.erase(it);
  }
  if (auto held = held_.find(key); held != held_.end()) {
    const Priority priority = held->second;
    held_.erase(held);
    if (!shutting_down_) EnqueueLocked(key, priority);
  }
  if (processing_.empty()) cv_.notify_all();  // WaitForIdle
}

bool WorkQueue::WaitForIdle(std::chrono::milliseconds timeout) {
  std::unique_lock lock(mu_);
  return cv_.wait_for(lock, timeout, [&] { return processing_.empty(); });
}

size_t WorkQueue::NumProcessing() {
  std::lock_guard lock(mu_);
  return processing_.size();
}

void WorkQueue::ShutDown() {
  {
    std::lock_guard lock(mu_);
    shutting_down_ = true;
  }
  cv_.notify_all();
}

bool WorkQueue::shutting_down() const {
  std::lock_guard lock(mu_);
  return shutting_down_;
}

size_t WorkQueue::Len() {
  std::lock_guard lock(mu_);
  PromoteDueLocked();
  return queued_.size();
}

size_t WorkQueue::NumWaiting() {
  std::lock_guard lock(mu_);
  return waiting_.size();
}

}  // namespace nixmox::kube
