// The data the Proxmox client returns and takes, as plain values.
//
// Proxmox is loose with JSON types (numbers as strings, booleans as 0/1/"");
// the client parses leniently into these types so callers never see that.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "src/common/status.h"
#include "src/proxmox/property_string.h"
#include "src/proxmox/upid.h"

namespace nixmox::proxmox {

struct VersionInfo {
  std::string version;  // "8.4.1"
  std::string release;  // "8.4"
  std::string repoid;
};

// An entry of GET /nodes.
struct NodeInfo {
  std::string node;
  std::string status;  // online, offline, unknown
  double cpu = 0;      // fraction 0..1
  std::int64_t maxcpu = 0;
  std::uint64_t mem = 0;
  std::uint64_t maxmem = 0;
  std::uint64_t disk = 0;
  std::uint64_t maxdisk = 0;
  std::int64_t uptime = 0;
  bool online() const { return status == "online"; }
};

// GET /nodes/{node}/status (the parts placement and status reporting use).
struct NodeStatus {
  std::int64_t uptime = 0;
  double cpu = 0;
  std::vector<double> loadavg;
  std::uint64_t memory_total = 0;
  std::uint64_t memory_used = 0;
  std::uint64_t memory_free = 0;
  std::uint64_t rootfs_total = 0;
  std::uint64_t rootfs_used = 0;
  std::int64_t cpus = 0;
  std::int64_t cores = 0;
  std::int64_t sockets = 0;
  std::string cpu_model;
  std::string pveversion;  // "pve-manager/8.4.1/..."
  std::string kversion;
};

// One entry of GET /cluster/resources. Which fields are set depends on `type`.
struct ClusterResource {
  std::string id;    // "qemu/100", "node/pve1", "storage/pve1/local"
  std::string type;  // qemu, lxc, node, storage, pool, sdn
  std::string node;
  std::string status;  // running, stopped, unknown (VMs); online (nodes); available (storage)
  // VMs
  std::optional<int> vmid;
  std::string name;
  bool is_template = false;
  std::string lock;
  std::vector<std::string> tags;
  std::string pool;
  std::string hastate;
  // VMs and nodes
  double cpu = 0;
  double maxcpu = 0;
  std::uint64_t mem = 0;
  std::uint64_t maxmem = 0;
  std::uint64_t disk = 0;
  std::uint64_t maxdisk = 0;
  std::int64_t uptime = 0;
  // Storage
  std::string storage;
  std::string plugintype;  // dir, lvmthin, zfspool, nfs, rbd, ...
  bool shared = false;
  std::string content;  // "images,rootdir,iso"
};

enum class ResourceType { kAll, kVm, kNode, kStorage };

// An entry of GET /nodes/{node}/qemu.
struct VmSummary {
  int vmid = 0;
  std::string name;
  std::string status;  // running, stopped
  std::string lock;
  std::vector<std::string> tags;
  bool is_template = false;
  double cpus = 0;
  std::uint64_t maxmem = 0;
  std::uint64_t maxdisk = 0;
  std::uint64_t mem = 0;
  std::int64_t uptime = 0;
};

// GET /nodes/{node}/qemu/{vmid}/status/current.
struct VmStatus {
  std::string status;     // running, stopped: whether the QEMU process exists
  std::string qmpstatus;  // running, paused, prelaunch, ...
  std::string name;
  std::string lock;  // set exactly while the config has a lock
  std::vector<std::string> tags;
  bool is_template = false;
  bool agent = false;  // guest agent enabled in the config
  bool ha_managed = false;
  std::int64_t uptime = 0;
  std::optional<std::int64_t> pid;
  double cpus = 0;
  std::uint64_t maxmem = 0;
  std::uint64_t mem = 0;
  std::uint64_t maxdisk = 0;
  bool running() const { return status == "running"; }
};

// Ordered key/value pairs sent as request parameters. Values are sent as
// given; the typed setters write what Proxmox's parser expects.
class Params {
 public:
  Params& Set(std::string key, std::string value);
  Params& SetInt(std::string key, std::int64_t value);
  Params& SetBool(std::string key, bool value);  // "1" / "0": Proxmox rejects true/false
  // Cloud-init keys must reach Proxmox percent-encoded (and then form-encoded
  // again); this does the first encoding. `keys` are OpenSSH public keys, one a line.
  Params& SetSshKeys(std::string_view keys);
  Params& SetTags(const std::vector<std::string>& tags);
  Params& SetNet(int index, const NetConfig& net);
  Params& SetDisk(std::string key, const DiskConfig& disk);

  std::optional<std::string> Get(std::string_view key) const;
  bool empty() const { return entries_.empty(); }
  const PropertyList& entries() const { return entries_; }

 private:
  PropertyList entries_;
};

// A VM's configuration as Proxmox returns it: values as strings (numbers in
// decimal, booleans as 1/0), keys sorted by name (the order of Proxmox's JSON
// carries no meaning), plus the digest to send back with an update so that a
// concurrent edit is detected instead of overwritten.
class VmConfig {
 public:
  VmConfig() = default;
  VmConfig(PropertyList entries, std::string digest)
      : entries_(std::move(entries)), digest_(std::move(digest)) {}

  std::optional<std::string> Get(std::string_view key) const;
  bool Has(std::string_view key) const { return Get(key).has_value(); }
  const PropertyList& entries() const { return entries_; }
  const std::string& digest() const { return digest_; }

  // Typed accessors: nullopt / empty when the key is absent or unparseable.
  std::optional<std::int64_t> GetInt(std::string_view key) const;
  std::optional<bool> GetBool(std::string_view key) const;
  std::string name() const;
  std::optional<std::int64_t> memory_mib() const;  // "2048" or "current=2048"
  std::optional<std::int64_t> cores() const { return GetInt("cores"); }
  std::optional<std::int64_t> sockets() const { return GetInt("sockets"); }
  std::vector<std::string> tags() const;
  std::string lock() const;
  bool protection() const { return GetBool("protection").value_or(false); }
  bool is_template() const { return GetBool("template").value_or(false); }
  // Decoded sshkeys (Proxmox stores them percent-encoded).
  std::optional<std::string> sshkeys() const;

  // NotFound when netN is absent, Invalid when it does not parse.
  Result<NetConfig> net(int index) const;
  // netN keys present, ascending by N.
  std::vector<int> NetIndexes() const;
  // Disk keys present (scsiN, virtioN, sataN, ideN, efidisk0, tpmstate0), in config order.
  std::vector<std::string> DiskKeys() const;
  Result<DiskConfig> disk(std::string_view key) const;

 private:
  PropertyList entries_;
  std::string digest_;
};

// A change to a VM's configuration.
struct ConfigUpdate {
  Params set;
  std::vector<std::string> delete_keys;  // sent as delete=a,b
  std::string digest;                    // when set, Proxmox refuses if the config changed
};

// One entry of GET /nodes/{node}/qemu/{vmid}/pending: a config key with its
// current value and the value (or deletion) waiting for the next restart.
struct PendingEntry {
  std::string key;
  std::optional<std::string> value;    // current; absent for a key only pending
  std::optional<std::string> pending;  // the value after a restart
  bool pending_delete = false;         // the key goes away on restart
  // A change Proxmox holds back until the VM restarts.
  bool waiting() const { return pending.has_value() || pending_delete; }
};

struct TaskStatus {
  Upid upid;
  std::string status;      // running, stopped
  std::string exitstatus;  // when stopped: "OK", "WARNINGS: n" or the error text
  std::string type;
  std::string id;
  std::string user;
  std::string node;
  bool running() const { return status == "running"; }
  // Stopped with OK or warnings.
  bool succeeded() const;
};

struct TaskLogLine {
  int n = 0;
  std::string text;
};

struct StorageContent {
  std::string volid;    // "local:import/nixos-abc.qcow2"
  std::string content;  // images, iso, import, ...
  std::string format;   // raw, qcow2, iso, ...
  std::uint64_t size = 0;
  std::uint64_t used = 0;
  std::optional<int> vmid;
  std::int64_t ctime = 0;
  std::string notes;
  bool is_protected = false;
};

struct GuestIpAddress {
  std::string address;
  std::string type;  // ipv4, ipv6
  int prefix = 0;
};

struct GuestInterface {
  std::string name;
  std::string hardware_address;  // lower-case as the agent reports it
  std::vector<GuestIpAddress> ip_addresses;
};

}  // namespace nixmox::proxmox
