// The world an end-to-end test runs in, made of the real binaries: kubesim
// (or the cluster named by NIXMOX_TEST_KUBECONFIG), a three-node pve-sim
// serving HTTPS, the CRDs, a fresh namespace holding a Secret and a
// ProxmoxCluster, a qcow2 uploaded to every node to boot VMs from, and
// nixmox-operator watching that namespace. Tests act the way a user does:
// real kubectl on the Kubernetes side, the Proxmox API on the other.
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "src/common/status.h"
#include "src/proxmox/client.h"
#include "test/support/subprocess.h"

namespace nixmox::e2e {

using Json = nlohmann::json;

struct WorldOptions {
  std::string name;  // goes into the namespace's name: "e2e-<name>-<random>"
  // Where pve-sim's guest agents take their addresses from.
  std::string guest_ipv4_cidr = "10.213.0.0/16";
  std::string guest_ipv6_cidr = "fd13::/64";
  // The operator's --probe-networks. The default holds no guest address, so
  // nothing is probed and no packet leaves loopback.
  std::string probe_networks = "127.0.0.1/32";
  // How long pve-sim takes to import one GiB of the (1 GiB) boot image.
  int import_ms_per_gib = 500;
  // kubesim runs Jobs (the NixImage builder) as local processes.
  bool run_jobs = false;
  // More operator flags, e.g. {"--builder-command", path}.
  std::vector<std::pair<std::string, std::string>> operator_flags;
};

class World {
 public:
  // Starts everything and waits until the ProxmoxCluster is Ready. The error
  // says which step failed and carries the logs that explain it.
  static Result<std::unique_ptr<World>> Start(WorldOptions options);
  ~World();

  const std::string& ns() const { return ns_; }
  // The import volume every node has, for spec.sourceVolume.
  std::string source_volume() const;
  // The ProxmoxCluster's name, for spec.clusterRef.
  static constexpr char kClusterName[] = "sim";

  // ---- Kubernetes, through kubectl ----
  // kubectl with the world's kubeconfig; "-n ns()" is added.
  testing::CommandResult Kubectl(std::vector<std::string> args) const;
  // kubectl started in the background (e.g. a watch); its stdout is readable line by line.
  Result<testing::Subprocess> KubectlInBackground(std::vector<std::string> args) const;
  // kubectl apply of `manifest` (YAML or JSON) in ns().
  testing::CommandResult Apply(const std::string& manifest) const;
  // A ProxmoxVM named `name` on the world's cluster, booting source_volume(),
  // one core and 256 MiB, with `spec` merged over that (JSON merge patch).
  Json VmManifest(const std::string& name, const Json& spec = Json::object()) const;
  // The object as JSON; nullopt when it does not exist. Fails the test on
  // any other kubectl error.
  std::optional<Json> Get(const std::string& resource, const std::string& name) const;
  // Polls Get until `done` holds or `timeout` passes; returns the last object
  // seen (null when there never was one), for the caller to assert on.
  Json WaitFor(const std::string& resource, const std::string& name,
               const std::function<bool(const Json&)>& done,
               std::chrono::seconds timeout = std::chrono::seconds(60)) const;

  // ---- Proxmox, through its API ----
  proxmox::PveClient& pve() { return *pve_; }
  // Every VM /cluster/resources lists.
  std::vector<proxmox::ClusterResource> Vms();
  // The VMs carrying the tag the operator gives the ProxmoxVM with this UID.
  std::vector<proxmox::ClusterResource> VmsOwnedBy(const std::string& uid);

  // ---- The operator ----
  // Starts nixmox-operator and waits until /readyz answers 200.
  Status StartOperator();
  void KillOperator();  // SIGKILL: no shutdown path runs
  bool OperatorRunning();
  // The end of the logs of the operator (every run) and the simulators, for failure messages.
  std::string Logs() const;

 private:
  explicit World(WorldOptions options);
  Status StartKube();
  std::vector<std::string> KubesimArgv() const;
  Status StartPve();
  Status UploadBootImage();
  Status ApplyCluster();
  void DeleteExternalNamespace();

  WorldOptions options_;
  testing::TempDir dir_;
  std::string kubectl_;
  std::string kubeconfig_;
  bool external_kube_ = false;
  std::string ns_;
  std::unique_ptr<testing::Subprocess> kubesim_;
  std::string pve_url_;
  std::string pve_token_;  // "root@pam!e2e=<uuid>"
  std::string pve_ca_pem_;
  std::unique_ptr<testing::Subprocess> pve_sim_;
  std::unique_ptr<proxmox::PveClient> pve_;
  std::unique_ptr<testing::Subprocess> operator_;
  int operator_runs_ = 0;
  mutable int manifests_ = 0;
};

// The base of a test suite whose tests share one World. The suite's
// SetUpTestSuite calls StartWorld; each test fails at once when the world did
// not start, and prints the processes' logs when it failed.
class WorldTest : public ::testing::Test {
 protected:
  static void StartWorld(WorldOptions options);
  static void TearDownTestSuite();
  void SetUp() override;
  void TearDown() override;
  static World& world() { return *world_; }

 private:
  static inline World* world_ = nullptr;
  static inline std::string error_;
};

// Polls `done` until it holds or `timeout` passes; its final answer.
bool Eventually(const std::function<bool()>& done,
                std::chrono::seconds timeout = std::chrono::seconds(60));

// ---- Reading objects ----
// The value at a JSON pointer ("/status/phase"); null when it is absent.
Json At(const Json& object, const std::string& pointer);
// The string at a JSON pointer; "" when it is absent or not a string.
std::string StringAt(const Json& object, const std::string& pointer);
// The condition of this type in .status.conditions; null when there is none.
Json ConditionOf(const Json& object, const std::string& type);
// Whether any condition has this reason.
bool HasReason(const Json& object, const std::string& reason);
std::string Phase(const Json& vm);      // .status.phase
std::string PrimaryIp(const Json& vm);  // .status.primaryIP
std::optional<int> StatusVmid(const Json& vm);

}  // namespace nixmox::e2e
