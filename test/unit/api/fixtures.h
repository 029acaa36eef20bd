// Objects for the api tests. Full*() set every field the API has (so the
// CRD agreement test sees each one); Minimal*Json() hold only what the
// schema requires.
#pragma once

#include <nlohmann/json.hpp>
#include <ostream>
#include <string>
#include <vector>

#include "src/api/types.h"
#include "src/common/status.h"

namespace nixmox {
// So that gtest prints field errors readably.
inline void PrintTo(const FieldError& e, std::ostream* os) { *os << e.field << ": " << e.message; }
}  // namespace nixmox

namespace nixmox::api::testing {

inline std::vector<std::string> Fields(const std::vector<FieldError>& errors) {
  std::vector<std::string> out;
  for (const auto& e : errors) out.push_back(e.field);
  return out;
}

inline Condition ReadyCondition() {
  return Condition{"Ready",    ConditionStatus::kTrue, "Succeeded",
                   "all good", "2026-11-22T13:10:53Z", 4};
}

inline nlohmann::json Metadata(const char* name) {
  return {{"name", name},
          {"namespace", "default"},
          {"uid", "3f1c9a2e-0000-4000-8000-000000000001"},
          {"generation", 4},
          {"resourceVersion", "1234"},
          {"labels", {{"app", "web"}}}};
}

inline ProxmoxCluster FullCluster() {
  ProxmoxCluster c;
  c.metadata = Metadata("pve");
  ProxmoxClusterSpec& s = c.spec;
  s.endpoint = "https://pve.example.org:8006";
  s.credentials_ref = {"pve-token", "id", "secret"};
  s.tls.ca_bundle = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
  s.tls.ca_ref = CaRef{CaSourceKind::kConfigMap, "pve-ca", "bundle.pem"};
  s.tls.insecure_skip_tls_verify = true;
  s.allowed_nodes = {"pve1", "pve2"};
  s.default_storage = "ceph-vm";
  s.image_storage = "cephfs";
  s.inventory_period_seconds = 60;
  s.max_concurrent_requests = 8;
  s.max_creates_per_storage = 3;
  ProxmoxClusterStatus& st = c.status;
  st.conditions = {ReadyCondition()};
  st.observed_generation = 4;
  st.version = "8.4.1";
  st.nodes = {{"pve1", NodeState::kOnline, 0.25, 16, 8LL << 30, 64LL << 30},
              {"pve2", NodeState::kOffline, 0, 8, 0, 32LL << 30}};
  st.ready = true;
  st.online_nodes = "1/2";
  return c;
}

inline NixImage FullImage() {
  NixImage i;
  i.metadata = Metadata("web");
  NixImageSpec& s = i.spec;
  s.flake = "github:example/infra/0123abcd";
  s.attribute = "nixosConfigurations.web.config.system.build.image";
  s.format = ImageFormat::kRaw;
  s.cluster_ref = {"pve"};
  s.storage = "cephfs";
  s.nix.substituters = {"https://cache.nixos.org", "https://cache.example.org"};
  s.nix.trusted_public_keys = {"cache.nixos.org-1:6NCHdD59X431o0gWypbMrAURkbJ16ZPMQFGspcDShjY="};
  s.nix.extra_options = {{"max-jobs", "4"}, {"cores", "0"}};
  s.nix.access_tokens_secret_ref = SecretKeyRef{"nix-tokens", "tokens"};
  s.builder.image = "ghcr.io/example/nixmox-builder:0.1.0";
  s.builder.resources.requests = {{"cpu", {"2"}}, {"memory", {"4Gi"}}};
  s.builder.resources.limits = {{"memory", {"8Gi"}}};
  s.builder.node_selector = {{"kubernetes.io/arch", "amd64"}};
  s.builder.timeout_seconds = 7200;
  s.builder.kvm = KvmMode::kRequired;
  s.refresh_interval_seconds = 86400;
  s.generations = 5;
  s.rollout.max_unavailable = 2;
  NixImageStatus& st = i.status;
  st.phase = ImagePhase::kReady;
  st.store_path = "/nix/store/abcd1234-nixos-image";
  st.nar_hash = "sha256-47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=";
  st.size = 2147483648LL;
  st.volume_id = "cephfs:import/nixmox-abcd1234.raw";
  st.built_at = "2026-11-22T13:00:00Z";
  st.flake_revision = "0123abcd";
  st.job_name = "web-1a2b3c4d";
  st.build_key = "1a2b3c4d5e6f";
  st.progress = "upload 45%: 120/260 MiB to pve1";
  st.checked_at = "2026-11-22T14:00:00Z";
  st.failed_attempts = 1;
  st.generations = {{st.store_path, st.nar_hash, st.volume_id, st.built_at}};
  st.conditions = {ReadyCondition()};
  st.observed_generation = 4;
  st.rollout = {2, 3};
  return i;
}

inline ProxmoxVm FullVm() {
  ProxmoxVm v;
  v.metadata = Metadata("web-1");
  ProxmoxVmSpec& s = v.spec;
  s.cluster_ref = {"pve"};
  s.node = "pve1";
  s.vmid = 1042;
  s.image_ref = LocalObjectReference{"web"};
  s.source_volume = "local:import/debian-12.qcow2";  // not valid with imageRef; see ValidVm()
  s.cpu = {4, 2, "host"};
  s.memory_mib = 8192;
  s.root_disk = {"virtio0", "ceph-vm", 40};
  s.disks = {{"scsi1", "local-lvm", 100}, {"scsi2", "", 10}};
  s.networks = {{NicModel::kVirtio, "vmbr0", 20, "BC:24:11:00:00:01"},
                {NicModel::kE1000, "vmbr1", std::nullopt, ""}};
  CloudInit ci;
  ci.user = "admin";
  ci.ssh_keys = {"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIExample admin@example"};
  ci.ip_config = {{"10.0.0.5/24", "10.0.0.1", "2001:db8::5/64", "2001:db8::1"},
                  {"dhcp", "", "auto", ""}};
  ci.nameservers = {"10.0.0.53", "2001:db8::53"};
  ci.search_domain = "example.org";
  s.cloud_init = ci;
  s.tags = {"web", "prod"};
  s.power_state = PowerState::kStopped;
  s.protection = true;
  s.deletion_policy = DeletionPolicy::kRetain;
  s.update_policy = UpdatePolicy::kManual;
  s.reachability = {AddressFamily::kIPv6, 443, 10};
  ProxmoxVmStatus& st = v.status;
  st.phase = VmPhase::kRunning;
  st.node = "pve1";
  st.vmid = 1042;
  st.image_store_path = "/nix/store/abcd1234-nixos-image";
  st.ip_addresses = {{"10.0.0.5", AddressFamily::kIPv4, AddressScope::kPrivate, "eth0", true},
                     {"2001:db8::5", AddressFamily::kIPv6, AddressScope::kPublic, "eth0", false}};
  st.primary_ip = "10.0.0.5";
  st.conditions = {ReadyCondition()};
  st.observed_generation = 4;
  st.last_task = TaskRef{"UPID:pve1:0000A1B2:00C3D4E5:6740A1B2:qmstart:1042:root@pam:", "OK"};
  return v;
}

// FullVm() made valid: a VM boots either an image or a volume.
inline ProxmoxVm ValidVm() {
  ProxmoxVm v = FullVm();
  v.spec.source_volume.clear();
  return v;
}

// FullCluster() made valid: one CA source, and verification on.
inline ProxmoxCluster ValidCluster() {
  ProxmoxCluster c = FullCluster();
  c.spec.tls.ca_ref.reset();
  c.spec.tls.insecure_skip_tls_verify = false;
  return c;
}

inline nlohmann::json MinimalClusterJson() {
  return nlohmann::json::parse(R"({
    "apiVersion": "nixmox.io/v1alpha1", "kind": "ProxmoxCluster",
    "metadata": {"name": "pve", "namespace": "default"},
    "spec": {"endpoint": "https://pve.example.org:8006", "credentialsRef": {"name": "pve-token"}}
  })");
}

inline nlohmann::json MinimalImageJson() {
  return nlohmann::json::parse(R"({
    "apiVersion": "nixmox.io/v1alpha1", "kind": "NixImage",
    "metadata": {"name": "web", "namespace": "default"},
    "spec": {"flake": "github:example/infra", "attribute": "packages.x86_64-linux.web-image",
             "clusterRef": {"name": "pve"}}
  })");
}

// Minimal, plus one item in each list whose items have defaults, so that
// item defaults are compared too.
inline nlohmann::json MinimalVmJson() {
  return nlohmann::json::parse(R"({
    "apiVersion": "nixmox.io/v1alpha1", "kind": "ProxmoxVM",
    "metadata": {"name": "web-1", "namespace": "default"},
    "spec": {"clusterRef": {"name": "pve"}, "imageRef": {"name": "web"},
             "networks": [{}], "disks": [{"slot": "scsi1", "sizeGiB": 10}],
             "cloudInit": {"ipConfig": [{}]}}
  })");
}

}  // namespace nixmox::api::testing
