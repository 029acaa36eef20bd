#include "src/kube/leader_election.h"

#include <spdlog/spdlog.h>

#include "src/kube/time.h"

namespace nixmox::kube {
namespace {

class KubeLeaseLock final : public LeaseLock {
 public:
  KubeLeaseLock(Client& client, std::string ns, std::string name)
      : client_(client), ns_(std::move(ns)), name_(std::move(name)) {}

  Result<LeaderElectionRecord> Get(std::string* version) override {
    ASSIGN_OR_RETURN(Object lease, client_.Get(resources::Leases(), ns_, name_));
    if (version) *version = ResourceVersionOf(lease);
    auto spec = lease.find("spec");
    if (spec == lease.end()) return LeaderElectionRecord{};
    return RecordFromLeaseSpec(*spec);
  }

  Status Create(const LeaderElectionRecord& record) override {
    Object lease = {{"apiVersion", "coordination.k8s.io/v1"},
                    {"kind", "Lease"},
                    {"metadata", {{"name", name_}, {"namespace", ns_}}},
                    {"spec", LeaseSpecFromRecord(record)}};
    return client_.Create(resources::Leases(), lease).status();
  }

  Status Update(const LeaderElectionRecord& record, const std::string& version) override {
    Object lease = {
        {"apiVersion", "coordination.k8s.io/v1"},
        {"kind", "Lease"},
        {"metadata", {{"name", name_}, {"namespace", ns_}, {"resourceVersion", version}}},
        {"spec", LeaseSpecFromRecord(record)}};
    return client_.Update(resources::Leases(), lease).status();
  }

  std::string Describe() const override { return "lease " + ns_ + "/" + name_; }

 private:
  Client& client_;
  const std::string ns_, name_;
};

}  // namespace

std::unique_ptr<LeaseLock> NewLeaseLock(Client& client, std::string ns, std::string name) {
  return std::make_unique<KubeLeaseLock>(client, std::move(ns), std::move(name));
}

nlohmann::json LeaseSpecFromRecord(const LeaderElectionRecord& r) {
  nlohmann::json spec = nlohmann::json::object();
  if (!r.holder_identity.empty()) spec["holderIdentity"] = r.holder_identity;
  spec["leaseDurationSeconds"] = r.lease_duration_seconds;
  if (r.acquire_time) spec["acquireTime"] = FormatMicroTime(*r.acquire_time);
  if (r.renew_time) spec["renewTime"] = FormatMicroTime(*r.renew_time);
  spec["leaseTransitions"] = r.lease_transitions;
  return spec;
}

Result<LeaderElectionRecord> RecordFromLeaseSpec(const nlohmann::json& spec) {
  LeaderElectionRecord r;
  if (!spec.is_object()) return r;
  r.holder_identity = StringAt(spec, {"holderIdentity"});
  if (auto it = spec.find("leaseDurationSeconds"); it != spec.end() && it->is_number_integer()) {
    r.lease_duration_seconds = it->get<int>();
  }
  if (auto it = spec.find("leaseTransitions"); it != spec.end() && it->is_number_integer()) {
    r.lease_transitions = it->get<int>();
  }
  if (auto s = StringAt(spec, {"acquireTime"}); !s.empty()) {
    ASSIGN_OR_RETURN(r.acquire_time, ParseTime(s));
  }
  if (auto s = StringAt(spec, {"renewTime"}); !s.empty()) {
    ASSIGN_OR_RETURN(r.renew_time, ParseTime(s));
  }
  return r;
}

Result<std::unique_ptr<LeaderElector>> LeaderElector::New(LeaderElectionConfig config) {
  if (!config.lock) return InvalidError("leader election needs a lock");
  if (config.identity.empty()) return InvalidError("leader election needs an identity");
  if (config.lease_duration <= config.renew_deadline) {
    return InvalidError("lease duration must be longer than the renew deadline");
  }
  if (config.renew_deadline <= config.retry_period) {
    return InvalidError("renew deadline must be longer than the retry period");
  }
  return std::unique_ptr<LeaderElector>(new LeaderElector(std::move(config)));
}

LeaderElector::LeaderElector(LeaderElectionConfig config)
    : config_(std::move(config)), clock_(config_.clock ? *config_.clock : RealClock()) {}

bool LeaderElector::TryAcquireOrRenew() {
  std::lock_guard lock(mu_);
  const auto now = clock_.Now();
  const auto wall = clock_.WallNow();
  LeaderElectionRecord desired;
  desired.holder_identity = config_.identity;
  desired.lease_duration_seconds =
      static_cast<int>(std::chrono::ceil<std::chrono::seconds>(config_.lease_duration).count());
  desired.acquire_time = wall;
  desired.renew_time = wall;

  std::string version;
  auto current = config_.lock->Get(&version);
  if (!current.ok()) {
    if (current.status().code() != Code::kNotFound) {
      spdlog::warn("leader election: reading {}: {}", config_.lock->Describe(),
                   current.status().ToString());
      return false;
    }
    Status created = config_.lock->Create(desired);
    if (!created.ok()) {
      spdlog::info("leader election: creating {}: {}", config_.lock->Describe(),
                   created.ToString());
      return false;
    }
    observed_ = desired;
    observed_at_ = now;
    last_renew_ = now;
    return true;
  }

  // The lease duration counts from when *we* saw the record change, not from its
  // renewTime: the holder's clock may differ from ours.
  if (!observed_ || !(*observed_ == *current)) {
    observed_ = *current;
    observed_at_ = now;
  }
  const bool held_by_us = current->holder_identity == config_.identity;
  const auto holder_duration = std::chrono::seconds(current->lease_duration_seconds);
  if (!current->holder_identity.empty() && !held_by_us && now < observed_at_ + holder_duration) {
    return false;  // someone else holds a live lease
  }

  if (held_by_us) {
    desired.acquire_time = current->acquire_time;
    desired.lease_transitions = current->lease_transitions;
  } else {
    desired.lease_transitions = current->lease_transitions + 1;
  }
  Status updated = config_.lock->Update(desired, version);
  if (!updated.ok()) {
    // Conflict: another candidate wrote first; it will be observed next time.
    spdlog::info("leader election: updating {}: {}", config_.lock->Describe(), updated.ToString());
    return false;
  }
  observed_ = desired;
  observed_at_ = now;
  last_renew_ = now;
  return true;
}

bool LeaderElector::IsLeader() const {
  std::lock_guard lock(mu_);
  return observed_ && observed_->holder_identity == config_.identity && last_renew_ &&
         clock_.Now() < *last_renew_ + config_.renew_deadline;
}

std::string LeaderElector::leader() const {
  std::lock_guard lock(mu_);
  return observed_ ? observed_->holder_identity : "";
}

bool LeaderElector::RenewDeadlinePassed() const {
  std::lock_guard lock(mu_);
  return !last_renew_ || clock_.Now() >= *last_renew_ + config_.renew_deadline;
}

Status LeaderElector::Release() {
  std::lock_guard lock(mu_);
  if (!observed_ || observed_->holder_identity != config_.identity) return OkStatus();
  std::string version;
  ASSIGN_OR_RETURN(LeaderElectionRecord current, config_.lock->Get(&version));
  if (current.holder_identity != config_.identity) return OkStatus();  // already lost
  LeaderElectionRecord released;
  const auto wall = clock_.WallNow();
  released.lease_duration_seconds = 1;
  released.acquire_time = wall;
  released.renew_time = wall;
  released.lease_transitions = current.lease_transitions;
  RETURN_IF_ERROR(config_.lock->Update(released, version));
  observed_ = released;
  observed_at_ = clock_.Now();
  last_renew_.reset();
  return OkStatus();
}

void LeaderElector::Run(const Stop& stop, const std::function<void()>& on_started_leading,
                        const std::function<void()>& on_stopped_leading) {
  // Acquire.
  while (!TryAcquireOrRenew()) {
    if (stop.WaitFor(config_.retry_period)) return;
  }
  spdlog::info("leader election: {} acquired {}", config_.identity, config_.lock->Describe());
  if (on_started_leading) on_started_leading();

  // Renew until the deadline passes without success, or stop.
  while (true) {
    if (stop.WaitFor(config_.retry_period)) break;
    if (TryAcquireOrRenew()) continue;
    if (RenewDeadlinePassed()) {
      spdlog::error("leader election: {} lost {}", config_.identity, config_.lock->Describe());
      if (on_stopped_leading) on_stopped_leading();
      return;
    }
  }
  if (config_.release_on_cancel) {
    if (Status s = Release(); !s.ok()) {
      spdlog::warn("leader election: releasing {}: {}", config_.lock->Describe(), s.ToString());
    }
  }
  if (on_stopped_leading) on_stopped_leading();
}

}  // namespace nixmox::kube
