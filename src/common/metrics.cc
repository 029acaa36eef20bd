#include "src/common/metrics.h"

#include <prometheus/text_serializer.h>

#include <sstream>

namespace nixmox {

prometheus::Registry& MetricsRegistry() {
  static prometheus::Registry registry;
  return registry;
}

std::string SerializeMetrics(const prometheus::Registry& registry) {
  prometheus::TextSerializer serializer;
  return serializer.Serialize(registry.Collect());
}

}  // namespace nixmox
