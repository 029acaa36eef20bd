#include "test/sim/kube/api_error.h"

namespace nixmox::kubesim {
namespace {

ApiError Make(int code, std::string reason, std::string message, json details = nullptr) {
  ApiError e;
  e.code = code;
  e.reason = std::move(reason);
  e.message = std::move(message);
  e.details = std::move(details);
  return e;
}

json Details(const std::string& group, const std::string& resource, const std::string& name) {
  json d = {{"name", name}, {"kind", resource}};
  if (!group.empty()) d["group"] = group;
  return d;
}

std::string Qualified(const std::string& group, const std::string& resource) {
  return group.empty() ? resource : resource + "." + group;
}

}  // namespace

json ApiError::ToStatus() const {
  json s = {{"kind", "Status"},    {"apiVersion", "v1"}, {"metadata", json::object()},
            {"status", "Failure"}, {"message", message}, {"reason", reason},
            {"code", code}};
  if (!details.is_null()) s["details"] = details;
  return s;
}

ApiError ApiError::NotFound(const std::string& group, const std::string& resource,
                            const std::string& name) {
  return Make(404, "NotFound", Qualified(group, resource) + " \"" + name + "\" not found",
              Details(group, resource, name));
}

ApiError ApiError::AlreadyExists(const std::string& group, const std::string& resource,
                                 const std::string& name) {
  return Make(409, "AlreadyExists", Qualified(group, resource) + " \"" + name + "\" already exists",
              Details(group, resource, name));
}

ApiError ApiError::Conflict(const std::string& group, const std::string& resource,
                            const std::string& name, const std::string& why) {
  return Make(409, "Conflict",
              "Operation cannot be fulfilled on " + Qualified(group, resource) + " \"" + name +
                  "\": " + why,
              Details(group, resource, name));
}

ApiError ApiError::BadRequest(std::string message) {
  return Make(400, "BadRequest", std::move(message));
}

ApiError ApiError::MethodNotAllowed(std::string message) {
  return Make(405, "MethodNotAllowed", std::move(message));
}

ApiError ApiError::Gone(std::string message) { return Make(410, "Expired", std::move(message)); }

ApiError ApiError::Forbidden(const std::string& group, const std::string& resource,
                             const std::string& name, const std::string& why) {
  return Make(403, "Forbidden",
              Qualified(group, resource) + " \"" + name + "\" is forbidden: " + why,
              Details(group, resource, name));
}

ApiError ApiError::UnsupportedMediaType(std::string message) {
  return Make(415, "UnsupportedMediaType", std::move(message));
}

ApiError ApiError::Internal(std::string message) {
  return Make(500, "InternalError", std::move(message));
}

ApiError InvalidError(const std::string& group, const std::string& kind, const std::string& name,
                      const std::vector<Cause>& causes) {
  std::string list;
  json cs = json::array();
  for (const auto& c : causes) {
    std::string one = c.field + ": " + c.message;
    list += (list.empty() ? "" : ", ") + one;
    cs.push_back({{"reason", c.reason}, {"message", c.message}, {"field", c.field}});
  }
  if (causes.size() > 1) list = "[" + list + "]";
  std::string qualified = group.empty() ? kind : kind + "." + group;
  json details = {{"name", name}, {"kind", kind}, {"causes", cs}};
  if (!group.empty()) details["group"] = group;
  return Make(422, "Invalid", qualified + " \"" + name + "\" is invalid: " + list, details);
}

}  // namespace nixmox::kubesim
