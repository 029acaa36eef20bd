#include "src/controllers/vm_metrics.h"

#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>

#include <map>
#include <mutex>

#include "src/common/metrics.h"

namespace nixmox::controllers {
namespace {

class VmMetrics {
 public:
  static VmMetrics& Get() {
    static VmMetrics* metrics = new VmMetrics();  // lives as long as the registry
    return *metrics;
  }

  void SetPhase(const std::string& key, std::optional<api::VmPhase> phase) {
    std::lock_guard lock(mu_);
    if (auto it = phase_of_.find(key); it != phase_of_.end()) {
      Gauge(it->second).Decrement();
      phase_of_.erase(it);
    }
    if (!phase) return;
    phase_of_[key] = *phase;
    Gauge(*phase).Increment();
  }

  void ObserveTask(std::string_view type, bool succeeded, double seconds) {
    const std::map<std::string, std::string> labels = {{"type", std::string(type)},
                                                       {"result", succeeded ? "ok" : "failed"}};
    std::lock_guard lock(mu_);
    // Task types are a short fixed list (qmcreate, qmstart, qmconfig...): bounded labels.
    tasks_
        ->Add(labels, prometheus::Histogram::BucketBoundaries{1, 2, 5, 10, 30, 60, 120, 300, 600,
                                                              1800})
        .Observe(seconds);
  }

 private:
  VmMetrics()
      : phases_(&prometheus::BuildGauge()
                     .Name("nixmox_proxmoxvms")
                     .Help("ProxmoxVMs by the phase in their status")
                     .Register(MetricsRegistry())),
        tasks_(&prometheus::BuildHistogram()
                    .Name("nixmox_proxmox_task_duration_seconds")
                    .Help("Duration of the Proxmox tasks the ProxmoxVM controller started, "
                          "from start to when it saw them end")
                    .Register(MetricsRegistry())) {
    for (std::size_t i = 0; i < api::EnumInfo<api::VmPhase>::kNames.size(); ++i) {
      Gauge(static_cast<api::VmPhase>(i));  // every phase shows, at 0
    }
  }

  prometheus::Gauge& Gauge(api::VmPhase phase) {
    return phases_->Add({{"phase", std::string(api::EnumName(phase))}});
  }

  std::mutex mu_;
  prometheus::Family<prometheus::Gauge>* phases_;
  prometheus::Family<prometheus::Histogram>* tasks_;
  std::map<std::string, api::VmPhase> phase_of_;
};

}  // namespace

void RecordVmPhase(const std::string& key, api::VmPhase phase) {
  VmMetrics::Get().SetPhase(key, phase);
}

void ForgetVmPhase(const std::string& key) { VmMetrics::Get().SetPhase(key, std::nullopt); }

void RecordTaskDuration(std::string_view type, bool succeeded, std::chrono::seconds took) {
  VmMetrics::Get().ObserveTask(type, succeeded, static_cast<double>(took.count()));
}

}  // namespace nixmox::controllers
