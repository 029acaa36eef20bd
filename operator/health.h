// The operator's own HTTP endpoints, as controller-runtime serves them:
//   /healthz  200 while the process runs (the liveness probe);
//   /readyz   200 once the informer caches have synced, 503 before (readiness);
//   /metrics  the Prometheus registry in text format.
// Health and metrics listen on separate addresses, or share one server when
// both addresses are the same.
#pragma once

#include <prometheus/registry.h>

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "src/common/status.h"
#include "src/http/http.h"

namespace nixmox::cmd {

struct EndpointOptions {
  std::string health_address = "0.0.0.0:8081";     // "0": no /healthz and /readyz
  std::string metrics_address = "127.0.0.1:8080";  // "0": no /metrics
  // Whether /readyz answers 200. Called on server threads: must be thread-safe.
  std::function<bool()> ready;
  // Served on /metrics; must outlive the servers.
  const prometheus::Registry* registry = nullptr;
  // Runs before each scrape, on a server thread: refreshes gauges whose value
  // is read on demand (e.g. whether this replica leads).
  std::function<void()> before_scrape;
};

// The running servers. Destroying it stops them.
class Endpoints {
 public:
  // Invalid for a bad address; Retryable when a port is taken.
  static Result<std::unique_ptr<Endpoints>> Start(EndpointOptions options);
  ~Endpoints();

  // Base URLs ("http://127.0.0.1:PORT"); nullopt when that side is disabled.
  const std::optional<std::string>& health_url() const { return health_url_; }
  const std::optional<std::string>& metrics_url() const { return metrics_url_; }

  // Stops accepting and waits for handlers in progress.
  void Stop();

 private:
  Endpoints() = default;

  std::vector<std::unique_ptr<http::Server>> servers_;  // one, or two when the addresses differ
  std::optional<std::string> health_url_;
  std::optional<std::string> metrics_url_;
};

}  // namespace nixmox::cmd
