// The Kubernetes error model inside kubesim: a failure is an HTTP status, a
// machine-readable reason and a message, rendered as a metav1.Status.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <variant>
#include <vector>

namespace nixmox::kubesim {

using json = nlohmann::json;

struct ApiError {
  int code = 500;
  std::string reason;   // "NotFound", "Conflict", "Invalid", ...
  std::string message;  // what kubectl prints after "Error from server (...)"
  json details;         // metav1.StatusDetails, or null

  // The metav1.Status body.
  json ToStatus() const;

  static ApiError NotFound(const std::string& group, const std::string& resource,
                           const std::string& name);
  static ApiError AlreadyExists(const std::string& group, const std::string& resource,
                                const std::string& name);
  static ApiError Conflict(const std::string& group, const std::string& resource,
                           const std::string& name, const std::string& why);
  static ApiError BadRequest(std::string message);
  static ApiError MethodNotAllowed(std::string message);
  static ApiError Gone(std::string message);
  static ApiError Forbidden(const std::string& group, const std::string& resource,
                            const std::string& name, const std::string& why);
  static ApiError UnsupportedMediaType(std::string message);
  static ApiError Internal(std::string message);
};

// One cause of an Invalid (422) error: a field path and what is wrong with it.
struct Cause {
  std::string reason;   // FieldValueRequired, FieldValueInvalid, FieldValueNotSupported, ...
  std::string field;    // "spec.disks[0].size"
  std::string message;  // "Required value", "Invalid value: 0: ..."
};

// 422 "Kind.group \"name\" is invalid: field: message, ...".
ApiError InvalidError(const std::string& group, const std::string& kind, const std::string& name,
                      const std::vector<Cause>& causes);

// Either a JSON value or an ApiError.
class ApiResult {
 public:
  ApiResult(json value) : v_(std::move(value)) {}      // NOLINT(google-explicit-constructor)
  ApiResult(ApiError error) : v_(std::move(error)) {}  // NOLINT(google-explicit-constructor)
  bool ok() const { return std::holds_alternative<json>(v_); }
  json& value() { return std::get<json>(v_); }
  const json& value() const { return std::get<json>(v_); }
  const ApiError& error() const { return std::get<ApiError>(v_); }

 private:
  std::variant<json, ApiError> v_;
};

}  // namespace nixmox::kubesim
