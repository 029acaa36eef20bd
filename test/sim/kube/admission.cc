#include "test/sim/kube/admission.h"

#include <algorithm>
#include <regex>

namespace nixmox::kubesim {
namespace {

constexpr char kRbacGroup[] = "rbac.authorization.k8s.io";

const json& Field(const json& o, const char* key) {
  static const json kNull;
  return o.is_object() && o.contains(key) ? o[key] : kNull;
}

json& ObjectAt(json& o, const char* key) {
  json& v = o[key];
  if (!v.is_object()) v = json::object();
  return v;
}

// Go's %#v of a map[string]string, which validation messages quote.
std::string GoStringMap(const json& labels) {
  std::string out = "map[string]string{";
  bool first = true;
  if (labels.is_object()) {
    for (auto it = labels.begin(); it != labels.end(); ++it) {  // json keeps keys sorted, as Go
      out += (first ? "" : ", ") + json(it.key()).dump() + ":" + it.value().dump();
      first = false;
    }
  }
  return out + "}";
}

std::string Quoted(const std::vector<std::string>& values) {
  std::string out;
  for (const std::string& v : values) out += (out.empty() ? "" : ", ") + json(v).dump();
  return out;
}

Cause Required(const std::string& field, const std::string& detail = "") {
  return {"FieldValueRequired", field,
          detail.empty() ? "Required value" : "Required value: " + detail};
}

Cause NotSupported(const std::string& field, const json& value,
                   const std::vector<std::string>& supported) {
  return {"FieldValueNotSupported", field,
          "Unsupported value: " + value.dump() + ": supported values: " + Quoted(supported)};
}

Cause Invalid(const std::string& field, const std::string& value, const std::string& detail) {
  return {"FieldValueInvalid", field, "Invalid value: " + value + ": " + detail};
}

// An int-or-string that must be a non-negative integer or a percentage.
void CheckIntOrPercent(const json& v, const std::string& field, std::vector<Cause>& causes) {
  if (v.is_null()) return;
  if (v.is_number_integer()) {
    if (v.get<long long>() < 0) {
      causes.push_back(Invalid(field, v.dump(), "must be greater than or equal to 0"));
    }
    return;
  }
  static const std::regex kPercent("^[0-9]+%$");
  const std::string text = v.is_string() ? v.get<std::string>() : v.dump();
  if (!v.is_string() || !std::regex_match(text, kPercent)) {
    causes.push_back(Invalid(field, json(text).dump(),
                             "a valid percent string must be a numeric string followed by an "
                             "ending '%' (e.g. '1%',  or '93%', regex used for validation is "
                             "'[0-9]+%')"));
  } else if (std::stoll(text) > 100) {
    causes.push_back(Invalid(field, json(text).dump(), "must not be greater than 100%"));
  }
}

bool ExpressionMatches(const json& expr, const json& labels) {
  const std::string key = expr.value("key", "");
  const std::string op = expr.value("operator", "");
  const bool has = labels.is_object() && labels.contains(key);
  const json values = expr.value("values", json::array());
  const bool listed = has && std::find(values.begin(), values.end(), labels[key]) != values.end();
  if (op == "In") return listed;
  if (op == "NotIn") return !listed;
  if (op == "Exists") return has;
  if (op == "DoesNotExist") return !has;
  return false;
}

}  // namespace

bool LabelSelectorMatches(const json& selector, const json& labels) {
  for (const auto& [key, value] : Field(selector, "matchLabels").items()) {
    if (!labels.is_object() || !labels.contains(key) || labels[key] != value) return false;
  }
  for (const json& expr : Field(selector, "matchExpressions")) {
    if (!ExpressionMatches(expr, labels)) return false;
  }
  return true;
}

void AdmitPodSpec(json& ps, const std::string& path, std::vector<Cause>& causes) {
  if (!ps.is_object()) ps = json::object();
  if (!ps.contains("restartPolicy")) ps["restartPolicy"] = "Always";
  if (!ps.contains("dnsPolicy")) ps["dnsPolicy"] = "ClusterFirst";
  if (!ps.contains("schedulerName")) ps["schedulerName"] = "default-scheduler";
  if (!ps.contains("terminationGracePeriodSeconds")) ps["terminationGracePeriodSeconds"] = 30;
  if (!ps.contains("containers") || !ps["containers"].is_array() || ps["containers"].empty()) {
    causes.push_back(Required(path + ".containers"));
    return;
  }
  for (size_t i = 0; i < ps["containers"].size(); ++i) {
    json& c = ps["containers"][i];
    const std::string cp = path + ".containers[" + std::to_string(i) + "]";
    if (!c.is_object()) c = json::object();
    if (c.value("name", "").empty()) causes.push_back(Required(cp + ".name"));
    if (c.value("image", "").empty()) causes.push_back(Required(cp + ".image"));
    if (!c.contains("terminationMessagePath")) c["terminationMessagePath"] = "/dev/termination-log";
    if (!c.contains("terminationMessagePolicy")) c["terminationMessagePolicy"] = "File";
    if (!c.contains("imagePullPolicy")) c["imagePullPolicy"] = "IfNotPresent";
    if (c.contains("ports") && c["ports"].is_array()) {
      for (json& port : c["ports"]) {
        if (port.is_object() && !port.contains("protocol")) port["protocol"] = "TCP";
      }
    }
  }
}

void AdmitDeployment(json& o, const json* old, std::vector<Cause>& causes) {
  json& spec = ObjectAt(o, "spec");
  if (!spec.contains("replicas")) spec["replicas"] = 1;
  json& strategy = ObjectAt(spec, "strategy");
  if (!strategy.contains("type")) strategy["type"] = "RollingUpdate";
  if (strategy["type"] == "RollingUpdate") {
    json& rolling = ObjectAt(strategy, "rollingUpdate");
    if (!rolling.contains("maxUnavailable")) rolling["maxUnavailable"] = "25%";
    if (!rolling.contains("maxSurge")) rolling["maxSurge"] = "25%";
  } else if (strategy["type"] != "Recreate") {
    causes.push_back(
        NotSupported("spec.strategy.type", strategy["type"], {"Recreate", "RollingUpdate"}));
  }
  if (!spec.contains("revisionHistoryLimit")) spec["revisionHistoryLimit"] = 10;
  if (!spec.contains("progressDeadlineSeconds")) spec["progressDeadlineSeconds"] = 600;

  const json& replicas = spec["replicas"];
  if (!replicas.is_number_integer() || replicas.get<long long>() < 0) {
    causes.push_back(
        Invalid("spec.replicas", replicas.dump(), "must be greater than or equal to 0"));
  }
  json& tmpl = ObjectAt(spec, "template");
  const json labels = Field(Field(tmpl, "metadata"), "labels");
  const json& selector = Field(spec, "selector");
  if (selector.is_null()) {
    causes.push_back(Required("spec.selector"));
  } else if (Field(selector, "matchLabels").empty() &&
             Field(selector, "matchExpressions").empty()) {
    causes.push_back(
        Invalid("spec.selector", selector.dump(), "empty selector is invalid for deployment"));
  } else if (!LabelSelectorMatches(selector, labels)) {
    causes.push_back(Invalid("spec.template.metadata.labels", GoStringMap(labels),
                             "`selector` does not match template `labels`"));
  }
  if (old && Field(Field(*old, "spec"), "selector") != selector) {
    causes.push_back(Invalid("spec.selector", selector.dump(), "field is immutable"));
  }
  json& pod_spec = ObjectAt(tmpl, "spec");
  AdmitPodSpec(pod_spec, "spec.template.spec", causes);
  if (pod_spec["restartPolicy"] != "Always") {
    causes.push_back(
        NotSupported("spec.template.spec.restartPolicy", pod_spec["restartPolicy"], {"Always"}));
  }
  if (!old) o["status"] = json::object();
}

void AdmitPodDisruptionBudget(json& o, const json* old, std::vector<Cause>& causes) {
  json& spec = ObjectAt(o, "spec");
  const json& min = Field(spec, "minAvailable");
  const json& max = Field(spec, "maxUnavailable");
  if (!min.is_null() && !max.is_null()) {
    causes.push_back(
        Invalid("spec", spec.dump(), "minAvailable and maxUnavailable cannot be both set"));
  }
  CheckIntOrPercent(min, "spec.minAvailable", causes);
  CheckIntOrPercent(max, "spec.maxUnavailable", causes);
  if (spec.contains("unhealthyPodEvictionPolicy") &&
      spec["unhealthyPodEvictionPolicy"] != "IfHealthyBudget" &&
      spec["unhealthyPodEvictionPolicy"] != "AlwaysAllow") {
    causes.push_back(NotSupported("spec.unhealthyPodEvictionPolicy",
                                  spec["unhealthyPodEvictionPolicy"],
                                  {"AlwaysAllow", "IfHealthyBudget"}));
  }
  // The disruption controller fills status in; until then it is all zeros.
  if (!old) {
    o["status"] = {{"disruptionsAllowed", 0},
                   {"currentHealthy", 0},
                   {"desiredHealthy", 0},
                   {"expectedPods", 0}};
  }
}

void AdmitRole(const json& o, bool namespaced, std::vector<Cause>& causes) {
  const json& rules = Field(o, "rules");
  if (!rules.is_array()) return;
  for (size_t i = 0; i < rules.size(); ++i) {
    const json& rule = rules[i];
    const std::string path = "rules[" + std::to_string(i) + "]";
    if (Field(rule, "verbs").empty()) {
      causes.push_back(Required(path + ".verbs", "verbs must contain at least one value"));
    }
    const json& urls = Field(rule, "nonResourceURLs");
    if (!urls.empty()) {
      if (namespaced) {
        causes.push_back(Invalid(path + ".nonResourceURLs", urls.dump(),
                                 "namespaced rules cannot apply to non-resource URLs"));
      }
      if (!Field(rule, "apiGroups").empty() || !Field(rule, "resources").empty() ||
          !Field(rule, "resourceNames").empty()) {
        causes.push_back(Invalid(path + ".nonResourceURLs", urls.dump(),
                                 "rules cannot apply to both regular resources and non-resource "
                                 "URLs"));
      }
      continue;
    }
    if (Field(rule, "apiGroups").empty()) {
      causes.push_back(
          Required(path + ".apiGroups", "resource rules must supply at least one api group"));
    }
    if (Field(rule, "resources").empty()) {
      causes.push_back(
          Required(path + ".resources", "resource rules must supply at least one resource"));
    }
  }
}

void AdmitRoleBinding(json& o, const json* old, bool namespaced, std::vector<Cause>& causes) {
  json& ref = o["roleRef"];
  if (!ref.is_object()) ref = json::object();
  if (ref.value("apiGroup", "").empty()) ref["apiGroup"] = kRbacGroup;
  if (ref["apiGroup"] != kRbacGroup) {
    causes.push_back(NotSupported("roleRef.apiGroup", ref["apiGroup"], {kRbacGroup}));
  }
  const std::vector<std::string> kinds = namespaced
                                             ? std::vector<std::string>{"Role", "ClusterRole"}
                                             : std::vector<std::string>{"ClusterRole"};
  const json kind = ref.value("kind", "");
  if (std::find(kinds.begin(), kinds.end(), kind.get<std::string>()) == kinds.end()) {
    causes.push_back(NotSupported("roleRef.kind", kind, kinds));
  }
  if (ref.value("name", "").empty()) causes.push_back(Required("roleRef.name"));

  json& subjects = o["subjects"];
  if (subjects.is_null()) subjects = json::array();
  for (size_t i = 0; i < subjects.size(); ++i) {
    json& s = subjects[i];
    const std::string path = "subjects[" + std::to_string(i) + "]";
    if (!s.is_object()) s = json::object();
    const std::string subject_kind = s.value("kind", "");
    if (s.value("name", "").empty()) causes.push_back(Required(path + ".name"));
    if (subject_kind == "ServiceAccount") {
      if (!s.value("apiGroup", "").empty()) {
        causes.push_back(NotSupported(path + ".apiGroup", s["apiGroup"], {""}));
      }
      if (!namespaced && s.value("namespace", "").empty()) {
        causes.push_back(Required(path + ".namespace"));
      }
    } else if (subject_kind == "User" || subject_kind == "Group") {
      if (s.value("apiGroup", "").empty()) s["apiGroup"] = kRbacGroup;
      if (s["apiGroup"] != kRbacGroup) {
        causes.push_back(NotSupported(path + ".apiGroup", s["apiGroup"], {kRbacGroup}));
      }
    } else {
      causes.push_back(
          NotSupported(path + ".kind", subject_kind, {"ServiceAccount", "User", "Group"}));
    }
  }
  if (subjects.empty()) o.erase("subjects");

  if (old && Field(*old, "roleRef") != ref) {
    causes.push_back(Invalid("roleRef",
                             "rbac.RoleRef{APIGroup:" + ref.value("apiGroup", json("")).dump() +
                                 ", Kind:" + ref.value("kind", json("")).dump() +
                                 ", Name:" + ref.value("name", json("")).dump() + "}",
                             "cannot change roleRef"));
  }
}

}  // namespace nixmox::kubesim
