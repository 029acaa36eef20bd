#include "src/api/validation.h"

#include <arpa/inet.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <map>
#include <regex>
#include <set>
#include <string>
#include <utility>

#include "src/api/defaults.h"

namespace nixmox::api {
namespace {

// Collects field errors in the order they are found.
class Errors {
 public:
  void Add(std::string path, std::string message) {
    list_.push_back({std::move(path), std::move(message)});
  }
  void Required(const std::string& path, const std::string& value) {
    if (value.empty()) Add(path, "required");
  }
  template <typename Int>
  void Range(const std::string& path, Int value, long long lo, long long hi) {
    if (value < lo || value > hi) {
      Add(path, "must be between " + std::to_string(lo) + " and " + std::to_string(hi));
    }
  }
  std::vector<FieldError> Take() { return std::move(list_); }

 private:
  std::vector<FieldError> list_;
};

std::string Index(const std::string& path, std::size_t i) {
  return path + "[" + std::to_string(i) + "]";
}

std::string Lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

bool Matches(const std::string& value, const char* pattern) {
  // Compiling a std::regex is the expensive part; keep each one per thread
  // rather than share them behind a lock.
  thread_local std::map<std::string, std::regex, std::less<>> compiled;
  auto it = compiled.find(pattern);
  if (it == compiled.end()) it = compiled.emplace(pattern, std::regex(pattern)).first;
  return std::regex_match(value, it->second);
}

constexpr const char* kNodeName = "[a-zA-Z0-9]([a-zA-Z0-9-]*[a-zA-Z0-9])?";
constexpr const char* kStorageId = "[a-z][a-z0-9._-]*[a-z0-9]";
constexpr const char* kObjectName =
    "[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*";

void CheckName(Errors& e, const std::string& path, const std::string& name) {
  if (name.empty()) return e.Add(path, "required");
  if (name.size() > 253 || !Matches(name, kObjectName)) {
    e.Add(path, "must be a Kubernetes object name (lower case, digits, '-', '.')");
  }
}

void CheckStorage(Errors& e, const std::string& path, const std::string& storage) {
  if (!storage.empty() && !Matches(storage, kStorageId)) {
    e.Add(path, "must be a Proxmox storage id like \"local-lvm\"");
  }
}

// "scsi3" -> accepted when the bus exists and the index is in Proxmox's range.
void CheckSlot(Errors& e, const std::string& path, const std::string& slot) {
  static const std::map<std::string, int, std::less<>> kMaxIndex = {
      {"scsi", 30}, {"virtio", 15}, {"sata", 5}, {"ide", 3}};
  std::size_t digits = slot.find_first_of("0123456789");
  if (slot.empty()) return e.Add(path, "required");
  if (digits == std::string::npos || digits == 0) {
    return e.Add(path, "must be a bus and an index, like \"scsi1\"");
  }
  auto bus = kMaxIndex.find(slot.substr(0, digits));
  int index = -1;
  std::string_view rest(slot);
  rest.remove_prefix(digits);
  auto [end, ec] = std::from_chars(rest.data(), rest.data() + rest.size(), index);
  if (bus == kMaxIndex.end() || ec != std::errc() || end != rest.data() + rest.size() ||
      (rest.size() > 1 && rest[0] == '0')) {
    return e.Add(path, "must be one of scsi0-30, virtio0-15, sata0-5, ide0-3");
  }
  if (index > bus->second) {
    e.Add(path, bus->first + " slots go from 0 to " + std::to_string(bus->second));
  }
}

bool IsIPv4(const std::string& s) {
  in_addr a{};
  return inet_pton(AF_INET, s.c_str(), &a) == 1;
}

bool IsIPv6(const std::string& s) {
  in6_addr a{};
  return inet_pton(AF_INET6, s.c_str(), &a) == 1;
}

bool IsCidr(const std::string& s, bool v6) {
  std::size_t slash = s.find('/');
  if (slash == std::string::npos) return false;
  std::string addr = s.substr(0, slash);
  std::string_view len(s);
  len.remove_prefix(slash + 1);
  int bits = -1;
  auto [end, ec] = std::from_chars(len.data(), len.data() + len.size(), bits);
  if (len.empty() || ec != std::errc() || end != len.data() + len.size()) return false;
  return v6 ? (IsIPv6(addr) && bits >= 0 && bits <= 128)
            : (IsIPv4(addr) && bits >= 0 && bits <= 32);
}

// "https://host[:port][/]" and nothing else: the client appends /api2/json.
void CheckEndpoint(Errors& e, const std::string& path, const std::string& url) {
  if (url.empty()) return e.Add(path, "required");
  constexpr std::string_view kScheme = "https://";
  if (url.rfind(kScheme, 0) != 0) {
    return e.Add(path, "must start with https:// (the API token travels in a header)");
  }
  std::string rest = url.substr(kScheme.size());
  if (!rest.empty() && rest.back() == '/') rest.pop_back();
  if (rest.find_first_of("/?#@ ") != std::string::npos) {
    return e.Add(path, "must be only scheme, host and port, like https://pve.example.org:8006");
  }
  std::string host = rest;
  std::string port;
  if (!rest.empty() && rest[0] == '[') {
    std::size_t close = rest.find(']');
    if (close == std::string::npos) return e.Add(path, "unterminated IPv6 address");
    host = rest.substr(1, close - 1);
    if (!IsIPv6(host)) return e.Add(path, "invalid IPv6 address");
    std::string after = rest.substr(close + 1);
    if (!after.empty()) {
      if (after[0] != ':') return e.Add(path, "unexpected text after the IPv6 address");
      port = after.substr(1);
      if (port.empty()) return e.Add(path, "empty port");
    }
  } else if (std::size_t colon = rest.rfind(':'); colon != std::string::npos) {
    host = rest.substr(0, colon);
    port = rest.substr(colon + 1);
    if (port.empty()) return e.Add(path, "empty port");
  }
  if (host.empty()) return e.Add(path, "missing host");
  if (rest[0] != '[' && !Matches(host, "[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?")) {
    return e.Add(path, "host must be a DNS name or an address (IPv6 in brackets)");
  }
  if (!port.empty()) {
    int p = 0;
    auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), p);
    if (ec != std::errc() || end != port.data() + port.size() || p < 1 || p > 65535) {
      e.Add(path, "port must be a number between 1 and 65535");
    }
  }
}

// Flake references the builder Job can fetch. Local paths are rejected: the
// Job's container cannot see the operator's or the user's file system.
void CheckFlake(Errors& e, const std::string& path, const std::string& flake, bool allow_local) {
  if (flake.empty()) return e.Add(path, "required");
  if (flake.find_first_of(" \t\r\n") != std::string::npos) {
    return e.Add(path, "may not contain whitespace");
  }
  static const std::set<std::string, std::less<>> kSchemes = {
      "github", "gitlab",        "sourcehut",    "git+https",  "git+ssh",   "git+http", "https",
      "http",   "tarball+https", "tarball+http", "file+https", "file+http", "hg+https", "flake"};
  if (allow_local && (flake[0] == '/' || flake[0] == '.')) return;
  std::size_t colon = flake.find(':');
  if (colon == std::string::npos) {
    // An indirect reference resolved through the registry: "nixpkgs", "nixpkgs/nixos-24.11".
    if (!Matches(flake, "[A-Za-z][A-Za-z0-9_-]*(/[A-Za-z0-9._/-]+)?")) {
      e.Add(path, "must be a flake reference like github:owner/repo or git+https://host/repo");
    }
    return;
  }
  std::string scheme = flake.substr(0, colon);
  const bool local = scheme == "path" || scheme == "git+file" || scheme == "file" ||
                     scheme == "tarball+file" || flake[0] == '/' || flake[0] == '.';
  if (local && allow_local) return;
  if (scheme == "path" || scheme == "git+file" || scheme == "file" || scheme == "tarball+file" ||
      flake[0] == '/' || flake[0] == '.') {
    return e.Add(path, "a local path cannot be fetched by the builder Job");
  }
  if (kSchemes.find(scheme) == kSchemes.end()) {
    e.Add(path, "unsupported flake scheme \"" + scheme + "\"");
    return;
  }
  if (colon + 1 == flake.size()) e.Add(path, "missing the location after \"" + scheme + ":\"");
}

void CheckAttribute(Errors& e, const std::string& path, const std::string& attr) {
  if (attr.empty()) return e.Add(path, "required");
  if (!Matches(
          attr,
          "([A-Za-z_][A-Za-z0-9_'-]*|\"[^\"]+\")(\\.([A-Za-z_][A-Za-z0-9_'-]*|\"[^\"]+\"))*")) {
    e.Add(path,
          "must be a dotted attribute path like nixosConfigurations.web.config.system.build.image");
  }
}

// Kubernetes quantity syntax (resource.Quantity).
bool IsQuantity(const std::string& q) {
  return Matches(q, "[+-]?([0-9]+(\\.[0-9]*)?|\\.[0-9]+)([eE][+-]?[0-9]+|[numkMGTPE]|[KMGTPE]i)?");
}

// "cache.nixos.org-1:6NCHdD59X431o0gWypbMrAURkbJ16ZPMQFGspcDShjY="
bool IsNixPublicKey(const std::string& key) {
  std::size_t colon = key.rfind(':');
  if (colon == std::string::npos || colon == 0) return false;
  std::string b64 = key.substr(colon + 1);
  // An ed25519 key is 32 bytes: 44 base64 characters, one '=' of padding.
  return b64.size() == 44 && Matches(b64, "[A-Za-z0-9+/]{43}=");
}

template <typename Key>
void CheckDuplicates(Errors& e, const std::string& list_path, const std::vector<std::string>& items,
                     Key key, const std::string& suffix, const std::string& message) {
  std::set<std::string> seen;
  for (std::size_t i = 0; i < items.size(); ++i) {
    if (items[i].empty()) continue;
    if (!seen.insert(key(items[i])).second) e.Add(Index(list_path, i) + suffix, message);
  }
}

std::string Identity(const std::string& s) { return s; }

void CheckMac(Errors& e, const std::string& path, const std::string& mac) {
  if (mac.empty()) return;
  if (!Matches(mac, "[0-9A-Fa-f]{2}(:[0-9A-Fa-f]{2}){5}")) {
    return e.Add(path, "must look like BC:24:11:00:00:01");
  }
  int first = std::stoi(mac.substr(0, 2), nullptr, 16);
  if (first & 1) e.Add(path, "must be a unicast address (the first octet must be even)");
}

void CheckIpConfig(Errors& e, const std::string& path, const IpConfig& ip) {
  if (!ip.ipv4.empty() && ip.ipv4 != "dhcp" && !IsCidr(ip.ipv4, false)) {
    e.Add(path + ".ipv4",
          "must be \"dhcp\" or an IPv4 address with prefix length, like 10.0.0.5/24");
  }
  if (!ip.gateway4.empty()) {
    if (!IsIPv4(ip.gateway4)) {
      e.Add(path + ".gateway4", "must be an IPv4 address");
    } else if (ip.ipv4.empty() || ip.ipv4 == "dhcp") {
      e.Add(path + ".gateway4", "only with a static ipv4 address");
    }
  }
  if (!ip.ipv6.empty() && ip.ipv6 != "dhcp" && ip.ipv6 != "auto" && !IsCidr(ip.ipv6, true)) {
    e.Add(path + ".ipv6", "must be \"dhcp\", \"auto\" or an IPv6 address with prefix length");
  }
  if (!ip.gateway6.empty()) {
    if (!IsIPv6(ip.gateway6)) {
      e.Add(path + ".gateway6", "must be an IPv6 address");
    } else if (ip.ipv6.empty() || ip.ipv6 == "dhcp" || ip.ipv6 == "auto") {
      e.Add(path + ".gateway6", "only with a static ipv6 address");
    }
  }
}

}  // namespace

std::vector<FieldError> Validate(const ProxmoxClusterSpec& spec) {
  Errors e;
  CheckEndpoint(e, "spec.endpoint", spec.endpoint);

  CheckName(e, "spec.credentialsRef.name", spec.credentials_ref.name);
  e.Required("spec.credentialsRef.tokenIDKey", spec.credentials_ref.token_id_key);
  e.Required("spec.credentialsRef.tokenSecretKey", spec.credentials_ref.token_secret_key);
  if (!spec.credentials_ref.token_id_key.empty() &&
      spec.credentials_ref.token_id_key == spec.credentials_ref.token_secret_key) {
    e.Add("spec.credentialsRef.tokenSecretKey", "must differ from tokenIDKey");
  }

  const ClusterTls& tls = spec.tls;
  if (!tls.ca_bundle.empty() &&
      tls.ca_bundle.find("-----BEGIN CERTIFICATE-----") == std::string::npos) {
    e.Add("spec.tls.caBundle", "must hold at least one PEM certificate");
  }
  if (!tls.ca_bundle.empty() && tls.ca_ref) {
    e.Add("spec.tls.caRef", "may not be set together with caBundle");
  }
  if (tls.ca_ref) {
    CheckName(e, "spec.tls.caRef.name", tls.ca_ref->name);
    e.Required("spec.tls.caRef.key", tls.ca_ref->key);
  }
  if (tls.insecure_skip_tls_verify && (!tls.ca_bundle.empty() || tls.ca_ref)) {
    e.Add("spec.tls.insecureSkipTLSVerify", "may not be true when a CA is given");
  }

  for (std::size_t i = 0; i < spec.allowed_nodes.size(); ++i) {
    if (!Matches(spec.allowed_nodes[i], kNodeName)) {
      e.Add(Index("spec.allowedNodes", i), "must be a Proxmox node name");
    }
  }
  CheckDuplicates(e, "spec.allowedNodes", spec.allowed_nodes, Identity, "", "duplicate");

  e.Required("spec.defaultStorage", spec.default_storage);
  CheckStorage(e, "spec.defaultStorage", spec.default_storage);
  e.Required("spec.imageStorage", spec.image_storage);
  CheckStorage(e, "spec.imageStorage", spec.image_storage);
  e.Range("spec.inventoryPeriodSeconds", spec.inventory_period_seconds, 5, 3600);
  e.Range("spec.maxConcurrentRequests", spec.max_concurrent_requests, 1, 64);
  e.Range("spec.maxCreatesPerStorage", spec.max_creates_per_storage, 1, 16);
  e.Range("spec.maxRequestsPerSecond", spec.max_requests_per_second, 1, 1000);
  return e.Take();
}

std::vector<FieldError> Validate(const NixImageSpec& spec, bool allow_local_flakes) {
  Errors e;
  CheckFlake(e, "spec.flake", spec.flake, allow_local_flakes);
  CheckAttribute(e, "spec.attribute", spec.attribute);
  CheckName(e, "spec.clusterRef.name", spec.cluster_ref.name);
  CheckStorage(e, "spec.storage", spec.storage);
  if (spec.format == ImageFormat::kVma) {
    // PVE 8.4 uploads only iso, vztmpl and import (qcow2, raw, vmdk, ova);
    // a vma is a backup archive with no upload path to a VM disk.
    e.Add("spec.format", "vma images cannot be uploaded to Proxmox storage; use qcow2 or raw");
  }

  const NixOptions& nix = spec.nix;
  for (std::size_t i = 0; i < nix.substituters.size(); ++i) {
    if (!Matches(nix.substituters[i], "[a-z][a-z0-9+.-]*://[^\\s]+")) {
      e.Add(Index("spec.nix.substituters", i), "must be a URL like https://cache.example.org");
    }
  }
  CheckDuplicates(e, "spec.nix.substituters", nix.substituters, Identity, "", "duplicate");
  for (std::size_t i = 0; i < nix.trusted_public_keys.size(); ++i) {
    if (!IsNixPublicKey(nix.trusted_public_keys[i])) {
      e.Add(Index("spec.nix.trustedPublicKeys", i),
            "must be name:base64-key, like cache.nixos.org-1:6NCH...hjY=");
    }
  }
  CheckDuplicates(e, "spec.nix.trustedPublicKeys", nix.trusted_public_keys, Identity, "",
                  "duplicate");
  // Options with their own field are refused here, so there is one place to
  // set each and the builder never sees two values.
  static const std::map<std::string, std::string, std::less<>> kOwnField = {
      {"substituters", "spec.nix.substituters"},
      {"extra-substituters", "spec.nix.substituters"},
      {"trusted-public-keys", "spec.nix.trustedPublicKeys"},
      {"extra-trusted-public-keys", "spec.nix.trustedPublicKeys"},
      {"access-tokens", "spec.nix.accessTokensSecretRef"}};
  for (const auto& [name, value] : nix.extra_options) {
    std::string path = "spec.nix.extraOptions[" + name + "]";
    if (auto own = kOwnField.find(name); own != kOwnField.end()) {
      e.Add(path, "set through " + own->second);
    } else if (!Matches(name, "[a-z][a-z0-9-]*")) {
      e.Add(path, "must be a nix.conf option name");
    }
    // One option is one nix.conf line.
    if (value.find_first_of("\r\n") != std::string::npos) e.Add(path, "may not contain a newline");
  }
  if (nix.access_tokens_secret_ref) {
    CheckName(e, "spec.nix.accessTokensSecretRef.name", nix.access_tokens_secret_ref->name);
    e.Required("spec.nix.accessTokensSecretRef.key", nix.access_tokens_secret_ref->key);
  }

  const BuilderSpec& b = spec.builder;
  for (const auto* list : {&b.resources.requests, &b.resources.limits}) {
    const char* which = list == &b.resources.requests ? "requests" : "limits";
    for (const auto& [name, q] : *list) {
      if (!IsQuantity(q.value)) {
        e.Add("spec.builder.resources." + std::string(which) + "[" + name + "]",
              "must be a quantity like 500m, 2 or 4Gi");
      }
    }
  }
  e.Range("spec.builder.timeoutSeconds", b.timeout_seconds, 60, 86400);
  if (spec.refresh_interval_seconds) {
    e.Range("spec.refreshIntervalSeconds", *spec.refresh_interval_seconds, 300, 31536000);
  }
  e.Range("spec.generations", spec.generations, 1, 20);
  e.Range("spec.rollout.maxUnavailable", spec.rollout.max_unavailable, 1, 1000);
  return e.Take();
}

std::vector<FieldError> Validate(const ProxmoxVmSpec& spec) {
  Errors e;
  CheckName(e, "spec.clusterRef.name", spec.cluster_ref.name);
  if (!spec.node.empty() && !Matches(spec.node, kNodeName)) {
    e.Add("spec.node", "must be a Proxmox node name");
  }
  if (spec.vmid) e.Range("spec.vmid", *spec.vmid, 100, 999999999);

  if (spec.image_ref && !spec.source_volume.empty()) {
    e.Add("spec.sourceVolume", "may not be set together with imageRef");
  } else if (!spec.image_ref && spec.source_volume.empty()) {
    e.Add("spec.imageRef", "one of imageRef or sourceVolume is required");
  }
  if (spec.image_ref) CheckName(e, "spec.imageRef.name", spec.image_ref->name);
  if (!spec.source_volume.empty() &&
      !Matches(spec.source_volume, std::string(kStorageId).append(":[^\\s:]+").c_str())) {
    e.Add("spec.sourceVolume", "must be a Proxmox volume id like local:import/base.qcow2");
  }

  e.Range("spec.cpu.cores", spec.cpu.cores, 1, 256);
  e.Range("spec.cpu.sockets", spec.cpu.sockets, 1, 4);
  e.Required("spec.cpu.type", spec.cpu.type);
  e.Range("spec.memoryMiB", spec.memory_mib, 16, 16 * 1024 * 1024);

  CheckSlot(e, "spec.rootDisk.slot", spec.root_disk.slot);
  CheckStorage(e, "spec.rootDisk.storage", spec.root_disk.storage);
  if (spec.root_disk.size_gib) e.Range("spec.rootDisk.sizeGiB", *spec.root_disk.size_gib, 1, 65536);
  std::set<std::string> slots = {spec.root_disk.slot};
  // With cloudInit, its drive takes ide2 (as Proxmox's own tools place it).
  constexpr std::string_view kCloudInitSlot = "ide2";
  if (spec.cloud_init && spec.root_disk.slot == kCloudInitSlot) {
    e.Add("spec.rootDisk.slot", "ide2 holds the cloud-init drive");
  }
  for (std::size_t i = 0; i < spec.disks.size(); ++i) {
    const ExtraDisk& d = spec.disks[i];
    std::string path = Index("spec.disks", i);
    CheckSlot(e, path + ".slot", d.slot);
    if (!d.slot.empty() && !slots.insert(d.slot).second) {
      e.Add(path + ".slot", d.slot == spec.root_disk.slot ? "used by rootDisk" : "duplicate");
    } else if (spec.cloud_init && d.slot == kCloudInitSlot) {
      e.Add(path + ".slot", "ide2 holds the cloud-init drive");
    }
    CheckStorage(e, path + ".storage", d.storage);
    e.Range(path + ".sizeGiB", d.size_gib, 1, 65536);
  }

  if (spec.networks.size() > 32) e.Add("spec.networks", "at most 32 interfaces (net0-net31)");
  std::vector<std::string> macs;
  for (std::size_t i = 0; i < spec.networks.size(); ++i) {
    const NetworkInterface& n = spec.networks[i];
    std::string path = Index("spec.networks", i);
    if (n.bridge.empty() || !Matches(n.bridge, "[A-Za-z][A-Za-z0-9_.-]{0,14}")) {
      e.Add(path + ".bridge", "must be a Linux bridge name like vmbr0");
    }
    if (n.vlan) e.Range(path + ".vlan", *n.vlan, 1, 4094);
    CheckMac(e, path + ".mac", n.mac);
    macs.push_back(n.mac);
  }
  CheckDuplicates(e, "spec.networks", macs, Lower, ".mac", "duplicate");

  if (spec.cloud_init) {
    const CloudInit& ci = *spec.cloud_init;
    if (!ci.user.empty() && !Matches(ci.user, "[a-z_][a-z0-9_-]*[$]?")) {
      e.Add("spec.cloudInit.user", "must be a Unix user name");
    }
    for (std::size_t i = 0; i < ci.ssh_keys.size(); ++i) {
      const std::string& key = ci.ssh_keys[i];
      if (key.find_first_of("\r\n") != std::string::npos) {
        e.Add(Index("spec.cloudInit.sshKeys", i), "one key per entry, without newlines");
      } else if (!Matches(key, "(ssh-|ecdsa-|sk-)[^\\s]+ [A-Za-z0-9+/=]+( .*)?")) {
        e.Add(Index("spec.cloudInit.sshKeys", i), "must be an OpenSSH public key line");
      }
    }
    std::size_t nics = EffectiveNetworks(spec).size();
    for (std::size_t i = 0; i < ci.ip_config.size(); ++i) {
      std::string path = Index("spec.cloudInit.ipConfig", i);
      if (i >= nics) e.Add(path, "there is no networks[" + std::to_string(i) + "] to configure");
      CheckIpConfig(e, path, ci.ip_config[i]);
    }
    for (std::size_t i = 0; i < ci.nameservers.size(); ++i) {
      if (!IsIPv4(ci.nameservers[i]) && !IsIPv6(ci.nameservers[i])) {
        e.Add(Index("spec.cloudInit.nameservers", i), "must be an IP address");
      }
    }
  }

  for (std::size_t i = 0; i < spec.tags.size(); ++i) {
    const std::string& tag = spec.tags[i];
    if (!Matches(tag, "[a-zA-Z0-9_][a-zA-Z0-9_+.-]*")) {
      e.Add(Index("spec.tags", i), "must be a Proxmox tag (letters, digits, _ + - .)");
    } else if (Lower(tag).rfind(kReservedTagPrefix, 0) == 0) {
      e.Add(Index("spec.tags", i), "the prefix nixmox- is reserved for the operator's own tags");
    }
  }
  // Proxmox folds tag case, so "Web" and "web" would collapse into one.
  CheckDuplicates(e, "spec.tags", spec.tags, Lower, "",
                  "duplicate (tags compare case-insensitively)");

  e.Range("spec.reachability.probePort", spec.reachability.probe_port, 1, 65535);
  e.Range("spec.reachability.timeoutSeconds", spec.reachability.timeout_seconds, 1, 60);
  return e.Take();
}

std::vector<FieldError> ValidateUpdate(const NixImageSpec& old_spec, const NixImageSpec& new_spec) {
  Errors e;
  if (old_spec.cluster_ref != new_spec.cluster_ref) e.Add("spec.clusterRef", "is immutable");
  return e.Take();
}

std::vector<FieldError> ValidateUpdate(const ProxmoxVmSpec& old_spec,
                                       const ProxmoxVmSpec& new_spec) {
  Errors e;
  if (old_spec.cluster_ref != new_spec.cluster_ref) e.Add("spec.clusterRef", "is immutable");
  if (old_spec.vmid && old_spec.vmid != new_spec.vmid) {
    e.Add("spec.vmid", "may not change or be removed once set");
  }
  return e.Take();
}

Status ToStatus(std::vector<FieldError> errors) {
  if (errors.empty()) return OkStatus();
  Status s = InvalidError(
      "invalid spec: " + errors.front().field + ": " + errors.front().message +
      (errors.size() > 1 ? " (and " + std::to_string(errors.size() - 1) + " more)" : ""));
  s.WithFieldErrors(std::move(errors));
  return s;
}

}  // namespace nixmox::api
