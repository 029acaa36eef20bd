// Every condition type and reason the v1alpha1 kinds use, in one place, so
// that controllers, tests and documentation spell them the same way.
// Reasons are CamelCase (metav1.Condition requires it); add new ones here.
#pragma once

#include <string_view>

namespace nixmox::api {

// ---- Condition types ------------------------------------------------------

namespace condition {
// All kinds: the summary; True when the object is doing what its spec says.
inline constexpr std::string_view kReady = "Ready";

// NixImage.
inline constexpr std::string_view kBuilt = "Built";        // nix build finished for the spec
inline constexpr std::string_view kUploaded = "Uploaded";  // the image is in Proxmox storage
inline constexpr std::string_view kAccelerated = "Accelerated";  // the last build had /dev/kvm

// ProxmoxVM.
inline constexpr std::string_view kClusterReady = "ClusterReady";  // its ProxmoxCluster is Ready
inline constexpr std::string_view kImageReady = "ImageReady";      // its NixImage is Ready
inline constexpr std::string_view kProvisioned = "Provisioned";    // the VM exists in Proxmox
inline constexpr std::string_view kAgentConnected = "AgentConnected";  // guest agent answers
inline constexpr std::string_view kReachable = "Reachable";  // an address answered the probe
inline constexpr std::string_view kInSync = "InSync";        // the VM's config matches the spec
// A newer image than the one the VM runs (updatePolicy Manual, or a rollout under way).
inline constexpr std::string_view kUpdateAvailable = "UpdateAvailable";
// Config changes Proxmox holds back until the VM restarts.
inline constexpr std::string_view kRestartRequired = "RestartRequired";

// ProxmoxCluster.
inline constexpr std::string_view kConnected = "Connected";  // endpoint + credentials work
// The imageStorage exists and accepts content "import" (NixImage uploads).
inline constexpr std::string_view kImageStorageReady = "ImageStorageReady";
}  // namespace condition

// ---- Reasons --------------------------------------------------------------

namespace reason {
// Shared.
inline constexpr std::string_view kReconciling = "Reconciling";
inline constexpr std::string_view kSucceeded = "Succeeded";
inline constexpr std::string_view kInvalidSpec = "InvalidSpec";  // validation.h found errors
inline constexpr std::string_view kClusterNotFound = "ClusterNotFound";
inline constexpr std::string_view kClusterNotReady = "ClusterNotReady";
inline constexpr std::string_view kProxmoxError = "ProxmoxError";
inline constexpr std::string_view kDeleting = "Deleting";

// ProxmoxCluster.
inline constexpr std::string_view kConnected = "Connected";
inline constexpr std::string_view kCredentialsNotFound = "CredentialsNotFound";
inline constexpr std::string_view kAuthenticationFailed = "AuthenticationFailed";
inline constexpr std::string_view kPermissionDenied = "PermissionDenied";
inline constexpr std::string_view kTlsError = "TLSError";
inline constexpr std::string_view kUnreachable = "Unreachable";
inline constexpr std::string_view kNoOnlineNodes = "NoOnlineNodes";
inline constexpr std::string_view kStorageNotFound = "StorageNotFound";
inline constexpr std::string_view kStorageContentMissing = "StorageContentMissing";  // no "import"
inline constexpr std::string_view kNodesOnline = "NodesOnline";      // Ready: an allowed node is up
inline constexpr std::string_view kImportEnabled = "ImportEnabled";  // ImageStorageReady True

// NixImage.
inline constexpr std::string_view kBuildPending = "BuildPending";
inline constexpr std::string_view kBuilding = "Building";
inline constexpr std::string_view kBuildSucceeded = "BuildSucceeded";
inline constexpr std::string_view kBuildFailed = "BuildFailed";
inline constexpr std::string_view kBuildTimedOut = "BuildTimedOut";
inline constexpr std::string_view kKvmUnavailable = "KvmUnavailable";
inline constexpr std::string_view kUploading = "Uploading";
inline constexpr std::string_view kUploadSucceeded = "UploadSucceeded";
inline constexpr std::string_view kUploadFailed = "UploadFailed";
inline constexpr std::string_view kImageAvailable = "ImageAvailable";
inline constexpr std::string_view kKvm = "KVM";                  // Accelerated True
inline constexpr std::string_view kInUse = "InUse";              // deletion waits for its VMs
inline constexpr std::string_view kRefreshFailed = "RefreshFailed";  // a revision check failed
inline constexpr std::string_view kVolumeDeleted = "VolumeDeleted";  // an old generation's volume
inline constexpr std::string_view kRevisionUnchanged = "RevisionUnchanged";  // nothing to build

// ProxmoxVM.
inline constexpr std::string_view kImageNotFound = "ImageNotFound";
inline constexpr std::string_view kImageNotReady = "ImageNotReady";
inline constexpr std::string_view kImageReady = "ImageReady";
inline constexpr std::string_view kPlacementFailed = "PlacementFailed";
inline constexpr std::string_view kNodeNotAllowed = "NodeNotAllowed";
inline constexpr std::string_view kVmidInUse = "VMIDInUse";
inline constexpr std::string_view kCreating = "Creating";
inline constexpr std::string_view kCreated = "Created";
inline constexpr std::string_view kTaskRunning = "TaskRunning";
inline constexpr std::string_view kTaskFailed = "TaskFailed";
inline constexpr std::string_view kVmNotFound = "VMNotFound";
inline constexpr std::string_view kVmLocked = "VMLocked";
inline constexpr std::string_view kStarting = "Starting";
inline constexpr std::string_view kRunning = "Running";
inline constexpr std::string_view kStopped = "Stopped";
inline constexpr std::string_view kAgentNotRunning = "AgentNotRunning";
inline constexpr std::string_view kAgentResponding = "AgentResponding";
inline constexpr std::string_view kNoAddress = "NoAddress";
inline constexpr std::string_view kProbeFailed = "ProbeFailed";
inline constexpr std::string_view kProbeSucceeded = "ProbeSucceeded";
inline constexpr std::string_view kConfigDrift = "ConfigDrift";
inline constexpr std::string_view kUpToDate = "UpToDate";
inline constexpr std::string_view kUpdatePending = "UpdatePending";  // new image, policy Manual
inline constexpr std::string_view kRecreating = "Recreating";
// A new image waits: the NixImage's rollout.maxUnavailable VMs are updating.
inline constexpr std::string_view kRolloutWaiting = "RolloutWaiting";
inline constexpr std::string_view kProtected = "Protected";  // deletion refused: spec.protected
inline constexpr std::string_view kRetained = "Retained";    // deletionPolicy Retain
inline constexpr std::string_view kAdopted = "Adopted";  // found by its tag, or adopt-vmid
inline constexpr std::string_view kWaitingForStorage = "WaitingForStorage";  // slots all taken
inline constexpr std::string_view kConfigUpdated = "ConfigUpdated";
inline constexpr std::string_view kUnfixableDrift = "UnfixableDrift";  // drift left alone (data)
inline constexpr std::string_view kPendingChanges = "PendingChanges";  // RestartRequired True
inline constexpr std::string_view kNoPendingChanges = "NoPendingChanges";
inline constexpr std::string_view kStopping = "Stopping";
inline constexpr std::string_view kDeleted = "Deleted";
inline constexpr std::string_view kNotProbed = "NotProbed";  // no probe result, yet or at all
inline constexpr std::string_view kMoved = "Moved";          // the VM is on another node now
}  // namespace reason

}  // namespace nixmox::api
