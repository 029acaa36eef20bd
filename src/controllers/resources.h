// The nixmox.io/v1alpha1 resource types as the Kubernetes client addresses them.
#pragma once

#include "src/api/json.h"
#include "src/api/types.h"
#include "src/kube/resource.h"

namespace nixmox::controllers {

inline kube::ResourceType ResourceFor(api::Kind kind) {
  const api::KindInfo& info = api::InfoFor(kind);
  return kube::ResourceType{std::string(api::kGroup), std::string(api::kVersion),
                            std::string(info.plural), true, std::string(info.kind)};
}
inline kube::ResourceType ProxmoxClusters() { return ResourceFor(api::Kind::kProxmoxCluster); }
inline kube::ResourceType NixImages() { return ResourceFor(api::Kind::kNixImage); }
inline kube::ResourceType ProxmoxVms() { return ResourceFor(api::Kind::kProxmoxVm); }

// The finalizer on ProxmoxVMs (and NixImages) the operator removes once it cleaned up.
inline constexpr char kFinalizer[] = "nixmox.io/finalizer";
// Annotations.
inline constexpr char kAnnotationReconcile[] = "nixmox.io/reconcile";  // Paused | ObserveOnly
inline constexpr char kAnnotationAdoptVmid[] = "nixmox.io/adopt-vmid";  // adopt this existing VM
// The MACs of a VM being re-created for a new image ("net0=BC:24:11:..,net1=...").
// Written on the ProxmoxVM before the old VM is destroyed, so that the new one
// gets the same MACs even when the operator restarts in between; removed once
// the new VM runs the new image.
inline constexpr char kAnnotationRecreateMacs[] = "nixmox.io/recreate-macs";
// Tags on VMs: UidTag(uid) (cluster_runtime.h), the image's store hash, and
// the mark a retained VM gets when the operator lets go of it.
inline constexpr char kImageTagPrefix[] = "nixmox-image-";
inline constexpr char kUnmanagedTag[] = "nixmox-unmanaged";

}  // namespace nixmox::controllers
