// Status conditions with apimachinery's semantics (meta.SetStatusCondition):
// one entry per type; lastTransitionTime moves only when status moves;
// observedGeneration records the spec generation the condition speaks for.
// Conditions live as JSON in an object's status.conditions array.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>

#include "src/common/clock.h"
#include "src/common/status.h"

namespace nixmox::kube {

inline constexpr std::string_view kConditionTrue = "True";
inline constexpr std::string_view kConditionFalse = "False";
inline constexpr std::string_view kConditionUnknown = "Unknown";

struct Condition {
  std::string type;    // "Ready"
  std::string status;  // True, False or Unknown
  std::string reason;  // CamelCase, from the one list of reasons the controller keeps
  std::string message;
  std::int64_t observed_generation = 0;
  Clock::WallTime last_transition_time{};  // filled in by SetCondition
};

nlohmann::json ConditionToJson(const Condition& c);
Result<Condition> ConditionFromJson(const nlohmann::json& j);

// Sets `c` in `conditions` (a JSON array, or null which becomes one). A new
// type is appended with lastTransitionTime = now. An existing one keeps its
// lastTransitionTime unless its status changes; reason, message and
// observedGeneration are updated. Returns true when anything changed, so that
// status is written only when it did.
bool SetCondition(nlohmann::json& conditions, const Condition& c, Clock::WallTime now);

// Removes the type; true when it was there.
bool RemoveCondition(nlohmann::json& conditions, std::string_view type);

std::optional<Condition> FindCondition(const nlohmann::json& conditions, std::string_view type);
bool IsConditionTrue(const nlohmann::json& conditions, std::string_view type);

}  // namespace nixmox::kube
