// pve-sim: API handlers.
#include "test/sim/pve/sim_internal.h"

namespace nixmox::pvesim {

// ---------------------------------------------------------------------------
// Cluster and node handlers.

Reply PveSim::Impl::GetVersion(Ctx&) {
  return Ok({{"version", kVersion}, {"release", "8.4"}, {"repoid", kRepoId}});
}

Reply PveSim::Impl::GetNodes(Ctx&) {
  json out = json::array();
  for (const Node& n : nodes_) out.push_back(NodeEntry(n));
  return Ok(out);
}

Reply PveSim::Impl::GetNodeStatus(Ctx& c) {
  const Node& n = *FindNode(c.params["node"]);
  const json e = NodeEntry(n);
  const uint64_t mem = e["mem"], maxdisk = e["maxdisk"], disk = e["disk"];
  return Ok(
      {{"uptime", e["uptime"]},
       {"loadavg", {"0.12", "0.10", "0.08"}},
       {"kversion", "Linux 6.8.12-9-pve #1 SMP PREEMPT_DYNAMIC PMX 6.8.12-9"},
       {"current-kernel",
        {{"sysname", "Linux"},
         {"release", "6.8.12-9-pve"},
         {"machine", "x86_64"},
         {"version", "#1 SMP PREEMPT_DYNAMIC PMX 6.8.12-9"}}},
       {"boot-info", {{"mode", "efi"}, {"secureboot", 0}}},
       {"cpuinfo",
        {{"model", "pve-sim virtual CPU"},
         {"cores", n.maxcpu / 2},
         {"cpus", n.maxcpu},
         {"sockets", 1},
         {"mhz", "2999.998"},
         {"hvm", "1"},
         {"user_hz", 100},
         {"flags", "fpu vme de pse tsc msr pae mce cx8 apic sep mtrr"}}},
       {"cpu", e["cpu"]},
       {"wait", 0.0},
       {"memory", {{"total", n.maxmem}, {"used", mem}, {"free", n.maxmem - mem}}},
       {"swap", {{"total", 8 * kGiB}, {"used", 0}, {"free", 8 * kGiB}}},
       {"ksm", {{"shared", 0}}},
       {"rootfs",
        {{"total", maxdisk}, {"used", disk}, {"free", maxdisk - disk}, {"avail", maxdisk - disk}}},
       {"pveversion", std::string("pve-manager/") + kVersion + "/" + kRepoId}});
}

Reply PveSim::Impl::GetClusterResources(Ctx& c) {
  const std::string type = c.params.count("type") ? c.params["type"] : "";
  json out = json::array();
  if (type.empty() || type == "vm") {
    for (const auto& [id, vm] : vms_) {
      json e = VmEntry(vm, false);
      e["id"] = "qemu/" + std::to_string(id);
      e["type"] = "qemu";
      e["node"] = vm.node;
      const int64_t lag = Scaled(opt_.resources_lag);
      if (lag > 0) {
        const int64_t now = Now();
        if (now - vm.created_ms < lag) {
          e["status"] = "unknown";
        } else if (now - vm.running_changed_ms < lag) {
          e["status"] = vm.running ? "stopped" : "running";  // the previous broadcast
        }
      }
      e["maxcpu"] = e["cpus"];
      e.erase("cpus");
      e.erase("pid");
      e["template"] = e.value("template", 0);
      out.push_back(e);
    }
  }
  if (type.empty() || type == "node") {
    for (const Node& n : nodes_) {
      json e = NodeEntry(n);
      e["cgroup-mode"] = 2;
      out.push_back(e);
    }
  }
  if (type.empty() || type == "storage") {
    for (const Node& n : nodes_)
      for (const auto& [name, st] : n.storages) out.push_back(StorageEntry(n, st));
  }
  return Ok(out);
}

Reply PveSim::Impl::GetNextId(Ctx& c) {
  if (c.params.count("vmid")) {
    const int vmid = std::stoi(c.params["vmid"]);
    if (vms_.count(vmid))
      return ParamFail("vmid", "VM " + std::to_string(vmid) + " already exists");
    return Ok(std::to_string(vmid));
  }
  for (int id = 100; id < 1000000; ++id)
    if (!vms_.count(id)) return Ok(std::to_string(id));
  return Fail(500, "unable to get any free VMID in range [100, 1000000)");
}

Reply PveSim::Impl::GetClusterStatus(Ctx&) {
  json out = json::array();
  // A single node is a standalone host: no cluster entry, like PVE without corosync.
  if (nodes_.size() > 1) {
    out.push_back({{"type", "cluster"},
                   {"id", "cluster"},
                   {"name", "pve-sim"},
                   {"nodes", nodes_.size()},
                   {"quorate", 1},
                   {"version", nodes_.size()}});
  }
  for (size_t i = 0; i < nodes_.size(); ++i) {
    out.push_back({{"type", "node"},
                   {"id", "node/" + nodes_[i].name},
                   {"name", nodes_[i].name},
                   {"nodeid", i + 1},
                   {"online", 1},
                   {"local", i == 0 ? 1 : 0},
                   {"level", ""},
                   {"ip", "127.0.1." + std::to_string(i + 1)}});
  }
  return Ok(out);
}

// ---------------------------------------------------------------------------
// VM handlers.

Reply PveSim::Impl::ListVms(Ctx& c) {
  const bool full = c.params.count("full") && c.params["full"] == "1";
  json out = json::array();
  for (const auto& [id, vm] : vms_)
    if (vm.node == c.params["node"]) out.push_back(VmEntry(vm, full));
  return Ok(out);
}

Reply PveSim::Impl::VmIndex(Ctx& c) {
  Vm* vm = nullptr;
  if (auto e = LookupVm(c, &vm)) return *e;
  json out = json::array();
  for (const char* s : {"config", "pending", "status", "agent", "migrate", "resize", "firewall",
                        "rrd", "rrddata", "snapshot", "cloudinit", "unlink", "vncproxy"})
    out.push_back({{"subdir", s}});
  return Ok(out);
}

namespace {
Reply RootOnly() { return Fail(403, "Only root may use this option."); }

std::optional<Reply> CheckBootOrder(const std::map<std::string, std::string>& conf) {
  auto it = conf.find("boot");
  if (it == conf.end()) return std::nullopt;
  PropertyString p = ParsePropertyString(it->second, "legacy");
  const std::optional<std::string> order = p.Get("order");
  if (!order) return std::nullopt;
  std::stringstream ss(*order);
  std::string dev;
  while (std::getline(ss, dev, ';')) {
    if (!dev.empty() && !conf.count(dev))
      return ParamFail("boot", "invalid bootorder: device '" + dev + "' does not exist'");
  }
  return std::nullopt;
}

json TypedValue(const std::string& k, const std::string& v) {
  if (k == "cipassword") return "**********";
  if (IsNumericKey(k)) {
    try {
      return std::stoll(v);
    } catch (...) {
    }
  }
  return v;
}
}  // namespace

Reply PveSim::Impl::CreateVm(Ctx& c) {
  const int vmid = std::stoi(c.params["vmid"]);
  const std::string node = c.params["node"];
  const std::string vmids = std::to_string(vmid);
  if (Vm* other = FindVm(vmid)) {
    return Fail(500, "unable to create VM " + vmids + " - VM " + vmids +
                         " already exists on node '" + other->node + "'");
  }
  if (auto e = CheckConfigValues(c.params)) return *e;
  const std::string default_storage = c.params.count("storage") ? c.params["storage"] : "";
  std::map<std::string, std::string> conf;
  std::vector<Alloc> allocs;
  static const std::set<std::string> meta = {"vmid", "node", "storage", "start", "pool", "unique"};
  for (const auto& [k, v] : c.params) {
    if (meta.count(k)) continue;
    std::string final_value;
    if (IsDiskKey(k)) {
      if (auto e = PlanDisk(node, k, v, default_storage, &allocs, &final_value)) return *e;
      conf[k] = final_value.empty() ? "(allocating)" : final_value;
    } else if (IsNetKey(k)) {
      if (auto e = PlanNet(k, v, &final_value)) return *e;
      conf[k] = final_value;
    } else {
      conf[k] = v;  // on create, tags are stored as given
    }
  }
  if (auto e = CheckBootOrder(conf)) return *e;
  for (const Alloc& a : allocs) conf.erase(a.key);  // written when allocated

  Vm vm;
  vm.vmid = vmid;
  vm.node = node;
  vm.conf["lock"] = "create";  // the id is taken from this moment on
  vm.created_ms = Now();
  vms_[vmid] = vm;

  std::string fail;
  const int64_t now = Now();
  int64_t end = allocs.empty() ? now + TaskMs()
                               : ScheduleAllocations(node, allocs, now, &fail) + TaskMs() / 2;
  if (!fail.empty()) end -= TaskMs() / 2;
  json alloc_j = json::array();
  for (const Alloc& a : allocs)
    alloc_j.push_back(AllocToJson(a.key, a.storage, a.size, a.import_from, a.cloudinit, a.opts));
  json args = {{"vmid", vmid},
               {"conf", conf},
               {"allocs", alloc_j},
               {"start", c.params.count("start") && c.params["start"] == "1"},
               {"fail", fail}};
  Task& t = StartTask(node, "qmcreate", vmids, c.user, end - now, args);
  for (const Alloc& a : allocs) {
    if (!a.import_from.empty())
      t.log.push_back("importing disk '" + a.import_from + "' to VM " + vmids + " ...");
  }
  return UpidReply(t);
}

Reply PveSim::Impl::GetConfig(Ctx& c) {
  Vm* vm = nullptr;
  if (auto e = LookupVm(c, &vm)) return *e;
  std::map<std::string, std::string> conf = vm->conf;
  if (!(c.params.count("current") && c.params["current"] == "1")) {
    for (const auto& k : vm->pending_delete) conf.erase(k);
    for (const auto& [k, v] : vm->pending) conf[k] = v;
  }
  if (c.params.count("snapshot"))
    return Fail(500, "snapshot '" + c.params["snapshot"] + "' does not exist");
  json out = json::object();
  for (const auto& [k, v] : conf) out[k] = TypedValue(k, v);
  out["digest"] = Digest(*vm);
  return Ok(out);
}

Reply PveSim::Impl::GetPending(Ctx& c) {
  Vm* vm = nullptr;
  if (auto e = LookupVm(c, &vm)) return *e;
  std::set<std::string> keys;
  for (const auto& [k, v] : vm->conf) keys.insert(k);
  for (const auto& [k, v] : vm->pending) keys.insert(k);
  for (const auto& k : vm->pending_delete) keys.insert(k);
  json out = json::array();
  for (const auto& k : keys) {
    json e = {{"key", k}};
    if (auto it = vm->conf.find(k); it != vm->conf.end()) e["value"] = TypedValue(k, it->second);
    if (auto it = vm->pending.find(k); it != vm->pending.end())
      e["pending"] = TypedValue(k, it->second);
    if (vm->pending_delete.count(k)) e["delete"] = 1;
    out.push_back(e);
  }
  return Ok(out);
}

Reply PveSim::Impl::UpdateConfig(Ctx& c, bool async) {
  Vm* vm = nullptr;
  if (auto e = LookupVm(c, &vm)) return *e;
  const std::string vmids = std::to_string(vm->vmid);
  if (c.params.count("skiplock") && c.params["skiplock"] == "1") return RootOnly();
  static const std::set<std::string> meta = {"vmid",   "node",   "digest", "skiplock",
                                             "delete", "revert", "force",  "background_delay"};
  std::map<std::string, std::string> changes;
  for (const auto& [k, v] : c.params)
    if (!meta.count(k)) changes[k] = v;
  const std::vector<std::string> deletes =
      c.params.count("delete") ? SplitList(c.params["delete"]) : std::vector<std::string>{};
  const std::vector<std::string> reverts =
      c.params.count("revert") ? SplitList(c.params["revert"]) : std::vector<std::string>{};
  if (changes.empty() && deletes.empty() && reverts.empty())
    return Fail(500, "no options specified");
  FieldErrors errs;
  const std::vector<ParamSpec> specs = VmConfigSpecs();
  for (const auto& k : deletes) {
    if (changes.count(k)) errs[k] = "conflicting changes (delete and set)";
    FieldErrors probe = Validate(Params{{k, "0"}}, specs);
    if (probe.count(k) && probe[k].find("not defined") != std::string::npos)
      errs["delete"] = "invalid format - invalid configuration ID '" + k + "'";
  }
  if (!errs.empty()) return ParamFail(errs);
  if (c.params.count("digest") && c.params["digest"] != Digest(*vm))
    return Fail(500, "checksum mismatch (file change by other user?)");
  if (auto it = vm->conf.find("lock"); it != vm->conf.end())
    return Fail(500, "VM " + vmids + " is locked (" + it->second + ")");
  if (auto e = CheckConfigValues(changes)) return *e;

  std::vector<Alloc> allocs;
  for (auto& [k, v] : changes) {
    std::string final_value;
    if (IsDiskKey(k)) {
      if (auto e = PlanDisk(vm->node, k, v, "", &allocs, &final_value)) return *e;
      v = final_value;
    } else if (IsNetKey(k)) {
      // Like qemu-server's parse_net: a NIC given without a MAC gets a new
      // one, also when it replaces an existing NIC (clients resend the MAC).
      const std::string value = v;
      if (auto e = PlanNet(k, value, &final_value)) return *e;
      v = final_value;
    } else if (k == "tags") {
      v = NormaliseTags(v);
    }
  }
  for (const Alloc& a : allocs) changes.erase(a.key);
  {
    std::map<std::string, std::string> merged = vm->conf;
    for (const auto& [k, v] : vm->pending) merged[k] = v;
    for (const auto& [k, v] : changes) merged[k] = v;
    for (const Alloc& a : allocs) merged[a.key] = "new";
    for (const auto& k : deletes) merged.erase(k);
    if (changes.count("boot"))
      if (auto e = CheckBootOrder(merged)) return *e;
  }
  json alloc_j = json::array();
  for (const Alloc& a : allocs)
    alloc_j.push_back(AllocToJson(a.key, a.storage, a.size, a.import_from, a.cloudinit, a.opts));
  json args = {{"vmid", vm->vmid},  {"changes", changes},
               {"allocs", alloc_j}, {"delete", deletes},
               {"revert", reverts}, {"force", c.params.count("force") && c.params["force"] == "1"}};
  if (!async) {
    if (std::string err = ApplyUpdate(*vm, args); !err.empty()) return Fail(500, err);
    return Ok();
  }
  std::string fail;
  const int64_t now = Now();
  const int64_t end =
      allocs.empty() ? now + TaskMs() / 4 : ScheduleAllocations(vm->node, allocs, now, &fail);
  Task& t = StartTask(vm->node, "qmconfig", vmids, c.user, end - now, args);
  if (!fail.empty()) t.fail = fail;
  t.log.push_back("update VM " + vmids + ": " + c.req->body.substr(0, 200));
  return UpidReply(t);
}

Reply PveSim::Impl::StatusIndex(Ctx& c) {
  Vm* vm = nullptr;
  if (auto e = LookupVm(c, &vm)) return *e;
  json out = json::array();
  for (const char* s : {"current", "start", "stop", "reset", "shutdown", "suspend", "reboot"})
    out.push_back({{"subdir", s}});
  return Ok(out);
}

Reply PveSim::Impl::GetStatusCurrent(Ctx& c) {
  Vm* vm = nullptr;
  if (auto e = LookupVm(c, &vm)) return *e;
  json e = VmEntry(*vm, true);
  e["ha"] = {{"managed", 0}};
  if (AgentEnabled(*vm)) e["agent"] = 1;
  if (vm->running) {
    e["balloon"] = VmMemoryBytes(*vm);
    e["freemem"] = VmMemoryBytes(*vm) / 2;
  }
  e["proxmox-support"] = json::object();
  return Ok(e);
}

Reply PveSim::Impl::Power(Ctx& c, const std::string& type) {
  Vm* vm = nullptr;
  if (auto e = LookupVm(c, &vm)) return *e;
  if (c.params.count("skiplock") && c.params["skiplock"] == "1") return RootOnly();
  const std::string vmids = std::to_string(vm->vmid);
  if (type == "qmreboot" && !vm->running) return Fail(500, "VM " + vmids + " not running");
  int64_t d = TaskMs();
  if (type == "qmstop") d = TaskMs() / 2;
  if (type == "qmshutdown") d = vm->running ? 2 * TaskMs() : TaskMs() / 4;
  if (type == "qmreboot") d = 2 * TaskMs();
  json args = {{"vmid", vm->vmid}};
  if (type == "qmshutdown" && vm->running) {
    // The guest needs `d` to power off; PVE gives up after `timeout` seconds
    // (default 60) and, with forceStop=1, kills it instead.
    const int64_t timeout = Scaled(
        std::chrono::seconds(c.params.count("timeout") ? std::stoll(c.params["timeout"]) : 60));
    if (timeout < d) {
      d = timeout;
      args["timed_out"] = true;
      args["force_stop"] = c.params.count("forceStop") && c.params["forceStop"] == "1";
    }
  }
  Task& t = StartTask(vm->node, type, vmids, c.user, d, args);
  if (type == "qmstart") t.log.push_back("generating cloud-init ISO");
  return UpidReply(t);
}

Reply PveSim::Impl::DestroyVm(Ctx& c) {
  Vm* vm = nullptr;
  if (auto e = LookupVm(c, &vm)) return *e;
  if (c.params.count("skiplock") && c.params["skiplock"] == "1") return RootOnly();
  const std::string vmids = std::to_string(vm->vmid);
  if (vm->conf.count("protection") && vm->conf["protection"] == "1")
    return Fail(500, "can't remove VM " + vmids + " - protection mode enabled");
  if (vm->running) return Fail(500, "VM " + vmids + " is running - destroy failed");
  json args = {{"vmid", vm->vmid}};
  // The lock is checked inside the task: a locked VM makes the task fail and stays.
  if (auto it = vm->conf.find("lock"); it != vm->conf.end()) {
    args["locked"] = it->second;
  } else {
    vm->conf["lock"] = "destroyed";
  }
  return UpidReply(StartTask(vm->node, "qmdestroy", vmids, c.user, TaskMs(), args));
}

Reply PveSim::Impl::Resize(Ctx& c) {
  Vm* vm = nullptr;
  if (auto e = LookupVm(c, &vm)) return *e;
  if (c.params.count("skiplock") && c.params["skiplock"] == "1") return RootOnly();
  if (c.params.count("digest") && c.params["digest"] != Digest(*vm))
    return Fail(500, "checksum mismatch (file change by other user?)");
  const std::string vmids = std::to_string(vm->vmid);
  return UpidReply(
      StartTask(vm->node, "resize", vmids, c.user, TaskMs() / 2,
                {{"vmid", vm->vmid}, {"disk", c.params["disk"]}, {"size", c.params["size"]}}));
}

Reply PveSim::Impl::GetMigrate(Ctx& c) {
  Vm* vm = nullptr;
  if (auto e = LookupVm(c, &vm)) return *e;
  json allowed = json::array();
  for (const Node& n : nodes_)
    if (n.name != vm->node) allowed.push_back(n.name);
  json disks = json::array();
  for (const auto& [k, v] : vm->conf) {
    if (!IsDiskKey(k) && !IsUnusedKey(k)) continue;
    const std::string file = ParsePropertyString(v, "file").Get("file").value_or("");
    if (const Volume* vol = FindVolume(vm->node, file)) {
      disks.push_back({{"volid", file},
                       {"size", vol->size},
                       {"cdrom", vol->content == "iso" ? 1 : 0},
                       {"is_unused", IsUnusedKey(k) ? 1 : 0},
                       {"drivename", k}});
    }
  }
  return Ok({{"running", vm->running ? 1 : 0},
             {"allowed_nodes", allowed},
             {"not_allowed_nodes", json::object()},
             {"local_disks", disks},
             {"local_resources", json::array()},
             {"mapped-resources", json::array()},
             {"mapped-resource-info", json::object()}});
}

Reply PveSim::Impl::PostMigrate(Ctx& c) {
  Vm* vm = nullptr;
  if (auto e = LookupVm(c, &vm)) return *e;
  const std::string target = c.params["target"];
  const std::string vmids = std::to_string(vm->vmid);
  if (target == vm->node) return ParamFail("target", "target is local node.");
  if (FindNode(target) == nullptr) return Fail(500, "no such cluster node '" + target + "'");
  if (c.params.count("force") && c.params["force"] == "1") return RootOnly();
  if (auto it = vm->conf.find("lock"); it != vm->conf.end())
    return Fail(500, "VM " + vmids + " is locked (" + it->second + ")");
  const bool online = c.params.count("online") && c.params["online"] == "1";
  if (vm->running && !online) return Fail(500, "can't migrate running VM without --online");
  bool local_disks = false;
  for (const auto& [k, v] : vm->conf)
    if (IsDiskKey(k) &&
        FindVolume(vm->node, ParsePropertyString(v, "file").Get("file").value_or("")))
      local_disks = true;
  if (vm->running && local_disks &&
      !(c.params.count("with-local-disks") && c.params["with-local-disks"] == "1"))
    return Fail(500, "can't live migrate attached local disks without with-local-disks option");
  vm->conf["lock"] = "migrate";
  return UpidReply(StartTask(vm->node, "qmigrate", vmids, c.user, 3 * TaskMs(),
                             {{"vmid", vm->vmid}, {"target", target}, {"online", online}}));
}

// ---------------------------------------------------------------------------
// Guest agent.

std::optional<Reply> PveSim::Impl::AgentPrecheck(Ctx& c, Vm** vm) {
  if (auto e = LookupVm(c, vm)) return e;
  const std::string vmids = std::to_string((*vm)->vmid);
  if (!AgentEnabled(**vm)) return Fail(500, "No QEMU guest agent configured");
  if (!(*vm)->running) return Fail(500, "VM " + vmids + " is not running");
  if (Now() < (*vm)->agent_ready_ms) return Fail(500, "QEMU guest agent is not running");
  return std::nullopt;
}

Reply PveSim::Impl::AgentPing(Ctx& c) {
  Vm* vm = nullptr;
  if (auto e = AgentPrecheck(c, &vm)) return *e;
  return Ok({{"result", json::object()}});
}

Reply PveSim::Impl::AgentInterfaces(Ctx& c) {
  Vm* vm = nullptr;
  if (auto e = AgentPrecheck(c, &vm)) return *e;
  auto stats = [](uint64_t k) {
    return json{{"rx-bytes", 1000 * k}, {"rx-packets", 10 * k}, {"rx-errs", 0}, {"rx-dropped", 0},
                {"tx-bytes", 800 * k},  {"tx-packets", 8 * k},  {"tx-errs", 0}, {"tx-dropped", 0}};
  };
  auto addr = [](const std::string& ip, const char* type, int prefix) {
    return json{{"ip-address", ip}, {"ip-address-type", type}, {"prefix", prefix}};
  };
  json result = json::array();
  result.push_back({{"name", "lo"},
                    {"hardware-address", "00:00:00:00:00:00"},
                    {"ip-addresses", {addr("127.0.0.1", "ipv4", 8), addr("::1", "ipv6", 128)}},
                    {"statistics", stats(1)}});
  std::vector<std::pair<int, std::string>> nics;
  for (const auto& [k, v] : vm->conf)
    if (IsNetKey(k)) nics.emplace_back(std::stoi(k.substr(3)), v);
  std::sort(nics.begin(), nics.end());
  const uint64_t seed = Mix(opt_.seed);
  for (const auto& [index, value] : nics) {
    std::string mac;
    PropertyString p = ParsePropertyString(value, "model");
    for (const auto& m : NicModels())
      if (auto v = p.Get(m)) mac = Lower(*v);
    // Addresses are a pure function of seed, VMID and NIC index: stable across
    // restarts, distinct between VMs as long as the range is large enough.
    const uint64_t slot = static_cast<uint64_t>(vm->vmid) * 8 + static_cast<uint64_t>(index);
    json ips = json::array();
    {
      const uint64_t span = (uint64_t{1} << (32 - v4_->bits)) - 3;
      const uint32_t ip = v4_->base + 2 + static_cast<uint32_t>((seed + slot) % span);
      ips.push_back(addr(FormatIpv4(ip), "ipv4", v4_->bits));
    }
    if (public_v4_ && index == 0) {
      const uint64_t span = (uint64_t{1} << (32 - public_v4_->bits)) - 3;
      const uint32_t ip = public_v4_->base + 2 + static_cast<uint32_t>((Mix(seed) + slot) % span);
      ips.push_back(addr(FormatIpv4(ip), "ipv4", public_v4_->bits));
    }
    {
      std::array<uint8_t, 16> a = v6_->base;
      const uint64_t iid = Mix(seed ^ (slot << 1)) | 1;
      for (int i = 0; i < 8; ++i) a[8 + i] |= static_cast<uint8_t>(iid >> (56 - 8 * i));
      ips.push_back(addr(FormatIpv6(a), "ipv6", 64));
    }
    {
      // Link-local from the MAC (EUI-64), as the guest kernel derives it.
      std::array<uint8_t, 16> a{};
      a[0] = 0xfe;
      a[1] = 0x80;
      unsigned b[6] = {0, 0, 0, 0, 0, 0};
      std::sscanf(mac.c_str(), "%x:%x:%x:%x:%x:%x", &b[0], &b[1], &b[2], &b[3], &b[4], &b[5]);
      a[8] = static_cast<uint8_t>(b[0] ^ 0x02);
      a[9] = static_cast<uint8_t>(b[1]);
      a[10] = static_cast<uint8_t>(b[2]);
      a[11] = 0xff;
      a[12] = 0xfe;
      a[13] = static_cast<uint8_t>(b[3]);
      a[14] = static_cast<uint8_t>(b[4]);
      a[15] = static_cast<uint8_t>(b[5]);
      ips.push_back(addr(FormatIpv6(a), "ipv6", 64));
    }
    result.push_back({{"name", "ens" + std::to_string(18 + index)},
                      {"hardware-address", mac},
                      {"ip-addresses", ips},
                      {"statistics", stats(100)}});
  }
  return Ok({{"result", result}});
}

// ---------------------------------------------------------------------------
// Tasks.

std::optional<Reply> PveSim::Impl::LookupTask(Ctx& c, Task** t) {
  static const std::regex re(
      "^UPID:([a-zA-Z0-9]([a-zA-Z0-9\\-]*[a-zA-Z0-9])?):([0-9A-Fa-f]{8}):([0-9A-Fa-f]{8,9}):"
      "([0-9A-Fa-f]{8}):([^:\\s/]+):([^:\\s/]*):([^:\\s/]+):$");
  const std::string upid = c.params["upid"];
  std::smatch m;
  if (!std::regex_match(upid, m, re)) return ParamFail("upid", "unable to parse worker upid");
  for (Task& x : tasks_) {
    if (x.upid == upid && x.node == c.params["node"]) {
      *t = &x;
      return std::nullopt;
    }
  }
  return ParamFail("upid", "no such task");
}

namespace {
json TaskJson(const Task& t) {
  // UPID fields: UPID:node:pid:pstart:starttime:type:id:user:
  std::vector<std::string> f;
  std::stringstream ss(t.upid);
  std::string part;
  while (std::getline(ss, part, ':')) f.push_back(part);
  json j = {{"upid", t.upid},
            {"node", t.node},
            {"pid", std::stoul(f[2], nullptr, 16)},
            {"pstart", std::stoul(f[3], nullptr, 16)},
            {"starttime", std::stoul(f[4], nullptr, 16)},
            {"type", t.type},
            {"id", t.id}};
  const size_t bang = t.user.find('!');
  j["user"] = t.user.substr(0, bang);
  if (bang != std::string::npos) j["tokenid"] = t.user.substr(bang + 1);
  return j;
}
}  // namespace

Reply PveSim::Impl::TaskStatus(Ctx& c) {
  Task* t = nullptr;
  if (auto e = LookupTask(c, &t)) return *e;
  json j = TaskJson(*t);
  j["status"] = t->running ? "running" : "stopped";
  if (!t->running) j["exitstatus"] = t->exitstatus;
  return Ok(j);
}

Reply PveSim::Impl::TaskLog(Ctx& c) {
  Task* t = nullptr;
  if (auto e = LookupTask(c, &t)) return *e;
  const size_t start = c.params.count("start") ? std::stoul(c.params["start"]) : 0;
  const size_t limit = c.params.count("limit") ? std::stoul(c.params["limit"]) : 50;
  json out = json::array();
  for (size_t i = start; i < t->log.size() && out.size() < limit; ++i)
    out.push_back({{"n", i + 1}, {"t", t->log[i]}});
  if (out.empty() && t->log.empty() && start == 0) out.push_back({{"n", 1}, {"t", "no content"}});
  Reply r = Ok(out);
  r.extra["total"] = std::max<size_t>(t->log.size(), 1);
  return r;
}

Reply PveSim::Impl::StopTask(Ctx& c) {
  Task* t = nullptr;
  if (auto e = LookupTask(c, &t)) return *e;
  if (!t->running) return Ok();
  t->running = false;
  t->exitstatus = "interrupted by signal";
  t->log.push_back("received interrupt");
  t->log.push_back("TASK ERROR: interrupted by signal");
  const int vmid = t->args.value("vmid", 0);
  if (Vm* vm = FindVm(vmid)) {
    if (t->type == "qmcreate") {
      vms_.erase(vmid);
    } else if (t->type == "qmigrate" || t->type == "qmdestroy") {
      vm->conf.erase("lock");
    }
  }
  return Ok();
}

Reply PveSim::Impl::ListTasks(Ctx& c) {
  const std::string node = c.params["node"];
  const std::string source = c.params.count("source") ? c.params["source"] : "archive";
  const size_t start = c.params.count("start") ? std::stoul(c.params["start"]) : 0;
  const size_t limit = c.params.count("limit") ? std::stoul(c.params["limit"]) : 50;
  std::vector<const Task*> sel;
  for (auto it = tasks_.rbegin(); it != tasks_.rend(); ++it) {
    const Task& t = *it;
    if (t.node != node) continue;
    if (source == "active" && !t.running) continue;
    if (source == "archive" && t.running) continue;
    if (c.params.count("vmid") && t.id != c.params["vmid"]) continue;
    if (c.params.count("typefilter") && t.type != c.params["typefilter"]) continue;
    if (c.params.count("userfilter") && t.user.find(c.params["userfilter"]) == std::string::npos)
      continue;
    if (c.params.count("errors") && c.params["errors"] == "1" &&
        (t.running || t.exitstatus == "OK"))
      continue;
    sel.push_back(&t);
  }
  json out = json::array();
  for (size_t i = start; i < sel.size() && out.size() < limit; ++i) {
    json j = TaskJson(*sel[i]);
    if (!sel[i]->running) {
      j["status"] = sel[i]->exitstatus;
      j["endtime"] = sel[i]->end_ms / 1000;
    }
    out.push_back(j);
  }
  Reply r = Ok(out);
  r.extra["total"] = sel.size();
  return r;
}

// ---------------------------------------------------------------------------
// Storage.

std::optional<Reply> PveSim::Impl::LookupStorage(Ctx& c, Node** n, Storage** s) {
  *n = FindNode(c.params["node"]);
  auto it = (*n)->storages.find(c.params["storage"]);
  if (it == (*n)->storages.end())
    return Fail(500, "storage '" + c.params["storage"] + "' does not exist");
  *s = &it->second;
  return std::nullopt;
}

Reply PveSim::Impl::ListStorages(Ctx& c) {
  Node* n = FindNode(c.params["node"]);
  json out = json::array();
  for (const auto& [name, st] : n->storages) {
    if (c.params.count("content") && !st.Supports(c.params["content"])) continue;
    if (c.params.count("storage") && name != c.params["storage"]) continue;
    std::string content;
    for (const auto& x : st.content) content += (content.empty() ? "" : ",") + x;
    const uint64_t used = st.Used();
    out.push_back({{"storage", name},
                   {"type", st.type},
                   {"content", content},
                   {"active", 1},
                   {"enabled", 1},
                   {"shared", 0},
                   {"total", st.total},
                   {"used", used},
                   {"avail", st.total - used},
                   {"used_fraction", static_cast<double>(used) / static_cast<double>(st.total)}});
  }
  return Ok(out);
}

Reply PveSim::Impl::StorageStatus(Ctx& c) {
  Node* n = nullptr;
  Storage* st = nullptr;
  if (auto e = LookupStorage(c, &n, &st)) return *e;
  Ctx list = c;
  list.params.erase("storage");
  list.params["storage"] = st->name;
  json all = ListStorages(list).data;
  return Ok(all.empty() ? json::object() : all[0]);
}

Reply PveSim::Impl::ListContent(Ctx& c) {
  Node* n = nullptr;
  Storage* st = nullptr;
  if (auto e = LookupStorage(c, &n, &st)) return *e;
  json out = json::array();
  for (const auto& [volid, v] : st->volumes) {
    if (c.params.count("content") && v.content != c.params["content"]) continue;
    if (c.params.count("vmid") && std::to_string(v.vmid) != c.params["vmid"]) continue;
    json e = {{"volid", volid},
              {"content", v.content},
              {"format", v.format},
              {"size", v.size},
              {"ctime", v.ctime}};
    if (v.vmid) e["vmid"] = v.vmid;
    if (v.content == "images") e["used"] = v.used;
    out.push_back(e);
  }
  return Ok(out);
}

Reply PveSim::Impl::GetVolume(Ctx& c) {
  Node* n = nullptr;
  Storage* st = nullptr;
  if (auto e = LookupStorage(c, &n, &st)) return *e;
  std::string volid = c.params["volume"];
  if (volid.find(':') == std::string::npos) volid = st->name + ":" + volid;
  auto it = st->volumes.find(volid);
  if (it == st->volumes.end()) return Fail(500, "volume '" + volid + "' does not exist");
  const std::string rel = volid.substr(volid.find(':') + 1);
  const std::string path = st->type == "dir" ? "/var/lib/vz/template/" + rel : "/dev/pve/" + rel;
  return Ok({{"path", path},
             {"size", it->second.size},
             {"used", it->second.used},
             {"format", it->second.format}});
}

Reply PveSim::Impl::DeleteVolume(Ctx& c) {
  Node* n = nullptr;
  Storage* st = nullptr;
  if (auto e = LookupStorage(c, &n, &st)) return *e;
  std::string volid = c.params["volume"];
  if (volid.find(':') == std::string::npos) volid = st->name + ":" + volid;
  if (!st->volumes.count(volid)) return Fail(500, "volume '" + volid + "' does not exist");
  return UpidReply(StartTask(n->name, "imgdel", "", c.user, TaskMs() / 4, {{"volid", volid}}));
}

Reply PveSim::Impl::Upload(Ctx& c) {
  Node* n = nullptr;
  Storage* st = nullptr;
  if (auto e = LookupStorage(c, &n, &st)) return *e;
  std::vector<MultipartPart> parts;
  const std::string ct = c.req->headers.Get("Content-Type").value_or("");
  if (!StartsWith(Lower(ct), "multipart/form-data") || !ParseMultipart(ct, c.req->body, &parts))
    return Fail(400, "unable to parse multipart/form-data body");
  Params params = c.params;
  const MultipartPart* file = nullptr;
  for (const MultipartPart& p : parts) {
    if (p.filename) {
      if (p.name != "filename") return Fail(400, "wrong field name for file upload");
      params["filename"] = *p.filename;
      file = &p;
    } else if (file == nullptr) {
      params[p.name] = p.data;  // fields after the file are ignored, as pveproxy does
    }
  }
  if (file == nullptr) params.erase("filename");
  if (FieldErrors errs = Validate(params, *c.specs); !errs.empty()) return ParamFail(errs);
  if (st->type != "dir") return Fail(500, "can't upload to storage type '" + st->type + "'");
  const std::string content = params["content"];
  std::string name = params["filename"];
  if (size_t slash = name.find_last_of("/\\"); slash != std::string::npos)
    name = name.substr(slash + 1);
  for (char& ch : name)
    if (!std::isalnum(static_cast<unsigned char>(ch)) && ch != '_' && ch != '.' && ch != '-')
      ch = '_';
  std::smatch m;
  std::string format;
  if (content == "iso") {
    if (!std::regex_match(name, std::regex("^[^/]+\\.(iso|img)$", std::regex::icase)))
      return ParamFail("filename", "wrong file extension");
    format = "iso";
  } else if (content == "vztmpl") {
    if (!std::regex_match(name, m, std::regex("^[^/]+\\.tar\\.(gz|xz|zst|bz2)$")))
      return ParamFail("filename", "wrong file extension");
    format = "t" + m[1].str();
  } else {
    if (!std::regex_match(name, m, std::regex("^[a-zA-Z0-9\\-.+=_]+\\.(ova|qcow2|raw|vmdk)$")))
      return ParamFail("filename", "invalid filename or wrong extension");
    format = m[1].str();
  }
  if (!st->Supports(content))
    return Fail(500, "storage '" + st->name + "' does not support '" + content + "' content");

  const std::string& data = file->data;
  uint64_t vsize = data.size();
  // A qcow2 image carries its virtual size big-endian at offset 24 of the header.
  if (data.size() >= 32 && data.compare(0, 4, "QFI\xfb") == 0) {
    vsize = 0;
    for (int i = 24; i < 32; ++i) vsize = (vsize << 8) | static_cast<unsigned char>(data[i]);
  }
  const std::string volid = st->name + ":" + content + "/" + name;
  Task& t = StartTask(n->name, "imgcopy", "", c.user, TaskMs() / 2,
                      {{"storage", st->name},
                       {"volid", volid},
                       {"content", content},
                       {"format", format},
                       {"size", vsize},
                       {"used", data.size()}});
  const std::string tmp = "/var/tmp/pveupload-" + Sha1Hex(t.upid).substr(0, 32);
  t.log.push_back("starting file import from: " + tmp);
  if (params.count("checksum-algorithm")) {
    const EVP_MD* md = EVP_get_digestbyname(params["checksum-algorithm"].c_str());
    unsigned char out[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    std::string got;
    if (md != nullptr && EVP_Digest(data.data(), data.size(), out, &len, md, nullptr) == 1) {
      static const char* kDigits = "0123456789abcdef";
      for (unsigned i = 0; i < len; ++i) {
        got += kDigits[out[i] >> 4];
        got += kDigits[out[i] & 15];
      }
    }
    const std::string want = params.count("checksum") ? params["checksum"] : "";
    if (Lower(want) != got) {
      t.log.push_back("calculating checksum...");
      t.fail = "checksum mismatch: got '" + got + "' != expect '" + want + "'";
    } else {
      t.log.push_back("calculating checksum...OK, checksum verified");
    }
  }
  t.log.push_back("target node: " + n->name);
  const std::string dest =
      (content == "import" ? "/var/lib/vz/import/" : "/var/lib/vz/template/" + content + "/") +
      name;
  t.log.push_back("target file: " + dest);
  t.log.push_back("file size is: " + std::to_string(data.size()));
  t.log.push_back("command: cp -- " + tmp + " " + dest);
  return UpidReply(t);
}

}  // namespace nixmox::pvesim
