// pve-sim: setup, dispatch, admin endpoints, persistence.
#include "test/sim/pve/sim_internal.h"

namespace nixmox::pvesim {

// ---------------------------------------------------------------------------
// Setup.

Status PveSim::Impl::Init() {
  if (opt_.nodes.empty()) return InvalidError("at least one node is needed");
  static const std::regex node_re(kNodePattern);
  for (const auto& n : opt_.nodes)
    if (!std::regex_match(n, node_re)) return InvalidError("invalid node name '" + n + "'");
  if (opt_.time_scale <= 0) return InvalidError("time scale must be positive");
  static const std::regex token_re("^([^@!=\\s]+@[^@!=\\s]+)!([A-Za-z][A-Za-z0-9.\\-_]+)=([^=]+)$");
  for (const auto& t : opt_.tokens) {
    std::smatch m;
    // Never echo the token: it carries the secret.
    if (!std::regex_match(t, m, token_re))
      return InvalidError("malformed --token (want USER@REALM!TOKENID=SECRET)");
    tokens_[m[1].str() + "!" + m[2].str()] = {m[1].str(), m[3].str()};
  }
  for (const auto& spec : opt_.extra_storages) {
    static const std::regex re(
        "^([a-zA-Z][a-zA-Z0-9\\-_.]*[a-zA-Z0-9]):(dir|lvmthin):([a-z;]+)(:([0-9]+))?$");
    std::smatch m;
    if (!std::regex_match(spec, m, re))
      return InvalidError("malformed storage '" + spec +
                          "' (want NAME:dir|lvmthin:CONTENT;...[:GiB])");
    Storage st;
    st.name = m[1].str();
    st.type = m[2].str();
    st.content = SplitList(m[3].str());
    st.total = (m[5].matched ? std::stoull(m[5].str()) : 100) * kGiB;
    storage_templates_.push_back(st);
  }
  v4_ = ParseCidr4(opt_.guest_ipv4_cidr);
  if (!v4_) return InvalidError("invalid guest IPv4 CIDR '" + opt_.guest_ipv4_cidr + "'");
  if (!opt_.guest_public_ipv4_cidr.empty()) {
    public_v4_ = ParseCidr4(opt_.guest_public_ipv4_cidr);
    if (!public_v4_)
      return InvalidError("invalid guest public IPv4 CIDR '" + opt_.guest_public_ipv4_cidr + "'");
  }
  v6_ = ParseCidr6(opt_.guest_ipv6_cidr);
  if (!v6_) return InvalidError("invalid guest IPv6 CIDR '" + opt_.guest_ipv6_cidr + "'");
  if (!opt_.sleep) opt_.sleep = [](std::chrono::milliseconds d) { std::this_thread::sleep_for(d); };
  if (opt_.fault_rate > 0) {
    faults_.error_rate = opt_.fault_rate / 3;
    faults_.timeout_rate = opt_.fault_rate / 3;
    faults_.drop_rate = opt_.fault_rate / 3;
    faults_.task_failure_rate = opt_.fault_rate;
  }
  initial_faults_ = faults_;
  if (!opt_.request_log.empty()) {
    request_log_.open(opt_.request_log, std::ios::app);
    if (!request_log_) return InvalidError("cannot open request log '" + opt_.request_log + "'");
  }
  BuildRoutes();
  std::lock_guard lock(mu_);
  ResetWorld();
  if (!opt_.state_file.empty() && std::filesystem::exists(opt_.state_file)) {
    RETURN_IF_ERROR(LoadLocked());
  }
  return OkStatus();
}

void PveSim::Impl::ResetWorld() {
  nodes_.clear();
  vms_.clear();
  tasks_.clear();
  for (const auto& name : opt_.nodes) {
    Node n;
    n.name = name;
    n.boot_ms = Now();
    Storage local{"local", "dir", {"iso", "import", "vztmpl"}, 100 * kGiB, {}, 0};
    Storage lvm{"local-lvm", "lvmthin", {"images", "rootdir"}, 500 * kGiB, {}, 0};
    n.storages["local"] = local;
    n.storages["local-lvm"] = lvm;
    for (const Storage& st : storage_templates_) n.storages[st.name] = st;
    nodes_.push_back(std::move(n));
  }
  dirty_ = true;
}

void PveSim::Impl::BuildRoutes() {
  const std::vector<ParamSpec> node = {NodeSpec()};
  const std::vector<ParamSpec> vm = {NodeSpec(), VmidSpec()};
  auto r = [&](std::string m, std::string t, Handler fn, std::vector<ParamSpec> specs) {
    routes_.push_back(Route{std::move(m), std::move(t), fn, std::move(specs)});
  };
  r("GET", "/version", &Impl::GetVersion, {});
  r("GET", "/nodes", &Impl::GetNodes, {});
  r("GET", "/nodes/{node}/status", &Impl::GetNodeStatus, node);
  r("GET", "/cluster/resources", &Impl::GetClusterResources,
    {Enum("type", {"vm", "storage", "node", "sdn"})});
  r("GET", "/cluster/nextid", &Impl::GetNextId, {Int("vmid", 100, 999999999)});
  r("GET", "/cluster/status", &Impl::GetClusterStatus, {});
  r("GET", "/nodes/{node}/qemu", &Impl::ListVms, With(node, {Bool("full")}));
  r("POST", "/nodes/{node}/qemu", &Impl::CreateVm,
    With(VmConfigSpecs(), {NodeSpec(), VmidSpec(), Str("storage", kStoragePattern), Bool("start"),
                           Str("pool"), Bool("unique")}));
  r("GET", "/nodes/{node}/qemu/{vmid}", &Impl::VmIndex, vm);
  r("DELETE", "/nodes/{node}/qemu/{vmid}", &Impl::DestroyVm,
    With(vm, {Bool("purge"), Bool("destroy-unreferenced-disks"), Bool("skiplock")}));
  r("GET", "/nodes/{node}/qemu/{vmid}/config", &Impl::GetConfig,
    With(vm, {Bool("current"), Str("snapshot")}));
  ParamSpec digest = Str("digest");
  digest.max_length = 40;
  const std::vector<ParamSpec> update =
      With(VmConfigSpecs(),
           With(vm, {Str("delete"), Str("revert"), digest, Bool("skiplock"), Bool("force")}));
  r("POST", "/nodes/{node}/qemu/{vmid}/config", &Impl::PostConfig,
    With(update, {Int("background_delay", 1, 30)}));
  r("PUT", "/nodes/{node}/qemu/{vmid}/config", &Impl::PutConfig, update);
  r("GET", "/nodes/{node}/qemu/{vmid}/pending", &Impl::GetPending, vm);
  r("GET", "/nodes/{node}/qemu/{vmid}/status", &Impl::StatusIndex, vm);
  r("GET", "/nodes/{node}/qemu/{vmid}/status/current", &Impl::GetStatusCurrent, vm);
  r("POST", "/nodes/{node}/qemu/{vmid}/status/start", &Impl::PowerStart,
    With(vm, {Int("timeout", 0), Bool("skiplock"), Str("force-cpu"), Str("machine")}));
  r("POST", "/nodes/{node}/qemu/{vmid}/status/stop", &Impl::PowerStop,
    With(vm, {Int("timeout", 0), Bool("skiplock"), Bool("keepActive"), Bool("overrule-shutdown")}));
  r("POST", "/nodes/{node}/qemu/{vmid}/status/shutdown", &Impl::PowerShutdown,
    With(vm, {Int("timeout", 0), Bool("skiplock"), Bool("keepActive"), Bool("forceStop")}));
  r("POST", "/nodes/{node}/qemu/{vmid}/status/reboot", &Impl::PowerReboot,
    With(vm, {Int("timeout", 0)}));
  ParamSpec size = Required(Str("size", "\\+?\\d+(\\.\\d+)?[KMGT]?"));
  std::vector<std::string> disks;
  for (int i = 0; i <= 3; ++i) disks.push_back("ide" + std::to_string(i));
  for (int i = 0; i <= 30; ++i) disks.push_back("scsi" + std::to_string(i));
  for (int i = 0; i <= 15; ++i) disks.push_back("virtio" + std::to_string(i));
  for (int i = 0; i <= 5; ++i) disks.push_back("sata" + std::to_string(i));
  disks.push_back("efidisk0");
  disks.push_back("tpmstate0");
  r("PUT", "/nodes/{node}/qemu/{vmid}/resize", &Impl::Resize,
    With(vm, {Required(Enum("disk", disks)), size, digest, Bool("skiplock")}));
  r("GET", "/nodes/{node}/qemu/{vmid}/migrate", &Impl::GetMigrate,
    With(vm, {Str("target", kNodePattern)}));
  r("POST", "/nodes/{node}/qemu/{vmid}/migrate", &Impl::PostMigrate,
    With(vm, {Required(Str("target", kNodePattern)), Bool("online"), Bool("with-local-disks"),
              Str("targetstorage"), Int("bwlimit", 0), Bool("force"),
              Enum("migration_type", {"secure", "insecure"}), Str("migration_network")}));
  r("POST", "/nodes/{node}/qemu/{vmid}/agent/ping", &Impl::AgentPing, vm);
  r("GET", "/nodes/{node}/qemu/{vmid}/agent/network-get-interfaces", &Impl::AgentInterfaces, vm);
  r("GET", "/nodes/{node}/tasks", &Impl::ListTasks,
    With(node, {Bool("errors"), Int("limit", 0), Int("start", 0), Int("since"), Int("until"),
                Enum("source", {"archive", "active", "all"}), Str("statusfilter"),
                Str("typefilter"), Str("userfilter"), Int("vmid", 100, 999999999)}));
  r("GET", "/nodes/{node}/tasks/{upid}/status", &Impl::TaskStatus,
    With(node, {Required(Str("upid"))}));
  r("GET", "/nodes/{node}/tasks/{upid}/log", &Impl::TaskLog,
    With(node, {Required(Str("upid")), Int("start", 0), Int("limit", 0), Bool("download")}));
  r("DELETE", "/nodes/{node}/tasks/{upid}", &Impl::StopTask, With(node, {Required(Str("upid"))}));
  r("GET", "/nodes/{node}/storage", &Impl::ListStorages,
    With(node, {Str("content"), Bool("enabled"), Str("storage", kStoragePattern), Str("target"),
                Bool("format")}));
  r("GET", "/nodes/{node}/storage/{storage}/status", &Impl::StorageStatus,
    With(node, {StorageSpec()}));
  r("GET", "/nodes/{node}/storage/{storage}/content", &Impl::ListContent,
    With(node, {StorageSpec(), Str("content"), Int("vmid", 100, 999999999)}));
  r("GET", "/nodes/{node}/storage/{storage}/content/{volume}", &Impl::GetVolume,
    With(node, {StorageSpec(), Required(Str("volume"))}));
  r("DELETE", "/nodes/{node}/storage/{storage}/content/{volume}", &Impl::DeleteVolume,
    With(node, {StorageSpec(), Required(Str("volume")), Int("delay", 1, 30)}));
  ParamSpec filename = Required(Str("filename"));
  filename.max_length = 255;
  r("POST", "/nodes/{node}/storage/{storage}/upload", &Impl::Upload,
    With(node, {StorageSpec(), Required(Enum("content", {"iso", "vztmpl", "import"})), filename,
                Str("checksum"),
                Enum("checksum-algorithm", {"md5", "sha1", "sha224", "sha256", "sha384", "sha512"}),
                Str("tmpfilename")}));
}

// ---------------------------------------------------------------------------
// Dispatch.

const PveSim::Impl::Route* PveSim::Impl::Match(const std::string& method, const std::string& path,
                                               Ctx* ctx, bool* path_known) const {
  auto split = [](const std::string& p) {
    std::vector<std::string> out;
    size_t pos = 1;
    while (pos <= p.size()) {
      size_t slash = p.find('/', pos);
      if (slash == std::string::npos) slash = p.size();
      out.push_back(p.substr(pos, slash - pos));
      pos = slash + 1;
    }
    return out;
  };
  std::string trimmed = path;
  while (trimmed.size() > 1 && trimmed.back() == '/') trimmed.pop_back();
  const std::vector<std::string> segs = split(trimmed);
  *path_known = false;
  const Route* found = nullptr;
  for (const Route& r : routes_) {
    const std::vector<std::string> t = split(r.tmpl);
    std::map<std::string, std::string> vars;
    bool ok = true;
    size_t i = 0;
    for (; i < t.size() && ok; ++i) {
      if (i >= segs.size()) {
        ok = false;
        break;
      }
      if (t[i].front() == '{') {
        const std::string var = t[i].substr(1, t[i].size() - 2);
        if (var == "volume") {
          // Volume ids contain '/': the placeholder takes the rest of the path.
          std::string rest = segs[i];
          for (size_t k = i + 1; k < segs.size(); ++k) rest += "/" + segs[k];
          vars[var] = rest;
          i = segs.size();
          break;
        }
        if (segs[i].empty()) ok = false;
        vars[var] = segs[i];
      } else if (t[i] != segs[i]) {
        ok = false;
      }
    }
    if (!ok || i != segs.size()) continue;
    *path_known = true;
    if (r.method == method && found == nullptr) {
      found = &r;
      ctx->path = vars;
      ctx->tmpl = r.tmpl;
      ctx->specs = &r.specs;
    }
  }
  return found;
}

std::optional<Reply> PveSim::Impl::Authenticate(const http::ServerRequest& req, Ctx* ctx) const {
  const std::optional<std::string> auth = req.headers.Get("Authorization");
  Reply unauthorized = Fail(401, "No ticket");
  unauthorized.raw_empty = true;
  if (!auth) return unauthorized;
  static const std::regex re("(?:^|\\s)PVEAPIToken(?:=| )([^;]*)");
  std::smatch m;
  if (!std::regex_search(*auth, m, re)) return unauthorized;
  unauthorized.message = "Authentication failed!";
  const std::string value = http::PercentDecode(m[1].str());
  const size_t eq = value.rfind('=');  // the secret follows the last '='
  if (eq == std::string::npos) return unauthorized;
  auto it = tokens_.find(value.substr(0, eq));
  if (it == tokens_.end() || it->second.second != value.substr(eq + 1)) return unauthorized;
  ctx->user = it->first;
  return std::nullopt;
}

namespace {
// Perl scalars serialise as strings or numbers depending on their history;
// this mode makes every number a string so clients prove they cope.
json Stringly(const json& j) {
  if (j.is_number()) return j.dump();
  if (j.is_array() || j.is_object()) {
    json out = j;
    for (auto& v : out) v = Stringly(v);
    return out;
  }
  return j;
}
}  // namespace

http::ServerResponse PveSim::Impl::Render(const Reply& r) const {
  http::ServerResponse resp;
  resp.status = r.status;
  std::string first_line = r.message.substr(0, r.message.find('\n'));
  if (r.status != 200) resp.reason = first_line;
  if (r.raw_empty) return resp;
  json body = {{"data", opt_.stringly_numbers ? Stringly(r.data) : r.data}};
  if (!r.errors.empty()) body["errors"] = r.errors;
  for (const auto& [k, v] : r.extra.items()) body[k] = v;
  if (r.status != 200 && opt_.message_in_body) body["message"] = r.message + "\n";
  resp.body = body.dump();
  resp.headers.Set("Content-Type", kJsonType);
  resp.headers.Set("Server", "pve-api-daemon/3.0");
  resp.headers.Set("Cache-Control", "max-age=0");
  resp.headers.Set("Pragma", "no-cache");
  resp.headers.Set("Expires", "Thu, 01 Jan 1970 00:00:00 GMT");
  return resp;
}

http::ServerResponse PveSim::Impl::Handle(const http::ServerRequest& req) {
  if (StartsWith(req.path, "/_sim/")) return HandleAdmin(req);

  Ctx ctx;
  ctx.req = &req;
  if (!StartsWith(req.path, "/api2/json/") && req.path != "/api2/json") {
    std::lock_guard lock(mu_);
    ++counters_[req.method + " (unknown)"];
    LogRequest(req, "(unknown)", nullptr, 501, "-");
    return Render(Fail(501, "no such uri"));
  }
  const std::string path = req.path.size() > 10 ? req.path.substr(10) : "/";

  if (std::optional<Reply> denied = Authenticate(req, &ctx)) {
    {
      std::lock_guard lock(mu_);
      ++counters_[req.method + " (unauthorized)"];
      LogRequest(req, "(unauthorized)", nullptr, 401, "-");
    }
    // pveproxy answers every failed authentication after a delay.
    if (opt_.auth_fail_delay.count() > 0) opt_.sleep(opt_.auth_fail_delay);
    return Render(*denied);
  }

  enum class Fault { kNone, kError, kTimeout, kDrop };
  Fault fault = Fault::kNone;
  int latency = 0;
  http::ServerResponse resp;
  {
    std::unique_lock lock(mu_);
    bool known = false;
    const Route* route = Match(req.method, path, &ctx, &known);
    const std::string counter = req.method + " " + (route ? route->tmpl : std::string("(unknown)"));
    ++counters_[counter];
    if (faults_.remaining != 0 &&
        (faults_.match.empty() || counter.find(faults_.match) != std::string::npos)) {
      latency = faults_.latency_ms;
      if (Roll(faults_.error_rate))
        fault = Fault::kError;
      else if (Roll(faults_.timeout_rate))
        fault = Fault::kTimeout;
      else if (Roll(faults_.drop_rate))
        fault = Fault::kDrop;
      if (fault != Fault::kNone && faults_.remaining > 0) --faults_.remaining;
    }
    Advance();
    if (fault == Fault::kError) {
      resp = Render(Fail(500, "simulated server error"));
    } else if (route == nullptr) {
      resp = Render(Fail(501, "Method '" + req.method + " " + path + "' not implemented"));
    } else {
      std::optional<Reply> early;
      // Parameters: query first, then the body; query values win.
      const bool has_body = !req.body.empty();
      if (has_body && req.body.size() > 512 * 1024 &&
          ctx.tmpl != "/nodes/{node}/storage/{storage}/upload") {
        early = Fail(501, "for data too large");
      }
      if (!early && (req.method == "GET" || req.method == "DELETE") && has_body) {
        early = Fail(501, "Unexpected content for method '" + req.method + "'");
      }
      if (!early && has_body && ctx.tmpl != "/nodes/{node}/storage/{storage}/upload") {
        const std::string ct = Lower(req.headers.Get("Content-Type").value_or(""));
        if (StartsWith(ct, "application/json")) {
          if (!DecodeJsonBody(req.body, &ctx.params)) early = Fail(400, "invalid JSON body");
        } else if (ct.empty() || StartsWith(ct, "application/x-www-form-urlencoded")) {
          for (auto& [k, v] : http::DecodeQuery(req.body)) ctx.params[k] = v;
        } else {
          early = Fail(506, "upload 'Content-Type '" + ct + "' not implemented");
        }
      }
      if (!early) {
        for (const auto& [k, v] : req.query) ctx.params[k] = v;
        FieldErrors errs;
        for (const auto& [k, v] : ctx.path) {
          if (k == "upid" || k == "volume") {
            ctx.params[k] = v;
            continue;
          }
          auto it = ctx.params.find(k);
          if (it != ctx.params.end() && it->second != v) {
            errs[k] = "duplicate parameter (already defined in URI) with conflicting values!";
          }
          ctx.params[k] = v;
        }
        if (!errs.empty()) early = ParamFail(errs);
      }
      if (!early && ctx.tmpl != "/nodes/{node}/storage/{storage}/upload") {
        FieldErrors errs = Validate(ctx.params, route->specs);
        if (!errs.empty()) early = ParamFail(errs);
      }
      if (!early && ctx.path.count("node") && FindNode(ctx.path["node"]) == nullptr) {
        const std::string& n = ctx.path["node"];
        early =
            Fail(500, "hostname lookup '" + n + "' failed - failed to get address info for: " + n +
                          ": Name or service not known");
      }
      if (!early && ctx.tmpl == "/nodes/{node}/qemu/{vmid}/config" && req.method != "GET") {
        early = WaitForConfigLock(lock, std::stoi(ctx.path["vmid"]));
      }
      Reply reply;
      try {
        reply = early ? *early : (this->*(route->fn))(ctx);
      } catch (const std::exception& e) {
        // A simulator bug or an input no check anticipated: answer like a
        // handler that died, and keep serving.
        reply = Fail(500, std::string("internal simulator error: ") + e.what());
      }
      if (req.method != "GET") dirty_ = true;
      if (!early && reply.status == 200 && ctx.params.count("background_delay")) {
        reply = WaitInBackground(lock, reply, std::stoll(ctx.params["background_delay"]));
      }
      if (fault == Fault::kTimeout) {
        // Like pveproxy's proxy timeout: the work is done, the answer is lost.
        resp = Render(Fail(596, "Connection timed out"));
      } else if (fault == Fault::kDrop) {
        // The server interface cannot close a connection without answering;
        // the closest thing a client sees from pveproxy is a 596 broken pipe.
        resp = Render(Fail(596, "Broken pipe"));
      } else {
        resp = Render(reply);
      }
    }
    const char* injected = fault == Fault::kError     ? "error"
                           : fault == Fault::kTimeout ? "timeout"
                           : fault == Fault::kDrop    ? "drop"
                                                      : "-";
    LogRequest(req, route ? route->tmpl : std::string("(unknown)"), &ctx, resp.status, injected);
    // The state file follows in Tick(): one write per tick, not per request.
  }
  if (latency > 0) opt_.sleep(std::chrono::milliseconds(latency));
  return resp;
}

std::optional<Reply> PveSim::Impl::WaitForConfigLock(std::unique_lock<std::mutex>& lock, int vmid) {
  // Tasks whose worker holds /var/lock/qemu-server/lock-<vmid>.conf throughout.
  static const std::set<std::string> holders = {"qmstart",  "qmstop",   "qmshutdown",
                                                "qmreboot", "qmconfig", "resize"};
  auto busy_until = [&]() -> int64_t {
    int64_t until = 0;
    for (const Task& t : tasks_)
      if (t.running && holders.count(t.type) && t.id == std::to_string(vmid))
        until = std::max(until, t.end_ms);
    return until;
  };
  const int64_t until = busy_until();
  if (until == 0) return std::nullopt;
  const int64_t limit = Scaled(std::chrono::seconds(10));
  const int64_t start = Now();
  const bool too_long = until - start > limit;
  const int64_t wait = std::min(until - start, limit);
  if (wait > 0) {
    lock.unlock();
    opt_.sleep(std::chrono::milliseconds(wait));
    lock.lock();
  }
  Advance();
  if (too_long && busy_until() != 0) {
    return Fail(500, "can't lock file '/var/lock/qemu-server/lock-" + std::to_string(vmid) +
                         ".conf' - got timeout");
  }
  return std::nullopt;
}

Reply PveSim::Impl::WaitInBackground(std::unique_lock<std::mutex>& lock, const Reply& upid_reply,
                                     int64_t delay_s) {
  const std::string upid = upid_reply.data.get<std::string>();
  auto find = [&]() -> Task* {
    for (Task& t : tasks_)
      if (t.upid == upid) return &t;
    return nullptr;
  };
  Task* t = find();
  if (t == nullptr) return upid_reply;
  const int64_t wait = t->end_ms - Now();
  if (wait > delay_s * 1000) return upid_reply;
  if (wait > 0) {
    lock.unlock();
    opt_.sleep(std::chrono::milliseconds(wait));
    lock.lock();
  }
  Advance();
  t = find();
  if (t == nullptr || t->running) return upid_reply;
  if (t->exitstatus == "OK") return Ok();
  return Fail(500, "failed to update VM " + t->id + ": " + t->exitstatus);
}

http::ServerResponse PveSim::Impl::HandleAdmin(const http::ServerRequest& req) {
  std::lock_guard lock(mu_);
  auto reply = [](int status, const json& j) {
    http::ServerResponse r;
    r.status = status;
    r.body = j.dump();
    r.headers.Set("Content-Type", kJsonType);
    return r;
  };
  if (req.path == "/_sim/faults" && req.method == "GET") return reply(200, faults_.ToJson());
  if (req.path == "/_sim/faults" && (req.method == "PUT" || req.method == "POST")) {
    json j = json::parse(req.body, nullptr, false);
    if (!j.is_object()) return reply(400, {{"error", "body must be a JSON object"}});
    try {
      FaultConfig f = faults_;
      f.latency_ms = j.value("latency_ms", f.latency_ms);
      f.error_rate = j.value("error_rate", f.error_rate);
      f.timeout_rate = j.value("timeout_rate", f.timeout_rate);
      f.drop_rate = j.value("drop_rate", f.drop_rate);
      f.task_failure_rate = j.value("task_failure_rate", f.task_failure_rate);
      f.match = j.value("match", f.match);
      f.remaining = j.value("remaining", f.remaining);
      faults_ = f;
    } catch (const json::exception& e) {
      return reply(400, {{"error", e.what()}});
    }
    return reply(200, faults_.ToJson());
  }
  if (req.path == "/_sim/requests" && req.method == "GET") return reply(200, json(counters_));
  if (req.path == "/_sim/requests" && req.method == "DELETE") {
    counters_.clear();
    return reply(200, json::object());
  }
  if (req.path == "/_sim/reset" && req.method == "POST") {
    ResetWorld();
    faults_ = initial_faults_;
    counters_.clear();
    SaveIfDirty();
    return reply(200, json::object());
  }
  if (req.path == "/_sim/state" && req.method == "GET") {
    Advance();
    return reply(200, StateToJson());
  }
  return reply(404, {{"error", "unknown admin endpoint"}});
}

void PveSim::Impl::LogRequest(const http::ServerRequest& req, const std::string& tmpl,
                              const Ctx* ctx, int status, const char* fault) {
  if (!request_log_.is_open()) return;
  const auto us = std::chrono::duration_cast<std::chrono::microseconds>(
                      clock_.WallNow().time_since_epoch())
                      .count();
  std::string vmid = "-";
  if (ctx != nullptr) {
    // The path's placeholder too: a fault answered before the parameters were read.
    for (const auto* source : {&ctx->params, &ctx->path}) {
      if (auto it = source->find("vmid"); it != source->end() && !it->second.empty()) {
        vmid = it->second;
        break;
      }
    }
  }
  char when[32];
  std::snprintf(when, sizeof when, "%lld.%06lld", static_cast<long long>(us / 1000000),
                static_cast<long long>(us % 1000000));
  request_log_ << when << '\t' << req.method << '\t' << tmpl << '\t' << req.path << '\t' << vmid
               << '\t' << status << '\t' << fault << '\n';
}

// ---------------------------------------------------------------------------
// Persistence: the whole world as one JSON document, written via rename.

json PveSim::Impl::StateToJson() const {
  json nodes = json::array();
  for (const Node& n : nodes_) {
    json storages = json::array();
    for (const auto& [name, st] : n.storages) {
      json vols = json::array();
      for (const auto& [id, v] : st.volumes) {
        vols.push_back({{"volid", v.volid},
                        {"content", v.content},
                        {"format", v.format},
                        {"size", v.size},
                        {"used", v.used},
                        {"vmid", v.vmid},
                        {"ctime", v.ctime}});
      }
      storages.push_back({{"name", st.name},
                          {"type", st.type},
                          {"content", st.content},
                          {"total", st.total},
                          {"lock_free_at", st.lock_free_at},
                          {"volumes", vols}});
    }
    nodes.push_back({{"name", n.name},
                     {"maxmem", n.maxmem},
                     {"maxcpu", n.maxcpu},
                     {"boot_ms", n.boot_ms},
                     {"storages", storages}});
  }
  json vms = json::array();
  for (const auto& [id, vm] : vms_) {
    vms.push_back({{"vmid", vm.vmid},
                   {"node", vm.node},
                   {"conf", vm.conf},
                   {"pending", vm.pending},
                   {"pending_delete", vm.pending_delete},
                   {"running", vm.running},
                   {"created_ms", vm.created_ms},
                   {"running_changed_ms", vm.running_changed_ms},
                   {"started_ms", vm.started_ms},
                   {"agent_ready_ms", vm.agent_ready_ms},
                   {"pid", vm.pid}});
  }
  json tasks = json::array();
  for (const Task& t : tasks_) {
    tasks.push_back({{"upid", t.upid},
                     {"node", t.node},
                     {"type", t.type},
                     {"id", t.id},
                     {"user", t.user},
                     {"start_ms", t.start_ms},
                     {"end_ms", t.end_ms},
                     {"running", t.running},
                     {"exitstatus", t.exitstatus},
                     {"log", t.log},
                     {"args", t.args},
                     {"fail", t.fail}});
  }
  // The generator's state too, so MACs and UUIDs drawn after a restart are new.
  std::ostringstream rng;
  rng << rng_;
  return {{"version", 1},   {"rng", rng.str()}, {"next_pid", next_pid_},
          {"nodes", nodes}, {"vms", vms},       {"tasks", tasks}};
}

void PveSim::Impl::StateFromJson(const json& j) {
  std::vector<Node> nodes;
  for (const json& jn : j.at("nodes")) {
    Node n;
    n.name = jn.at("name");
    n.maxmem = jn.at("maxmem");
    n.maxcpu = jn.at("maxcpu");
    n.boot_ms = jn.at("boot_ms");
    for (const json& js : jn.at("storages")) {
      Storage st;
      st.name = js.at("name");
      st.type = js.at("type");
      st.content = js.at("content").get<std::vector<std::string>>();
      st.total = js.at("total");
      st.lock_free_at = js.at("lock_free_at");
      for (const json& jv : js.at("volumes")) {
        Volume v{jv.at("volid"), jv.at("content"), jv.at("format"), jv.at("size"),
                 jv.at("used"),  jv.at("vmid"),    jv.at("ctime")};
        st.volumes[v.volid] = v;
      }
      n.storages[st.name] = st;
    }
    nodes.push_back(std::move(n));
  }
  std::map<int, Vm> vms;
  for (const json& jv : j.at("vms")) {
    Vm vm;
    vm.vmid = jv.at("vmid");
    vm.node = jv.at("node");
    vm.conf = jv.at("conf").get<std::map<std::string, std::string>>();
    vm.pending = jv.at("pending").get<std::map<std::string, std::string>>();
    vm.pending_delete = jv.at("pending_delete").get<std::set<std::string>>();
    vm.running = jv.at("running");
    vm.created_ms = jv.value("created_ms", int64_t{0});
    vm.running_changed_ms = jv.value("running_changed_ms", int64_t{0});
    vm.started_ms = jv.at("started_ms");
    vm.agent_ready_ms = jv.at("agent_ready_ms");
    vm.pid = jv.at("pid");
    vms[vm.vmid] = vm;
  }
  std::vector<Task> tasks;
  for (const json& jt : j.at("tasks")) {
    Task t;
    t.upid = jt.at("upid");
    t.node = jt.at("node");
    t.type = jt.at("type");
    t.id = jt.at("id");
    t.user = jt.at("user");
    t.start_ms = jt.at("start_ms");
    t.end_ms = jt.at("end_ms");
    t.running = jt.at("running");
    t.exitstatus = jt.at("exitstatus");
    t.log = jt.at("log").get<std::vector<std::string>>();
    t.args = jt.at("args");
    t.fail = jt.at("fail");
    tasks.push_back(std::move(t));
  }
  nodes_ = std::move(nodes);
  vms_ = std::move(vms);
  tasks_ = std::move(tasks);
  next_pid_ = j.at("next_pid");
  std::istringstream rng(j.value("rng", std::string()));
  std::mt19937_64 restored;
  if (rng >> restored) rng_ = restored;
}

Status PveSim::Impl::LoadLocked() {
  std::ifstream in(opt_.state_file, std::ios::binary);
  if (!in) return InvalidError("cannot read state file '" + opt_.state_file + "'");
  std::stringstream ss;
  ss << in.rdbuf();
  json j = json::parse(ss.str(), nullptr, false);
  if (j.is_discarded()) return InvalidError("state file '" + opt_.state_file + "' is not JSON");
  try {
    StateFromJson(j);
  } catch (const json::exception& e) {
    return InvalidError("state file '" + opt_.state_file + "' is malformed: " + e.what());
  }
  dirty_ = false;
  return OkStatus();
}

Status PveSim::Impl::SaveLocked() {
  if (opt_.state_file.empty()) return OkStatus();
  const std::string tmp = opt_.state_file + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) return InternalError("cannot write '" + tmp + "'");
    out << StateToJson().dump();
    if (!out.flush()) return InternalError("cannot write '" + tmp + "'");
  }
  std::error_code ec;
  std::filesystem::rename(tmp, opt_.state_file, ec);
  if (ec) return InternalError("cannot rename '" + tmp + "': " + ec.message());
  dirty_ = false;
  return OkStatus();
}

// ---------------------------------------------------------------------------

Result<std::unique_ptr<PveSim>> PveSim::Create(Options options, Clock& clock) {
  auto impl = std::make_unique<Impl>(std::move(options), clock);
  RETURN_IF_ERROR(impl->Init());
  return std::unique_ptr<PveSim>(new PveSim(std::move(impl)));
}

PveSim::PveSim(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
PveSim::~PveSim() = default;

http::ServerResponse PveSim::Handle(const http::ServerRequest& request) {
  return impl_->Handle(request);
}
void PveSim::Tick() { impl_->Tick(); }
Status PveSim::Save() { return impl_->Save(); }

}  // namespace nixmox::pvesim
