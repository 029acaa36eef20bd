// Prometheus metrics of the Proxmox client, in the process registry
// (src/common/metrics.h). Internal to src/proxmox. Labels are bounded: the
// HTTP method and the Status code name; every series exists from the first
// client's construction, at zero. Thread-safe.
//
//   nixmox_proxmox_requests_total{method,code}           HTTP exchanges by outcome
//   nixmox_proxmox_retries_total{method,code}            retries, by the code retried on
//   nixmox_proxmox_request_duration_seconds{method}      exchange latency
#pragma once

#include <chrono>
#include <string_view>

#include "src/common/status.h"

namespace nixmox::proxmox::internal {

void InitClientMetrics();
void RecordRequest(std::string_view method, Code code, std::chrono::duration<double> elapsed);
void RecordRetry(std::string_view method, Code code);

}  // namespace nixmox::proxmox::internal
