// Proxmox property strings, tags and sizes, parsed into types and printed back.
//
// A property string is what Proxmox keeps in one config value:
//   net0:  "virtio=BC:24:11:2A:3B:4C,bridge=vmbr0,firewall=1,tag=10"
//   scsi0: "local-lvm:vm-100-disk-0,iothread=1,size=32G"
// Comma-separated key=value parts; one part may omit its key (the format's
// default key: the model for net, the volume for disks). Printing follows
// Proxmox: the default-key part first, then the other keys sorted, so a value
// we print compares equal to the one Proxmox stores after a config set.
// All functions are pure and thread-safe.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "src/common/status.h"

namespace nixmox::proxmox {

// Ordered key/value pairs.
using PropertyList = std::vector<std::pair<std::string, std::string>>;

// Splits "a,k=v,..." into pairs; a part without '=' gets `default_key`.
// Invalid on a repeated key or on two parts without a key.
Result<PropertyList> ParsePropertyString(std::string_view text, std::string_view default_key);

// Sizes as Proxmox writes them: an optional fraction and a binary unit K, M, G
// or T ("10G", "512M", "1.5T"); no unit means bytes. Invalid otherwise.
Result<std::uint64_t> ParseSize(std::string_view text);
// The largest unit that represents `bytes` exactly: 10737418240 -> "10G", 1000 -> "1000".
std::string FormatSize(std::uint64_t bytes);

// Proxmox booleans in property strings: 1/0, yes/no, on/off, true/false.
std::optional<bool> ParsePveBool(std::string_view text);

// A network device, netN.
struct NetConfig {
  std::string model = "virtio";  // virtio, e1000, vmxnet3, ...
  std::string macaddr;           // empty: Proxmox generates one
  std::string bridge;            // empty: user-mode networking
  std::optional<int> tag;        // VLAN 1..4094
  std::optional<bool> firewall;
  std::optional<bool> link_down;
  std::optional<int> mtu;
  std::optional<int> queues;
  std::optional<double> rate;  // MB/s
  std::string trunks;          // "10;20-30"
  PropertyList extra;          // keys this type does not know, kept as they came

  bool operator==(const NetConfig&) const = default;
};

Result<NetConfig> ParseNetConfig(std::string_view text);
// "virtio=MAC,bridge=...,..." or "virtio,bridge=..." when no MAC is set.
std::string FormatNetConfig(const NetConfig& net);

// A disk or CD drive: scsiN, virtioN, sataN, ideN, efidisk0, tpmstate0.
struct DiskConfig {
  // The volume: "local-lvm:vm-100-disk-0" (existing), "local-lvm:32" (allocate
  // 32 GiB), "local-lvm:0" with import_from, "local:iso/x.iso", or "none".
  std::string file;
  std::optional<std::uint64_t> size_bytes;
  std::string media;        // "cdrom" or empty
  std::string import_from;  // volume id or absolute path to import from on create
  std::string format;       // raw, qcow2, vmdk
  std::string cache;
  std::string discard;  // "on", "ignore"
  std::optional<bool> iothread;
  std::optional<bool> ssd;
  std::optional<bool> backup;
  PropertyList extra;

  // The storage id before ':' in `file` ("local-lvm"), or empty.
  std::string storage() const;
  // The volume name after ':' in `file` ("vm-100-disk-0"), or empty.
  std::string volume_name() const;
  bool is_cdrom() const { return media == "cdrom"; }
  bool is_cloudinit() const;

  bool operator==(const DiskConfig&) const = default;
};

Result<DiskConfig> ParseDiskConfig(std::string_view text);
std::string FormatDiskConfig(const DiskConfig& disk);

// Tags: "a;b;c" (Proxmox also accepts ',' and spaces as separators).
std::vector<std::string> ParseTags(std::string_view text);
// Joined with ';' in the given order.
std::string FormatTags(const std::vector<std::string>& tags);
// What Proxmox stores after an update: lower-cased, de-duplicated, sorted.
// Compare tag lists through this.
std::vector<std::string> NormalizeTags(std::vector<std::string> tags);
// A tag Proxmox accepts: [a-z0-9_][a-z0-9_+.-]* (case-insensitive).
bool IsValidTag(std::string_view tag);

}  // namespace nixmox::proxmox
