// Status and Result<T>: errors as values, with a code a caller can branch on.
//
// Every module returns these across its boundary instead of throwing. The code
// says what the caller can do about the failure; the message says what went
// wrong, for people. Messages never carry secrets.
#pragma once

#include <cassert>
#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

namespace nixmox {

enum class Code {
  kOk,
  kNotFound,         // the object does not exist
  kAlreadyExists,    // a create found the name or id taken
  kConflict,         // a precondition failed (stale resourceVersion, config digest)
  kLocked,           // the server refused before acting because something holds a lock
  kUnauthorized,     // credentials missing or wrong (HTTP 401)
  kForbidden,        // credentials fine, permission missing (HTTP 403)
  kInvalid,          // the request itself is wrong; retrying the same one cannot help
  kGone,             // a watch or list resumed from a version the server no longer has
  kTooManyRequests,  // throttled; retry_after() says when to come back
  kRetryable,        // a transient failure where nothing happened (5xx, refused connection)
  kOutcomeUnknown,   // a mutation may or may not have happened: re-observe before acting
  kCancelled,        // the caller asked to stop
  kInternal,         // a bug or a failure nothing above can handle
};

std::string_view CodeName(Code code);

// One per-field problem, as Proxmox's `errors` object or a Kubernetes Invalid cause.
struct FieldError {
  std::string field;
  std::string message;
  bool operator==(const FieldError&) const = default;
};

class [[nodiscard]] Status {
 public:
  Status() = default;  // OK
  Status(Code code, std::string message);

  bool ok() const { return code_ == Code::kOk; }
  Code code() const { return code_; }
  const std::string& message() const { return message_; }

  const std::vector<FieldError>& field_errors() const { return field_errors_; }
  Status& WithFieldErrors(std::vector<FieldError> errors);

  // When the server said how long to wait (Retry-After), otherwise empty.
  std::optional<std::chrono::milliseconds> retry_after() const { return retry_after_; }
  Status& WithRetryAfter(std::chrono::milliseconds delay);

  // Prefixes the message with context: "creating VM 100: <message>".
  Status& Annotate(std::string_view context);

  // Transient failures worth repeating unchanged after a backoff.
  bool IsTransient() const;

  // "Locked: VM 100 is locked (create)"; field errors appended.
  std::string ToString() const;

 private:
  Code code_ = Code::kOk;
  std::string message_;
  std::vector<FieldError> field_errors_;
  std::optional<std::chrono::milliseconds> retry_after_;
};

inline Status OkStatus() { return Status(); }
Status NotFoundError(std::string message);
Status AlreadyExistsError(std::string message);
Status ConflictError(std::string message);
Status LockedError(std::string message);
Status UnauthorizedError(std::string message);
Status ForbiddenError(std::string message);
Status InvalidError(std::string message);
Status GoneError(std::string message);
Status RetryableError(std::string message);
Status OutcomeUnknownError(std::string message);
Status CancelledError(std::string message);
Status InternalError(std::string message);

// Either a T or a non-OK Status.
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}  // NOLINT(google-explicit-constructor)
  Result(Status status) : v_(std::move(status)) {  // NOLINT(google-explicit-constructor)
    assert(!std::get<Status>(v_).ok() && "Result built from an OK status has no value");
  }

  bool ok() const { return std::holds_alternative<T>(v_); }
  const Status& status() const {
    static const Status kOk;
    return ok() ? kOk : std::get<Status>(v_);
  }

  T& value() & { return std::get<T>(v_); }
  const T& value() const& { return std::get<T>(v_); }
  T&& value() && { return std::get<T>(std::move(v_)); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

  T value_or(T fallback) const& { return ok() ? value() : std::move(fallback); }

 private:
  std::variant<Status, T> v_;
};

namespace internal {
inline Status AsStatus(const Status& s) { return s; }
template <typename T>
Status AsStatus(const Result<T>& r) {
  return r.status();
}
}  // namespace internal

}  // namespace nixmox

#define NIXMOX_CONCAT_INNER(a, b) a##b
#define NIXMOX_CONCAT(a, b) NIXMOX_CONCAT_INNER(a, b)

// Returns the error of a Status or Result expression from the enclosing function.
#define RETURN_IF_ERROR(expr)                                          \
  do {                                                                 \
    ::nixmox::Status nixmox_status_ = ::nixmox::internal::AsStatus(expr); \
    if (!nixmox_status_.ok()) return nixmox_status_;                   \
  } while (false)

// `ASSIGN_OR_RETURN(auto x, F());` declares x from F()'s value or returns its error.
#define ASSIGN_OR_RETURN(lhs, expr) \
  ASSIGN_OR_RETURN_IMPL(NIXMOX_CONCAT(nixmox_result_, __LINE__), lhs, expr)
#define ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr) \
  auto tmp = (expr);                          \
  if (!tmp.ok()) return tmp.status();         \
  lhs = std::move(tmp).value()
