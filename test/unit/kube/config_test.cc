#include "src/kube/config.h"

#include <gtest/gtest.h>

#include <fstream>
#include <map>

namespace nixmox::kube {
namespace {

namespace fs = std::filesystem;

// A fresh directory per test, removed afterwards.
class TempDir {
 public:
  TempDir() {
    std::string tmpl = (fs::temp_directory_path() / "nixmox-kube-XXXXXX").string();
    path_ = mkdtemp(tmpl.data());
  }
  ~TempDir() { fs::remove_all(path_); }
  const fs::path& path() const { return path_; }
  void Write(const std::string& name, const std::string& data) const {
    std::ofstream(path_ / name, std::ios::trunc) << data;
  }

 private:
  fs::path path_;
};

constexpr char kTwoContexts[] = R"(
apiVersion: v1
kind: Config
current-context: dev
clusters:
- name: dev-cluster
  cluster:
    server: https://127.0.0.1:6443/
    certificate-authority: certs/ca.pem
- name: prod-cluster
  cluster:
    server: https://10.0.0.1:6443
    certificate-authority-data: LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0t
    insecure-skip-tls-verify: true
contexts:
- name: dev
  context:
    cluster: dev-cluster
    user: dev-user
    namespace: team-a
- name: prod
  context:
    cluster: prod-cluster
    user: prod-user
users:
- name: dev-user
  user:
    token: dev-token
- name: prod-user
  user:
    client-certificate-data: Y2VydA==
    client-key-data: a2V5
)";

TEST(KubeconfigTest, CurrentContextWithTokenAndCaFile) {
  auto c = ParseKubeconfig(kTwoContexts, "/etc/kube");
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->server, "https://127.0.0.1:6443");
  EXPECT_EQ(c->tls.ca_file, "/etc/kube/certs/ca.pem");  // relative to the kubeconfig
  EXPECT_FALSE(c->tls.insecure_skip_verify);
  EXPECT_EQ(c->default_namespace, "team-a");
  ASSERT_NE(c->token, nullptr);
  EXPECT_EQ(*c->token->Token(), "dev-token");
}

TEST(KubeconfigTest, NamedContextWithClientCertDataAndInsecure) {
  auto c = ParseKubeconfig(kTwoContexts, "/etc/kube", "prod");
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->server, "https://10.0.0.1:6443");
  EXPECT_TRUE(c->tls.insecure_skip_verify);
  EXPECT_EQ(c->tls.ca_pem, "-----BEGIN CERTIFICATE-----");
  EXPECT_EQ(c->tls.client_cert_pem, "cert");
  EXPECT_EQ(c->tls.client_key_pem, "key");
  EXPECT_EQ(c->token, nullptr);
  EXPECT_EQ(c->default_namespace, "default");
}

TEST(KubeconfigTest, ClientCertificateFilesResolveRelativePaths) {
  auto c = ParseKubeconfig(R"(
current-context: c
clusters: [{name: k, cluster: {server: "https://h:1"}}]
contexts: [{name: c, context: {cluster: k, user: u}}]
users: [{name: u, user: {client-certificate: u.crt, client-key: /abs/u.key}}]
)",
                           "/home/me/.kube");
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->tls.client_cert_file, "/home/me/.kube/u.crt");
  EXPECT_EQ(c->tls.client_key_file, "/abs/u.key");
}

TEST(KubeconfigTest, TokenFileIsReadAndRereadAfterRefresh) {
  TempDir dir;
  dir.Write("tok", "first\n");
  FakeClock clock;
  auto c = ParseKubeconfig(R"(
current-context: c
clusters: [{name: k, cluster: {server: "https://h:1"}}]
contexts: [{name: c, context: {cluster: k, user: u}}]
users: [{name: u, user: {tokenFile: tok, token: ignored}}]
)",
                           dir.path(), "", clock);
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(*c->token->Token(), "first");
  dir.Write("tok", "second");
  EXPECT_EQ(*c->token->Token(), "first");  // cached
  clock.Advance(std::chrono::seconds(61));
  EXPECT_EQ(*c->token->Token(), "second");
}

TEST(KubeconfigTest, MissingPiecesAreErrors) {
  EXPECT_EQ(ParseKubeconfig("clusters: []", "/").status().code(), Code::kInvalid);  // no context
  EXPECT_EQ(ParseKubeconfig(kTwoContexts, "/", "staging").status().code(), Code::kNotFound);
  auto no_cluster = ParseKubeconfig(R"(
current-context: c
contexts: [{name: c, context: {cluster: gone, user: u}}]
)",
                                    "/");
  EXPECT_EQ(no_cluster.status().code(), Code::kNotFound);
  auto no_server = ParseKubeconfig(R"(
current-context: c
clusters: [{name: k, cluster: {certificate-authority: x}}]
contexts: [{name: c, context: {cluster: k}}]
)",
                                   "/");
  EXPECT_EQ(no_server.status().code(), Code::kInvalid);
  auto no_user = ParseKubeconfig(R"(
current-context: c
clusters: [{name: k, cluster: {server: "https://h"}}]
contexts: [{name: c, context: {cluster: k, user: nobody}}]
)",
                                 "/");
  EXPECT_EQ(no_user.status().code(), Code::kNotFound);
  auto cert_without_key = ParseKubeconfig(R"(
current-context: c
clusters: [{name: k, cluster: {server: "https://h"}}]
contexts: [{name: c, context: {cluster: k, user: u}}]
users: [{name: u, user: {client-certificate: a.crt}}]
)",
                                          "/");
  EXPECT_EQ(cert_without_key.status().code(), Code::kInvalid);
  auto exec = ParseKubeconfig(R"(
current-context: c
clusters: [{name: k, cluster: {server: "https://h"}}]
contexts: [{name: c, context: {cluster: k, user: u}}]
users: [{name: u, user: {exec: {command: aws}}}]
)",
                              "/");
  EXPECT_EQ(exec.status().code(), Code::kInvalid);
  EXPECT_EQ(ParseKubeconfig("a: [unclosed", "/").status().code(), Code::kInvalid);
  EXPECT_EQ(ParseKubeconfig(R"(
current-context: c
clusters: [{name: k, cluster: {server: "https://h", certificate-authority-data: "!!notbase64"}}]
contexts: [{name: c, context: {cluster: k}}]
)",
                            "/")
                .status()
                .code(),
            Code::kInvalid);
}

TEST(KubeconfigTest, LoadFromFileNamesThePathInErrors) {
  TempDir dir;
  EXPECT_EQ(LoadKubeconfig(dir.path() / "missing").status().code(), Code::kNotFound);
  dir.Write("config", "current-context: nope\n");
  auto c = LoadKubeconfig(dir.path() / "config");
  EXPECT_EQ(c.status().code(), Code::kNotFound);
  EXPECT_NE(c.status().message().find((dir.path() / "config").string()), std::string::npos);
}

TEST(Base64Test, DecodesWithAndWithoutPadding) {
  EXPECT_EQ(*Base64Decode("aGVsbG8="), "hello");
  EXPECT_EQ(*Base64Decode("aGVsbG8"), "hello");
  EXPECT_EQ(*Base64Decode("aGVs\nbG8h"), "hello!");
  EXPECT_EQ(Base64Decode("a$==").status().code(), Code::kInvalid);
}

class InClusterTest : public ::testing::Test {
 protected:
  InClusterOptions Options() {
    InClusterOptions o;
    o.dir = dir_.path();
    o.clock = &clock_;
    o.getenv = [this](const std::string& k) -> std::optional<std::string> {
      auto it = env_.find(k);
      if (it == env_.end()) return std::nullopt;
      return it->second;
    };
    return o;
  }
  TempDir dir_;
  FakeClock clock_;
  std::map<std::string, std::string> env_{{"KUBERNETES_SERVICE_HOST", "10.96.0.1"},
                                          {"KUBERNETES_SERVICE_PORT", "443"}};
};

TEST_F(InClusterTest, ReadsServiceAccountAndRotatesToken) {
  dir_.Write("token", "tok-1");
  dir_.Write("namespace", "nixmox-system\n");
  auto c = InClusterConfig(Options());
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->server, "https://10.96.0.1:443");
  EXPECT_EQ(c->tls.ca_file, (dir_.path() / "ca.crt").string());
  EXPECT_EQ(c->default_namespace, "nixmox-system");
  EXPECT_EQ(*c->token->Token(), "tok-1");
  dir_.Write("token", "tok-2");  // kubelet rotated the projected token
  clock_.Advance(std::chrono::seconds(30));
  EXPECT_EQ(*c->token->Token(), "tok-1");
  clock_.Advance(std::chrono::seconds(31));
  EXPECT_EQ(*c->token->Token(), "tok-2");
}

TEST_F(InClusterTest, KeepsLastTokenWhenRereadFails) {
  dir_.Write("token", "tok-1");
  auto c = InClusterConfig(Options());
  ASSERT_TRUE(c.ok());
  fs::remove(dir_.path() / "token");
  clock_.Advance(std::chrono::minutes(5));
  EXPECT_EQ(*c->token->Token(), "tok-1");
}

TEST_F(InClusterTest, BracketsIpv6Host) {
  dir_.Write("token", "t");
  env_["KUBERNETES_SERVICE_HOST"] = "fd00::1";
  auto c = InClusterConfig(Options());
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->server, "https://[fd00::1]:443");
}

TEST_F(InClusterTest, NotInClusterWithoutEnvOrToken) {
  env_.clear();
  EXPECT_EQ(InClusterConfig(Options()).status().code(), Code::kNotFound);
  env_ = {{"KUBERNETES_SERVICE_HOST", "h"}, {"KUBERNETES_SERVICE_PORT", "1"}};
  EXPECT_EQ(InClusterConfig(Options()).status().code(), Code::kNotFound);  // no token file
}

}  // namespace
}  // namespace nixmox::kube
