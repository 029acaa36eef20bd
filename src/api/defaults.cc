#include "src/api/defaults.h"

namespace nixmox::api {

std::string RootDiskStorage(const ProxmoxVmSpec& vm, const ProxmoxClusterSpec& cluster) {
  return vm.root_disk.storage.empty() ? cluster.default_storage : vm.root_disk.storage;
}

std::string DiskStorage(const ExtraDisk& disk, const ProxmoxClusterSpec& cluster) {
  return disk.storage.empty() ? cluster.default_storage : disk.storage;
}

std::string ImageStorage(const NixImageSpec& image, const ProxmoxClusterSpec& cluster) {
  return image.storage.empty() ? cluster.image_storage : image.storage;
}

std::vector<NetworkInterface> EffectiveNetworks(const ProxmoxVmSpec& vm) {
  if (vm.networks.empty()) return {NetworkInterface{}};
  return vm.networks;
}

}  // namespace nixmox::api
