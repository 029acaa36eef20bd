#include "src/kube/conditions.h"

#include "src/kube/object.h"
#include "src/kube/time.h"

namespace nixmox::kube {

nlohmann::json ConditionToJson(const Condition& c) {
  nlohmann::json j = {{"type", c.type},
                      {"status", c.status},
                      {"reason", c.reason},
                      {"message", c.message},
                      {"lastTransitionTime", FormatTime(c.last_transition_time)}};
  if (c.observed_generation > 0) j["observedGeneration"] = c.observed_generation;
  return j;
}

Result<Condition> ConditionFromJson(const nlohmann::json& j) {
  if (!j.is_object()) return InvalidError("condition is not an object");
  Condition c;
  c.type = StringAt(j, {"type"});
  c.status = StringAt(j, {"status"});
  c.reason = StringAt(j, {"reason"});
  c.message = StringAt(j, {"message"});
  if (c.type.empty()) return InvalidError("condition without a type");
  if (auto it = j.find("observedGeneration"); it != j.end() && it->is_number_integer()) {
    c.observed_generation = it->get<std::int64_t>();
  }
  if (auto t = StringAt(j, {"lastTransitionTime"}); !t.empty()) {
    ASSIGN_OR_RETURN(c.last_transition_time, ParseTime(t));
  }
  return c;
}

bool SetCondition(nlohmann::json& conditions, const Condition& c, Clock::WallTime now) {
  if (!conditions.is_array()) conditions = nlohmann::json::array();
  for (auto& existing : conditions) {
    if (StringAt(existing, {"type"}) != c.type) continue;
    nlohmann::json updated = existing;
    updated["status"] = c.status;
    updated["reason"] = c.reason;
    updated["message"] = c.message;
    if (c.observed_generation > 0) {
      updated["observedGeneration"] = c.observed_generation;
    } else {
      updated.erase("observedGeneration");
    }
    if (StringAt(existing, {"status"}) != c.status ||
        StringAt(existing, {"lastTransitionTime"}).empty()) {
      updated["lastTransitionTime"] = FormatTime(now);
    }
    if (updated == existing) return false;
    existing = std::move(updated);
    return true;
  }
  Condition fresh = c;
  fresh.last_transition_time = now;
  conditions.push_back(ConditionToJson(fresh));
  return true;
}

bool RemoveCondition(nlohmann::json& conditions, std::string_view type) {
  if (!conditions.is_array()) return false;
  for (auto it = conditions.begin(); it != conditions.end(); ++it) {
    if (StringAt(*it, {"type"}) == type) {
      conditions.erase(it);
      return true;
    }
  }
  return false;
}

std::optional<Condition> FindCondition(const nlohmann::json& conditions, std::string_view type) {
  if (!conditions.is_array()) return std::nullopt;
  for (const auto& j : conditions) {
    if (StringAt(j, {"type"}) != type) continue;
    auto c = ConditionFromJson(j);
    if (c.ok()) return *c;
  }
  return std::nullopt;
}

bool IsConditionTrue(const nlohmann::json& conditions, std::string_view type) {
  auto c = FindCondition(conditions, type);
  return c && c->status == kConditionTrue;
}

}  // namespace nixmox::kube
