// Where the API server is and how to authenticate to it: from a kubeconfig
// file, or from the service account mounted into a pod (in-cluster).
#pragma once

#include <chrono>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "src/common/clock.h"
#include "src/common/status.h"
#include "src/http/http.h"

namespace nixmox::kube {

// A bearer token that may change while the process runs. Thread-safe.
class TokenSource {
 public:
  virtual ~TokenSource() = default;
  virtual Result<std::string> Token() = 0;
};

std::shared_ptr<TokenSource> StaticToken(std::string token);

// Reads the token from a file and re-reads it once the cached copy is older than
// `refresh`: kubelet rotates projected service-account tokens in place, well
// before they expire. A failed re-read keeps the last good token. `clock` must
// outlive the source.
std::shared_ptr<TokenSource> FileToken(std::filesystem::path path, Clock& clock,
                                       std::chrono::seconds refresh = std::chrono::seconds(60));

struct Config {
  std::string server;  // "https://10.0.0.1:6443"
  http::TlsConfig tls;
  std::shared_ptr<TokenSource> token;  // null: no bearer token (client certificate, anonymous)
  // The context's namespace or the service account's; "default" when neither says.
  std::string default_namespace = "default";
};

// Reads a kubeconfig. `context` empty means current-context. Relative file
// paths in it resolve against the file's directory. Supports server,
// certificate-authority(-data), insecure-skip-tls-verify, token, tokenFile and
// client-certificate/-key(-data); exec and auth-provider plugins are Invalid.
Result<Config> LoadKubeconfig(const std::filesystem::path& path, std::string_view context = "",
                              Clock& clock = RealClock());
Result<Config> ParseKubeconfig(std::string_view yaml, const std::filesystem::path& base_dir,
                               std::string_view context = "", Clock& clock = RealClock());

struct InClusterOptions {
  std::filesystem::path dir = "/var/run/secrets/kubernetes.io/serviceaccount";
  // Environment lookup; std::getenv when empty. Tests pass a map.
  std::function<std::optional<std::string>(const std::string&)> getenv;
  Clock* clock = nullptr;  // RealClock() when null
  std::chrono::seconds token_refresh{60};
};

// The pod's service account: token and ca.crt from `dir`, the API server from
// KUBERNETES_SERVICE_HOST/PORT. NotFound when not running in a cluster.
Result<Config> InClusterConfig(const InClusterOptions& options = {});

// An explicit kubeconfig path wins; then in-cluster when KUBERNETES_SERVICE_HOST
// is set; then $KUBECONFIG; then ~/.kube/config.
Result<Config> DefaultConfig(std::string_view kubeconfig_path = "", std::string_view context = "");

// An http::Client for the config's server and TLS settings (no auth header:
// the REST client adds the current token to each request).
Result<std::unique_ptr<http::Client>> NewHttpClient(const Config& config);

// Standard base64 (with or without padding); Invalid on other characters.
Result<std::string> Base64Decode(std::string_view in);

}  // namespace nixmox::kube
