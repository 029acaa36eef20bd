#include "operator/health.h"

#include "operator/options.h"
#include "src/common/metrics.h"

namespace nixmox::cmd {
namespace {

constexpr char kPrometheusTextFormat[] = "text/plain; version=0.0.4; charset=utf-8";

struct Routes {
  bool health = false;
  bool metrics = false;
  std::function<bool()> ready;
  const prometheus::Registry* registry = nullptr;
  std::function<void()> before_scrape;
};

http::ServerResponse Serve(const Routes& routes, const http::ServerRequest& request) {
  if (request.method != "GET" && request.method != "HEAD") {
    auto response = http::ServerResponse::Text(405, "method not allowed\n");
    response.headers.Set("Allow", "GET, HEAD");
    return response;
  }
  if (routes.health && request.path == "/healthz") {
    return http::ServerResponse::Text(200, "ok\n");
  }
  if (routes.health && request.path == "/readyz") {
    if (routes.ready && routes.ready()) return http::ServerResponse::Text(200, "ok\n");
    return http::ServerResponse::Text(503, "informer caches not synced\n");
  }
  if (routes.metrics && request.path == "/metrics") {
    if (routes.before_scrape) routes.before_scrape();
    return http::ServerResponse::Text(200, SerializeMetrics(*routes.registry),
                                      kPrometheusTextFormat);
  }
  return http::ServerResponse::Text(404, "not found\n");
}

Result<std::unique_ptr<http::Server>> Listen(const std::string& address, Routes routes) {
  http::ServerOptions options;
  options.listen = address;
  auto server =
      http::StartServer(options, [routes = std::move(routes)](const http::ServerRequest& request) {
        return Serve(routes, request);
      });
  if (!server.ok()) {
    Status status = server.status();
    return status.Annotate(routes.health ? "health probe server" : "metrics server");
  }
  return server;
}

}  // namespace

Result<std::unique_ptr<Endpoints>> Endpoints::Start(EndpointOptions options) {
  const bool health = options.health_address != kDisabled;
  const bool metrics = options.metrics_address != kDisabled;
  if (metrics && options.registry == nullptr) {
    return InvalidError("metrics server without a registry");
  }
  const bool shared = health && metrics && options.health_address == options.metrics_address;

  std::unique_ptr<Endpoints> endpoints(new Endpoints());
  const auto routes = [&](bool serve_health, bool serve_metrics) {
    return Routes{serve_health, serve_metrics, options.ready, options.registry,
                  options.before_scrape};
  };
  if (health) {
    ASSIGN_OR_RETURN(auto server, Listen(options.health_address, routes(true, shared)));
    endpoints->health_url_ = server->url();
    if (shared) endpoints->metrics_url_ = server->url();
    endpoints->servers_.push_back(std::move(server));
  }
  if (metrics && !shared) {
    ASSIGN_OR_RETURN(auto server, Listen(options.metrics_address, routes(false, true)));
    endpoints->metrics_url_ = server->url();
    endpoints->servers_.push_back(std::move(server));
  }
  return endpoints;
}

Endpoints::~Endpoints() { Stop(); }

void Endpoints::Stop() {
  for (auto& server : servers_) server->Stop();
}

}  // namespace nixmox::cmd
