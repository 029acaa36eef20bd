#include "test/integration/kube/test_cluster.h"

#include <signal.h>

#include <cstdlib>
#include <filesystem>
#include <random>

namespace nixmox::kube::testing {

TestCluster::TestCluster(std::vector<std::string> kubesim_args) {
  if (const char* k = std::getenv("NIXMOX_TEST_KUBECONFIG"); k && *k) {
    external_ = true;
    kubeconfig_ = k;
  } else {
    std::string tmpl = (std::filesystem::temp_directory_path() / "nixmox-kube-it-XXXXXX").string();
    dir_ = mkdtemp(tmpl.data());
    kubeconfig_ = dir_ + "/kubeconfig";
    std::vector<std::string> argv = {KUBESIM_PATH, "--listen", "127.0.0.1:0",  "--kubeconfig-out",
                                     kubeconfig_,  "--token",  "it-token-0123"};
    argv.insert(argv.end(), kubesim_args.begin(), kubesim_args.end());
    sim_ = std::make_unique<Subprocess>(argv);
    auto ready = sim_->WaitForLine(
        [](const std::string& l) {
          return l.find("http://") != std::string::npos || l.find("https://") != std::string::npos;
        },
        std::chrono::seconds(30));
    if (!ready) {
      error_ = "kubesim did not report its URL";
      return;
    }
  }
  auto config = LoadKubeconfig(kubeconfig_);
  if (!config.ok()) {
    error_ = config.status().ToString();
    return;
  }
  auto client = RestClient::FromConfig(*config);
  if (!client.ok()) {
    error_ = client.status().ToString();
    return;
  }
  client_ = std::move(*client);
  std::random_device rd;
  ns_ = "nixmox-it-" + std::to_string(rd() % 1000000);
  auto created =
      client_->Create(resources::Namespaces(),
                      {{"apiVersion", "v1"}, {"kind", "Namespace"}, {"metadata", {{"name", ns_}}}});
  if (!created.ok()) error_ = "creating namespace: " + created.status().ToString();
}

TestCluster::~TestCluster() {
  if (client_ && !ns_.empty()) {
    (void)client_->Delete(resources::Namespaces(), "", ns_);
  }
  client_.reset();
  if (sim_) {
    sim_->Signal(SIGTERM);
    if (!sim_->Wait(std::chrono::seconds(10))) sim_->Signal(SIGKILL);
  }
  if (!dir_.empty()) std::filesystem::remove_all(dir_);
}

}  // namespace nixmox::kube::testing
