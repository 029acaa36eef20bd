// The Proxmox VE API client: one per cluster, behind the PveClient interface
// so that reconcilers can run against an in-memory fake. A client owns its
// cluster's limiter (limiter.h): share the one client, do not make several.
//
// Every call is synchronous and returns a value or a Status whose code the
// caller can act on (see errors.h). Asynchronous Proxmox operations return the
// task's UPID; callers poll GetTaskStatus (reconcilers requeue between polls)
// or block in WaitForTask. Mutations whose outcome is unknown (timeout, reset,
// proxy 596) come back as kOutcomeUnknown and are never resent: the caller
// re-observes (does the VM exist? is the task there?) before acting again.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <ostream>
#include <string>
#include <string_view>
#include <vector>

#include "src/common/backoff.h"
#include "src/common/clock.h"
#include "src/common/status.h"
#include "src/http/http.h"
#include "src/proxmox/limiter.h"
#include "src/proxmox/types.h"
#include "src/proxmox/upid.h"

namespace nixmox::proxmox {

// An API token: id "user@realm!tokenid" and its secret. Printing it shows the
// id only; the secret leaves this type only as the Authorization header.
class ApiToken {
 public:
  ApiToken() = default;
  ApiToken(std::string id, std::string secret) : id_(std::move(id)), secret_(std::move(secret)) {}
  // "user@realm!tokenid=secret", split at the last '=' as Proxmox does. The
  // error never repeats the input.
  static Result<ApiToken> Parse(std::string_view text);

  const std::string& id() const { return id_; }
  bool empty() const { return id_.empty() || secret_.empty(); }
  // "PVEAPIToken=user@realm!tokenid=secret"
  std::string AuthorizationHeader() const;
  // Replaces every occurrence of the secret in `text` with "<redacted>".
  std::string Redact(std::string text) const;
  // "user@realm!tokenid=<redacted>"
  std::string ToString() const { return id_ + "=<redacted>"; }

 private:
  std::string id_;
  std::string secret_;
};
std::ostream& operator<<(std::ostream& os, const ApiToken& token);

struct RetryPolicy {
  // Attempts per call, the first included. GETs are retried on kRetryable and
  // kTooManyRequests; mutations only when refused before acting (kLocked,
  // kTooManyRequests) or never delivered (connection refused, HTTP 595).
  int max_attempts = 4;
  BackoffPolicy backoff{std::chrono::milliseconds(500), std::chrono::seconds(10), 2.0, 0.2};
  // A task's status can answer 400 "no such task" for a moment after the task
  // was created; that many extra polls are spent before believing it.
  int task_not_visible_attempts = 5;
  BackoffPolicy task_not_visible_backoff{std::chrono::milliseconds(200), std::chrono::seconds(2),
                                         2.0, 0.2};
};

struct PveClientOptions {
  // Used by ConnectPveClient only; NewPveClient takes an http::Client that
  // already knows where to go.
  std::string base_url;  // "https://pve1.example:8006"
  http::TlsConfig tls;
  std::chrono::milliseconds timeout{30000};
  // Uploads of multi-GiB images need longer than ordinary calls.
  std::chrono::milliseconds upload_timeout{std::chrono::hours(2)};

  ApiToken token;
  LimiterOptions limits;
  RetryPolicy retry;
  // Not owned; must outlive the client. Null: RealClock().
  const Clock* clock = nullptr;
  // Null: RealSleeper().
  Sleeper sleeper;
  // Seed for backoff jitter; 0 picks a random one.
  std::uint64_t jitter_seed = 0;
};

struct ShutdownOptions {
  std::optional<int> timeout_seconds;
  bool force_stop = false;  // stop hard when the guest does not shut down in time
};

struct StopOptions {
  std::optional<int> timeout_seconds;
  bool overrule_shutdown = false;  // abort running shutdown tasks first
};

struct DeleteVmOptions {
  bool purge = false;                       // also drop it from backup/replication/HA
  bool destroy_unreferenced_disks = false;  // free vm-<vmid>-* volumes not in the config
};

struct UploadRequest {
  std::string content;  // "import" or "iso"
  std::filesystem::path file;
  std::string filename;            // the name on the storage; empty: the file's name
  std::string checksum;            // optional, verified by the server
  std::string checksum_algorithm;  // md5, sha1, sha224, sha256, sha384, sha512
};

struct MigrateOptions {
  std::string target;  // target node
  bool online = false;
  bool with_local_disks = false;
  std::string target_storage;
};

// Thread-safe in the real implementation; fakes should be too.
class PveClient {
 public:
  virtual ~PveClient() = default;

  // Cluster
  virtual Result<VersionInfo> GetVersion() = 0;
  virtual Result<std::vector<NodeInfo>> ListNodes() = 0;
  virtual Result<NodeStatus> GetNodeStatus(const std::string& node) = 0;
  virtual Result<std::vector<ClusterResource>> ListClusterResources(ResourceType type) = 0;
  // The lowest free VMID. With `vmid`: that id if free, else kAlreadyExists.
  // Nothing is reserved; only the create decides.
  virtual Result<int> NextVmid(std::optional<int> vmid) = 0;

  // VMs
  virtual Result<std::vector<VmSummary>> ListVms(const std::string& node) = 0;
  // POST /nodes/{node}/qemu with vmid and `params` (name, memory, net0, scsi0, ...).
  virtual Result<Upid> CreateVm(const std::string& node, int vmid, const Params& params) = 0;
  virtual Result<VmConfig> GetVmConfig(const std::string& node, int vmid) = 0;
  // Current and pending values of every key; waiting() entries need a restart.
  virtual Result<std::vector<PendingEntry>> GetVmPending(const std::string& node, int vmid) = 0;
  // POST config: Proxmox runs the change as a task. nullopt: it finished synchronously.
  virtual Result<std::optional<Upid>> UpdateVmConfig(const std::string& node, int vmid,
                                                     const ConfigUpdate& update) = 0;
  // PUT config: applied before the call returns. Not for disk allocation (slow: may 596).
  virtual Status UpdateVmConfigSync(const std::string& node, int vmid,
                                    const ConfigUpdate& update) = 0;
  virtual Result<VmStatus> GetVmStatus(const std::string& node, int vmid) = 0;
  virtual Result<Upid> StartVm(const std::string& node, int vmid) = 0;
  virtual Result<Upid> ShutdownVm(const std::string& node, int vmid,
                                  const ShutdownOptions& options) = 0;
  virtual Result<Upid> StopVm(const std::string& node, int vmid, const StopOptions& options) = 0;
  virtual Result<Upid> RebootVm(const std::string& node, int vmid) = 0;
  // A 200 only means the destroy task started; wait for the task.
  virtual Result<Upid> DeleteVm(const std::string& node, int vmid,
                                const DeleteVmOptions& options) = 0;
  // `size`: absolute ("20G") or growth ("+5G"). nullopt: finished synchronously (PVE 7).
  virtual Result<std::optional<Upid>> ResizeDisk(const std::string& node, int vmid,
                                                 const std::string& disk,
                                                 const std::string& size) = 0;
  virtual Result<Upid> MigrateVm(const std::string& node, int vmid,
                                 const MigrateOptions& options) = 0;

  // Guest agent; one attempt each. While the guest boots these fail with
  // kConflict ("agent is not running") or kRetryable (agent timeout): poll again later.
  virtual Status AgentPing(const std::string& node, int vmid) = 0;
  virtual Result<std::vector<GuestInterface>> AgentNetworkInterfaces(const std::string& node,
                                                                     int vmid) = 0;

  // Storage
  // `content` filters by type ("import", "iso", "images"); empty: all.
  virtual Result<std::vector<StorageContent>> ListStorageContent(const std::string& node,
                                                                 const std::string& storage,
                                                                 const std::string& content) = 0;
  // Streams the file as multipart/form-data; returns the imgcopy task.
  virtual Result<Upid> UploadToStorage(const std::string& node, const std::string& storage,
                                       const UploadRequest& request) = 0;
  // `volid` "local:import/x.qcow2". nullopt: deleted synchronously.
  virtual Result<std::optional<Upid>> DeleteVolume(const std::string& node,
                                                   const std::string& storage,
                                                   const std::string& volid) = 0;

  // Tasks: always asked of the node named inside the UPID.
  virtual Result<TaskStatus> GetTaskStatus(const Upid& upid) = 0;
  virtual Result<std::vector<TaskLogLine>> GetTaskLog(const Upid& upid, int start, int limit) = 0;
};

// The real client over `http` (whose base URL points at the cluster).
std::unique_ptr<PveClient> NewPveClient(PveClientOptions options,
                                        std::shared_ptr<http::Client> http);

// Builds the http::Client from options.base_url/tls/timeout, then NewPveClient.
Result<std::unique_ptr<PveClient>> ConnectPveClient(PveClientOptions options);

struct WaitOptions {
  std::chrono::milliseconds timeout{std::chrono::minutes(30)};
  // Polls every `initial_interval` for the first `fast_period`, then backs off to `max_interval`.
  std::chrono::milliseconds initial_interval{1000};
  std::chrono::milliseconds fast_period{10000};
  std::chrono::milliseconds max_interval{5000};
};

// Polls until the task stops. OK with the final status when it succeeded
// (warnings included); the task's error (StatusFromExitStatus) when it failed;
// kRetryable when `timeout` passed first (the task may still be running).
// For callers that may block (the builder, tests); reconcilers requeue instead.
Result<TaskStatus> WaitForTask(PveClient& client, const Upid& upid, const WaitOptions& options,
                               const Clock& clock, const Sleeper& sleeper);

}  // namespace nixmox::proxmox
