// The ProxmoxVM reconciler: level-triggered, one mutating step per pass, never
// waiting on a Proxmox task (it records the UPID and requeues). See
// README.md in this directory for the steps and the rules they follow.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "src/common/clock.h"
#include "src/controllers/cluster_runtime.h"
#include "src/controllers/reachability.h"
#include "src/kube/cache_reader.h"
#include "src/kube/client.h"
#include "src/kube/controller.h"
#include "src/kube/events.h"
#include "src/kube/store.h"

namespace nixmox::controllers {

// Informer indexes the reconciler and the inventory mapping rely on.
inline constexpr char kIndexUidTag[] = "nixmox.io/uid-tag";        // UidTag(metadata.uid)
inline constexpr char kIndexClusterVmid[] = "nixmox.io/cluster-vmid";  // "ns/cluster/vmid"
inline constexpr char kIndexImage[] = "nixmox.io/image";          // "ns/imageRef.name"
inline constexpr char kIndexCluster[] = "nixmox.io/cluster";      // "ns/clusterRef.name"
// ProxmoxVMs unavailable to a rollout of their NixImage: re-creating
// (ImagePathValue(image, "")) or not Ready on a store path
// (ImagePathValue(image, path)).
inline constexpr char kIndexRolloutBusy[] = "nixmox.io/rollout-busy";
// Every ProxmoxVM with an imageRef, under ImagePathValue(image, the store path
// its status says it runs, possibly ""): the NixImage controller's users.
inline constexpr char kIndexImageRuns[] = "nixmox.io/image-runs";
kube::IndexFunc UidTagIndex();
kube::IndexFunc ClusterVmidIndex();
kube::IndexFunc ImageIndex();
kube::IndexFunc ClusterIndex();
kube::IndexFunc RolloutBusyIndex();
kube::IndexFunc ImageRunsIndex();
// The value of both image indexes: "ns/image|store path" ('|' is in no
// object name, so a prefix search for one image never finds another).
std::string ImagePathValue(const std::string& image_key, const std::string& store_path);

// What a ProxmoxVM's status conditions say about its image, read from the raw
// JSON without decoding or copying it (indexes and watch mappings run on
// every cached object).
struct ImageConditions {
  bool ready = false;             // Ready=True
  bool update_available = false;  // UpdateAvailable=True
  bool recreating = false;        // ... with reason Recreating
};
ImageConditions ReadImageConditions(const kube::Object& vm);

struct VmControllerOptions {
  Clock* clock = nullptr;   // RealClock() when null
  Prober* prober = nullptr;  // null: addresses are reported, never probed
  // How often a running VM's guest agent is asked for its addresses.
  std::chrono::milliseconds agent_period{std::chrono::seconds(60)};
  // How often a VM's config is read and compared even when nothing said it
  // changed (edits the inventory cannot show, like a NIC's bridge).
  std::chrono::milliseconds config_resync{std::chrono::minutes(10)};
  // While a guest agent does not answer (the guest boots), it is asked again
  // after this, doubling up to agent_period; a started guest is first asked
  // this long after its start.
  std::chrono::milliseconds agent_retry{std::chrono::seconds(5)};
  // How soon a running Proxmox task is looked at again.
  std::chrono::milliseconds task_poll{std::chrono::seconds(2)};
  // The keys of the ProxmoxVMs under a kIndexRolloutBusy value (the
  // informer's index in production; no object is decoded); null: a List of
  // the namespace, decoded and filtered. A rollout counts them against the
  // image's maxUnavailable.
  std::function<Result<std::vector<std::string>>(const std::string& busy_value)> rollout_busy;
  // How soon a VM waiting for a rollout slot looks again when nothing woke
  // it (a sibling Ready on the image wakes the first in line).
  std::chrono::milliseconds rollout_poll{std::chrono::seconds(30)};
  // The keys of the ProxmoxVMs holding "ns/cluster/vmid" in status (the informer's
  // kIndexClusterVmid in production); null: a List of the namespace. Asked
  // while choosing a VMID, once per candidate.
  std::function<Result<std::vector<std::string>>(const std::string& cluster_vmid)> vmid_holders;
};

class VmReconciler final : public kube::Reconciler {
 public:
  // `reader` serves ProxmoxVMs (with the indexes above), NixImages and
  // ProxmoxClusters. All references must outlive the reconciler.
  VmReconciler(kube::Reader& reader, kube::Writer& writer, kube::EventRecorder& events,
               ClusterRegistry& registry, VmControllerOptions options = {});
  ~VmReconciler() override;

  Result<kube::ReconcileResult> Reconcile(const kube::Request& request) override;

  // The ProxmoxVM (key) first in line for a rollout slot of the NixImage
  // `image_key`, taken out of the line; "" when none waits. Called when a
  // sibling became Ready on the image, which frees a slot.
  std::string TakeRolloutWaiter(const std::string& image_key);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// The ProxmoxVM keys an inventory change concerns: those whose UID tag the
// VM carries, and those holding its VMID in status for that cluster.
std::vector<std::string> VmKeysForChanges(kube::CacheReader& cache, const std::string& cluster_key,
                                          const std::vector<InventoryChange>& changes);

}  // namespace nixmox::controllers
