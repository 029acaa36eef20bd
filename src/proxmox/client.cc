#include "src/proxmox/client.h"

#include <spdlog/spdlog.h>

#include <cstdlib>
#include <mutex>
#include <nlohmann/json.hpp>
#include <random>

#include "src/proxmox/client_metrics.h"
#include "src/proxmox/errors.h"
#include "src/proxmox/json_parse.h"

namespace nixmox::proxmox {

Result<ApiToken> ApiToken::Parse(std::string_view text) {
  const size_t eq = text.rfind('=');
  const Status bad = InvalidError("API token must have the form user@realm!tokenid=secret");
  if (eq == std::string_view::npos || eq + 1 == text.size()) return bad;
  std::string_view id = text.substr(0, eq);
  const size_t at = id.find('@');
  const size_t bang = id.find('!');
  if (at == std::string_view::npos || at == 0 || bang == std::string_view::npos || bang < at ||
      bang + 1 == id.size()) {
    return bad;
  }
  return ApiToken(std::string(id), std::string(text.substr(eq + 1)));
}

std::string ApiToken::AuthorizationHeader() const { return "PVEAPIToken=" + id_ + "=" + secret_; }

std::string ApiToken::Redact(std::string text) const {
  if (secret_.empty()) return text;
  size_t pos = 0;
  while ((pos = text.find(secret_, pos)) != std::string::npos) {
    text.replace(pos, secret_.size(), "<redacted>");
    pos += 10;
  }
  return text;
}

std::ostream& operator<<(std::ostream& os, const ApiToken& token) { return os << token.ToString(); }

namespace {

using nlohmann::json;

constexpr std::string_view kApiPrefix = "/api2/json";

std::string Seg(std::string_view s) { return http::PercentEncode(s); }

std::string VmPath(const std::string& node, int vmid) {
  return "/nodes/" + Seg(node) + "/qemu/" + std::to_string(vmid);
}

// One API call as the retry loop sees it.
struct Call {
  std::string method = "GET";
  std::string path;  // below /api2/json, segments already encoded
  Params params;     // query for GET/DELETE, form body for POST/PUT
  // A ready-made body (uploads); replaces the form body.
  std::vector<http::BodyPart> body;
  std::string content_type;
  std::optional<std::chrono::milliseconds> timeout;
  // Task status: a 400 "no such task" is retried for a while, the task may not be visible yet.
  bool task_status = false;
  // Guest agent calls fail while the guest boots, each after a 5 s QMP timeout;
  // the caller polls on its own schedule instead.
  bool single_attempt = false;

  bool mutating() const { return method != "GET"; }
  std::string Describe() const { return method + " " + path; }
};

bool IsTaskNotVisible(const Status& s) {
  if (s.code() != Code::kInvalid) return false;
  for (const auto& fe : s.field_errors()) {
    if (fe.message.find("no such task") != std::string::npos) return true;
  }
  return false;
}

Result<Upid> UpidFromData(const json& data, const Call& call) {
  if (!data.is_string()) {
    // The server accepted the call but we cannot follow what it started.
    return OutcomeUnknownError("proxmox " + call.Describe() +
                               ": response carries no task id; re-observe before retrying");
  }
  return ParseUpid(data.get<std::string>());
}

Result<std::optional<Upid>> OptionalUpidFromData(const json& data, const Call& call) {
  if (data.is_null()) return std::optional<Upid>();
  ASSIGN_OR_RETURN(Upid upid, UpidFromData(data, call));
  return std::optional<Upid>(std::move(upid));
}

class PveClientImpl final : public PveClient {
 public:
  PveClientImpl(PveClientOptions options, std::shared_ptr<http::Client> http)
      : options_(std::move(options)),
        http_(std::move(http)),
        clock_(options_.clock != nullptr ? *options_.clock : RealClock()),
        sleeper_(options_.sleeper ? options_.sleeper : RealSleeper()),
        limiter_(options_.limits, clock_, sleeper_),
        rng_(options_.jitter_seed != 0 ? options_.jitter_seed : std::random_device{}()) {
    internal::InitClientMetrics();
  }

  Result<VersionInfo> GetVersion() override {
    ASSIGN_OR_RETURN(json data, Do(Get("/version")));
    return internal::ParseVersion(data);
  }

  Result<std::vector<NodeInfo>> ListNodes() override {
    ASSIGN_OR_RETURN(json data, Do(Get("/nodes")));
    return internal::ParseNodes(data);
  }

  Result<NodeStatus> GetNodeStatus(const std::string& node) override {
    ASSIGN_OR_RETURN(json data, Do(Get("/nodes/" + Seg(node) + "/status")));
    return internal::ParseNodeStatus(data);
  }

  Result<std::vector<ClusterResource>> ListClusterResources(ResourceType type) override {
    Call call = Get("/cluster/resources");
    switch (type) {
      case ResourceType::kAll:
        break;
      case ResourceType::kVm:
        call.params.Set("type", "vm");
        break;
      case ResourceType::kNode:
        call.params.Set("type", "node");
        break;
      case ResourceType::kStorage:
        call.params.Set("type", "storage");
        break;
    }
    ASSIGN_OR_RETURN(json data, Do(call));
    return internal::ParseClusterResources(data);
  }

  Result<int> NextVmid(std::optional<int> vmid) override {
    Call call = Get("/cluster/nextid");
    if (vmid) call.params.SetInt("vmid", *vmid);
    ASSIGN_OR_RETURN(json data, Do(call));
    // Proxmox answers a string ("101"); accept a number too.
    auto id = internal::LenientInt(data);
    if (!id) return InternalError("proxmox GET /cluster/nextid: no VMID in the response");
    return static_cast<int>(*id);
  }

  Result<std::vector<VmSummary>> ListVms(const std::string& node) override {
    ASSIGN_OR_RETURN(json data, Do(Get("/nodes/" + Seg(node) + "/qemu")));
    return internal::ParseVmList(data);
  }

  Result<Upid> CreateVm(const std::string& node, int vmid, const Params& params) override {
    Call call = Mutation("POST", "/nodes/" + Seg(node) + "/qemu");
    call.params.SetInt("vmid", vmid);
    for (const auto& [k, v] : params.entries()) {
      if (k != "vmid") call.params.Set(k, v);
    }
    ASSIGN_OR_RETURN(json data, Do(call));
    return UpidFromData(data, call);
  }

  Result<VmConfig> GetVmConfig(const std::string& node, int vmid) override {
    ASSIGN_OR_RETURN(json data, Do(Get(VmPath(node, vmid) + "/config")));
    return internal::ParseVmConfig(data);
  }

  Result<std::vector<PendingEntry>> GetVmPending(const std::string& node, int vmid) override {
    ASSIGN_OR_RETURN(json data, Do(Get(VmPath(node, vmid) + "/pending")));
    return internal::ParseVmPending(data);
  }

  Result<std::optional<Upid>> UpdateVmConfig(const std::string& node, int vmid,
                                             const ConfigUpdate& update) override {
    Call call = ConfigCall("POST", node, vmid, update);
    ASSIGN_OR_RETURN(json data, Do(call));
    return OptionalUpidFromData(data, call);
  }

  Status UpdateVmConfigSync(const std::string& node, int vmid,
                            const ConfigUpdate& update) override {
    return Do(ConfigCall("PUT", node, vmid, update)).status();
  }

  Result<VmStatus> GetVmStatus(const std::string& node, int vmid) override {
    ASSIGN_OR_RETURN(json data, Do(Get(VmPath(node, vmid) + "/status/current")));
    return internal::ParseVmStatus(data);
  }

  Result<Upid> StartVm(const std::string& node, int vmid) override {
    return StartTask(Mutation("POST", VmPath(node, vmid) + "/status/start"));
  }

  Result<Upid> ShutdownVm(const std::string& node, int vmid,
                          const ShutdownOptions& options) override {
    Call call = Mutation("POST", VmPath(node, vmid) + "/status/shutdown");
    if (options.timeout_seconds) call.params.SetInt("timeout", *options.timeout_seconds);
    if (options.force_stop) call.params.SetBool("forceStop", true);
    return StartTask(std::move(call));
  }

  Result<Upid> StopVm(const std::string& node, int vmid, const StopOptions& options) override {
    Call call = Mutation("POST", VmPath(node, vmid) + "/status/stop");
    if (options.timeout_seconds) call.params.SetInt("timeout", *options.timeout_seconds);
    if (options.overrule_shutdown) call.params.SetBool("overrule-shutdown", true);
    return StartTask(std::move(call));
  }

  Result<Upid> RebootVm(const std::string& node, int vmid) override {
    return StartTask(Mutation("POST", VmPath(node, vmid) + "/status/reboot"));
  }

  Result<Upid> DeleteVm(const std::string& node, int vmid,
                        const DeleteVmOptions& options) override {
    Call call = Mutation("DELETE", VmPath(node, vmid));
    if (options.purge) call.params.SetBool("purge", true);
    if (options.destroy_unreferenced_disks) {
      call.params.SetBool("destroy-unreferenced-disks", true);
    }
    return StartTask(std::move(call));
  }

  Result<std::optional<Upid>> ResizeDisk(const std::string& node, int vmid, const std::string& disk,
                                         const std::string& size) override {
    Call call = Mutation("PUT", VmPath(node, vmid) + "/resize");
    call.params.Set("disk", disk);
    call.params.Set("size", size);
    ASSIGN_OR_RETURN(json data, Do(call));
    return OptionalUpidFromData(data, call);
  }

  Result<Upid> MigrateVm(const std::string& node, int vmid,
                         const MigrateOptions& options) override {
    if (options.target.empty()) return InvalidError("migrate: no target node");
    Call call = Mutation("POST", VmPath(node, vmid) + "/migrate");
    call.params.Set("target", options.target);
    if (options.online) call.params.SetBool("online", true);
    if (options.with_local_disks) call.params.SetBool("with-local-disks", true);
    if (!options.target_storage.empty()) call.params.Set("targetstorage", options.target_storage);
    return StartTask(std::move(call));
  }

  Status AgentPing(const std::string& node, int vmid) override {
    Call call = Mutation("POST", VmPath(node, vmid) + "/agent/ping");
    call.single_attempt = true;
    return Do(call).status();
  }

  Result<std::vector<GuestInterface>> AgentNetworkInterfaces(const std::string& node,
                                                             int vmid) override {
    Call call = Get(VmPath(node, vmid) + "/agent/network-get-interfaces");
    call.single_attempt = true;
    ASSIGN_OR_RETURN(json data, Do(call));
    return internal::ParseGuestInterfaces(data);
  }

  Result<std::vector<StorageContent>> ListStorageContent(const std::string& node,
                                                         const std::string& storage,
                                                         const std::string& content) override {
    Call call = Get("/nodes/" + Seg(node) + "/storage/" + Seg(storage) + "/content");
    if (!content.empty()) call.params.Set("content", content);
    ASSIGN_OR_RETURN(json data, Do(call));
    return internal::ParseStorageContent(data);
  }

  Result<Upid> UploadToStorage(const std::string& node, const std::string& storage,
                               const UploadRequest& request) override;

  Result<std::optional<Upid>> DeleteVolume(const std::string& node, const std::string& storage,
                                           const std::string& volid) override {
    Call call = Mutation(
        "DELETE", "/nodes/" + Seg(node) + "/storage/" + Seg(storage) + "/content/" + Seg(volid));
    ASSIGN_OR_RETURN(json data, Do(call));
    return OptionalUpidFromData(data, call);
  }

  Result<TaskStatus> GetTaskStatus(const Upid& upid) override {
    Call call = Get("/nodes/" + Seg(upid.node) + "/tasks/" + Seg(upid.raw) + "/status");
    call.task_status = true;
    auto data = Do(call);
    if (!data.ok()) {
      // After the visibility retries, "no such task" means there is none.
      if (IsTaskNotVisible(data.status())) {
        return NotFoundError(data.status().message() + ": no such task");
      }
      return data.status();
    }
    return internal::ParseTaskStatus(*data, upid);
  }

  Result<std::vector<TaskLogLine>> GetTaskLog(const Upid& upid, int start, int limit) override {
    Call call = Get("/nodes/" + Seg(upid.node) + "/tasks/" + Seg(upid.raw) + "/log");
    call.params.SetInt("start", start);
    call.params.SetInt("limit", limit);
    ASSIGN_OR_RETURN(json data, Do(call));
    return internal::ParseTaskLog(data);
  }

 private:
  static Call Get(std::string path) {
    Call c;
    c.method = "GET";
    c.path = std::move(path);
    return c;
  }

  static Call Mutation(std::string method, std::string path) {
    Call c;
    c.method = std::move(method);
    c.path = std::move(path);
    return c;
  }

  static Call ConfigCall(std::string method, const std::string& node, int vmid,
                         const ConfigUpdate& update) {
    Call call = Mutation(std::move(method), VmPath(node, vmid) + "/config");
    call.params = update.set;
    if (!update.delete_keys.empty()) {
      std::string keys;
      for (const auto& k : update.delete_keys) {
        if (!keys.empty()) keys += ',';
        keys += k;
      }
      call.params.Set("delete", keys);
    }
    if (!update.digest.empty()) call.params.Set("digest", update.digest);
    return call;
  }

  Result<Upid> StartTask(Call call) {
    ASSIGN_OR_RETURN(json data, Do(call));
    return UpidFromData(data, call);
  }

  // The outcome of one HTTP exchange.
  struct Outcome {
    Result<json> data = InternalError("not sent");
    // False when the request certainly never reached a Proxmox handler.
    bool reached_handler = true;
    // The HTTP exchange alone, without waiting for the limiter.
    Clock::SteadyTime::duration elapsed{};
  };

  Status Redacted(const Status& s) const {
    if (s.ok()) return s;
    Status out(s.code(), options_.token.Redact(s.message()));
    if (!s.field_errors().empty()) {
      std::vector<FieldError> fes = s.field_errors();
      for (auto& fe : fes) fe.message = options_.token.Redact(std::move(fe.message));
      out.WithFieldErrors(std::move(fes));
    }
    if (s.retry_after()) out.WithRetryAfter(*s.retry_after());
    return out;
  }

  Outcome Attempt(const Call& call) {
    http::Request req;
    req.method = call.method;
    req.target = std::string(kApiPrefix) + call.path;
    if (!call.body.empty()) {
      req.headers.Set("Content-Type", call.content_type);
      req.body = call.body;
    } else if (!call.params.empty()) {
      const std::string encoded = http::EncodeQuery(call.params.entries());
      if (call.method == "GET" || call.method == "DELETE") {
        req.target += "?" + encoded;
      } else {
        req.SetBody("application/x-www-form-urlencoded", encoded);
      }
    }
    req.headers.Set("Authorization", options_.token.AuthorizationHeader());
    req.headers.Set("Accept", "application/json");
    if (call.timeout) req.timeout = call.timeout;

    Outcome out;
    Result<http::Response> response = [&] {
      RequestLimiter::Permit permit = limiter_.Acquire();
      const auto start = clock_.Now();
      Result<http::Response> r = http_->Send(req);
      out.elapsed = clock_.Now() - start;
      return r;
    }();
    const auto elapsed_ms =
        std::chrono::duration_cast<std::chrono::milliseconds>(out.elapsed).count();
    const std::string what = "proxmox " + call.Describe();

    if (!response.ok()) {
      const Status& ts = response.status();
      switch (ts.code()) {
        case Code::kRetryable:
          out.reached_handler = false;
          out.data = RetryableError(what + ": " + ts.message());
          break;
        case Code::kOutcomeUnknown:
          // A read has no outcome to lose; a write may have happened.
          out.data = call.mutating() ? OutcomeUnknownError(what + ": " + ts.message() +
                                                           " (the change may have been applied)")
                                     : RetryableError(what + ": " + ts.message());
          break;
        default:
          out.data = Status(ts.code(), what + ": " + ts.message());
          break;
      }
      out.data = Redacted(out.data.status());
      spdlog::debug("{} failed after {}ms: {}", what, elapsed_ms, out.data.status().ToString());
      return out;
    }

    spdlog::debug("{} -> {} in {}ms", what, response->status, elapsed_ms);
    if (response->status >= 200 && response->status < 300) {
      json doc = json::parse(response->body, nullptr, /*allow_exceptions=*/false);
      if (!doc.is_object() || !doc.contains("data")) {
        out.data = call.mutating()
                       ? OutcomeUnknownError(what + ": unreadable response; re-observe")
                       : InternalError(what + ": response is not a Proxmox JSON envelope");
        return out;
      }
      out.data = std::move(doc["data"]);
      return out;
    }

    Status st =
        StatusFromResponse(call.mutating(), response->status, response->reason, response->body);
    // 595: pveproxy could not even connect to the daemon or node behind it.
    if (response->status == 595) out.reached_handler = false;
    if (auto retry_after = response->headers.Get("Retry-After")) {
      char* end = nullptr;
      const long seconds = std::strtol(retry_after->c_str(), &end, 10);
      if (end != retry_after->c_str() && seconds >= 0) {
        st.WithRetryAfter(std::chrono::seconds(seconds));
      }
    }
    st.Annotate(what);
    out.data = Redacted(st);
    return out;
  }

  bool ShouldRetry(const Call& call, const Outcome& outcome) const {
    const Code code = outcome.data.status().code();
    if (!call.mutating()) return code == Code::kRetryable || code == Code::kTooManyRequests;
    // Mutations: only when nothing can have happened (refused, throttled, never delivered).
    return code == Code::kLocked || code == Code::kTooManyRequests ||
           (code == Code::kRetryable && !outcome.reached_handler);
  }

  std::uint64_t NextSeed() {
    std::lock_guard lock(rng_mu_);
    return rng_();
  }

  // Runs a call with the retry policy; returns the envelope's "data".
  Result<json> Do(const Call& call) {
    Backoff backoff(options_.retry.backoff, NextSeed());
    Backoff not_visible(options_.retry.task_not_visible_backoff, NextSeed());
    int attempts = 0;
    int not_visible_attempts = 0;
    while (true) {
      Outcome outcome = Attempt(call);
      internal::RecordRequest(call.method, outcome.data.status().code(), outcome.elapsed);
      if (outcome.data.ok()) return std::move(outcome.data);
      const Status& st = outcome.data.status();
      std::chrono::milliseconds delay;
      if (call.task_status && IsTaskNotVisible(st) &&
          not_visible_attempts < options_.retry.task_not_visible_attempts) {
        ++not_visible_attempts;
        delay = not_visible.Next();
      } else if (!call.single_attempt && ShouldRetry(call, outcome) &&
                 ++attempts < options_.retry.max_attempts) {
        delay = st.retry_after() ? *st.retry_after() : backoff.Next();
      } else {
        return st;
      }
      internal::RecordRetry(call.method, st.code());
      spdlog::warn("{}; retrying in {}ms", st.ToString(), delay.count());
      sleeper_(delay);
    }
  }

  const PveClientOptions options_;
  const std::shared_ptr<http::Client> http_;
  const Clock& clock_;
  const Sleeper sleeper_;
  RequestLimiter limiter_;
  std::mutex rng_mu_;
  std::mt19937_64 rng_;
};

std::string RandomBoundary(std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string b = "nixmox-";
  for (int i = 0; i < 32; ++i) b += kHex[rng() % 16];
  return b;
}

Result<Upid> PveClientImpl::UploadToStorage(const std::string& node, const std::string& storage,
                                            const UploadRequest& request) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(request.file, ec)) {
    return InvalidError("upload: " + request.file.string() + " is not a readable file");
  }
  const std::string filename =
      request.filename.empty() ? request.file.filename().string() : request.filename;
  if (filename.empty() || filename.find_first_of("\"\r\n/") != std::string::npos) {
    return InvalidError("upload: unusable file name '" + filename + "'");
  }
  if (request.content.empty()) return InvalidError("upload: no content type (import or iso)");
  if (request.checksum.empty() != request.checksum_algorithm.empty()) {
    return InvalidError("upload: checksum and checksum algorithm go together");
  }

  const std::string boundary = RandomBoundary(NextSeed());
  auto field = [&](std::string_view name, std::string_view value) {
    return "--" + boundary + "\r\nContent-Disposition: form-data; name=\"" + std::string(name) +
           "\"\r\n\r\n" + std::string(value) + "\r\n";
  };
  // Proxmox wants the plain fields before the file.
  std::string prefix = field("content", request.content);
  if (!request.checksum.empty()) {
    prefix += field("checksum-algorithm", request.checksum_algorithm);
    prefix += field("checksum", request.checksum);
  }
  prefix += "--" + boundary + "\r\nContent-Disposition: form-data; name=\"filename\"; filename=\"" +
            filename + "\"\r\nContent-Type: application/octet-stream\r\n\r\n";
  const std::string suffix = "\r\n--" + boundary + "--\r\n";

  Call call = Mutation("POST", "/nodes/" + Seg(node) + "/storage/" + Seg(storage) + "/upload");
  call.content_type = "multipart/form-data; boundary=" + boundary;
  call.body = {http::BodyPart::Bytes(prefix), http::BodyPart::File(request.file),
               http::BodyPart::Bytes(suffix)};
  call.timeout = options_.upload_timeout;
  return StartTask(std::move(call));
}

}  // namespace

std::unique_ptr<PveClient> NewPveClient(PveClientOptions options,
                                        std::shared_ptr<http::Client> http) {
  return std::make_unique<PveClientImpl>(std::move(options), std::move(http));
}

Result<TaskStatus> WaitForTask(PveClient& client, const Upid& upid, const WaitOptions& options,
                               const Clock& clock, const Sleeper& sleeper) {
  const auto start = clock.Now();
  const auto deadline = start + options.timeout;
  auto interval = options.initial_interval;
  while (true) {
    ASSIGN_OR_RETURN(TaskStatus status, client.GetTaskStatus(upid));
    if (!status.running()) {
      Status result = StatusFromExitStatus(status.exitstatus);
      if (!result.ok()) return result.Annotate("task " + upid.raw);
      return status;
    }
    const auto now = clock.Now();
    if (now >= deadline) {
      return RetryableError("task " + upid.raw + " still running after " +
                            std::to_string(options.timeout.count()) + "ms");
    }
    if (now - start >= options.fast_period) {
      interval = std::min(options.max_interval, interval * 2);
    }
    sleeper(std::min<std::chrono::nanoseconds>(interval, deadline - now));
  }
}

}  // namespace nixmox::proxmox
