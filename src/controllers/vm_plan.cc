#include "src/controllers/vm_plan.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <functional>
#include <set>

#include "src/api/defaults.h"
#include "src/controllers/cluster_runtime.h"
#include "src/controllers/resources.h"
#include "src/proxmox/property_string.h"

namespace nixmox::controllers {
namespace {

using proxmox::DiskConfig;
using proxmox::NetConfig;
using proxmox::Params;
using proxmox::VmConfig;

constexpr std::uint64_t kGiB = 1ULL << 30;

// Where the cloud-init drive goes, as Proxmox's own tools put it.
constexpr char kCloudInitSlot[] = "ide2";

// What Proxmox assumes for a key the config does not have.
constexpr std::int64_t kDefaultCores = 1;
constexpr std::int64_t kDefaultSockets = 1;
constexpr std::int64_t kDefaultMemoryMib = 512;

constexpr char kUnset[] = "(unset)";

std::string Upper(std::string s) {
  for (char& c : s) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return s;
}

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  return std::equal(a.begin(), a.end(), b.begin(), b.end(), [](char x, char y) {
    return std::tolower(static_cast<unsigned char>(x)) ==
           std::tolower(static_cast<unsigned char>(y));
  });
}

std::string Join(const std::vector<std::string>& parts, std::string_view separator) {
  std::string out;
  for (std::size_t i = 0; i < parts.size(); ++i) {
    if (i > 0) out += separator;
    out += parts[i];
  }
  return out;
}

// Words separated by any of `separators`, empty ones dropped.
std::vector<std::string> Split(std::string_view text, std::string_view separators) {
  std::vector<std::string> out;
  while (!text.empty()) {
    const std::size_t end = text.find_first_of(separators);
    if (end != 0) out.emplace_back(text.substr(0, end));
    if (end == std::string_view::npos) break;
    text.remove_prefix(end + 1);
  }
  return out;
}

// 3 for key "ipconfig3" and prefix "ipconfig"; nullopt when the key is not
// the prefix followed by a number.
std::optional<std::size_t> KeyIndex(std::string_view key, std::string_view prefix) {
  if (!key.starts_with(prefix)) return std::nullopt;
  key.remove_prefix(prefix.size());
  std::size_t index = 0;
  const auto [end, ec] = std::from_chars(key.data(), key.data() + key.size(), index);
  if (key.empty() || ec != std::errc() || end != key.data() + key.size()) return std::nullopt;
  return index;
}

std::string MetadataString(const nlohmann::json& metadata, const char* key) {
  auto it = metadata.find(key);
  return it != metadata.end() && it->is_string() ? it->get<std::string>() : std::string();
}

bool IsImageTag(std::string_view tag) { return tag.starts_with(kImageTagPrefix); }

NetConfig DesiredNet(const api::NetworkInterface& nic) {
  NetConfig net;
  net.model = std::string(api::EnumName(nic.model));
  net.bridge = nic.bridge;
  net.tag = nic.vlan;
  net.macaddr = Upper(nic.mac);  // Proxmox stores MACs upper-case
  return net;
}

// A disk nixmox creates. On virtio-scsi-single every SCSI disk gets its own
// I/O thread; discard lets thin storage take back blocks the guest freed.
DiskConfig NewDisk(std::string_view slot, std::string file) {
  DiskConfig disk;
  disk.file = std::move(file);
  if (slot.starts_with("scsi")) {
    disk.iothread = true;
    disk.discard = "on";
  }
  return disk;
}

std::string GiBSize(std::uint64_t bytes) { return std::to_string(bytes / kGiB) + "G"; }

// "STORAGE:GiB": Proxmox allocates a new volume of that size.
std::string AllocateValue(const DesiredDisk& disk) {
  return proxmox::FormatDiskConfig(
      NewDisk(disk.slot, disk.storage + ":" + std::to_string(disk.size_bytes.value_or(0) / kGiB)));
}

std::string CloudInitDriveValue(const DesiredVm& desired) {
  return desired.root.storage + ":cloudinit";
}

std::string SshKeysValue(const api::CloudInit& ci) { return Join(ci.ssh_keys, "\n"); }

// "ip=10.0.0.5/24,gw=10.0.0.1,ip6=auto"; empty when the entry sets nothing.
std::string IpConfigValue(const api::IpConfig& ip) {
  std::vector<std::string> parts;
  if (!ip.ipv4.empty()) parts.push_back("ip=" + ip.ipv4);
  if (!ip.gateway4.empty()) parts.push_back("gw=" + ip.gateway4);
  if (!ip.ipv6.empty()) parts.push_back("ip6=" + ip.ipv6);
  if (!ip.gateway6.empty()) parts.push_back("gw6=" + ip.gateway6);
  return Join(parts, ",");
}

std::string NameserverValue(const api::CloudInit& ci) { return Join(ci.nameservers, " "); }

void SetCloudInit(const DesiredVm& desired, Params& params) {
  const api::CloudInit& ci = *desired.cloud_init;
  params.Set(kCloudInitSlot, CloudInitDriveValue(desired));
  if (!ci.user.empty()) params.Set("ciuser", ci.user);
  if (!ci.ssh_keys.empty()) params.SetSshKeys(SshKeysValue(ci));
  for (std::size_t i = 0; i < ci.ip_config.size(); ++i) {
    std::string value = IpConfigValue(ci.ip_config[i]);
    if (!value.empty()) params.Set("ipconfig" + std::to_string(i), std::move(value));
  }
  if (!ci.nameservers.empty()) params.Set("nameserver", NameserverValue(ci));
  if (!ci.search_domain.empty()) params.Set("searchdomain", ci.search_domain);
}

// ---------------------------------------------------------------------------
// Diff, one part of the config at a time.

std::string Shown(std::string_view value) { return value.empty() ? kUnset : std::string(value); }

void SetKey(ConfigDiff& diff, const std::string& key, const std::string& want,
            std::string_view have) {
  diff.update.set.Set(key, want);
  diff.drift.push_back(key + ": " + Shown(have) + " -> " + Shown(want));
}

void DeleteKey(ConfigDiff& diff, const std::string& key, std::string_view what) {
  diff.update.delete_keys.push_back(key);
  diff.drift.push_back(key + ": " + std::string(what));
}

std::string Unsetting(std::string_view have) { return Shown(have) + " -> " + kUnset; }

void DiffInt(ConfigDiff& diff, const std::string& key, std::int64_t want, std::int64_t have) {
  if (want != have) SetKey(diff, key, std::to_string(want), std::to_string(have));
}

// The CPU model is the default key of Proxmox's cpu property ("host,flags=+aes").
std::string CpuType(const VmConfig& observed) {
  auto value = observed.Get("cpu");
  if (!value) return "";
  auto parts = proxmox::ParsePropertyString(*value, "cputype");
  if (!parts.ok()) return *value;
  for (const auto& [key, part] : *parts) {
    if (key == "cputype") return part;
  }
  return "";
}

void DiffScalars(const DesiredVm& desired, const VmConfig& observed, ConfigDiff& diff) {
  if (observed.name() != desired.name) SetKey(diff, "name", desired.name, observed.name());
  DiffInt(diff, "cores", desired.cores, observed.cores().value_or(kDefaultCores));
  DiffInt(diff, "sockets", desired.sockets, observed.sockets().value_or(kDefaultSockets));
  if (!desired.cpu_type.empty() && CpuType(observed) != desired.cpu_type) {
    SetKey(diff, "cpu", desired.cpu_type, CpuType(observed));
  }
  DiffInt(diff, "memory", desired.memory_mib, observed.memory_mib().value_or(kDefaultMemoryMib));
  if (observed.protection() != desired.protection) {
    diff.update.set.SetBool("protection", desired.protection);
    diff.drift.push_back(std::string("protection: ") + (observed.protection() ? "on" : "off") +
                         " -> " + (desired.protection ? "on" : "off"));
  }
}

// The image tag says which image the VM runs; only creation (a rollout) may
// change it, so the diff keeps whatever image tag Proxmox has.
void DiffTags(const DesiredVm& desired, const VmConfig& observed, ConfigDiff& diff) {
  const std::vector<std::string> have = proxmox::NormalizeTags(observed.tags());
  std::vector<std::string> want;
  std::copy_if(desired.tags.begin(), desired.tags.end(), std::back_inserter(want),
               [](const std::string& tag) { return !IsImageTag(tag); });
  std::copy_if(have.begin(), have.end(), std::back_inserter(want), IsImageTag);
  want = proxmox::NormalizeTags(std::move(want));
  if (want == have) return;
  diff.update.set.SetTags(want);
  diff.drift.push_back("tags: " + Shown(proxmox::FormatTags(have)) + " -> " +
                       Shown(proxmox::FormatTags(want)));
}

std::string ShownVlan(const std::optional<int>& tag) {
  return tag ? std::to_string(*tag) : std::string("none");
}

// Changes only what the spec decides; the MAC Proxmox generated, the firewall
// flag and anything else set on the NIC stay as they are.
void DiffNet(int index, const NetConfig& want, const VmConfig& observed, ConfigDiff& diff) {
  const std::string key = "net" + std::to_string(index);
  Result<NetConfig> have = observed.net(index);
  if (!have.ok()) {
    diff.update.set.SetNet(index, want);
    diff.drift.push_back(key + (have.status().code() == Code::kNotFound
                                    ? ": missing"
                                    : ": unreadable (" + have.status().message() + ")"));
    return;
  }
  NetConfig next = *have;
  std::vector<std::string> changes;
  if (have->model != want.model) {
    changes.push_back("model " + have->model + " -> " + want.model);
    next.model = want.model;
  }
  if (have->bridge != want.bridge) {
    changes.push_back("bridge " + Shown(have->bridge) + " -> " + Shown(want.bridge));
    next.bridge = want.bridge;
  }
  if (have->tag != want.tag) {
    changes.push_back("vlan " + ShownVlan(have->tag) + " -> " + ShownVlan(want.tag));
    next.tag = want.tag;
  }
  if (!want.macaddr.empty() && !EqualsIgnoreCase(have->macaddr, want.macaddr)) {
    changes.push_back("mac " + Shown(have->macaddr) + " -> " + want.macaddr);
    next.macaddr = want.macaddr;
  }
  if (changes.empty()) return;
  diff.update.set.SetNet(index, next);
  diff.drift.push_back(key + ": " + Join(changes, ", "));
}

void DiffNets(const DesiredVm& desired, const VmConfig& observed, ConfigDiff& diff) {
  for (std::size_t i = 0; i < desired.nets.size(); ++i) {
    DiffNet(static_cast<int>(i), desired.nets[i], observed, diff);
  }
  for (int index : observed.NetIndexes()) {
    if (static_cast<std::size_t>(index) < desired.nets.size()) continue;
    DeleteKey(diff, "net" + std::to_string(index), "not in the spec, removed");
  }
}

// An existing disk against the spec: grown when smaller, reported otherwise.
void DiffExistingDisk(const DesiredDisk& want, const DiskConfig& have, ConfigDiff& diff) {
  if (have.is_cdrom() || have.is_cloudinit()) {
    diff.unfixable.push_back(want.slot + ": holds a CD-ROM drive where the spec wants a disk");
    return;
  }
  if (have.storage() != want.storage) {
    diff.unfixable.push_back(want.slot + ": on storage " + Shown(have.storage()) +
                             ", the spec says " + want.storage + "; disks are not moved");
  }
  if (!want.size_bytes || !have.size_bytes || *have.size_bytes == *want.size_bytes) return;
  const std::string have_size = proxmox::FormatSize(*have.size_bytes);
  const std::string want_size = proxmox::FormatSize(*want.size_bytes);
  if (*have.size_bytes < *want.size_bytes) {
    diff.resizes.push_back(Resize{want.slot, GiBSize(*want.size_bytes)});
    diff.drift.push_back(want.slot + ": size " + have_size + " -> " + want_size);
  } else {
    diff.unfixable.push_back(want.slot + ": " + have_size + " is larger than the spec's " +
                             want_size + "; disks are never shrunk");
  }
}

void DiffDisk(const DesiredDisk& want, bool is_root, const VmConfig& observed, ConfigDiff& diff) {
  Result<DiskConfig> have = observed.disk(want.slot);
  if (have.ok()) return DiffExistingDisk(want, *have, diff);
  if (have.status().code() != Code::kNotFound) {
    diff.unfixable.push_back(want.slot + ": unreadable (" + have.status().message() + ")");
  } else if (is_root) {
    // Its data may still be there as unusedN; importing a fresh one would hide that.
    diff.unfixable.push_back(want.slot + ": the root disk is missing; recreate the VM");
  } else {
    diff.update.set.Set(want.slot, AllocateValue(want));
    diff.allocates = true;
    diff.drift.push_back(want.slot + ": missing");
  }
}

// Firmware state (EFI vars, TPM) is not a data disk the spec could name.
bool IsFirmwareDisk(std::string_view key) { return key == "efidisk0" || key == "tpmstate0"; }

void ReportUnnamedDisks(const DesiredVm& desired, const VmConfig& observed, ConfigDiff& diff) {
  std::set<std::string, std::less<>> named = {desired.root.slot};
  for (const DesiredDisk& disk : desired.disks) named.insert(disk.slot);
  for (const std::string& key : observed.DiskKeys()) {
    if (named.contains(key) || IsFirmwareDisk(key)) continue;
    Result<DiskConfig> disk = observed.disk(key);
    if (disk.ok() && (disk->is_cdrom() || disk->is_cloudinit())) continue;
    diff.unfixable.push_back(key + ": not in the spec; left in place");
  }
}

void DiffDisks(const DesiredVm& desired, const VmConfig& observed, ConfigDiff& diff) {
  DiffDisk(desired.root, /*is_root=*/true, observed, diff);
  for (const DesiredDisk& disk : desired.disks) DiffDisk(disk, /*is_root=*/false, observed, diff);
  ReportUnnamedDisks(desired, observed, diff);
}

// A key that is deleted when the spec leaves it empty, else set when it differs
// (by `same`, which defaults to equal text).
void DiffOptionalKey(
    ConfigDiff& diff, const VmConfig& observed, const std::string& key, const std::string& want,
    const std::function<bool(const std::string&, const std::string&)>& same = std::equal_to<>()) {
  const std::optional<std::string> have = observed.Get(key);
  if (want.empty()) {
    if (have) DeleteKey(diff, key, Unsetting(*have));
  } else if (!have || !same(*have, want)) {
    SetKey(diff, key, want, have.value_or(""));
  }
}

bool SameIpConfig(const std::string& a, const std::string& b) {
  auto pa = proxmox::ParsePropertyString(a, "");
  auto pb = proxmox::ParsePropertyString(b, "");
  if (!pa.ok() || !pb.ok()) return a == b;
  std::sort(pa->begin(), pa->end());
  std::sort(pb->begin(), pb->end());
  return *pa == *pb;
}

bool SameNameservers(const std::string& a, const std::string& b) {
  return Split(a, " ,;") == Split(b, " ,;");
}

// SSH keys compare line by line; Proxmox may keep a trailing newline.
std::vector<std::string> KeyLines(std::string_view keys) {
  std::vector<std::string> lines = Split(keys, "\r\n");
  std::erase_if(lines, [](const std::string& line) {
    return std::all_of(line.begin(), line.end(),
                       [](char c) { return std::isspace(static_cast<unsigned char>(c)) != 0; });
  });
  return lines;
}

void DiffSshKeys(const api::CloudInit& ci, const VmConfig& observed, ConfigDiff& diff) {
  const std::optional<std::string> have = observed.sshkeys();
  if (KeyLines(have.value_or("")) == ci.ssh_keys) return;
  if (ci.ssh_keys.empty()) {
    DeleteKey(diff, "sshkeys", "removed");
    return;
  }
  diff.update.set.SetSshKeys(SshKeysValue(ci));
  diff.drift.push_back("sshkeys: " + std::to_string(KeyLines(have.value_or("")).size()) +
                       " key(s) -> " + std::to_string(ci.ssh_keys.size()) + " key(s)");
}

void DiffIpConfigs(const api::CloudInit& ci, const VmConfig& observed, ConfigDiff& diff) {
  for (std::size_t i = 0; i < ci.ip_config.size(); ++i) {
    DiffOptionalKey(diff, observed, "ipconfig" + std::to_string(i), IpConfigValue(ci.ip_config[i]),
                    SameIpConfig);
  }
  for (const auto& [key, value] : observed.entries()) {
    const std::optional<std::size_t> index = KeyIndex(key, "ipconfig");
    if (index && *index >= ci.ip_config.size()) DeleteKey(diff, key, Unsetting(value));
  }
}

// The drive cloud-init reads its settings from; added when none is there.
void DiffCloudInitDrive(const DesiredVm& desired, const VmConfig& observed, ConfigDiff& diff) {
  for (const std::string& key : observed.DiskKeys()) {
    Result<DiskConfig> disk = observed.disk(key);
    if (disk.ok() && disk->is_cloudinit()) return;
  }
  if (observed.Has(kCloudInitSlot)) {
    diff.unfixable.push_back(std::string(kCloudInitSlot) +
                             ": in use, so there is no place for the cloud-init drive");
    return;
  }
  diff.update.set.Set(kCloudInitSlot, CloudInitDriveValue(desired));
  diff.allocates = true;
  diff.drift.push_back(std::string(kCloudInitSlot) + ": cloud-init drive missing");
}

void DiffCloudInit(const DesiredVm& desired, const VmConfig& observed, ConfigDiff& diff) {
  if (!desired.cloud_init) return;
  const api::CloudInit& ci = *desired.cloud_init;
  DiffCloudInitDrive(desired, observed, diff);
  DiffOptionalKey(diff, observed, "ciuser", ci.user);
  DiffSshKeys(ci, observed, diff);
  DiffIpConfigs(ci, observed, diff);
  DiffOptionalKey(diff, observed, "nameserver", NameserverValue(ci), SameNameservers);
  DiffOptionalKey(diff, observed, "searchdomain", ci.search_domain);
}

// Keys Diff sets or deletes.
bool IsManagedKey(std::string_view key) {
  static const std::set<std::string, std::less<>> kPlain = {
      "name",       "cores",  "sockets", "cpu",        "memory",      "tags",
      "protection", "ciuser", "sshkeys", "nameserver", "searchdomain"};
  if (kPlain.contains(key)) return true;
  for (std::string_view prefix : {"net", "ipconfig", "scsi", "virtio", "sata", "ide"}) {
    if (KeyIndex(key, prefix)) return true;
  }
  return false;
}

}  // namespace

std::string ImageTag(std::string_view store_path) {
  if (store_path.empty()) return "";
  std::string_view base = store_path.substr(store_path.rfind('/') + 1);
  std::string_view hash = base.substr(0, base.find('-'));
  return kImageTagPrefix + std::string(hash.substr(0, 16));
}

DesiredVm Desire(const PlanInputs& inputs) {
  const api::ProxmoxVmSpec& spec = inputs.vm->spec;
  const api::ProxmoxClusterSpec& cluster = *inputs.cluster;
  DesiredVm desired;
  desired.name = MetadataString(inputs.vm->metadata, "name");
  desired.cores = spec.cpu.cores;
  desired.sockets = spec.cpu.sockets;
  desired.cpu_type = spec.cpu.type;
  desired.memory_mib = spec.memory_mib;
  for (const api::NetworkInterface& nic : api::EffectiveNetworks(spec)) {
    desired.nets.push_back(DesiredNet(nic));
  }
  desired.root.slot = spec.root_disk.slot;
  desired.root.storage = api::RootDiskStorage(spec, cluster);
  if (spec.root_disk.size_gib) {
    desired.root.size_bytes = static_cast<std::uint64_t>(*spec.root_disk.size_gib) * kGiB;
  }
  desired.import_from = inputs.image_volume;
  for (const api::ExtraDisk& disk : spec.disks) {
    desired.disks.push_back(DesiredDisk{disk.slot, api::DiskStorage(disk, cluster),
                                        static_cast<std::uint64_t>(disk.size_gib) * kGiB});
  }
  desired.cloud_init = spec.cloud_init;
  std::vector<std::string> tags = spec.tags;
  tags.push_back(UidTag(MetadataString(inputs.vm->metadata, "uid")));
  if (!inputs.image_store_path.empty()) tags.push_back(ImageTag(inputs.image_store_path));
  desired.tags = proxmox::NormalizeTags(std::move(tags));
  desired.protection = spec.protection;
  return desired;
}

proxmox::Params CreateParams(const DesiredVm& desired) {
  Params params;
  params.Set("name", desired.name);
  params.SetInt("cores", desired.cores);
  params.SetInt("sockets", desired.sockets);
  if (!desired.cpu_type.empty()) params.Set("cpu", desired.cpu_type);
  params.SetInt("memory", desired.memory_mib);
  params.Set("scsihw", "virtio-scsi-single");
  // Imported at the image's own size; a larger root disk is a resize after.
  DiskConfig root = NewDisk(desired.root.slot, desired.root.storage + ":0");
  root.import_from = desired.import_from;
  params.SetDisk(desired.root.slot, root);
  for (const DesiredDisk& disk : desired.disks) params.Set(disk.slot, AllocateValue(disk));
  params.Set("boot", "order=" + desired.root.slot);
  params.Set("agent", "enabled=1");
  // NixOS images log to the serial console; it is also what `qm terminal` shows.
  params.Set("serial0", "socket");
  params.Set("vga", "serial0");
  params.Set("ostype", "l26");
  for (std::size_t i = 0; i < desired.nets.size(); ++i) {
    params.SetNet(static_cast<int>(i), desired.nets[i]);
  }
  if (desired.cloud_init) SetCloudInit(desired, params);
  params.SetTags(desired.tags);
  if (desired.protection) params.SetBool("protection", true);
  return params;
}

ConfigDiff Diff(const DesiredVm& desired, const proxmox::VmConfig& observed) {
  ConfigDiff diff;
  diff.update.digest = observed.digest();
  DiffScalars(desired, observed, diff);
  DiffTags(desired, observed, diff);
  DiffNets(desired, observed, diff);
  DiffDisks(desired, observed, diff);
  DiffCloudInit(desired, observed, diff);
  return diff;
}

std::vector<std::string> KeysAwaitingRestart(const std::vector<proxmox::PendingEntry>& pending) {
  std::vector<std::string> keys;
  for (const proxmox::PendingEntry& entry : pending) {
    if (entry.waiting() && IsManagedKey(entry.key)) keys.push_back(entry.key);
  }
  return keys;
}

}  // namespace nixmox::controllers
