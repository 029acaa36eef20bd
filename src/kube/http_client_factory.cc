// Kept apart from config.cc so that code using only the parsing (and the unit
// tests) does not pull in the real HTTP client.
#include "src/kube/config.h"

namespace nixmox::kube {

Result<std::unique_ptr<http::Client>> NewHttpClient(const Config& config) {
  http::ClientOptions options;
  options.base_url = config.server;
  options.tls = config.tls;
  options.default_headers.Set("User-Agent", "nixmox");
  options.default_headers.Set("Accept", "application/json");
  return http::NewClient(std::move(options));
}

}  // namespace nixmox::kube
