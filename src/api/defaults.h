// Defaults that depend on another object, so neither the CRD schema nor a
// member initializer can apply them. Pure functions; any thread.
#pragma once

#include <string>
#include <vector>

#include "src/api/types.h"

namespace nixmox::api {

// The storage the VM's root disk goes to: its own, else the cluster's default.
std::string RootDiskStorage(const ProxmoxVmSpec& vm, const ProxmoxClusterSpec& cluster);
// An extra disk's storage: its own, else the cluster's default.
std::string DiskStorage(const ExtraDisk& disk, const ProxmoxClusterSpec& cluster);
// Where a NixImage is uploaded: its own storage, else the cluster's imageStorage.
std::string ImageStorage(const NixImageSpec& image, const ProxmoxClusterSpec& cluster);
// The VM's NICs: as listed, or one NetworkInterface{} when the list is empty.
std::vector<NetworkInterface> EffectiveNetworks(const ProxmoxVmSpec& vm);

}  // namespace nixmox::api
