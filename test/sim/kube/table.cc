#include "test/sim/kube/table.h"

#include <ctime>
#include <iomanip>
#include <optional>
#include <sstream>

namespace nixmox::kubesim {
namespace {

using Clock = std::chrono::system_clock;

std::optional<Clock::time_point> ParseTime(const json& v) {
  if (!v.is_string()) return std::nullopt;
  std::tm tm{};
  std::istringstream in(v.get<std::string>());
  in >> std::get_time(&tm, "%Y-%m-%dT%H:%M:%S");
  if (in.fail()) return std::nullopt;
  return Clock::from_time_t(timegm(&tm));
}

std::string Age(const json& v, Clock::time_point now) {
  auto t = ParseTime(v);
  if (!t) return "<unknown>";
  return HumanDuration(std::chrono::duration_cast<std::chrono::seconds>(now - *t));
}

json Column(std::string name, std::string type, std::string format, std::string description,
            int priority = 0) {
  return {{"name", name},
          {"type", type},
          {"format", format},
          {"description", description},
          {"priority", priority}};
}

// A top-level object field, or an empty object (const operator[] must not miss).
const json& Part(const json& o, const char* key) {
  static const json kEmpty = json::object();
  return o.is_object() && o.contains(key) && o[key].is_object() ? o[key] : kEmpty;
}

std::string Str(const json& obj, const std::string& path) {
  auto v = EvalJsonPath(obj, path);
  if (v.empty() || v[0].is_null()) return "";
  return v[0].is_string() ? v[0].get<std::string>() : v[0].dump();
}

// Columns and cells for the built-ins kubectl users look at most.
void BuiltinColumns(const ResourceInfo& r, json& columns) {
  const std::string key = r.GroupResource();
  columns.push_back(Column("Name", "string", "name", "Name must be unique within a namespace."));
  if (key == "namespaces") {
    columns.push_back(Column("Status", "string", "", "The status of the namespace"));
  } else if (key == "pods") {
    columns.push_back(Column("Ready", "string", "", "The aggregate readiness state"));
    columns.push_back(Column("Status", "string", "", "The aggregate status of the containers"));
    columns.push_back(
        Column("Restarts", "string", "", "The number of times the containers restarted"));
  } else if (key == "jobs.batch") {
    columns.push_back(Column("Status", "string", "", "Status of the job."));
    columns.push_back(Column("Completions", "string", "", "The completion status of the job."));
    columns.push_back(Column("Duration", "string", "", "Time required to complete the job."));
  } else if (key == "secrets") {
    columns.push_back(Column("Type", "string", "", "The type of secret"));
    columns.push_back(Column("Data", "string", "", "The number of entries in the data"));
  } else if (key == "configmaps") {
    columns.push_back(Column("Data", "string", "", "Number of entries in data"));
  } else if (key == "leases.coordination.k8s.io") {
    columns.push_back(Column("Holder", "string", "", "The holder of the lease"));
  } else if (key == "services") {
    columns.push_back(Column("Type", "string", "", "The type of service"));
    columns.push_back(Column("Cluster-IP", "string", "", "The cluster IP"));
  } else if (key == "deployments.apps") {
    columns.push_back(Column("Ready", "string", "", "Ready pods out of the desired replicas"));
    columns.push_back(Column("Up-to-date", "string", "", "Pods that run the current template"));
    columns.push_back(Column("Available", "string", "", "Pods available to serve"));
  } else if (key == "poddisruptionbudgets.policy") {
    columns.push_back(Column("Min Available", "string", "", "Pods that must stay available"));
    columns.push_back(Column("Max Unavailable", "string", "", "Pods that may be unavailable"));
    columns.push_back(
        Column("Allowed Disruptions", "integer", "", "Pods that may be disrupted now"));
  } else if (key == "rolebindings.rbac.authorization.k8s.io" ||
             key == "clusterrolebindings.rbac.authorization.k8s.io") {
    columns.push_back(Column("Role", "string", "", "Role of the binding"));
  } else if (key == "customresourcedefinitions.apiextensions.k8s.io" ||
             key == "roles.rbac.authorization.k8s.io" ||
             key == "clusterroles.rbac.authorization.k8s.io") {
    columns.push_back(Column("Created At", "date", "", "When the object was created"));
    return;
  }
  columns.push_back(Column("Age", "string", "", "CreationTimestamp is a timestamp ..."));
}

json BuiltinCells(const ResourceInfo& r, const json& o, Clock::time_point now) {
  const std::string key = r.GroupResource();
  json cells = json::array({Str(o, ".metadata.name")});
  if (key == "namespaces") {
    cells.push_back(Str(o, ".status.phase"));
  } else if (key == "pods") {
    int total = 0, ready = 0, restarts = 0;
    for (const json& cs : Part(o, "status").value("containerStatuses", json::array())) {
      ++total;
      if (cs.value("ready", false)) ++ready;
      restarts += cs.value("restartCount", 0);
    }
    if (total == 0)
      total = static_cast<int>(Part(o, "spec").value("containers", json::array()).size());
    std::string status = Str(o, ".status.phase");
    for (const json& cs : Part(o, "status").value("containerStatuses", json::array())) {
      if (cs.contains("state") && cs["state"].contains("terminated")) {
        status = cs["state"]["terminated"].value("reason", status);
      }
    }
    if (Part(o, "metadata").contains("deletionTimestamp")) status = "Terminating";
    cells.push_back(std::to_string(ready) + "/" + std::to_string(total));
    cells.push_back(status);
    cells.push_back(std::to_string(restarts));
  } else if (key == "jobs.batch") {
    std::string status = "Running";
    for (const json& c : Part(o, "status").value("conditions", json::array())) {
      if (c.value("status", "") != "True") continue;
      if (c.value("type", "") == "Complete") status = "Complete";
      if (c.value("type", "") == "Failed") status = "Failed";
    }
    if (Part(o, "spec").value("suspend", false)) status = "Suspended";
    int completions = Part(o, "spec").value("completions", 1);
    cells.push_back(status);
    cells.push_back(std::to_string(Part(o, "status").value("succeeded", 0)) + "/" +
                    std::to_string(completions));
    auto start = ParseTime(Part(o, "status").value("startTime", json()));
    auto end = ParseTime(Part(o, "status").value("completionTime", json()));
    cells.push_back(start ? HumanDuration(std::chrono::duration_cast<std::chrono::seconds>(
                                (end ? *end : now) - *start))
                          : "");
  } else if (key == "secrets") {
    cells.push_back(Str(o, ".type"));
    cells.push_back(o.value("data", json::object()).size());
  } else if (key == "configmaps") {
    cells.push_back(o.value("data", json::object()).size() +
                    o.value("binaryData", json::object()).size());
  } else if (key == "leases.coordination.k8s.io") {
    cells.push_back(Str(o, ".spec.holderIdentity"));
  } else if (key == "services") {
    std::string type = Str(o, ".spec.type");
    cells.push_back(type.empty() ? "ClusterIP" : type);
    std::string ip = Str(o, ".spec.clusterIP");
    cells.push_back(ip.empty() ? "<none>" : ip);
  } else if (key == "deployments.apps") {
    const json& status = Part(o, "status");
    cells.push_back(std::to_string(status.value("readyReplicas", 0)) + "/" +
                    std::to_string(Part(o, "spec").value("replicas", 1)));
    cells.push_back(status.value("updatedReplicas", 0));
    cells.push_back(status.value("availableReplicas", 0));
  } else if (key == "poddisruptionbudgets.policy") {
    for (const char* field : {".spec.minAvailable", ".spec.maxUnavailable"}) {
      std::string value = Str(o, field);
      cells.push_back(value.empty() ? "N/A" : value);
    }
    cells.push_back(Part(o, "status").value("disruptionsAllowed", 0));
  } else if (key == "rolebindings.rbac.authorization.k8s.io" ||
             key == "clusterrolebindings.rbac.authorization.k8s.io") {
    cells.push_back(Str(o, ".roleRef.kind") + "/" + Str(o, ".roleRef.name"));
  } else if (key == "customresourcedefinitions.apiextensions.k8s.io" ||
             key == "roles.rbac.authorization.k8s.io" ||
             key == "clusterroles.rbac.authorization.k8s.io") {
    cells.push_back(Str(o, ".metadata.creationTimestamp"));
    return cells;
  }
  cells.push_back(Age(Part(o, "metadata").value("creationTimestamp", json()), now));
  return cells;
}

json CustomCell(const PrinterColumn& c, const json& o, Clock::time_point now) {
  std::vector<json> values = EvalJsonPath(o, c.json_path);
  if (values.empty() || values[0].is_null()) return nullptr;
  const json& v = values[0];
  if (c.type == "date") return Age(v, now);
  if (c.type == "integer" && v.is_number()) return v.get<long long>();
  if (c.type == "number" && v.is_number()) return v;
  if (c.type == "boolean" && v.is_boolean()) return v;
  if (v.is_string()) return v;
  if (v.is_number() || v.is_boolean()) return v.dump();
  // Objects and lists print as JSON, as the upstream table convertor does.
  std::string out;
  for (size_t i = 0; i < values.size(); ++i) out += (i ? " " : "") + values[i].dump();
  return out;
}

}  // namespace

std::vector<json> EvalJsonPath(const json& object, const std::string& path_in) {
  std::string path = path_in;
  if (!path.empty() && path.front() == '{' && path.back() == '}') {
    path = path.substr(1, path.size() - 2);
  }
  std::vector<json> cur = {object};
  size_t i = 0;
  if (!path.empty() && path[0] == '$') ++i;
  while (i < path.size()) {
    std::vector<json> next;
    if (path[i] == '.') {
      ++i;
      size_t end = path.find_first_of(".[", i);
      std::string key = path.substr(i, end == std::string::npos ? std::string::npos : end - i);
      i = end == std::string::npos ? path.size() : end;
      if (key.empty()) continue;
      for (const json& v : cur) {
        if (v.is_object() && v.contains(key)) next.push_back(v[key]);
      }
    } else if (path[i] == '[') {
      size_t end = path.find(']', i);
      if (end == std::string::npos) return {};
      // A filter may contain ']' only inside quotes; kubesim's filters never do.
      std::string inner = path.substr(i + 1, end - i - 1);
      i = end + 1;
      if (inner == "*") {
        for (const json& v : cur) {
          if (v.is_array()) {
            for (const json& e : v) next.push_back(e);
          } else if (v.is_object()) {
            for (const json& e : v) next.push_back(e);
          }
        }
      } else if (inner.rfind("?(@.", 0) == 0) {
        // ?(@.key=="value") or ?(@.key=='value')
        std::string cond = inner.substr(4, inner.size() - 5);
        size_t eq = cond.find("==");
        if (eq == std::string::npos) return {};
        std::string key = cond.substr(0, eq);
        std::string want = cond.substr(eq + 2);
        if (want.size() >= 2 && (want[0] == '"' || want[0] == '\'')) {
          want = want.substr(1, want.size() - 2);
        }
        for (const json& v : cur) {
          if (!v.is_array()) continue;
          for (const json& e : v) {
            if (e.is_object() && e.contains(key)) {
              const json& f = e[key];
              std::string s = f.is_string() ? f.get<std::string>() : f.dump();
              if (s == want) next.push_back(e);
            }
          }
        }
      } else {
        try {
          long idx = std::stol(inner);
          for (const json& v : cur) {
            if (!v.is_array()) continue;
            long n = static_cast<long>(v.size());
            long at = idx < 0 ? n + idx : idx;
            if (at >= 0 && at < n) next.push_back(v[at]);
          }
        } catch (const std::exception&) {
          return {};
        }
      }
    } else {
      return {};
    }
    cur = std::move(next);
  }
  return cur;
}

std::string HumanDuration(std::chrono::seconds d) {
  long s = d.count();
  if (s < 0) s = 0;
  if (s < 120) return std::to_string(s) + "s";
  long m = s / 60;
  if (m < 10) {
    long rs = s % 60;
    return std::to_string(m) + "m" + (rs ? std::to_string(rs) + "s" : "");
  }
  if (m < 180) return std::to_string(m) + "m";
  long h = s / 3600;
  if (h < 8) {
    long rm = (s % 3600) / 60;
    return std::to_string(h) + "h" + (rm ? std::to_string(rm) + "m" : "");
  }
  if (h < 48) return std::to_string(h) + "h";
  long days = h / 24;
  if (days < 8) {
    long rh = h % 24;
    return std::to_string(days) + "d" + (rh ? std::to_string(rh) + "h" : "");
  }
  if (days < 365 * 2) return std::to_string(days) + "d";
  return std::to_string(days / 365) + "y";
}

json BuildTable(const ResourceInfo& r, const std::string& version, const std::vector<json>& objects,
                const std::string& include, Clock::time_point now, bool with_columns) {
  json columns = json::array();
  const std::vector<PrinterColumn>* custom = nullptr;
  if (r.custom) {
    auto it = r.columns.find(version);
    if (it != r.columns.end() && !it->second.empty()) custom = &it->second;
  }
  if (custom) {
    columns.push_back(Column("Name", "string", "name", "Name must be unique within a namespace."));
    for (const auto& c : *custom) {
      columns.push_back(
          Column(c.name, c.type == "date" ? "date" : c.type, c.format, c.description, c.priority));
    }
  } else if (r.custom) {
    columns.push_back(Column("Name", "string", "name", "Name must be unique within a namespace."));
    columns.push_back(Column("Age", "date", "", "CreationTimestamp is a timestamp ..."));
  } else {
    BuiltinColumns(r, columns);
  }
  json rows = json::array();
  for (const json& o : objects) {
    json cells;
    if (custom) {
      cells = json::array({Str(o, ".metadata.name")});
      for (const auto& c : *custom) cells.push_back(CustomCell(c, o, now));
    } else if (r.custom) {
      cells = json::array({Str(o, ".metadata.name"),
                           Age(Part(o, "metadata").value("creationTimestamp", json()), now)});
    } else {
      cells = BuiltinCells(r, o, now);
    }
    json row = {{"cells", cells}};
    if (include == "Object") {
      row["object"] = o;
    } else if (include != "None") {
      row["object"] = {{"kind", "PartialObjectMetadata"},
                       {"apiVersion", "meta.k8s.io/v1"},
                       {"metadata", o.value("metadata", json::object())}};
    }
    rows.push_back(row);
  }
  json table = {{"kind", "Table"}, {"apiVersion", "meta.k8s.io/v1"}, {"metadata", json::object()}};
  if (with_columns) table["columnDefinitions"] = columns;
  table["rows"] = rows;
  return table;
}

}  // namespace nixmox::kubesim
