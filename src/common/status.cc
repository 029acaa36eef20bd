#include "src/common/status.h"

namespace nixmox {

std::string_view CodeName(Code code) {
  switch (code) {
    case Code::kOk: return "OK";
    case Code::kNotFound: return "NotFound";
    case Code::kAlreadyExists: return "AlreadyExists";
    case Code::kConflict: return "Conflict";
    case Code::kLocked: return "Locked";
    case Code::kUnauthorized: return "Unauthorized";
    case Code::kForbidden: return "Forbidden";
    case Code::kInvalid: return "Invalid";
    case Code::kGone: return "Gone";
    case Code::kTooManyRequests: return "TooManyRequests";
    case Code::kRetryable: return "Retryable";
    case Code::kOutcomeUnknown: return "OutcomeUnknown";
    case Code::kCancelled: return "Cancelled";
    case Code::kInternal: return "Internal";
  }
  return "Unknown";
}

Status::Status(Code code, std::string message) : code_(code), message_(std::move(message)) {}

Status& Status::WithFieldErrors(std::vector<FieldError> errors) {
  field_errors_ = std::move(errors);
  return *this;
}

Status& Status::WithRetryAfter(std::chrono::milliseconds delay) {
  retry_after_ = delay;
  return *this;
}

Status& Status::Annotate(std::string_view context) {
  if (!ok()) message_ = std::string(context) + ": " + message_;
  return *this;
}

bool Status::IsTransient() const {
  switch (code_) {
    case Code::kLocked:
    case Code::kConflict:
    case Code::kTooManyRequests:
    case Code::kRetryable:
    case Code::kOutcomeUnknown:
    case Code::kGone:
      return true;
    default:
      return false;
  }
}

std::string Status::ToString() const {
  if (ok()) return "OK";
  std::string out(CodeName(code_));
  out += ": ";
  out += message_;
  for (const auto& fe : field_errors_) {
    out += "; ";
    out += fe.field;
    out += ": ";
    out += fe.message;
  }
  return out;
}

Status NotFoundError(std::string m) { return {Code::kNotFound, std::move(m)}; }
Status AlreadyExistsError(std::string m) { return {Code::kAlreadyExists, std::move(m)}; }
Status ConflictError(std::string m) { return {Code::kConflict, std::move(m)}; }
Status LockedError(std::string m) { return {Code::kLocked, std::move(m)}; }
Status UnauthorizedError(std::string m) { return {Code::kUnauthorized, std::move(m)}; }
Status ForbiddenError(std::string m) { return {Code::kForbidden, std::move(m)}; }
Status InvalidError(std::string m) { return {Code::kInvalid, std::move(m)}; }
Status GoneError(std::string m) { return {Code::kGone, std::move(m)}; }
Status RetryableError(std::string m) { return {Code::kRetryable, std::move(m)}; }
Status OutcomeUnknownError(std::string m) { return {Code::kOutcomeUnknown, std::move(m)}; }
Status CancelledError(std::string m) { return {Code::kCancelled, std::move(m)}; }
Status InternalError(std::string m) { return {Code::kInternal, std::move(m)}; }

}  // namespace nixmox
