// The process's Prometheus registry and its text exposition.
#pragma once

#include <memory>
#include <string>

#include <prometheus/registry.h>

namespace nixmox {

// The registry every component registers its metric families in.
prometheus::Registry& MetricsRegistry();

// The registry in Prometheus text format 0.0.4, as served on /metrics.
std::string SerializeMetrics(const prometheus::Registry& registry);

}  // namespace nixmox
