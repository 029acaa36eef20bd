// pve-sim: world helpers, tasks and their effects, disks.
#include "test/sim/pve/sim_internal.h"

namespace nixmox::pvesim {

// ---------------------------------------------------------------------------
// World helpers.

std::optional<Reply> PveSim::Impl::LookupVm(Ctx& c, Vm** vm) {
  const int vmid = std::stoi(c.params["vmid"]);
  const std::string& node = c.params["node"];
  Vm* v = FindVm(vmid);
  if (v == nullptr || v->node != node) {
    return Fail(500, "Configuration file 'nodes/" + node + "/qemu-server/" + std::to_string(vmid) +
                         ".conf' does not exist");
  }
  *vm = v;
  return std::nullopt;
}

Volume* PveSim::Impl::FindVolume(const std::string& node, const std::string& volid, Storage** st) {
  Node* n = FindNode(node);
  const size_t colon = volid.find(':');
  if (n == nullptr || colon == std::string::npos) return nullptr;
  auto sit = n->storages.find(volid.substr(0, colon));
  if (sit == n->storages.end()) return nullptr;
  auto vit = sit->second.volumes.find(volid);
  if (vit == sit->second.volumes.end()) return nullptr;
  if (st) *st = &sit->second;
  return &vit->second;
}

std::string PveSim::Impl::ConfigText(const Vm& vm) const {
  // The layout of /etc/pve/qemu-server/<vmid>.conf: description as comments,
  // then "key: value" lines, then the [PENDING] section.
  std::string text;
  auto it = vm.conf.find("description");
  if (it != vm.conf.end()) {
    std::stringstream ss(it->second);
    std::string line;
    while (std::getline(ss, line)) text += "#" + line + "\n";
  }
  for (const auto& [k, v] : vm.conf)
    if (k != "description") text += k + ": " + v + "\n";
  if (!vm.pending.empty() || !vm.pending_delete.empty()) {
    text += "\n[PENDING]\n";
    if (!vm.pending_delete.empty()) {
      std::string del;
      for (const auto& k : vm.pending_delete) del += (del.empty() ? "" : ",") + k;
      text += "delete: " + del + "\n";
    }
    for (const auto& [k, v] : vm.pending) text += k + ": " + v + "\n";
  }
  return text;
}

uint64_t PveSim::Impl::VmMemoryBytes(const Vm& vm) const {
  auto it = vm.conf.find("memory");
  if (it == vm.conf.end()) return 512 * kMiB;
  PropertyString p = ParsePropertyString(it->second, "current");
  try {
    return std::stoull(p.Get("current").value_or("512")) * kMiB;
  } catch (...) {
    return 512 * kMiB;
  }
}

int PveSim::Impl::VmCores(const Vm& vm) const {
  return VmConfInt(vm, "cores", 1) * VmConfInt(vm, "sockets", 1);
}

uint64_t PveSim::Impl::VmMaxDisk(const Vm& vm) const {
  // Like PVE: the size of the boot disk (the first disk in boot order or the first disk).
  for (const auto& [k, v] : vm.conf) {
    if (!IsDiskKey(k)) continue;
    PropertyString p = ParsePropertyString(v, "file");
    if (p.Get("media") == "cdrom") continue;
    if (auto s = p.Get("size")) return ParseSize(*s).value_or(0);
  }
  return 0;
}

bool PveSim::Impl::AgentEnabled(const Vm& vm) const {
  auto it = vm.conf.find("agent");
  if (it == vm.conf.end()) return false;
  PropertyString p = ParsePropertyString(it->second, "enabled");
  return p.Get("enabled").value_or("0") == "1";
}

namespace {
// A stable, made-up SHA-256-style fingerprint ("AB:CD:..."), 32 bytes.
std::string Fingerprint(const std::string& node) {
  const std::string hex = Sha1Hex(node) + Sha1Hex("pve-sim:" + node);
  std::string out;
  for (size_t i = 0; i < 64; i += 2) {
    if (!out.empty()) out += ':';
    out += static_cast<char>(std::toupper(static_cast<unsigned char>(hex[i])));
    out += static_cast<char>(std::toupper(static_cast<unsigned char>(hex[i + 1])));
  }
  return out;
}
}  // namespace

json PveSim::Impl::NodeEntry(const Node& n) const {
  uint64_t mem = 2 * kGiB;
  int cores = 0;
  for (const auto& [id, vm] : vms_) {
    if (vm.node != n.name || !vm.running) continue;
    mem += VmMemoryBytes(vm);
    cores += VmCores(vm);
  }
  uint64_t disk = 0, maxdisk = 0;
  if (auto it = n.storages.find("local"); it != n.storages.end()) {
    disk = it->second.Used() + 3 * kGiB;
    maxdisk = it->second.total;
  }
  return {{"id", "node/" + n.name},
          {"node", n.name},
          {"type", "node"},
          {"status", "online"},
          {"level", ""},
          {"uptime", (Now() - n.boot_ms) / 1000},
          {"cpu", std::min(1.0, 0.01 + 0.05 * cores / n.maxcpu)},
          {"maxcpu", n.maxcpu},
          {"mem", mem},
          {"maxmem", n.maxmem},
          {"disk", disk},
          {"maxdisk", maxdisk},
          {"ssl_fingerprint", Fingerprint(n.name)}};
}

json PveSim::Impl::VmEntry(const Vm& vm, bool full) const {
  json e = {{"vmid", vm.vmid},
            {"name", vm.conf.count("name") ? vm.conf.at("name") : "VM " + std::to_string(vm.vmid)},
            {"status", vm.running ? "running" : "stopped"},
            {"cpus", VmCores(vm)},
            {"maxmem", VmMemoryBytes(vm)},
            {"mem", vm.running ? VmMemoryBytes(vm) * 2 / 5 : 0},
            {"maxdisk", VmMaxDisk(vm)},
            {"disk", 0},
            {"cpu", vm.running ? 0.02 : 0.0},
            {"uptime", vm.running ? (Now() - vm.started_ms) / 1000 : 0},
            {"netin", 0},
            {"netout", 0},
            {"diskread", 0},
            {"diskwrite", 0}};
  if (vm.running) e["pid"] = vm.pid;
  if (vm.conf.count("lock")) e["lock"] = vm.conf.at("lock");
  if (vm.conf.count("tags")) e["tags"] = vm.conf.at("tags");
  if (vm.conf.count("template") && vm.conf.at("template") == "1") e["template"] = 1;
  if (full) {
    e["qmpstatus"] = vm.running ? "running" : "stopped";
    if (vm.running) {
      e["running-machine"] = "pc-i440fx-9.2+pve1";
      e["running-qemu"] = "9.2.0";
    }
  }
  return e;
}

json PveSim::Impl::StorageEntry(const Node& n, const Storage& s) const {
  std::string content;
  for (const auto& c : s.content) content += (content.empty() ? "" : ",") + c;
  return {{"id", "storage/" + n.name + "/" + s.name},
          {"storage", s.name},
          {"node", n.name},
          {"type", "storage"},
          {"plugintype", s.type},
          {"shared", 0},
          {"content", content},
          {"status", "available"},
          {"disk", s.Used()},
          {"maxdisk", s.total}};
}

// ---------------------------------------------------------------------------
// Tasks.

Task& PveSim::Impl::StartTask(const std::string& node, const std::string& type,
                              const std::string& id, const std::string& user, int64_t duration,
                              json args) {
  Task t;
  const int64_t now = Now();
  const uint32_t pid = next_pid_++;
  const uint32_t pstart = static_cast<uint32_t>((now / 10) & 0x0fffffff);
  t.upid = "UPID:" + node + ":" + Hex(pid, 8) + ":" + Hex(pstart, 8) + ":" + Hex(now / 1000, 8) +
           ":" + type + ":" + id + ":" + user + ":";
  t.node = node;
  t.type = type;
  t.id = id;
  t.user = user;
  t.start_ms = now;
  t.end_ms = now + std::max<int64_t>(duration, 0);
  t.args = std::move(args);
  if (Roll(faults_.task_failure_rate)) t.fail = "simulated task failure";
  tasks_.push_back(std::move(t));
  // Keep the task list bounded like the node's task index.
  if (tasks_.size() > 5000) {
    auto it = std::find_if(tasks_.begin(), tasks_.end(), [](const Task& x) { return !x.running; });
    if (it != tasks_.end()) tasks_.erase(it);
  }
  dirty_ = true;
  return tasks_.back();
}

void PveSim::Impl::Advance() {
  const int64_t now = Now();
  while (true) {
    Task* next = nullptr;
    for (Task& t : tasks_)
      if (t.running && t.end_ms <= now && (next == nullptr || t.end_ms < next->end_ms)) next = &t;
    if (next == nullptr) return;
    FinishTask(*next);
  }
}

void PveSim::Impl::FinishTask(Task& t) {
  std::string err = ApplyTask(t);
  t.running = false;
  if (err.empty()) {
    t.exitstatus = "OK";
    t.log.push_back("TASK OK");
  } else {
    std::replace(err.begin(), err.end(), '\n', ' ');
    t.exitstatus = err;
    t.log.push_back("TASK ERROR: " + err);
  }
  dirty_ = true;
}

std::string PveSim::Impl::ApplyTask(Task& t) {
  const json& a = t.args;
  const int vmid = a.value("vmid", 0);
  const std::string vmids = std::to_string(vmid);
  Vm* vm = vmid ? FindVm(vmid) : nullptr;
  auto load_allocs = [&]() {
    std::vector<Alloc> out;
    for (const auto& j : a.value("allocs", json::array())) {
      out.push_back(
          Alloc{j["key"], j["storage"], j["size"], j["import_from"], j["cloudinit"], j["opts"]});
    }
    return out;
  };
  const std::string missing =
      "Configuration file 'nodes/" + t.node + "/qemu-server/" + vmids + ".conf' does not exist";
  auto locked = [&](const Vm& v) -> std::string {
    auto it = v.conf.find("lock");
    if (it == v.conf.end() || a.value("skiplock", false)) return "";
    return "VM " + vmids + " is locked (" + it->second + ")";
  };

  if (t.type == "qmcreate") {
    const std::string prefix = "unable to create VM " + vmids + " - ";
    if (vm == nullptr) return prefix + "config file vanished";
    std::string err = t.fail.empty() ? a.value("fail", std::string()) : t.fail;
    std::vector<std::string> created;
    if (err.empty()) {
      for (const Alloc& al : load_allocs()) {
        std::string final_value;
        err = Allocate(*vm, al, &final_value);
        if (!err.empty()) break;
        created.push_back(final_value);
        vm->conf[al.key] = final_value;
      }
    }
    if (!err.empty()) {
      // PVE frees what it allocated and removes the config file.
      for (const auto& v : created) FreeVmVolume(*vm, v);
      vms_.erase(vmid);
      t.log.push_back(err);
      return prefix + err;
    }
    for (const auto& [k, v] : a["conf"].items()) vm->conf[k] = v.get<std::string>();
    vm->conf.erase("lock");
    if (!vm->conf.count("boot")) {
      std::string order;
      for (const auto& [k, v] : vm->conf)
        if (IsDiskKey(k) && ParsePropertyString(v, "file").Get("media") != "cdrom")
          order += (order.empty() ? "" : ";") + k;
      for (const auto& [k, v] : vm->conf)
        if (IsDiskKey(k) && ParsePropertyString(v, "file").Get("media") == "cdrom")
          order += (order.empty() ? "" : ";") + k;
      if (vm->conf.count("net0")) order += (order.empty() ? "" : ";") + std::string("net0");
      if (!order.empty()) vm->conf["boot"] = "order=" + order;
    }
    vm->conf["smbios1"] = "uuid=" + NewUuid();
    vm->conf["vmgenid"] = NewUuid();
    vm->conf["meta"] = "creation-qemu=9.2.0,ctime=" + std::to_string(Now() / 1000);
    if (a.value("start", false)) {
      SetRunning(*vm, true);
      vm->started_ms = Now();
      vm->agent_ready_ms = Now() + Scaled(opt_.boot_delay);
      vm->pid = static_cast<int>(next_pid_++);
    }
    return "";
  }
  if (!t.fail.empty()) {
    if (vm && t.type == "qmigrate") vm->conf.erase("lock");
    if (vm && t.type == "qmdestroy" && vm->conf.count("lock") && vm->conf["lock"] == "destroyed")
      vm->conf.erase("lock");
    return t.fail;
  }
  if (t.type == "imgcopy") {
    Node* n = FindNode(t.node);
    if (n == nullptr || !n->storages.count(a["storage"])) return "storage vanished";
    Storage& st = n->storages[a["storage"]];
    const uint64_t used = a["used"];
    if (st.Used() + used > st.total) return "import failed: No space left on device";
    Volume v{a["volid"], a["content"], a["format"], a["size"], used, 0, Now() / 1000};
    st.volumes[v.volid] = v;
    t.log.push_back("finished file import successfully");
    return "";
  }
  if (t.type == "imgdel") {
    Storage* st = nullptr;
    if (FindVolume(t.node, a["volid"], &st) == nullptr) return "volume does not exist";
    st->volumes.erase(a["volid"].get<std::string>());
    return "";
  }
  if (vm == nullptr || vm->node != t.node) return missing;

  if (t.type == "qmconfig") {
    if (std::string l = locked(*vm); !l.empty()) return l;
    return ApplyUpdate(*vm, a);
  }
  if (t.type == "qmstart") {
    if (vm->conf.count("template") && vm->conf["template"] == "1")
      return "you can't start a vm if it's a template";
    if (std::string l = locked(*vm); !l.empty()) return l;
    if (vm->running) return "VM " + vmids + " already running";
    ApplyPending(*vm);
    SetRunning(*vm, true);
    vm->started_ms = Now();
    vm->agent_ready_ms = Now() + Scaled(opt_.boot_delay);
    vm->pid = static_cast<int>(next_pid_++);
    return "";
  }
  if (t.type == "qmstop" || t.type == "qmshutdown") {
    if (!vm->running) return "";  // stopping a stopped VM is fine
    if (std::string l = locked(*vm); !l.empty()) return l;
    if (a.value("timed_out", false) && !a.value("force_stop", false))
      return "VM quit/powerdown failed - got timeout";
    SetRunning(*vm, false);
    vm->pid = 0;
    return "";
  }
  if (t.type == "qmreboot") {
    if (!vm->running) return "VM " + vmids + " not running";
    if (std::string l = locked(*vm); !l.empty()) return l;
    ApplyPending(*vm);
    vm->started_ms = Now();
    vm->agent_ready_ms = Now() + Scaled(opt_.boot_delay);
    return "";
  }
  if (t.type == "qmdestroy") {
    if (a.contains("locked"))
      return "VM " + vmids + " is locked (" + a["locked"].get<std::string>() + ")";
    if (vm->running) return "VM " + vmids + " is running - destroy failed";
    for (const auto& [k, v] : vm->conf)
      if (IsDiskKey(k) || IsUnusedKey(k)) FreeVmVolume(*vm, v);
    for (const auto& [k, v] : vm->pending)
      if (IsDiskKey(k)) FreeVmVolume(*vm, v);
    vms_.erase(vmid);
    return "";
  }
  if (t.type == "resize") {
    if (std::string l = locked(*vm); !l.empty()) return l;
    const std::string disk = a["disk"];
    auto it = vm->conf.find(disk);
    if (it == vm->conf.end()) return "disk '" + disk + "' does not exist";
    PropertyString p = ParsePropertyString(it->second, "file");
    if (p.Get("media") == "cdrom") return "you can't resize a cdrom";
    const std::string file = p.Get("file").value_or("");
    Storage* st = nullptr;
    Volume* vol = FindVolume(vm->node, file, &st);
    const uint64_t current = vol ? vol->size : ParseSize(p.Get("size").value_or("0")).value_or(0);
    const std::string spec = a["size"];
    const uint64_t amount = ParseSize(spec).value_or(0);
    uint64_t wanted = spec[0] == '+' ? current + amount : amount;
    if (wanted < current) return "shrinking disks is not supported";
    if (wanted == current) return "";
    // Like PVE: sizes are rounded up to whole KiB... and block storages to MiB extents.
    wanted = (wanted + kMiB - 1) / kMiB * kMiB;
    if (vol && st) {
      if (st->Used() - vol->used + wanted > st->total)
        return "lvextend '" + file + "' error: Insufficient free space";
      vol->size = wanted;
      vol->used = wanted;
    }
    p.Set("size", FormatSize(wanted));
    it->second = PrintPropertyString(p, "file");
    t.log.push_back("resized " + disk + " to " + FormatSize(wanted));
    return "";
  }
  if (t.type == "qmigrate") {
    const std::string target = a["target"];
    vm->conf.erase("lock");
    Node* dst = FindNode(target);
    if (dst == nullptr) return "no such cluster node '" + target + "'";
    // Local volumes move with the VM to the same-named storage on the target.
    for (Node& n : nodes_) {
      if (n.name != vm->node) continue;
      for (auto& [sname, st] : n.storages) {
        std::vector<std::string> moving;
        for (auto& [volid, v] : st.volumes)
          if (v.vmid == vmid) moving.push_back(volid);
        for (const auto& volid : moving) {
          if (!dst->storages.count(sname))
            return "storage '" + sname + "' is not available on node '" + target + "'";
          dst->storages[sname].volumes[volid] = st.volumes[volid];
          st.volumes.erase(volid);
        }
      }
    }
    vm->node = target;
    return "";
  }
  return "unknown task type";
}

// ---------------------------------------------------------------------------
// Disks and NICs.

std::optional<Reply> PveSim::Impl::PlanDisk(const std::string& node, const std::string& key,
                                            const std::string& value,
                                            const std::string& default_storage,
                                            std::vector<Alloc>* allocs, std::string* final_value) {
  PropertyString p = ParsePropertyString(value, "file");
  const std::string file = p.Get("file").value_or("");
  if (file.empty())
    return ParamFail(key, "invalid format - format error\n" + key +
                              ".file: property is missing and it is not optional");
  const std::optional<std::string> import = p.Get("import-from");
  const bool cdrom = p.Get("media") == "cdrom";
  static const std::regex new_re("^(([^:\\s]+):)?([0-9]+(\\.[0-9]+)?)$");
  static const std::regex ci_re("^([^:\\s]+):cloudinit$");
  std::smatch m;
  Node* n = FindNode(node);
  auto check_store = [&](const std::string& s) -> std::optional<Reply> {
    if (s.empty()) return Fail(500, "no storage ID specified (and no default storage)");
    if (!n->storages.count(s)) return Fail(500, "storage '" + s + "' does not exist");
    if (!n->storages[s].Supports("images"))
      return ParamFail(key, "storage '" + s + "' does not support vm images");
    return std::nullopt;
  };
  auto rest_opts = [&]() {
    PropertyString r = p;
    r.Remove("file");
    r.Remove("import-from");
    r.Remove("size");
    return PrintPropertyString(r, "");
  };
  if (import) {
    if (!std::regex_match(file, m, new_re) || std::stod(m[3].str()) != 0)
      return ParamFail(
          key, "'import-from' requires special syntax - use <storage ID>:0,import-from=<source>");
    const std::string store = m[2].matched ? m[2].str() : default_storage;
    if (auto e = check_store(store)) return e;
    if (StartsWith(*import, "/"))
      return Fail(500, "Only root can pass arbitrary filesystem paths.");
    Volume* src = FindVolume(node, *import);
    if (src == nullptr) return Fail(500, "volume '" + *import + "' does not exist");
    if (src->content != "images" && src->content != "import")
      return ParamFail(key, "'" + *import + "' has wrong type '" + src->content +
                                "' - needs to be 'images' or 'import'");
    allocs->push_back(Alloc{key, store, src->size, *import, false, rest_opts()});
    return std::nullopt;
  }
  if (std::regex_match(file, m, new_re)) {
    const std::string store = m[2].matched ? m[2].str() : default_storage;
    if (auto e = check_store(store)) return e;
    const double gib = std::stod(m[3].str());
    if (gib <= 0) return ParamFail(key, "invalid size '" + m[3].str() + "'");
    allocs->push_back(Alloc{key, store, static_cast<uint64_t>(gib * kGiB), "", false, rest_opts()});
    return std::nullopt;
  }
  if (std::regex_match(file, m, ci_re)) {
    if (auto e = check_store(m[1].str())) return e;
    allocs->push_back(Alloc{key, m[1].str(), 4 * kMiB, "", true, "media=cdrom"});
    return std::nullopt;
  }
  if (cdrom && (file == "none" || file == "cdrom")) {
    *final_value = PrintPropertyString(p, "file");
    return std::nullopt;
  }
  Volume* v = FindVolume(node, file);
  if (v == nullptr) return Fail(500, "volume '" + file + "' does not exist");
  if (v->content == "iso" && !cdrom)
    return ParamFail(key, "explicit 'media=cdrom' is required for iso images");
  if (!p.Get("size") && !cdrom) p.Set("size", FormatSize(v->size));
  *final_value = PrintPropertyString(p, "file");
  return std::nullopt;
}

std::optional<Reply> PveSim::Impl::PlanNet(const std::string& key, const std::string& value,
                                           std::string* final_value) {
  PropertyString p = ParsePropertyString(value, "model");
  std::string model = p.Get("model").value_or("");
  std::string mac = p.Get("macaddr").value_or("");
  p.Remove("model");
  p.Remove("macaddr");
  if (model.empty()) {
    for (const auto& m : NicModels()) {
      if (auto v = p.Get(m)) {
        model = m;
        mac = *v;
        p.Remove(m);
        break;
      }
    }
  }
  const auto& models = NicModels();
  if (std::find(models.begin(), models.end(), model) == models.end())
    return ParamFail(key, "invalid format - format error\n" + key +
                              ".model: property is missing and it is not optional");
  static const std::regex mac_re("^[0-9A-Fa-f]{2}(:[0-9A-Fa-f]{2}){5}$");
  if (mac.empty()) {
    mac = NewMac();
  } else if (!std::regex_match(mac, mac_re)) {
    return ParamFail(key, "invalid format - format error\n" + key +
                              ".macaddr: value does not look like a valid MAC address");
  }
  std::transform(mac.begin(), mac.end(), mac.begin(), ::toupper);
  const std::string rest = PrintPropertyString(p, "");
  *final_value = model + "=" + mac + (rest.empty() ? "" : "," + rest);
  return std::nullopt;
}

std::optional<Reply> PveSim::Impl::CheckConfigValues(const Params& params) {
  FieldErrors errs;
  for (const auto& [k, v] : params) {
    if (k == "memory") {
      PropertyString p = ParsePropertyString(v, "current");
      long long mib = 0;
      try {
        mib = std::stoll(p.Get("current").value_or("0"));
      } catch (const std::exception&) {
        mib = -1;
      }
      if (mib < 16)
        errs[k] =
            "invalid format - format error\nmemory.current: value must have a minimum value of 16";
    } else if (k == "agent") {
      PropertyString p = ParsePropertyString(v, "enabled");
      const std::string e = p.Get("enabled").value_or("");
      if (e != "0" && e != "1")
        errs[k] =
            "invalid format - format error\nagent.enabled: type check ('boolean') failed - got '" +
            e + "'";
    } else if (StartsWith(k, "ipconfig")) {
      static const std::regex re("^((ip|gw|ip6|gw6)=[^,]+)(,(ip|gw|ip6|gw6)=[^,]+)*$");
      if (!std::regex_match(v, re)) errs[k] = "invalid format - format error";
    }
  }
  if (!errs.empty()) return ParamFail(errs);
  return std::nullopt;
}

int64_t PveSim::Impl::AllocDuration(const std::string& node, const Alloc& a) {
  int64_t d = TaskMs() / 2;
  if (!a.import_from.empty()) {
    const Volume* src = FindVolume(node, a.import_from);
    const double gib = src ? static_cast<double>(src->size) / kGiB : 0;
    d += static_cast<int64_t>(gib * static_cast<double>(Scaled(opt_.import_per_gib)));
  }
  return d;
}

int64_t PveSim::Impl::ScheduleAllocations(const std::string& node, const std::vector<Alloc>& allocs,
                                          int64_t start, std::string* fail) {
  Node* n = FindNode(node);
  int64_t t = start;
  const int64_t timeout = Scaled(opt_.storage_lock_timeout);
  for (const Alloc& a : allocs) {
    Storage& st = n->storages[a.storage];
    const int64_t begin = std::max(t, st.lock_free_at);
    if (begin - t > timeout) {
      *fail = "cfs-lock 'storage-" + a.storage + "' error: got lock request timeout";
      return t + timeout;
    }
    t = begin + AllocDuration(node, a);
    st.lock_free_at = t;
  }
  return t;
}

std::string PveSim::Impl::Allocate(Vm& vm, const Alloc& a, std::string* final_value) {
  Node* n = FindNode(vm.node);
  if (n == nullptr || !n->storages.count(a.storage))
    return "storage '" + a.storage + "' does not exist";
  Storage& st = n->storages[a.storage];
  uint64_t size = a.size;
  std::string format = "raw";
  if (!a.import_from.empty()) {
    const Volume* src = FindVolume(vm.node, a.import_from);
    if (src == nullptr) return "volume '" + a.import_from + "' does not exist";
    size = src->size;
  }
  std::string name;
  if (a.cloudinit) {
    name = "vm-" + std::to_string(vm.vmid) + "-cloudinit";
  } else {
    for (int i = 0;; ++i) {
      name = "vm-" + std::to_string(vm.vmid) + "-disk-" + std::to_string(i);
      if (!st.volumes.count(a.storage + ":" + name)) break;
    }
  }
  const std::string volid = a.storage + ":" + name;
  if (st.volumes.count(volid)) return "volume '" + volid + "' already exists";
  if (st.Used() + size > st.total)
    return "lvcreate 'pve/" + name + "' error:   Insufficient free space";
  st.volumes[volid] = Volume{volid, "images", format, size, size, vm.vmid, Now() / 1000};
  PropertyString p = ParsePropertyString(a.opts, "");
  std::string out = volid;
  if (!a.cloudinit) p.Set("size", FormatSize(size));
  const std::string rest = PrintPropertyString(p, "");
  *final_value = out + (rest.empty() ? "" : "," + rest);
  return "";
}

void PveSim::Impl::FreeVmVolume(Vm& vm, const std::string& value) {
  const std::string file = ParsePropertyString(value, "file").Get("file").value_or("");
  Storage* st = nullptr;
  Volume* v = FindVolume(vm.node, file, &st);
  if (v != nullptr && v->vmid == vm.vmid) st->volumes.erase(file);
}

void PveSim::Impl::DetachDisk(Vm& vm, const std::string& key, const std::string& value,
                              bool force) {
  PropertyString p = ParsePropertyString(value, "file");
  const std::string file = p.Get("file").value_or("");
  if (file == "none" || file == "cdrom") return;
  Volume* v = FindVolume(vm.node, file);
  if (v == nullptr || v->vmid != vm.vmid) return;  // an ISO or someone else's volume
  if (force || IsUnusedKey(key) || file.find("-cloudinit") != std::string::npos) {
    FreeVmVolume(vm, file);
    return;
  }
  for (int i = 0;; ++i) {
    const std::string k = "unused" + std::to_string(i);
    if (!vm.conf.count(k)) {
      vm.conf[k] = file;
      return;
    }
  }
}

void PveSim::Impl::ApplyPending(Vm& vm) {
  for (const auto& k : vm.pending_delete) {
    if (auto it = vm.conf.find(k); it != vm.conf.end()) {
      const std::string old = it->second;
      vm.conf.erase(it);
      if (IsDiskKey(k) || IsUnusedKey(k)) DetachDisk(vm, k, old, false);
    }
  }
  for (const auto& [k, v] : vm.pending) {
    auto it = vm.conf.find(k);
    const std::string old = it == vm.conf.end() ? "" : it->second;
    vm.conf[k] = v;
    if (IsDiskKey(k) && !old.empty() && old != v) DetachDisk(vm, k, old, false);
  }
  vm.pending.clear();
  vm.pending_delete.clear();
}

std::string PveSim::Impl::ApplyUpdate(Vm& vm, const json& a) {
  for (const auto& k : a.value("revert", json::array())) {
    vm.pending.erase(k.get<std::string>());
    vm.pending_delete.erase(k.get<std::string>());
  }
  std::map<std::string, std::string> changes =
      a.value("changes", std::map<std::string, std::string>{});
  for (const auto& j : a.value("allocs", json::array())) {
    Alloc al{j["key"], j["storage"], j["size"], j["import_from"], j["cloudinit"], j["opts"]};
    std::string final_value;
    if (std::string err = Allocate(vm, al, &final_value); !err.empty()) return err;
    changes[al.key] = final_value;
  }
  const bool force = a.value("force", false);
  // A hotplug change itself takes effect for the keys of the same update.
  const std::string hotplug = vm.conf.count("hotplug") ? vm.conf.at("hotplug") : "network,disk,usb";
  for (const auto& [k, v] : changes) {
    if (vm.running && !IsHotpluggable(k, hotplug)) {
      vm.pending[k] = v;
      vm.pending_delete.erase(k);
      continue;
    }
    auto it = vm.conf.find(k);
    const std::string old = it == vm.conf.end() ? "" : it->second;
    vm.conf[k] = v;
    if (IsDiskKey(k) && !old.empty() && old != v &&
        ParsePropertyString(old, "file").Get("file") != ParsePropertyString(v, "file").Get("file"))
      DetachDisk(vm, k, old, false);
    vm.pending.erase(k);
    vm.pending_delete.erase(k);
  }
  for (const auto& kj : a.value("delete", json::array())) {
    const std::string k = kj;
    if (vm.running && !IsHotpluggable(k, hotplug)) {
      vm.pending_delete.insert(k);
      vm.pending.erase(k);
      continue;
    }
    auto it = vm.conf.find(k);
    if (it != vm.conf.end()) {
      const std::string old = it->second;
      vm.conf.erase(it);
      if (IsDiskKey(k) || IsUnusedKey(k)) DetachDisk(vm, k, old, force);
    }
    vm.pending.erase(k);
    vm.pending_delete.erase(k);
  }
  return "";
}

}  // namespace nixmox::pvesim
