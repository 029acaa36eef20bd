// Kept apart from client.cc so that code using NewPveClient with its own
// http::Client (tests, fakes) does not link the cpprestsdk-backed client.
#include "src/proxmox/client.h"

namespace nixmox::proxmox {

Result<std::unique_ptr<PveClient>> ConnectPveClient(PveClientOptions options) {
  if (options.token.empty()) return InvalidError("proxmox: no API token configured");
  http::ClientOptions http_options;
  http_options.base_url = options.base_url;
  http_options.tls = options.tls;
  http_options.timeout = options.timeout;
  // The default mutation_reuse_window (4 s) is made for pveproxy's 5 s idle close.
  http_options.default_headers.Set("User-Agent", "nixmox");
  ASSIGN_OR_RETURN(std::unique_ptr<http::Client> http, http::NewClient(std::move(http_options)));
  std::shared_ptr<http::Client> shared(std::move(http));
  return NewPveClient(std::move(options), std::move(shared));
}

}  // namespace nixmox::proxmox
