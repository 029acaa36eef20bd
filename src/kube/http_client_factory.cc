// Kept apart from config.cc so that code using only the parsing (and the unit
// tests) does not pull in the real HTTP client.
#include "src/kube/config.h"

namespace nixmox::kube {

Result<std::unique_ptr<http::Client>> NewHttpClient(const Config& config) {
  http::ClientOptions options;
  options.base_url = config.server;
  options.tls = config.tls;
  // kube-apiserver closes idle connections after 90 s (k8s.io/apiserver's
  // ServingInfo.Serve); a proxy that closes sooner is caught by the client's
  // check of the connection before each mutation.
  options.mutation_reuse_window = std::chrono::seconds(60);
  options.default_headers.Set("User-Agent", "nixmox");
  options.default_headers.Set("Accept", "application/json");
  return http::NewClient(std::move(options));
}

}  // namespace nixmox::kube
