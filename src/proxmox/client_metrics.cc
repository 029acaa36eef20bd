#include "src/proxmox/client_metrics.h"

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/histogram.h>

#include <array>
#include <string>

#include "src/common/metrics.h"

namespace nixmox::proxmox::internal {
namespace {

constexpr std::array<std::string_view, 4> kMethods = {"GET", "POST", "PUT", "DELETE"};
constexpr std::array<Code, 14> kCodes = {
    Code::kOk,        Code::kNotFound,        Code::kAlreadyExists, Code::kConflict,
    Code::kLocked,    Code::kUnauthorized,    Code::kForbidden,     Code::kInvalid,
    Code::kGone,      Code::kTooManyRequests, Code::kRetryable,     Code::kOutcomeUnknown,
    Code::kCancelled, Code::kInternal};

size_t MethodIndex(std::string_view method) {
  for (size_t i = 0; i < kMethods.size(); ++i) {
    if (kMethods[i] == method) return i;
  }
  return 0;  // the client sends no other methods
}

size_t CodeIndex(Code code) {
  for (size_t i = 0; i < kCodes.size(); ++i) {
    if (kCodes[i] == code) return i;
  }
  return kCodes.size() - 1;
}

struct Metrics {
  std::array<std::array<prometheus::Counter*, kCodes.size()>, kMethods.size()> requests{};
  std::array<std::array<prometheus::Counter*, kCodes.size()>, kMethods.size()> retries{};
  std::array<prometheus::Histogram*, kMethods.size()> duration{};

  Metrics() {
    auto& registry = MetricsRegistry();
    auto& requests_family = prometheus::BuildCounter()
                                .Name("nixmox_proxmox_requests_total")
                                .Help("Proxmox API HTTP exchanges, by method and outcome code")
                                .Register(registry);
    auto& retries_family = prometheus::BuildCounter()
                               .Name("nixmox_proxmox_retries_total")
                               .Help("Proxmox API requests repeated, by the code retried on")
                               .Register(registry);
    auto& duration_family = prometheus::BuildHistogram()
                                .Name("nixmox_proxmox_request_duration_seconds")
                                .Help("Proxmox API HTTP exchange latency")
                                .Register(registry);
    const prometheus::Histogram::BucketBoundaries buckets = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                                             0.5,   1,    2.5,   5,    10,  30};
    for (size_t m = 0; m < kMethods.size(); ++m) {
      const std::string method(kMethods[m]);
      for (size_t c = 0; c < kCodes.size(); ++c) {
        const std::string code(CodeName(kCodes[c]));
        requests[m][c] = &requests_family.Add({{"method", method}, {"code", code}});
        retries[m][c] = &retries_family.Add({{"method", method}, {"code", code}});
      }
      duration[m] = &duration_family.Add({{"method", method}}, buckets);
    }
  }
};

Metrics& Get() {
  static Metrics* metrics = new Metrics();  // never destroyed: used until exit
  return *metrics;
}

}  // namespace

void InitClientMetrics() { Get(); }

void RecordRequest(std::string_view method, Code code, std::chrono::duration<double> elapsed) {
  Metrics& m = Get();
  const size_t i = MethodIndex(method);
  m.requests[i][CodeIndex(code)]->Increment();
  m.duration[i]->Observe(elapsed.count());
}

void RecordRetry(std::string_view method, Code code) {
  Get().retries[MethodIndex(method)][CodeIndex(code)]->Increment();
}

}  // namespace nixmox::proxmox::internal
