// A ProxmoxVM's status as the reconciler builds it: conditions on the typed
// status with apimachinery's semantics (kube/conditions.h does the work), and
// the Ready summary derived from the rest. Pure functions; any thread.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "src/api/types.h"
#include "src/common/clock.h"

namespace nixmox::controllers {

// Sets one condition in a typed list (any kind's status.conditions): a new
// type is added, an existing one keeps its lastTransitionTime unless its
// status moves. True when anything changed.
bool SetApiCondition(std::vector<api::Condition>& conditions, std::string_view type,
                     api::ConditionStatus value, std::string_view reason, std::string message,
                     std::int64_t generation, Clock::WallTime now);

// Sets one condition: a new type is added, an existing one keeps its
// lastTransitionTime unless its status moves. True when anything changed.
bool SetVmCondition(api::ProxmoxVmStatus& status, std::string_view type, api::ConditionStatus value,
                    std::string_view reason, std::string message, std::int64_t generation,
                    Clock::WallTime now);

// The condition of that type, or null.
const api::Condition* FindVmCondition(const api::ProxmoxVmStatus& status, std::string_view type);
bool IsVmConditionTrue(const api::ProxmoxVmStatus& status, std::string_view type);

struct ReadySummary {
  api::ConditionStatus value = api::ConditionStatus::kFalse;
  std::string reason;
  std::string message;
};

// Ready when nothing stopped the pass: a running VM is Ready once its config
// matches and it has a primary IP; a VM asked to be stopped, once stopped.
// Everything else says what the VM is waiting for.
ReadySummary SummarizeReady(const api::ProxmoxVmSpec& spec, const api::ProxmoxVmStatus& status);

}  // namespace nixmox::controllers
