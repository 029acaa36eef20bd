#include "src/proxmox/json_parse.h"

#include <charconv>
#include <cmath>

namespace nixmox::proxmox::internal {
namespace {

using nlohmann::json;

const json& Field(const json& obj, std::string_view key) {
  static const json kNull;
  if (!obj.is_object()) return kNull;
  auto it = obj.find(key);
  return it == obj.end() ? kNull : *it;
}

std::uint64_t UintField(const json& obj, std::string_view key) {
  const std::int64_t v = IntField(obj, key, 0);
  return v < 0 ? 0 : static_cast<std::uint64_t>(v);
}

Status WrongShape(std::string_view what) {
  return InternalError("unexpected Proxmox response shape for " + std::string(what));
}

}  // namespace

std::optional<std::int64_t> LenientInt(const json& v) {
  if (v.is_number_integer()) return v.get<std::int64_t>();
  if (v.is_number_unsigned()) return static_cast<std::int64_t>(v.get<std::uint64_t>());
  if (v.is_number_float()) {
    const double d = v.get<double>();
    if (!std::isfinite(d)) return std::nullopt;
    return static_cast<std::int64_t>(d);
  }
  if (v.is_boolean()) return v.get<bool>() ? 1 : 0;
  if (v.is_string()) {
    const std::string& s = v.get_ref<const std::string&>();
    std::int64_t out = 0;
    const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
    if (ec == std::errc() && end == s.data() + s.size()) return out;
    // "12.0" and friends.
    if (auto d = LenientDouble(v)) return static_cast<std::int64_t>(*d);
  }
  return std::nullopt;
}

std::optional<double> LenientDouble(const json& v) {
  if (v.is_number()) return v.get<double>();
  if (v.is_boolean()) return v.get<bool>() ? 1.0 : 0.0;
  if (v.is_string()) {
    const std::string& s = v.get_ref<const std::string&>();
    double out = 0;
    const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
    if (ec == std::errc() && end == s.data() + s.size() && std::isfinite(out)) return out;
  }
  return std::nullopt;
}

std::optional<bool> LenientBool(const json& v) {
  if (v.is_boolean()) return v.get<bool>();
  if (v.is_number()) return v.get<double>() != 0;
  if (v.is_string()) {
    const std::string& s = v.get_ref<const std::string&>();
    if (s.empty()) return false;
    return ParsePveBool(s);
  }
  return std::nullopt;
}

std::string LenientString(const json& v) {
  if (v.is_string()) return v.get<std::string>();
  if (v.is_null()) return "";
  if (v.is_boolean()) return v.get<bool>() ? "1" : "0";
  if (v.is_number_integer()) return std::to_string(v.get<std::int64_t>());
  if (v.is_number_unsigned()) return std::to_string(v.get<std::uint64_t>());
  return v.dump();
}

std::int64_t IntField(const json& obj, std::string_view key, std::int64_t fallback) {
  return LenientInt(Field(obj, key)).value_or(fallback);
}

double DoubleField(const json& obj, std::string_view key, double fallback) {
  return LenientDouble(Field(obj, key)).value_or(fallback);
}

bool BoolField(const json& obj, std::string_view key, bool fallback) {
  return LenientBool(Field(obj, key)).value_or(fallback);
}

std::string StringField(const json& obj, std::string_view key) {
  return LenientString(Field(obj, key));
}

Result<VersionInfo> ParseVersion(const json& data) {
  if (!data.is_object()) return WrongShape("version");
  return VersionInfo{StringField(data, "version"), StringField(data, "release"),
                     StringField(data, "repoid")};
}

Result<std::vector<NodeInfo>> ParseNodes(const json& data) {
  if (!data.is_array()) return WrongShape("nodes");
  std::vector<NodeInfo> out;
  for (const auto& n : data) {
    if (!n.is_object()) return WrongShape("nodes");
    NodeInfo info;
    info.node = StringField(n, "node");
    info.status = StringField(n, "status");
    info.cpu = DoubleField(n, "cpu");
    info.maxcpu = IntField(n, "maxcpu");
    info.mem = UintField(n, "mem");
    info.maxmem = UintField(n, "maxmem");
    info.disk = UintField(n, "disk");
    info.maxdisk = UintField(n, "maxdisk");
    info.uptime = IntField(n, "uptime");
    out.push_back(std::move(info));
  }
  return out;
}

Result<NodeStatus> ParseNodeStatus(const json& data) {
  if (!data.is_object()) return WrongShape("node status");
  NodeStatus s;
  s.uptime = IntField(data, "uptime");
  s.cpu = DoubleField(data, "cpu");
  const json& load = Field(data, "loadavg");
  if (load.is_array()) {
    for (const auto& l : load) s.loadavg.push_back(LenientDouble(l).value_or(0));
  }
  const json& memory = Field(data, "memory");
  s.memory_total = UintField(memory, "total");
  s.memory_used = UintField(memory, "used");
  s.memory_free = UintField(memory, "free");
  const json& rootfs = Field(data, "rootfs");
  s.rootfs_total = UintField(rootfs, "total");
  s.rootfs_used = UintField(rootfs, "used");
  const json& cpuinfo = Field(data, "cpuinfo");
  s.cpus = IntField(cpuinfo, "cpus");
  s.cores = IntField(cpuinfo, "cores");
  s.sockets = IntField(cpuinfo, "sockets");
  s.cpu_model = StringField(cpuinfo, "model");
  s.pveversion = StringField(data, "pveversion");
  s.kversion = StringField(data, "kversion");
  return s;
}

Result<std::vector<ClusterResource>> ParseClusterResources(const json& data) {
  if (!data.is_array()) return WrongShape("cluster resources");
  std::vector<ClusterResource> out;
  for (const auto& r : data) {
    if (!r.is_object()) return WrongShape("cluster resources");
    ClusterResource c;
    c.id = StringField(r, "id");
    c.type = StringField(r, "type");
    c.node = StringField(r, "node");
    c.status = StringField(r, "status");
    if (auto vmid = LenientInt(Field(r, "vmid"))) c.vmid = static_cast<int>(*vmid);
    c.name = StringField(r, "name");
    c.is_template = BoolField(r, "template");
    c.lock = StringField(r, "lock");
    c.tags = ParseTags(StringField(r, "tags"));
    c.pool = StringField(r, "pool");
    c.hastate = StringField(r, "hastate");
    c.cpu = DoubleField(r, "cpu");
    c.maxcpu = DoubleField(r, "maxcpu");
    c.mem = UintField(r, "mem");
    c.maxmem = UintField(r, "maxmem");
    c.disk = UintField(r, "disk");
    c.maxdisk = UintField(r, "maxdisk");
    c.uptime = IntField(r, "uptime");
    c.storage = StringField(r, "storage");
    c.plugintype = StringField(r, "plugintype");
    c.shared = BoolField(r, "shared");
    c.content = StringField(r, "content");
    out.push_back(std::move(c));
  }
  return out;
}

Result<std::vector<VmSummary>> ParseVmList(const json& data) {
  if (!data.is_array()) return WrongShape("VM list");
  std::vector<VmSummary> out;
  for (const auto& v : data) {
    if (!v.is_object()) return WrongShape("VM list");
    VmSummary s;
    s.vmid = static_cast<int>(IntField(v, "vmid"));
    s.name = StringField(v, "name");
    s.status = StringField(v, "status");
    s.lock = StringField(v, "lock");
    s.tags = ParseTags(StringField(v, "tags"));
    s.is_template = BoolField(v, "template");
    s.cpus = DoubleField(v, "cpus");
    s.maxmem = UintField(v, "maxmem");
    s.maxdisk = UintField(v, "maxdisk");
    s.mem = UintField(v, "mem");
    s.uptime = IntField(v, "uptime");
    out.push_back(std::move(s));
  }
  return out;
}

Result<VmConfig> ParseVmConfig(const json& data) {
  if (!data.is_object()) return WrongShape("VM config");
  PropertyList entries;
  std::string digest;
  for (const auto& [key, value] : data.items()) {
    if (key == "digest") {
      digest = LenientString(value);
      continue;
    }
    entries.emplace_back(key, LenientString(value));
  }
  return VmConfig(std::move(entries), std::move(digest));
}

Result<std::vector<PendingEntry>> ParseVmPending(const json& data) {
  if (!data.is_array()) return WrongShape("VM pending list");
  std::vector<PendingEntry> out;
  for (const json& item : data) {
    if (!item.is_object()) continue;
    PendingEntry e;
    e.key = StringField(item, "key");
    if (item.contains("value")) e.value = LenientString(item["value"]);
    if (item.contains("pending")) e.pending = LenientString(item["pending"]);
    e.pending_delete = LenientInt(Field(item, "delete")).value_or(0) != 0;
    out.push_back(std::move(e));
  }
  return out;
}

Result<VmStatus> ParseVmStatus(const json& data) {
  if (!data.is_object()) return WrongShape("VM status");
  VmStatus s;
  s.status = StringField(data, "status");
  s.qmpstatus = StringField(data, "qmpstatus");
  s.name = StringField(data, "name");
  s.lock = StringField(data, "lock");
  s.tags = ParseTags(StringField(data, "tags"));
  s.is_template = BoolField(data, "template");
  s.agent = BoolField(data, "agent");
  s.ha_managed = BoolField(Field(data, "ha"), "managed");
  s.uptime = IntField(data, "uptime");
  if (auto pid = LenientInt(Field(data, "pid"))) s.pid = *pid;
  s.cpus = DoubleField(data, "cpus");
  s.maxmem = UintField(data, "maxmem");
  s.mem = UintField(data, "mem");
  s.maxdisk = UintField(data, "maxdisk");
  return s;
}

Result<TaskStatus> ParseTaskStatus(const json& data, const Upid& upid) {
  if (!data.is_object()) return WrongShape("task status");
  TaskStatus t;
  t.upid = upid;
  t.status = StringField(data, "status");
  t.exitstatus = StringField(data, "exitstatus");
  t.type = StringField(data, "type");
  t.id = StringField(data, "id");
  t.user = StringField(data, "user");
  t.node = StringField(data, "node");
  if (t.type.empty()) t.type = upid.type;
  if (t.node.empty()) t.node = upid.node;
  if (t.status.empty()) return WrongShape("task status (no status)");
  return t;
}

Result<std::vector<TaskLogLine>> ParseTaskLog(const json& data) {
  if (!data.is_array()) return WrongShape("task log");
  std::vector<TaskLogLine> out;
  for (const auto& l : data) {
    out.push_back({static_cast<int>(IntField(l, "n")), StringField(l, "t")});
  }
  return out;
}

Result<std::vector<StorageContent>> ParseStorageContent(const json& data) {
  if (!data.is_array()) return WrongShape("storage content");
  std::vector<StorageContent> out;
  for (const auto& v : data) {
    if (!v.is_object()) return WrongShape("storage content");
    StorageContent c;
    c.volid = StringField(v, "volid");
    c.content = StringField(v, "content");
    c.format = StringField(v, "format");
    c.size = UintField(v, "size");
    c.used = UintField(v, "used");
    if (auto vmid = LenientInt(Field(v, "vmid"))) c.vmid = static_cast<int>(*vmid);
    c.ctime = IntField(v, "ctime");
    c.notes = StringField(v, "notes");
    c.is_protected = BoolField(v, "protected");
    out.push_back(std::move(c));
  }
  return out;
}

Result<std::vector<GuestInterface>> ParseGuestInterfaces(const json& data) {
  const json& result = Field(data, "result");
  if (result.is_object()) {
    const json& error = Field(result, "error");
    if (error.is_object()) {
      // The guest agent answered with its own error; the guest is not ready for us yet.
      return RetryableError("guest agent error: " + StringField(error, "class") + ": " +
                            StringField(error, "desc"));
    }
  }
  if (!result.is_array()) return WrongShape("guest network interfaces");
  std::vector<GuestInterface> out;
  for (const auto& i : result) {
    if (!i.is_object()) return WrongShape("guest network interfaces");
    GuestInterface gi;
    gi.name = StringField(i, "name");
    gi.hardware_address = StringField(i, "hardware-address");
    const json& addrs = Field(i, "ip-addresses");
    if (addrs.is_array()) {
      for (const auto& a : addrs) {
        gi.ip_addresses.push_back({StringField(a, "ip-address"), StringField(a, "ip-address-type"),
                                   static_cast<int>(IntField(a, "prefix"))});
      }
    }
    out.push_back(std::move(gi));
  }
  return out;
}

}  // namespace nixmox::proxmox::internal
