#include "src/controllers/setup.h"

#include <spdlog/spdlog.h>

#include <cstdlib>
#include <utility>

#include "src/controllers/resources.h"
#include "src/kube/cache_reader.h"

namespace nixmox::controllers {
namespace {

// Index names are fixed and added once per informer: a failure is a wiring bug.
void AddIndexOrDie(kube::Informer& informer, const std::string& name, kube::IndexFunc fn) {
  if (Status s = informer.AddIndex(name, std::move(fn)); !s.ok()) {
    spdlog::critical("adding index {} to the {} informer: {}", name, informer.type().resource,
                     s.ToString());
    std::abort();
  }
}

// The keys of the `type` objects whose `index` holds `value`.
std::vector<std::string> KeysByIndex(kube::CacheReader& cache, const kube::ResourceType& type,
                                     const char* index, const std::string& value) {
  // Keys only: the cache answers them without unpacking an object.
  auto keys = cache.KeysByIndex(type, index, value);
  if (!keys.ok()) {
    spdlog::error("looking up {} by {}: {}", type.resource, index, keys.status().ToString());
    return {};
  }
  return std::move(keys).value();
}

// The cluster (by key) a ProxmoxVM refers to, when that cluster is being
// deleted: its finalizer waits for the last VM to go, and a VM's change is
// the moment to look again. Live clusters do not care about VM changes.
std::vector<std::string> DeletingClusterOf(kube::Reader& reader, const kube::Object& vm) {
  std::vector<std::string> keys;
  for (std::string& key : ClusterIndex()(vm)) {
    const auto [ns, name] = kube::SplitKey(key);
    auto cluster = reader.Get(ProxmoxClusters(), ns, name);
    if (cluster.ok() && !kube::StringAt(*cluster, {"metadata", "deletionTimestamp"}).empty()) {
      keys.push_back(std::move(key));
    }
  }
  return keys;
}

// Whether a ProxmoxVM's status says it is Ready and not waiting for a newer
// image: one that just got there frees a rollout slot of its NixImage.
bool ReadyOnItsImage(const kube::Object& vm) {
  const ImageConditions conditions = ReadImageConditions(vm);
  return conditions.ready && !conditions.update_available;
}

kube::ControllerOptions Workers(int workers) {
  kube::ControllerOptions options;
  options.workers = workers;
  return options;
}

}  // namespace

Controllers::Controllers(kube::Manager& manager, kube::EventRecorder& events,
                         ControllersConfig config) {
  kube::InformerOptions informer_options;
  informer_options.resync_period = config.resync_period;
  const std::string& ns = config.watch_namespace;
  kube::Informer& clusters = manager.AddInformer(ProxmoxClusters(), ns, informer_options);
  kube::Informer& vms = manager.AddInformer(ProxmoxVms(), ns, informer_options);
  kube::Informer& images = manager.AddInformer(NixImages(), ns, informer_options);
  kube::Informer& secrets = manager.AddInformer(kube::resources::Secrets(), ns, informer_options);
  kube::Informer& config_maps =
      manager.AddInformer(kube::resources::ConfigMaps(), ns, informer_options);
  AddIndexOrDie(vms, kIndexUidTag, UidTagIndex());
  AddIndexOrDie(vms, kIndexClusterVmid, ClusterVmidIndex());
  AddIndexOrDie(vms, kIndexImage, ImageIndex());
  AddIndexOrDie(vms, kIndexCluster, ClusterIndex());
  AddIndexOrDie(vms, kIndexRolloutBusy, RolloutBusyIndex());
  AddIndexOrDie(vms, kIndexImageRuns, ImageRunsIndex());
  AddIndexOrDie(images, kIndexCluster, ClusterIndex());
  // Builder Jobs and their Pods only: the operator has no business caching others.
  kube::InformerOptions builder_options = informer_options;
  builder_options.label_selector = kBuilderSelector;
  kube::Informer& jobs = manager.AddInformer(kube::resources::Jobs(), ns, builder_options);
  kube::Informer& pods = manager.AddInformer(kube::resources::Pods(), ns, builder_options);

  kube::Reader& reader = manager.reader();
  kube::CacheReader& cache = manager.cache();

  cluster_ = std::make_unique<ClusterReconciler>(reader, manager.writer(), events, registry_,
                                                 std::move(config.cluster));
  config.vm.rollout_busy = [&cache](const std::string& busy_value) {
    return cache.KeysByIndex(ProxmoxVms(), kIndexRolloutBusy, busy_value);
  };
  config.vm.vmid_holders = [&cache](const std::string& cluster_vmid) {
    return cache.KeysByIndex(ProxmoxVms(), kIndexClusterVmid, cluster_vmid);
  };
  vm_ = std::make_unique<VmReconciler>(reader, manager.writer(), events, registry_,
                                       std::move(config.vm));
  kube::Controller& cluster_controller =
      manager.AddController("proxmoxcluster", *cluster_, Workers(config.max_concurrent_reconciles));
  kube::Controller& vm_controller =
      manager.AddController("proxmoxvm", *vm_, Workers(config.max_concurrent_reconciles));
  config.image.users = [&cache](const std::string& image_key) -> Result<std::vector<ImageUser>> {
    const std::string prefix = ImagePathValue(image_key, "");
    ASSIGN_OR_RETURN(auto entries, cache.IndexEntries(ProxmoxVms(), kIndexImageRuns, prefix));
    std::vector<ImageUser> users;
    users.reserve(entries.size());
    for (auto& [value, key] : entries) {
      users.push_back({key.substr(key.find('/') + 1), value.substr(prefix.size())});
    }
    return users;
  };
  image_ = std::make_unique<ImageReconciler>(reader, manager.writer(), events, registry_,
                                             std::move(config.image));
  kube::Controller& image_controller =
      manager.AddController("niximage", *image_, Workers(config.max_concurrent_reconciles));

  cluster_controller.Watch(clusters);
  cluster_controller.WatchMapped(
      vms, [&reader](const kube::Object& vm) { return DeletingClusterOf(reader, vm); });
  const auto clusters_referencing = [&reader](const kube::Object& object) {
    return ClusterKeysForReference(reader, object);
  };
  cluster_controller.WatchMapped(secrets, clusters_referencing);
  cluster_controller.WatchMapped(config_maps, clusters_referencing);

  vm_controller.Watch(vms);
  // A VM Ready on its image wakes the next one waiting to roll out to it.
  vm_controller.WatchMapped(vms, [&vm = *vm_](const kube::Object& obj) {
    std::vector<std::string> keys;
    if (!ReadyOnItsImage(obj)) return keys;
    for (const std::string& image : ImageIndex()(obj)) {
      if (std::string next = vm.TakeRolloutWaiter(image); !next.empty()) keys.push_back(next);
    }
    return keys;
  });
  vm_controller.WatchMapped(images, [&cache](const kube::Object& image) {
    return KeysByIndex(cache, ProxmoxVms(), kIndexImage, kube::KeyOf(image));
  });
  vm_controller.WatchMapped(clusters, [&cache](const kube::Object& cluster) {
    return KeysByIndex(cache, ProxmoxVms(), kIndexCluster, kube::KeyOf(cluster));
  });
  image_controller.Watch(images);
  image_controller.WatchMapped(jobs, ImageKeysForBuilderObject);
  image_controller.WatchMapped(pods, ImageKeysForBuilderObject);
  image_controller.WatchMapped(vms, [](const kube::Object& vm) { return ImageIndex()(vm); });
  image_controller.WatchMapped(clusters, [&cache](const kube::Object& cluster) {
    return KeysByIndex(cache, NixImages(), kIndexCluster, kube::KeyOf(cluster));
  });

  registry_.SetChangeListener(
      [&cache, &queue = vm_controller.queue()](const std::string& cluster_key,
                                               const std::vector<InventoryChange>& changes) {
        for (const std::string& key : VmKeysForChanges(cache, cluster_key, changes)) queue.Add(key);
      });
  // A freed creation slot goes to the ProxmoxVM first in line for it.
  registry_.SetSlotWaker(
      [&queue = vm_controller.queue()](const std::string& vm_key) { queue.Add(vm_key); });
}

Controllers::~Controllers() = default;

}  // namespace nixmox::controllers
