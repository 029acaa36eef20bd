// Internal to pve-sim: the world model (nodes, storages, VMs, tasks), request
// plumbing and the PveSim::Impl declaration shared by the simulator's .cc
// files. Not part of any interface; only test/sim/pve includes it.
#pragma once

#include <openssl/evp.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <array>
#include <cinttypes>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <random>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "test/sim/pve/params.h"
#include "test/sim/pve/pve_sim.h"

namespace nixmox::pvesim {

using json = nlohmann::json;
inline constexpr uint64_t kGiB = 1024ull * 1024 * 1024;
inline constexpr uint64_t kMiB = 1024ull * 1024;
inline constexpr const char* kJsonType = "application/json;charset=UTF-8";
inline constexpr const char* kVersion = "8.4.1";
inline constexpr const char* kRepoId = "2a5fa54a8503f96d";

// ---------------------------------------------------------------------------
// The world.

struct Volume {
  std::string volid;    // "local-lvm:vm-100-disk-0"
  std::string content;  // images, iso, import, vztmpl
  std::string format;   // raw, qcow2, iso, ...
  uint64_t size = 0;    // virtual size in bytes
  uint64_t used = 0;    // bytes counted against the storage
  int vmid = 0;         // owner, 0 = none
  int64_t ctime = 0;
};

struct Storage {
  std::string name;
  std::string type;  // dir, lvmthin
  std::vector<std::string> content;
  uint64_t total = 0;
  std::map<std::string, Volume> volumes;  // by volid
  // Per-storage allocation lock: the earliest time (wall ms) a new allocation may start.
  int64_t lock_free_at = 0;

  bool Supports(std::string_view c) const {
    return std::find(content.begin(), content.end(), c) != content.end();
  }
  uint64_t Used() const {
    uint64_t u = 0;
    for (const auto& [id, v] : volumes) u += v.used;
    return u;
  }
};

struct Node {
  std::string name;
  uint64_t maxmem = 64 * kGiB;
  int maxcpu = 16;
  int64_t boot_ms = 0;
  std::map<std::string, Storage> storages;
};

struct Vm {
  int vmid = 0;
  std::string node;
  std::map<std::string, std::string> conf;
  std::map<std::string, std::string> pending;
  std::set<std::string> pending_delete;
  bool running = false;
  // What pvestatd last broadcast: /cluster/resources shows `running` only once
  // the lag has passed since it changed, and "unknown" for a brand-new guest.
  int64_t created_ms = 0;
  int64_t running_changed_ms = 0;
  int64_t started_ms = 0;
  int64_t agent_ready_ms = 0;
  int pid = 0;
};

struct Task {
  std::string upid, node, type, id, user;
  int64_t start_ms = 0, end_ms = 0;
  bool running = true;
  std::string exitstatus;
  std::vector<std::string> log;
  json args = json::object();
  std::string fail;  // decided at dispatch: the task will end with this error
};

struct Reply {
  int status = 200;
  json data = nullptr;
  std::string message;
  FieldErrors errors;
  bool raw_empty = false;       // 401: empty body
  json extra = json::object();  // extra top-level members, e.g. "total"
};

inline Reply Ok(json data = nullptr) { return Reply{200, std::move(data), "", {}, false}; }
inline Reply Fail(int status, std::string message) {
  return Reply{status, nullptr, std::move(message), {}, false};
}
inline Reply ParamFail(FieldErrors errors) {
  return Reply{400, nullptr, "Parameter verification failed.", std::move(errors), false};
}
inline Reply ParamFail(const std::string& key, const std::string& msg) {
  return ParamFail({{key, msg}});
}

inline int64_t ToMs(Clock::WallTime t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
}

inline std::string Hex(uint64_t v, int width) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%0*" PRIX64, width, v);
  return buf;
}

inline std::string Sha1Hex(std::string_view data) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(data.data(), data.size(), md, &len, EVP_sha1(), nullptr);
  std::string out;
  static const char* kDigits = "0123456789abcdef";
  for (unsigned i = 0; i < len; ++i) {
    out += kDigits[md[i] >> 4];
    out += kDigits[md[i] & 15];
  }
  return out;
}

inline std::string Lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), ::tolower);
  return s;
}

inline bool StartsWith(std::string_view s, std::string_view p) {
  return s.substr(0, p.size()) == p;
}

// Keys printed as JSON numbers in GET config (integer and boolean schema types).
inline bool IsNumericKey(const std::string& k) {
  static const std::set<std::string> keys = {
      "cores",    "sockets",  "vcpus",  "balloon", "protection", "onboot",
      "kvm",      "acpi",     "tablet", "numa",    "localtime",  "ciupgrade",
      "cpuunits", "template", "shares", "reboot",  "autostart",  "freeze"};
  return keys.count(k) > 0;
}

inline bool IsDiskKey(const std::string& k) {
  static const std::regex re("^(scsi|virtio|sata|ide)[0-9]+$|^efidisk0$|^tpmstate0$");
  return std::regex_match(k, re);
}
inline bool IsNetKey(const std::string& k) {
  static const std::regex re("^net[0-9]+$");
  return std::regex_match(k, re);
}
inline bool IsUnusedKey(const std::string& k) { return StartsWith(k, "unused"); }

// Keys applied at once on a running VM (options that never need a restart,
// plus what the VM's hotplug list allows); everything else stays pending until
// the next start or reboot.
inline bool IsHotpluggable(const std::string& k, const std::string& hotplug) {
  static const std::set<std::string> live = {"name",   "description", "tags", "protection",
                                             "onboot", "startup",     "lock", "hookscript"};
  if (live.count(k) || IsUnusedKey(k)) return true;
  // The VM's `hotplug` option: a list of network,disk,cpu,memory,usb; "0" = none, "1" = default.
  std::set<std::string> features;
  if (hotplug == "1") {
    features = {"network", "disk", "usb"};
  } else if (hotplug != "0") {
    for (const auto& f : SplitList(hotplug)) features.insert(f);
  }
  if (IsNetKey(k)) return features.count("network") > 0;
  if (StartsWith(k, "scsi") || StartsWith(k, "virtio")) return features.count("disk") > 0;
  if (k == "memory") return features.count("memory") > 0;
  if (k == "vcpus") return features.count("cpu") > 0;
  return false;
}

inline const std::vector<std::string>& NicModels() {
  static const std::vector<std::string> m = {
      "e1000",  "e1000-82540em", "e1000-82544gc", "e1000-82545em", "e1000e",
      "i82551", "i82557b",       "i82559er",      "ne2k_isa",      "ne2k_pci",
      "pcnet",  "rtl8139",       "virtio",        "vmxnet3"};
  return m;
}

// ---------------------------------------------------------------------------
// Parameter schemas (a subset of PVE 8.4's, written from the API viewer data).

inline constexpr const char* kNodePattern = "[a-zA-Z0-9]([a-zA-Z0-9\\-]*[a-zA-Z0-9])?";
inline constexpr const char* kStoragePattern = "[a-zA-Z][a-zA-Z0-9\\-_.]*[a-zA-Z0-9]";
inline constexpr const char* kDnsName =
    "([a-zA-Z0-9]([a-zA-Z0-9\\-]*[a-zA-Z0-9])?)(\\.([a-zA-Z0-9]([a-zA-Z0-9\\-]*[a-zA-Z0-9])?))*";

inline ParamSpec Str(std::string name, std::string pattern = "", int max_index = 0) {
  ParamSpec s;
  s.name = std::move(name);
  s.pattern = std::move(pattern);
  s.max_index = max_index;
  return s;
}
inline ParamSpec Bool(std::string name) {
  ParamSpec s;
  s.name = std::move(name);
  s.type = ParamType::kBoolean;
  return s;
}
inline ParamSpec Int(std::string name, std::optional<int64_t> min = std::nullopt,
                     std::optional<int64_t> max = std::nullopt) {
  ParamSpec s;
  s.name = std::move(name);
  s.type = ParamType::kInteger;
  s.minimum = min;
  s.maximum = max;
  return s;
}
inline ParamSpec Enum(std::string name, std::vector<std::string> values) {
  ParamSpec s;
  s.name = std::move(name);
  s.enumeration = std::move(values);
  return s;
}
inline ParamSpec Required(ParamSpec s) {
  s.optional = false;
  return s;
}
inline ParamSpec NodeSpec() { return Required(Str("node", kNodePattern)); }
inline ParamSpec VmidSpec() { return Required(Int("vmid", 100, 999999999)); }
inline ParamSpec StorageSpec() { return Required(Str("storage", kStoragePattern)); }

inline std::vector<ParamSpec> VmConfigSpecs() {
  ParamSpec desc = Str("description");
  desc.max_length = 8192;
  ParamSpec cpulimit;
  cpulimit.name = "cpulimit";
  cpulimit.type = ParamType::kNumber;
  cpulimit.minimum = 0;
  cpulimit.maximum = 128;
  return {
      Str("name", kDnsName),
      Int("cores", 1),
      Int("sockets", 1),
      Int("vcpus", 1),
      Str("cpu"),
      cpulimit,
      Int("cpuunits", 1, 262144),
      Str("memory", "(current=)?[0-9]+"),
      Int("balloon", 0),
      Int("shares", 0, 50000),
      Str("tags", "([a-zA-Z0-9_][a-zA-Z0-9_\\-+.]*)?([,; ]+[a-zA-Z0-9_][a-zA-Z0-9_\\-+.]*)*[,; ]*"),
      desc,
      Str("agent"),
      Bool("protection"),
      Bool("onboot"),
      Str("boot"),
      Str("bootdisk"),
      Enum("scsihw",
           {"lsi", "lsi53c810", "virtio-scsi-pci", "virtio-scsi-single", "megasas", "pvscsi"}),
      Enum("ostype", {"other", "wxp", "w2k", "w2k3", "w2k8", "wvista", "win7", "win8", "win10",
                      "win11", "l24", "l26", "solaris"}),
      Enum("bios", {"seabios", "ovmf"}),
      Str("machine"),
      Bool("kvm"),
      Bool("acpi"),
      Bool("tablet"),
      Bool("numa"),
      Bool("localtime"),
      Bool("template"),
      Str("ciuser"),
      Str("cipassword"),
      Str("sshkeys", "[-%a-zA-Z0-9_.!~*'()]*"),
      Str("ipconfig[n]", "", 31),
      Str("nameserver"),
      Str("searchdomain"),
      Enum("citype", {"configdrive2", "nocloud", "opennebula"}),
      Bool("ciupgrade"),
      Str("cicustom"),
      Str("net[n]", "", 31),
      Str("scsi[n]", "", 30),
      Str("virtio[n]", "", 15),
      Str("sata[n]", "", 5),
      Str("ide[n]", "", 3),
      Str("efidisk0"),
      Str("tpmstate0"),
      Str("unused[n]", "", 255),
      Str("serial[n]", "", 3),
      Str("vga"),
      Str("hotplug"),
      Str("startup"),
      Str("smbios1"),
      Str("vmgenid"),
      Str("hookscript"),
      Str("rng0"),
  };
}

inline std::vector<ParamSpec> With(std::vector<ParamSpec> base, std::vector<ParamSpec> more) {
  base.insert(base.end(), more.begin(), more.end());
  return base;
}

// ---------------------------------------------------------------------------
// Request plumbing.

struct Ctx {
  const http::ServerRequest* req = nullptr;
  std::map<std::string, std::string> path;  // placeholders from the route
  Params params;
  std::string user;  // "root@pam!ci"
  std::string tmpl;  // route template, e.g. "/nodes/{node}/qemu"
  const std::vector<ParamSpec>* specs = nullptr;
};

struct FaultConfig {
  int latency_ms = 0;
  double error_rate = 0;         // 500 before handling
  double timeout_rate = 0;       // handled, then 596 Connection timed out
  double drop_rate = 0;          // handled, then the answer is lost (596, see README)
  double task_failure_rate = 0;  // tasks end with an error
  std::string match;             // only requests whose "METHOD /template" contains this
  int remaining = -1;            // faults left to inject; -1 = unlimited

  json ToJson() const {
    return {{"latency_ms", latency_ms},
            {"error_rate", error_rate},
            {"timeout_rate", timeout_rate},
            {"drop_rate", drop_rate},
            {"task_failure_rate", task_failure_rate},
            {"match", match},
            {"remaining", remaining}};
  }
};

struct Cidr4 {
  uint32_t base = 0;
  int bits = 0;
};
struct Cidr6 {
  std::array<uint8_t, 16> base{};
  int bits = 0;
};

inline std::optional<Cidr4> ParseCidr4(const std::string& s) {
  unsigned a, b, c, d, bits;
  char tail;
  if (std::sscanf(s.c_str(), "%u.%u.%u.%u/%u%c", &a, &b, &c, &d, &bits, &tail) != 5) return {};
  if (a > 255 || b > 255 || c > 255 || d > 255 || bits > 30 || bits < 8) return {};
  Cidr4 r;
  r.bits = static_cast<int>(bits);
  const uint32_t mask = bits == 0 ? 0 : ~uint32_t{0} << (32 - bits);
  r.base = ((a << 24) | (b << 16) | (c << 8) | d) & mask;
  return r;
}

inline std::optional<Cidr6> ParseCidr6(const std::string& s) {
  const size_t slash = s.find('/');
  if (slash == std::string::npos) return {};
  const std::string addr = s.substr(0, slash);
  int bits = 0;
  try {
    bits = std::stoi(s.substr(slash + 1));
  } catch (...) {
    return {};
  }
  if (bits < 16 || bits > 64) return {};
  // Expand "::" and parse groups.
  std::vector<std::string> head, tail;
  const size_t dc = addr.find("::");
  auto split = [](const std::string& x) {
    std::vector<std::string> out;
    std::stringstream ss(x);
    std::string g;
    while (std::getline(ss, g, ':'))
      if (!g.empty()) out.push_back(g);
    return out;
  };
  if (dc == std::string::npos) {
    head = split(addr);
    if (head.size() != 8) return {};
  } else {
    head = split(addr.substr(0, dc));
    tail = split(addr.substr(dc + 2));
    if (head.size() + tail.size() > 7) return {};
  }
  std::vector<uint16_t> groups;
  auto add = [&](const std::vector<std::string>& gs) {
    for (const auto& g : gs) {
      if (g.size() > 4 || g.find_first_not_of("0123456789abcdefABCDEF") != std::string::npos)
        return false;
      groups.push_back(static_cast<uint16_t>(std::stoul(g, nullptr, 16)));
    }
    return true;
  };
  if (!add(head)) return {};
  while (groups.size() + tail.size() < 8) groups.push_back(0);
  if (!add(tail)) return {};
  Cidr6 r;
  r.bits = bits;
  for (int i = 0; i < 8; ++i) {
    r.base[2 * i] = groups[i] >> 8;
    r.base[2 * i + 1] = groups[i] & 0xff;
  }
  for (int i = bits; i < 128; ++i) r.base[i / 8] &= static_cast<uint8_t>(~(0x80 >> (i % 8)));
  return r;
}

inline std::string FormatIpv4(uint32_t v) {
  return std::to_string(v >> 24) + "." + std::to_string((v >> 16) & 255) + "." +
         std::to_string((v >> 8) & 255) + "." + std::to_string(v & 255);
}

inline std::string FormatIpv6(const std::array<uint8_t, 16>& a) {
  // Compressed form: the longest run of zero groups becomes "::".
  uint16_t g[8];
  for (int i = 0; i < 8; ++i) g[i] = static_cast<uint16_t>((a[2 * i] << 8) | a[2 * i + 1]);
  int best = -1, best_len = 0;
  for (int i = 0; i < 8;) {
    if (g[i] != 0) {
      ++i;
      continue;
    }
    int j = i;
    while (j < 8 && g[j] == 0) ++j;
    if (j - i > best_len && j - i > 1) best = i, best_len = j - i;
    i = j;
  }
  std::string out;
  char buf[8];
  for (int i = 0; i < 8; ++i) {
    if (i == best) {
      out += "::";
      i += best_len - 1;
      continue;
    }
    if (!out.empty() && out.back() != ':') out += ":";
    std::snprintf(buf, sizeof buf, "%x", g[i]);
    out += buf;
  }
  return out;
}

inline uint64_t Mix(uint64_t x) {  // splitmix64 finaliser: deterministic, well spread
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

inline int VmConfInt(const Vm& vm, const std::string& key, int def) {
  auto it = vm.conf.find(key);
  if (it == vm.conf.end()) return def;
  try {
    return std::stoi(it->second);
  } catch (...) {
    return def;
  }
}

inline std::string NormaliseTags(const std::string& tags) {
  std::set<std::string> unique;
  for (const auto& t : SplitList(tags)) unique.insert(Lower(t));
  std::string out;
  for (const auto& t : unique) out += (out.empty() ? "" : ";") + t;
  return out;
}

inline json AllocToJson(const std::string& key, const std::string& storage, uint64_t size,
                        const std::string& import_from, bool cloudinit, const std::string& opts) {
  return {{"key", key},
          {"storage", storage},
          {"size", size},
          {"import_from", import_from},
          {"cloudinit", cloudinit},
          {"opts", opts}};
}

// ---------------------------------------------------------------------------

class PveSim::Impl {
 public:
  Impl(Options options, Clock& clock) : opt_(std::move(options)), clock_(clock), rng_(opt_.seed) {}

  Status Init();
  http::ServerResponse Handle(const http::ServerRequest& req);
  void Tick() {
    std::lock_guard lock(mu_);
    Advance();
    SaveIfDirty();
    if (request_log_.is_open()) request_log_.flush();
  }
  Status Save() {
    std::lock_guard lock(mu_);
    return SaveLocked();
  }

 private:
  using Handler = Reply (Impl::*)(Ctx&);
  struct Route {
    std::string method;
    std::string tmpl;
    Handler fn;
    std::vector<ParamSpec> specs;
  };

  // Setup and persistence.
  void BuildRoutes();
  void ResetWorld();
  Status LoadLocked();
  Status SaveLocked();
  void SaveIfDirty() {
    if (!dirty_ || opt_.state_file.empty()) return;
    if (Status s = SaveLocked(); !s.ok()) spdlog::warn("pve-sim: saving state: {}", s.ToString());
  }
  json StateToJson() const;
  void StateFromJson(const json& j);
  // Appends one line to --request-log (mu_ held); no-op without one. `fault`
  // names the injected fault ("error", "timeout", "drop") or is "-".
  void LogRequest(const http::ServerRequest& req, const std::string& tmpl, const Ctx* ctx,
                  int status, const char* fault);

  // Time.
  int64_t Now() const { return ToMs(clock_.WallNow()); }
  int64_t Scaled(std::chrono::milliseconds d) const {
    return static_cast<int64_t>(static_cast<double>(d.count()) / opt_.time_scale);
  }
  int64_t TaskMs() const { return Scaled(opt_.task_duration); }
  void Advance();

  // Dispatch.
  const Route* Match(const std::string& method, const std::string& path, Ctx* ctx,
                     bool* path_known) const;
  std::optional<Reply> Authenticate(const http::ServerRequest& req, Ctx* ctx) const;
  http::ServerResponse Render(const Reply& r) const;
  http::ServerResponse HandleAdmin(const http::ServerRequest& req);
  // Config updates take the VM's config flock: wait (really, outside the
  // mutex) for a task holding it, up to 10 s, then fail like PVE does.
  std::optional<Reply> WaitForConfigLock(std::unique_lock<std::mutex>& lock, int vmid);
  // POST config with background_delay=N: wait (really) up to N seconds for the
  // task; null when it ended OK in time, its error when it failed, else the UPID.
  Reply WaitInBackground(std::unique_lock<std::mutex>& lock, const Reply& upid_reply,
                         int64_t delay_s);
  bool Roll(double p) { return p > 0 && std::uniform_real_distribution<double>(0, 1)(rng_) < p; }

  // World helpers.
  Node* FindNode(const std::string& name) {
    for (auto& n : nodes_)
      if (n.name == name) return &n;
    return nullptr;
  }
  Vm* FindVm(int vmid) {
    auto it = vms_.find(vmid);
    return it == vms_.end() ? nullptr : &it->second;
  }
  std::optional<Reply> LookupVm(Ctx& c, Vm** vm);
  Volume* FindVolume(const std::string& node, const std::string& volid, Storage** st = nullptr);
  std::string ConfigText(const Vm& vm) const;
  std::string Digest(const Vm& vm) const { return Sha1Hex(ConfigText(vm)); }
  std::string NewMac() {
    std::uniform_int_distribution<int> d(0, 255);
    char buf[32];
    std::snprintf(buf, sizeof buf, "BC:24:11:%02X:%02X:%02X", d(rng_), d(rng_), d(rng_));
    return buf;
  }
  std::string NewUuid() {
    std::uniform_int_distribution<uint64_t> d;
    const uint64_t a = d(rng_), b = d(rng_);
    char buf[40];
    std::snprintf(buf, sizeof buf, "%08x-%04x-4%03x-%04x-%012" PRIx64,
                  static_cast<unsigned>(a >> 32), static_cast<unsigned>((a >> 16) & 0xffff),
                  static_cast<unsigned>(a & 0xfff), static_cast<unsigned>(0x8000 | (b >> 50)),
                  static_cast<uint64_t>(b & 0xffffffffffffull));
    return buf;
  }
  uint64_t VmMemoryBytes(const Vm& vm) const;
  int VmCores(const Vm& vm) const;
  uint64_t VmMaxDisk(const Vm& vm) const;
  bool AgentEnabled(const Vm& vm) const;
  json NodeEntry(const Node& n) const;
  json VmEntry(const Vm& vm, bool full) const;
  json StorageEntry(const Node& n, const Storage& s) const;
  void SetRunning(Vm& vm, bool running) {
    vm.running = running;
    vm.running_changed_ms = Now();
  }

  // Tasks.
  Task& StartTask(const std::string& node, const std::string& type, const std::string& id,
                  const std::string& user, int64_t duration, json args = json::object());
  void FinishTask(Task& t);
  std::string ApplyTask(Task& t);
  Reply UpidReply(const Task& t) const { return Ok(t.upid); }

  // Disks.
  struct Alloc {
    std::string key;
    std::string storage;
    uint64_t size = 0;
    std::string import_from;  // source volid
    bool cloudinit = false;
    std::string opts;  // remaining property string options (without file/import-from/size)
  };
  std::optional<Reply> PlanDisk(const std::string& node, const std::string& key,
                                const std::string& value, const std::string& default_storage,
                                std::vector<Alloc>* allocs, std::string* final_value);
  std::optional<Reply> PlanNet(const std::string& key, const std::string& value,
                               std::string* final_value);
  std::optional<Reply> CheckConfigValues(const Params& p);
  // Reserves the storages' allocation locks in order; returns the end time, or
  // sets *fail when one of them could not be had within the timeout.
  int64_t ScheduleAllocations(const std::string& node, const std::vector<Alloc>& allocs,
                              int64_t start, std::string* fail);
  int64_t AllocDuration(const std::string& node, const Alloc& a);
  std::string Allocate(Vm& vm, const Alloc& a, std::string* final_value);
  void DetachDisk(Vm& vm, const std::string& key, const std::string& value, bool force);
  void FreeVmVolume(Vm& vm, const std::string& value);
  std::string ApplyUpdate(Vm& vm, const json& args);
  void ApplyPending(Vm& vm);

  // Handlers.
  Reply GetVersion(Ctx&);
  Reply GetNodes(Ctx&);
  Reply GetNodeStatus(Ctx&);
  Reply GetClusterResources(Ctx&);
  Reply GetNextId(Ctx&);
  Reply GetClusterStatus(Ctx&);
  Reply ListVms(Ctx&);
  Reply CreateVm(Ctx&);
  Reply VmIndex(Ctx&);
  Reply GetConfig(Ctx&);
  Reply PostConfig(Ctx& c) { return UpdateConfig(c, true); }
  Reply PutConfig(Ctx& c) { return UpdateConfig(c, false); }
  Reply UpdateConfig(Ctx&, bool async);
  Reply GetPending(Ctx&);
  Reply StatusIndex(Ctx&);
  Reply GetStatusCurrent(Ctx&);
  Reply PowerStart(Ctx& c) { return Power(c, "qmstart"); }
  Reply PowerStop(Ctx& c) { return Power(c, "qmstop"); }
  Reply PowerShutdown(Ctx& c) { return Power(c, "qmshutdown"); }
  Reply PowerReboot(Ctx& c) { return Power(c, "qmreboot"); }
  Reply Power(Ctx&, const std::string& type);
  Reply DestroyVm(Ctx&);
  Reply Resize(Ctx&);
  Reply GetMigrate(Ctx&);
  Reply PostMigrate(Ctx&);
  Reply AgentPing(Ctx&);
  Reply AgentInterfaces(Ctx&);
  std::optional<Reply> AgentPrecheck(Ctx&, Vm** vm);
  Reply ListTasks(Ctx&);
  Reply TaskStatus(Ctx&);
  Reply TaskLog(Ctx&);
  Reply StopTask(Ctx&);
  std::optional<Reply> LookupTask(Ctx&, Task** t);
  Reply ListStorages(Ctx&);
  Reply StorageStatus(Ctx&);
  Reply ListContent(Ctx&);
  Reply GetVolume(Ctx&);
  Reply DeleteVolume(Ctx&);
  Reply Upload(Ctx&);
  std::optional<Reply> LookupStorage(Ctx&, Node** n, Storage** s);

  Options opt_;
  Clock& clock_;
  std::vector<Route> routes_;

  std::mutex mu_;
  std::mt19937_64 rng_;
  std::vector<Node> nodes_;
  std::map<int, Vm> vms_;
  std::vector<Task> tasks_;
  uint32_t next_pid_ = 0x1000;
  std::map<std::string, std::pair<std::string, std::string>> tokens_;  // tokenid -> secret
  FaultConfig faults_;
  FaultConfig initial_faults_;  // from --fault-rate; /_sim/reset returns to it
  std::map<std::string, int64_t> counters_;
  std::ofstream request_log_;
  bool dirty_ = false;
  std::vector<Storage> storage_templates_;
  std::optional<Cidr4> v4_, public_v4_;
  std::optional<Cidr6> v6_;
};

}  // namespace nixmox::pvesim
