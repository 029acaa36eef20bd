// The ProxmoxCluster reconciler: connects to the endpoint with the token from
// the referenced Secret, records the PVE version and the nodes in status, and
// keeps the cluster's inventory fresh (one /cluster/resources list per
// period) in the ClusterRuntime it registers. Inventory changes reach the
// ProxmoxVM controller through the registry's change listener.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "src/common/clock.h"
#include "src/controllers/cluster_runtime.h"
#include "src/kube/client.h"
#include "src/kube/controller.h"
#include "src/kube/events.h"
#include "src/proxmox/client.h"

namespace nixmox::controllers {

// Makes the PveClient for a cluster (ConnectPveClient in production; tests
// put one over an in-process pve-sim).
using PveClientFactory =
    std::function<Result<std::unique_ptr<proxmox::PveClient>>(proxmox::PveClientOptions)>;

struct ClusterControllerOptions {
  PveClientFactory connect;  // ConnectPveClient when empty
  Clock* clock = nullptr;    // RealClock() when null
  // --proxmox-max-inflight: a cap on spec.maxConcurrentRequests (<= 0: none).
  int max_inflight = 0;
  // --inventory-period: overrides spec.inventoryPeriodSeconds when set.
  std::optional<std::chrono::milliseconds> inventory_period;
  ClusterRuntimeOptions runtime;
};

class ClusterReconciler final : public kube::Reconciler {
 public:
  // `reader` serves ProxmoxClusters and Secrets (and ConfigMaps for caRef).
  // All references must outlive the reconciler.
  ClusterReconciler(kube::Reader& reader, kube::Writer& writer, kube::EventRecorder& events,
                    ClusterRegistry& registry, ClusterControllerOptions options = {});
  ~ClusterReconciler() override;

  Result<kube::ReconcileResult> Reconcile(const kube::Request& request) override;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// The ProxmoxClusters (keys) whose credentialsRef or tls.caRef names this
// Secret or ConfigMap, so that a rotated token is picked up at once.
std::vector<std::string> ClusterKeysForReference(kube::Reader& reader, const kube::Object& object);

// The finalizer on a ProxmoxCluster: it stays until no ProxmoxVM in the
// namespace refers to the cluster, so that their VMs can still be cleaned up.
inline constexpr char kClusterFinalizer[] = "nixmox.io/cluster-in-use";

}  // namespace nixmox::controllers
