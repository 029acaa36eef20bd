#include "src/controllers/vm_status.h"

#include <nlohmann/json.hpp>
#include <utility>

#include "src/api/reasons.h"
#include "src/kube/conditions.h"
#include "src/kube/time.h"

namespace nixmox::controllers {
namespace {

kube::Condition ToKube(const api::Condition& c) {
  kube::Condition out;
  out.type = c.type;
  out.status = std::string(api::EnumName(c.status));
  out.reason = c.reason;
  out.message = c.message;
  out.observed_generation = c.observed_generation;
  if (auto parsed = kube::ParseTime(c.last_transition_time); parsed.ok()) {
    out.last_transition_time = *parsed;
  }
  return out;
}

api::Condition ToApi(const kube::Condition& c) {
  api::Condition out;
  out.type = c.type;
  out.status =
      api::ParseEnum<api::ConditionStatus>(c.status).value_or(api::ConditionStatus::kUnknown);
  out.reason = c.reason;
  out.message = c.message;
  out.observed_generation = c.observed_generation;
  out.last_transition_time = kube::FormatTime(c.last_transition_time);
  return out;
}

}  // namespace

bool SetVmCondition(api::ProxmoxVmStatus& status, std::string_view type, api::ConditionStatus value,
                    std::string_view reason, std::string message, std::int64_t generation,
                    Clock::WallTime now) {
  return SetApiCondition(status.conditions, type, value, reason, std::move(message), generation,
                         now);
}

bool SetApiCondition(std::vector<api::Condition>& typed, std::string_view type,
                     api::ConditionStatus value, std::string_view reason, std::string message,
                     std::int64_t generation, Clock::WallTime now) {
  nlohmann::json conditions = nlohmann::json::array();
  for (const api::Condition& c : typed) {
    conditions.push_back(kube::ConditionToJson(ToKube(c)));
  }
  kube::Condition wanted;
  wanted.type = std::string(type);
  wanted.status = std::string(api::EnumName(value));
  wanted.reason = std::string(reason);
  wanted.message = std::move(message);
  wanted.observed_generation = generation;
  if (!kube::SetCondition(conditions, wanted, now)) return false;
  typed.clear();
  for (const nlohmann::json& j : conditions) {
    if (auto c = kube::ConditionFromJson(j); c.ok()) typed.push_back(ToApi(*c));
  }
  return true;
}

const api::Condition* FindVmCondition(const api::ProxmoxVmStatus& status, std::string_view type) {
  for (const api::Condition& c : status.conditions) {
    if (c.type == type) return &c;
  }
  return nullptr;
}

bool IsVmConditionTrue(const api::ProxmoxVmStatus& status, std::string_view type) {
  const api::Condition* c = FindVmCondition(status, type);
  return c != nullptr && c->status == api::ConditionStatus::kTrue;
}

ReadySummary SummarizeReady(const api::ProxmoxVmSpec& spec, const api::ProxmoxVmStatus& status) {
  using api::ConditionStatus;
  namespace reason = api::reason;
  const std::string vm = status.vmid ? "VM " + std::to_string(*status.vmid) : "the VM";
  const api::Condition* in_sync = FindVmCondition(status, api::condition::kInSync);
  const bool drifting = in_sync != nullptr && in_sync->status == ConditionStatus::kFalse &&
                        in_sync->reason == reason::kConfigDrift;
  switch (status.phase) {
    case api::VmPhase::kRunning: {
      if (spec.power_state == api::PowerState::kStopped) {
        return {ConditionStatus::kFalse, std::string(reason::kStopping),
                vm + " still runs; it is being shut down, as asked"};
      }
      if (drifting) {
        return {ConditionStatus::kFalse, std::string(reason::kConfigDrift), in_sync->message};
      }
      if (status.primary_ip.empty()) {
        const bool agent = IsVmConditionTrue(status, api::condition::kAgentConnected);
        return {ConditionStatus::kFalse,
                std::string(agent ? reason::kNoAddress : reason::kAgentNotRunning),
                vm + " runs; waiting for " +
                    (agent ? "a usable address" : "the guest agent to answer")};
      }
      return {ConditionStatus::kTrue, std::string(reason::kRunning),
              vm + " runs on " + status.node + " at " + status.primary_ip};
    }
    case api::VmPhase::kStopped:
      if (drifting) {
        return {ConditionStatus::kFalse, std::string(reason::kConfigDrift), in_sync->message};
      }
      if (spec.power_state == api::PowerState::kStopped) {
        return {ConditionStatus::kTrue, std::string(reason::kStopped),
                vm + " is stopped on " + status.node + ", as asked"};
      }
      return {ConditionStatus::kFalse, std::string(reason::kStopped), vm + " is stopped"};
    case api::VmPhase::kProvisioning:
      return {ConditionStatus::kFalse, std::string(reason::kCreating), vm + " is being created"};
    case api::VmPhase::kStarting:
      return {ConditionStatus::kFalse, std::string(reason::kStarting), vm + " is starting"};
    case api::VmPhase::kUpdating:
      return {ConditionStatus::kFalse, std::string(reason::kRecreating),
              vm + " is being re-created from a new image"};
    case api::VmPhase::kDeleting:
      return {ConditionStatus::kFalse, std::string(reason::kDeleting), vm + " is being deleted"};
    case api::VmPhase::kFailed:
      return {ConditionStatus::kFalse, std::string(reason::kTaskFailed),
              status.last_task ? status.last_task->message : vm + " failed"};
    case api::VmPhase::kPending:
      break;
  }
  return {ConditionStatus::kFalse, std::string(reason::kReconciling), "waiting to be provisioned"};
}

}  // namespace nixmox::controllers
