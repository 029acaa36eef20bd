// The cluster an integration test talks to: the one named by
// NIXMOX_TEST_KUBECONFIG when set, otherwise a kubesim started for the test on
// a free loopback port. Each test works in its own fresh namespace.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "src/kube/config.h"
#include "src/kube/rest_client.h"
#include "test/integration/kube/subprocess.h"

namespace nixmox::kube::testing {

class TestCluster {
 public:
  // `kubesim_args` are extra flags for a started kubesim (ignored for an external cluster).
  explicit TestCluster(std::vector<std::string> kubesim_args = {});
  ~TestCluster();

  // Empty when the cluster is up; otherwise why not (the test should fail with it).
  const std::string& error() const { return error_; }
  bool external() const { return external_; }
  const std::string& kubeconfig() const { return kubeconfig_; }
  RestClient& client() { return *client_; }
  // A namespace created for this test (deleted afterwards).
  const std::string& ns() const { return ns_; }

 private:
  std::string error_;
  bool external_ = false;
  std::string dir_;
  std::string kubeconfig_;
  std::unique_ptr<Subprocess> sim_;
  std::unique_ptr<RestClient> client_;
  std::string ns_;
};

}  // namespace nixmox::kube::testing
