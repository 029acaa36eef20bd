// Wires the nixmox controllers into a kube::Manager: informers (with their
// indexes), the ProxmoxCluster, ProxmoxVM and NixImage controllers, the inventory
// change listener, and the mappings that enqueue a ProxmoxVM when its
// NixImage or ProxmoxCluster changes. nixmox-operator calls it; so do tests
// that run the controllers in-process.
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>

#include "src/controllers/cluster_controller.h"
#include "src/controllers/cluster_runtime.h"
#include "src/controllers/image_controller.h"
#include "src/controllers/reachability.h"
#include "src/controllers/vm_controller.h"
#include "src/kube/events.h"
#include "src/kube/manager.h"

namespace nixmox::controllers {

struct ControllersConfig {
  std::string watch_namespace;  // "" = all namespaces
  int max_concurrent_reconciles = 4;
  ClusterControllerOptions cluster;
  VmControllerOptions vm;
  ImageControllerOptions image;  // image.users is filled in by Controllers
  std::chrono::milliseconds resync_period{std::chrono::minutes(10)};
};

// Owns what it creates; keep it alive while the manager runs.
class Controllers {
 public:
  // `manager` and `events` must outlive this.
  Controllers(kube::Manager& manager, kube::EventRecorder& events, ControllersConfig config);
  ~Controllers();

  ClusterRegistry& registry() { return registry_; }

 private:
  ClusterRegistry registry_;
  std::unique_ptr<ClusterReconciler> cluster_;
  std::unique_ptr<VmReconciler> vm_;
  std::unique_ptr<ImageReconciler> image_;
};

}  // namespace nixmox::controllers
