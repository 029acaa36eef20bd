#include "src/kube/config.h"

#include <spdlog/spdlog.h>
#include <yaml-cpp/yaml.h>

#include <cstdlib>
#include <fstream>
#include <mutex>
#include <sstream>

namespace nixmox::kube {
namespace {

std::string Trim(std::string s) {
  const char* ws = " \t\r\n";
  s.erase(s.find_last_not_of(ws) + 1);
  s.erase(0, s.find_first_not_of(ws));
  return s;
}

Result<std::string> ReadFile(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return NotFoundError("cannot read " + path.string());
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

class StaticTokenSource final : public TokenSource {
 public:
  explicit StaticTokenSource(std::string token) : token_(std::move(token)) {}
  Result<std::string> Token() override { return token_; }

 private:
  std::string token_;
};

class FileTokenSource final : public TokenSource {
 public:
  FileTokenSource(std::filesystem::path path, Clock& clock, std::chrono::seconds refresh)
      : path_(std::move(path)), clock_(clock), refresh_(refresh) {}

  Result<std::string> Token() override {
    std::lock_guard lock(mu_);
    const auto now = clock_.Now();
    if (read_at_ && now - *read_at_ < refresh_) return token_;
    auto data = ReadFile(path_);
    std::string token = data.ok() ? Trim(*data) : "";
    if (token.empty()) {
      if (read_at_) {
        // Keep the last good token: a rotation may be replacing the file right now.
        spdlog::warn("re-reading token file {} failed; keeping the previous token", path_.string());
        return token_;
      }
      return UnauthorizedError("no token in " + path_.string());
    }
    token_ = std::move(token);
    read_at_ = now;
    return token_;
  }

 private:
  const std::filesystem::path path_;
  Clock& clock_;
  const std::chrono::seconds refresh_;
  std::mutex mu_;
  std::string token_;
  std::optional<Clock::SteadyTime> read_at_;
};

// Finds the entry named `name` in a kubeconfig list ("clusters", "users", "contexts").
YAML::Node FindNamed(const YAML::Node& root, const char* list, const std::string& name,
                     const char* inner) {
  const YAML::Node items = root[list];
  if (!items || !items.IsSequence()) return YAML::Node(YAML::NodeType::Undefined);
  for (const auto& item : items) {
    if (item["name"] && item["name"].as<std::string>() == name) return item[inner];
  }
  return YAML::Node(YAML::NodeType::Undefined);
}

std::string Scalar(const YAML::Node& parent, const char* key) {
  if (!parent || !parent.IsMap()) return "";
  const YAML::Node n = parent[key];
  return n && n.IsScalar() ? n.as<std::string>() : "";
}

std::string ResolvePath(const std::filesystem::path& base, const std::string& p) {
  if (p.empty()) return p;
  std::filesystem::path path(p);
  return path.is_absolute() ? p : (base / path).string();
}

Result<Config> ParseKubeconfigImpl(std::string_view yaml, const std::filesystem::path& base,
                                   std::string_view context_name, Clock& clock) {
  YAML::Node root = YAML::Load(std::string(yaml));
  if (!root.IsMap()) return InvalidError("kubeconfig is not a YAML mapping");

  std::string ctx_name(context_name);
  if (ctx_name.empty()) ctx_name = Scalar(root, "current-context");
  if (ctx_name.empty()) return InvalidError("kubeconfig has no current-context and none was named");
  const YAML::Node ctx = FindNamed(root, "contexts", ctx_name, "context");
  if (!ctx || !ctx.IsMap()) return NotFoundError("kubeconfig has no context \"" + ctx_name + "\"");

  const std::string cluster_name = Scalar(ctx, "cluster");
  if (cluster_name.empty()) return InvalidError("context \"" + ctx_name + "\" names no cluster");
  const YAML::Node cluster = FindNamed(root, "clusters", cluster_name, "cluster");
  if (!cluster || !cluster.IsMap()) {
    return NotFoundError("kubeconfig has no cluster \"" + cluster_name + "\"");
  }

  Config config;
  config.server = Scalar(cluster, "server");
  if (config.server.empty()) return InvalidError("cluster \"" + cluster_name + "\" has no server");
  while (!config.server.empty() && config.server.back() == '/') config.server.pop_back();
  config.tls.insecure_skip_verify = Scalar(cluster, "insecure-skip-tls-verify") == "true";
  config.tls.ca_file = ResolvePath(base, Scalar(cluster, "certificate-authority"));
  if (auto data = Scalar(cluster, "certificate-authority-data"); !data.empty()) {
    ASSIGN_OR_RETURN(config.tls.ca_pem, Base64Decode(data));
  }
  if (auto ns = Scalar(ctx, "namespace"); !ns.empty()) config.default_namespace = ns;

  const std::string user_name = Scalar(ctx, "user");
  if (user_name.empty()) return config;  // anonymous
  const YAML::Node user = FindNamed(root, "users", user_name, "user");
  if (!user) return NotFoundError("kubeconfig has no user \"" + user_name + "\"");
  if (!user.IsMap()) return config;  // "user: {}" or null: anonymous
  if (user["exec"] || user["auth-provider"]) {
    return InvalidError("user \"" + user_name +
                        "\": exec and auth-provider plugins are not supported");
  }
  config.tls.client_cert_file = ResolvePath(base, Scalar(user, "client-certificate"));
  config.tls.client_key_file = ResolvePath(base, Scalar(user, "client-key"));
  if (auto d = Scalar(user, "client-certificate-data"); !d.empty()) {
    ASSIGN_OR_RETURN(config.tls.client_cert_pem, Base64Decode(d));
  }
  if (auto d = Scalar(user, "client-key-data"); !d.empty()) {
    ASSIGN_OR_RETURN(config.tls.client_key_pem, Base64Decode(d));
  }
  const bool has_cert = !config.tls.client_cert_file.empty() || !config.tls.client_cert_pem.empty();
  const bool has_key = !config.tls.client_key_file.empty() || !config.tls.client_key_pem.empty();
  if (has_cert != has_key) {
    return InvalidError("user \"" + user_name +
                        "\": client certificate and key must come together");
  }
  // tokenFile is re-read as it rotates, so it wins over a static token.
  if (auto f = Scalar(user, "tokenFile"); !f.empty()) {
    config.token = FileToken(ResolvePath(base, f), clock);
  } else if (auto t = Scalar(user, "token"); !t.empty()) {
    config.token = StaticToken(t);
  }
  return config;
}

}  // namespace

std::shared_ptr<TokenSource> StaticToken(std::string token) {
  return std::make_shared<StaticTokenSource>(std::move(token));
}

std::shared_ptr<TokenSource> FileToken(std::filesystem::path path, Clock& clock,
                                       std::chrono::seconds refresh) {
  return std::make_shared<FileTokenSource>(std::move(path), clock, refresh);
}

Result<std::string> Base64Decode(std::string_view in) {
  auto value = [](char c) -> int {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
  };
  std::string out;
  unsigned buf = 0;
  int bits = 0;
  bool padding = false;
  for (char c : in) {
    if (c == '\n' || c == '\r' || c == ' ' || c == '\t') continue;
    if (c == '=') {
      padding = true;
      continue;
    }
    int v = value(c);
    if (v < 0 || padding) return InvalidError("invalid base64 data");
    buf = (buf << 6) | static_cast<unsigned>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((buf >> bits) & 0xFF));
    }
  }
  if (bits >= 6) return InvalidError("invalid base64 data (truncated)");
  return out;
}

Result<Config> ParseKubeconfig(std::string_view yaml, const std::filesystem::path& base_dir,
                               std::string_view context, Clock& clock) {
  try {
    return ParseKubeconfigImpl(yaml, base_dir, context, clock);
  } catch (const YAML::Exception& e) {
    return InvalidError(std::string("kubeconfig is not valid YAML: ") + e.what());
  }
}

Result<Config> LoadKubeconfig(const std::filesystem::path& path, std::string_view context,
                              Clock& clock) {
  ASSIGN_OR_RETURN(std::string text, ReadFile(path));
  auto config = ParseKubeconfig(text, path.parent_path(), context, clock);
  if (!config.ok()) {
    Status s = config.status();
    return s.Annotate(path.string());
  }
  return config;
}

Result<Config> InClusterConfig(const InClusterOptions& options) {
  auto getenv = options.getenv;
  if (!getenv) {
    getenv = [](const std::string& name) -> std::optional<std::string> {
      const char* v = std::getenv(name.c_str());
      return v ? std::optional<std::string>(v) : std::nullopt;
    };
  }
  auto host = getenv("KUBERNETES_SERVICE_HOST");
  auto port = getenv("KUBERNETES_SERVICE_PORT");
  if (!host || host->empty() || !port || port->empty()) {
    return NotFoundError("not running in a cluster: KUBERNETES_SERVICE_HOST/PORT unset");
  }
  Config config;
  // An IPv6 service address needs brackets in a URL.
  const bool v6 = host->find(':') != std::string::npos;
  config.server = "https://" + (v6 ? "[" + *host + "]" : *host) + ":" + *port;
  const auto token_path = options.dir / "token";
  if (!std::filesystem::exists(token_path)) {
    return NotFoundError("service account token missing at " + token_path.string());
  }
  Clock& clock = options.clock ? *options.clock : RealClock();
  config.token = FileToken(token_path, clock, options.token_refresh);
  RETURN_IF_ERROR(config.token->Token());  // fail now, not on the first request
  config.tls.ca_file = (options.dir / "ca.crt").string();
  if (auto ns = ReadFile(options.dir / "namespace"); ns.ok() && !Trim(*ns).empty()) {
    config.default_namespace = Trim(*ns);
  }
  return config;
}

Result<Config> DefaultConfig(std::string_view kubeconfig_path, std::string_view context) {
  if (!kubeconfig_path.empty()) return LoadKubeconfig(std::string(kubeconfig_path), context);
  if (const char* h = std::getenv("KUBERNETES_SERVICE_HOST"); h && *h) return InClusterConfig();
  if (const char* k = std::getenv("KUBECONFIG"); k && *k) {
    // KUBECONFIG may list several files; the first is used.
    std::string first(k);
    first = first.substr(0, first.find(':'));
    return LoadKubeconfig(first, context);
  }
  const char* home = std::getenv("HOME");
  if (!home) return NotFoundError("no kubeconfig: HOME and KUBECONFIG unset, not in a cluster");
  return LoadKubeconfig(std::filesystem::path(home) / ".kube" / "config", context);
}

}  // namespace nixmox::kube
