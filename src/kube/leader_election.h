// Leader election on a coordination.k8s.io/v1 Lease, with client-go's rules:
// a candidate takes the lease only when the holder has not renewed it for a
// whole lease duration as measured on the candidate's own clock (so clock skew
// between processes does not matter); the leader renews every retry period and
// gives up leadership if it could not renew within the renew deadline; on
// shutdown it releases the lease so another process takes over at once.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "src/common/clock.h"
#include "src/common/status.h"
#include "src/kube/client.h"
#include "src/kube/stop.h"

namespace nixmox::kube {

// The Lease spec fields that matter.
struct LeaderElectionRecord {
  std::string holder_identity;  // "" when released
  int lease_duration_seconds = 0;
  std::optional<Clock::WallTime> acquire_time;
  std::optional<Clock::WallTime> renew_time;
  int lease_transitions = 0;
  bool operator==(const LeaderElectionRecord&) const = default;
};

// Where the record lives. Thread-safe.
class LeaseLock {
 public:
  virtual ~LeaseLock() = default;
  // NotFound when no lease exists yet. `version` is the opaque token Update needs.
  virtual Result<LeaderElectionRecord> Get(std::string* version) = 0;
  virtual Status Create(const LeaderElectionRecord& record) = 0;
  // Conflict when the lease changed since `version` was read.
  virtual Status Update(const LeaderElectionRecord& record, const std::string& version) = 0;
  virtual std::string Describe() const = 0;
};

// A Lease object through a Client: `client` must outlive the lock.
std::unique_ptr<LeaseLock> NewLeaseLock(Client& client, std::string ns, std::string name);

// Lease spec JSON <-> record. MicroTime fields carry exactly six fractional digits.
nlohmann::json LeaseSpecFromRecord(const LeaderElectionRecord& record);
Result<LeaderElectionRecord> RecordFromLeaseSpec(const nlohmann::json& spec);

struct LeaderElectionConfig {
  LeaseLock* lock = nullptr;  // must outlive the elector
  std::string identity;       // unique per process: pod name + random suffix
  std::chrono::milliseconds lease_duration{15000};
  std::chrono::milliseconds renew_deadline{10000};
  std::chrono::milliseconds retry_period{2000};
  bool release_on_cancel = true;
  Clock* clock = nullptr;  // RealClock() when null
};

class LeaderElector {
 public:
  static Result<std::unique_ptr<LeaderElector>> New(LeaderElectionConfig config);

  // One attempt to acquire the lease or, when leading, renew it. True when this
  // process holds the lease afterwards. Thread-safe, but meant for one loop.
  bool TryAcquireOrRenew();

  // Tries every retry period until the lease is acquired, then calls
  // on_started_leading(), then renews until the renew deadline passes without a
  // successful renewal (leadership lost: on_stopped_leading() is called) or
  // `stop` is requested (the lease is released, then on_stopped_leading()).
  // Returns when leadership ended or `stop` came before it began. Blocks.
  void Run(const Stop& stop, const std::function<void()>& on_started_leading,
           const std::function<void()>& on_stopped_leading);

  // Gives up the lease if held: holder cleared so another candidate takes it at once.
  Status Release();

  bool IsLeader() const;
  // The holder last observed ("" when none or unknown).
  std::string leader() const;
  // Whether the renew deadline passed since the last successful renewal (by the clock).
  bool RenewDeadlinePassed() const;

 private:
  explicit LeaderElector(LeaderElectionConfig config);

  LeaderElectionConfig config_;
  Clock& clock_;
  mutable std::mutex mu_;
  std::optional<LeaderElectionRecord> observed_;
  Clock::SteadyTime observed_at_{};
  std::optional<Clock::SteadyTime> last_renew_;  // when we last held and renewed
};

}  // namespace nixmox::kube
