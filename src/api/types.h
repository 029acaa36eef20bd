// The nixmox.io/v1alpha1 API as C++ values: ProxmoxCluster, NixImage and
// ProxmoxVM. These are plain data, copyable, with no behaviour and no
// threads; json.h converts them to and from the JSON the API server stores,
// validation.h checks what the CRD schema cannot.
//
// Member initializers are the API's defaults. They must equal the `default`
// values in crds/*.yaml; test/unit/api/crd_agreement_test.cc proves it.
// A field the schema marks optional without a default is std::optional (for
// numbers) or empty (for strings, lists, maps).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace nixmox::api {

inline constexpr std::string_view kGroup = "nixmox.io";
inline constexpr std::string_view kVersion = "v1alpha1";
inline constexpr std::string_view kApiVersion = "nixmox.io/v1alpha1";

// ---------------------------------------------------------------------------
// Enums. Each has an EnumInfo specialisation listing its JSON spellings in
// declaration order; EnumName/ParseEnum are the only conversions.

template <typename E>
struct EnumInfo;

#define NIXMOX_API_ENUM(Type, ...)                                                 \
  template <>                                                                      \
  struct EnumInfo<Type> {                                                          \
    static constexpr auto kNames = std::to_array<std::string_view>({__VA_ARGS__}); \
  }

template <typename E>
std::string_view EnumName(E value) {
  return EnumInfo<E>::kNames[static_cast<std::size_t>(value)];
}

template <typename E>
std::optional<E> ParseEnum(std::string_view name) {
  for (std::size_t i = 0; i < EnumInfo<E>::kNames.size(); ++i) {
    if (EnumInfo<E>::kNames[i] == name) return static_cast<E>(i);
  }
  return std::nullopt;
}

enum class ConditionStatus { kTrue, kFalse, kUnknown };
NIXMOX_API_ENUM(ConditionStatus, "True", "False", "Unknown");

enum class CaSourceKind { kSecret, kConfigMap };
NIXMOX_API_ENUM(CaSourceKind, "Secret", "ConfigMap");

enum class NodeState { kOnline, kOffline, kUnknown };
NIXMOX_API_ENUM(NodeState, "Online", "Offline", "Unknown");

enum class ImageFormat { kQcow2, kRaw, kVma };
NIXMOX_API_ENUM(ImageFormat, "qcow2", "raw", "vma");

enum class KvmMode { kAuto, kRequired, kDisabled };
NIXMOX_API_ENUM(KvmMode, "Auto", "Required", "Disabled");

enum class ImagePhase { kPending, kBuilding, kUploading, kReady, kFailed };
NIXMOX_API_ENUM(ImagePhase, "Pending", "Building", "Uploading", "Ready", "Failed");

enum class NicModel { kVirtio, kE1000, kE1000e, kRtl8139, kVmxnet3 };
NIXMOX_API_ENUM(NicModel, "virtio", "e1000", "e1000e", "rtl8139", "vmxnet3");

enum class PowerState { kRunning, kStopped };
NIXMOX_API_ENUM(PowerState, "Running", "Stopped");

enum class DeletionPolicy { kDelete, kRetain };
NIXMOX_API_ENUM(DeletionPolicy, "Delete", "Retain");

enum class UpdatePolicy { kRecreate, kManual };
NIXMOX_API_ENUM(UpdatePolicy, "Recreate", "Manual");

enum class AddressFamily { kIPv4, kIPv6 };
NIXMOX_API_ENUM(AddressFamily, "IPv4", "IPv6");

enum class AddressScope { kPrivate, kPublic };
NIXMOX_API_ENUM(AddressScope, "Private", "Public");

enum class VmPhase {
  kPending,
  kProvisioning,
  kStarting,
  kRunning,
  kStopped,
  kUpdating,
  kDeleting,
  kFailed
};
NIXMOX_API_ENUM(VmPhase, "Pending", "Provisioning", "Starting", "Running", "Stopped", "Updating",
                "Deleting", "Failed");

#undef NIXMOX_API_ENUM

// ---------------------------------------------------------------------------
// Shared pieces.

// metav1.Condition. Types and reasons are listed in reasons.h.
struct Condition {
  std::string type;
  ConditionStatus status = ConditionStatus::kUnknown;
  std::string reason;
  std::string message;
  std::string last_transition_time;  // RFC 3339, UTC
  std::int64_t observed_generation = 0;
  bool operator==(const Condition&) const = default;
};

// A reference to an object of a known kind in the same namespace.
struct LocalObjectReference {
  std::string name;
  bool operator==(const LocalObjectReference&) const = default;
};

// A Kubernetes resource quantity ("500m", "2Gi", 4). Kept as its text: the
// builder Job passes it through to the Pod unchanged.
struct Quantity {
  std::string value;
  bool operator==(const Quantity&) const = default;
};

// ---------------------------------------------------------------------------
// ProxmoxCluster: a Proxmox VE endpoint and how to talk to it.

struct CredentialsRef {
  std::string name;                              // Secret in the same namespace
  std::string token_id_key = "tokenID";          // value like "nixmox@pve!operator"
  std::string token_secret_key = "tokenSecret";  // the token's UUID secret
  bool operator==(const CredentialsRef&) const = default;
};

struct CaRef {
  CaSourceKind kind = CaSourceKind::kSecret;
  std::string name;
  std::string key = "ca.crt";
  bool operator==(const CaRef&) const = default;
};

struct ClusterTls {
  std::string ca_bundle;  // PEM; empty = system trust store (or ca_ref)
  std::optional<CaRef> ca_ref;
  bool insecure_skip_tls_verify = false;
  bool operator==(const ClusterTls&) const = default;
};

struct ProxmoxClusterSpec {
  std::string endpoint;  // "https://pve.example.org:8006"
  CredentialsRef credentials_ref;
  ClusterTls tls;
  std::vector<std::string> allowed_nodes;  // empty = every node
  std::string default_storage = "local-lvm";
  std::string image_storage = "local";  // must allow content "import"
  std::int32_t inventory_period_seconds = 30;
  std::int32_t max_concurrent_requests = 4;
  std::int32_t max_creates_per_storage = 2;
  std::int32_t max_requests_per_second = 10;
  bool operator==(const ProxmoxClusterSpec&) const = default;
};

struct ClusterNodeStatus {
  std::string name;
  NodeState status = NodeState::kUnknown;
  double cpu = 0;  // fraction of max_cpu in use, 0..1
  std::int32_t max_cpu = 0;
  std::int64_t memory = 0;  // bytes in use
  std::int64_t max_memory = 0;
  bool operator==(const ClusterNodeStatus&) const = default;
};

struct ProxmoxClusterStatus {
  std::vector<Condition> conditions;
  std::int64_t observed_generation = 0;
  std::string version;  // "8.4.1"
  std::vector<ClusterNodeStatus> nodes;
  bool ready = false;        // mirrors the Ready condition, for the printer column
  std::string online_nodes;  // "2/3": online allowed nodes / allowed nodes
  bool operator==(const ProxmoxClusterStatus&) const = default;
};

struct ProxmoxCluster {
  nlohmann::json metadata = nlohmann::json::object();  // metav1.ObjectMeta, kept as JSON
  ProxmoxClusterSpec spec;
  ProxmoxClusterStatus status;
  bool operator==(const ProxmoxCluster&) const = default;
};

// ---------------------------------------------------------------------------
// NixImage: a disk image built by Nix and uploaded to Proxmox storage.

struct SecretKeyRef {
  std::string name;
  std::string key = "access-tokens";
  bool operator==(const SecretKeyRef&) const = default;
};

struct NixOptions {
  std::vector<std::string> substituters;
  std::vector<std::string> trusted_public_keys;
  std::map<std::string, std::string> extra_options;  // nix.conf name -> value
  std::optional<SecretKeyRef> access_tokens_secret_ref;
  bool operator==(const NixOptions&) const = default;
};

struct ResourceRequirements {
  std::map<std::string, Quantity> requests;
  std::map<std::string, Quantity> limits;
  bool operator==(const ResourceRequirements&) const = default;
};

struct BuilderSpec {
  std::string image;  // empty = the operator's configured builder image
  ResourceRequirements resources;
  std::map<std::string, std::string> node_selector;
  std::int32_t timeout_seconds = 3600;
  KvmMode kvm = KvmMode::kAuto;
  bool operator==(const BuilderSpec&) const = default;
};

struct RolloutSpec {
  std::int32_t max_unavailable = 1;
  bool operator==(const RolloutSpec&) const = default;
};

struct NixImageSpec {
  std::string flake;      // "github:example/infra/<rev>"
  std::string attribute;  // "nixosConfigurations.web.config.system.build.image"
  ImageFormat format = ImageFormat::kQcow2;
  LocalObjectReference cluster_ref;
  std::string storage;  // empty = the cluster's imageStorage
  NixOptions nix;
  BuilderSpec builder;
  std::optional<std::int32_t> refresh_interval_seconds;  // unset = build on spec change only
  std::int32_t generations = 3;
  RolloutSpec rollout;
  bool operator==(const NixImageSpec&) const = default;
};

struct ImageGeneration {
  std::string store_path;
  std::string nar_hash;
  std::string volume_id;
  std::string built_at;  // RFC 3339
  bool operator==(const ImageGeneration&) const = default;
};

struct RolloutStatus {
  std::int32_t updated = 0;
  std::int32_t total = 0;
  bool operator==(const RolloutStatus&) const = default;
};

struct NixImageStatus {
  ImagePhase phase = ImagePhase::kPending;
  std::string store_path;
  std::string nar_hash;
  std::int64_t size = 0;  // bytes
  std::string volume_id;  // "local:import/nixmox-<hash>.qcow2"
  std::string built_at;
  std::string flake_revision;
  std::string job_name;
  std::string build_key;  // of the build the last or running Job does
  std::string progress;   // the running builder's last progress line
  std::string checked_at;  // last refreshInterval check of the flake's revision (RFC 3339)
  std::int32_t failed_attempts = 0;  // consecutive failed builds of build_key
  std::vector<ImageGeneration> generations;  // newest first, the current one included
  std::vector<Condition> conditions;
  std::int64_t observed_generation = 0;
  RolloutStatus rollout;
  bool operator==(const NixImageStatus&) const = default;
};

struct NixImage {
  nlohmann::json metadata = nlohmann::json::object();
  NixImageSpec spec;
  NixImageStatus status;
  bool operator==(const NixImage&) const = default;
};

// ---------------------------------------------------------------------------
// ProxmoxVM: one virtual machine.

struct CpuSpec {
  std::int32_t cores = 1;
  std::int32_t sockets = 1;
  std::string type = "x86-64-v2-AES";
  bool operator==(const CpuSpec&) const = default;
};

// The boot disk, imported from the image (or the source volume).
struct RootDisk {
  std::string slot = "scsi0";
  std::string storage;                   // empty = the cluster's defaultStorage
  std::optional<std::int32_t> size_gib;  // unset = the image's own size
  bool operator==(const RootDisk&) const = default;
};

// An empty data disk.
struct ExtraDisk {
  std::string slot;  // "scsi1", "virtio2", "sata0"
  std::string storage;
  std::int32_t size_gib = 0;
  bool operator==(const ExtraDisk&) const = default;
};

struct NetworkInterface {
  NicModel model = NicModel::kVirtio;
  std::string bridge = "vmbr0";
  std::optional<std::int32_t> vlan;
  std::string mac;  // empty = Proxmox assigns one
  bool operator==(const NetworkInterface&) const = default;
};

// One ipconfigN entry: "dhcp", "auto" (v6 only) or an address in CIDR form.
struct IpConfig {
  std::string ipv4;
  std::string gateway4;
  std::string ipv6;
  std::string gateway6;
  bool operator==(const IpConfig&) const = default;
};

struct CloudInit {
  std::string user;
  std::vector<std::string> ssh_keys;
  std::vector<IpConfig> ip_config;  // entry i configures networks[i]
  std::vector<std::string> nameservers;
  std::string search_domain;
  bool operator==(const CloudInit&) const = default;
};

struct Reachability {
  AddressFamily address_family = AddressFamily::kIPv4;  // preferred family
  std::int32_t probe_port = 22;
  std::int32_t timeout_seconds = 5;
  bool operator==(const Reachability&) const = default;
};

struct ProxmoxVmSpec {
  LocalObjectReference cluster_ref;
  std::string node;                               // empty = placed automatically
  std::optional<std::int32_t> vmid;               // unset = allocated
  std::optional<LocalObjectReference> image_ref;  // exactly one of image_ref,
  std::string source_volume;                      // source_volume ("local:import/x.qcow2")
  CpuSpec cpu;
  std::int32_t memory_mib = 2048;
  RootDisk root_disk;
  std::vector<ExtraDisk> disks;
  std::vector<NetworkInterface> networks;  // empty = one NetworkInterface{}
  std::optional<CloudInit> cloud_init;
  std::vector<std::string> tags;
  PowerState power_state = PowerState::kRunning;
  bool protection = false;  // JSON "protected"
  DeletionPolicy deletion_policy = DeletionPolicy::kDelete;
  UpdatePolicy update_policy = UpdatePolicy::kRecreate;
  Reachability reachability;
  bool operator==(const ProxmoxVmSpec&) const = default;
};

struct VmAddress {
  std::string address;
  AddressFamily family = AddressFamily::kIPv4;
  AddressScope scope = AddressScope::kPrivate;
  std::string interface_name;  // JSON "interface"
  bool reachable = false;
  bool operator==(const VmAddress&) const = default;
};

struct TaskRef {
  std::string upid;
  std::string message;
  bool operator==(const TaskRef&) const = default;
};

struct ProxmoxVmStatus {
  VmPhase phase = VmPhase::kPending;
  std::string node;
  std::optional<std::int32_t> vmid;
  std::string image_store_path;
  std::vector<VmAddress> ip_addresses;
  std::string primary_ip;
  std::vector<Condition> conditions;
  std::int64_t observed_generation = 0;
  std::optional<TaskRef> last_task;
  bool operator==(const ProxmoxVmStatus&) const = default;
};

struct ProxmoxVm {
  nlohmann::json metadata = nlohmann::json::object();
  ProxmoxVmSpec spec;
  ProxmoxVmStatus status;
  bool operator==(const ProxmoxVm&) const = default;
};

}  // namespace nixmox::api
