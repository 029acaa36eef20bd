#include "src/proxmox/errors.h"

#include <nlohmann/json.hpp>
#include <vector>

#include "src/http/http.h"

namespace nixmox::proxmox {
namespace {

bool Contains(std::string_view haystack, std::string_view needle) {
  return haystack.find(needle) != std::string_view::npos;
}

std::string TrimMessage(std::string_view s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r' || s.back() == ' ')) {
    s.remove_suffix(1);
  }
  return std::string(s);
}

Status Make(Code code, std::string message) { return Status(code, std::move(message)); }

}  // namespace

std::optional<Code> CodeFromMessage(std::string_view m) {
  // Locks first: a refusal because of a lock must never read as anything else,
  // since it is the one refusal that is always safe to repeat.
  if (Contains(m, " is locked")) return Code::kLocked;
  if (Contains(m, "can't lock file") || Contains(m, "got lock request timeout") ||
      (Contains(m, "cfs-lock") && Contains(m, "timeout"))) {
    return Code::kLocked;
  }
  if (Contains(m, "already exists")) return Code::kAlreadyExists;
  if (Contains(m, "does not exist") || Contains(m, "no such task")) return Code::kNotFound;
  if (Contains(m, "checksum mismatch") || Contains(m, "protection mode enabled") ||
      Contains(m, "not running") || Contains(m, "is running") || Contains(m, "already running") ||
      Contains(m, "is paused") || Contains(m, "without --online")) {
    return Code::kConflict;
  }
  // Requests Proxmox will refuse however often they are sent.
  if (Contains(m, "no options specified") || Contains(m, "not supported") ||
      Contains(m, "does not support") || Contains(m, "requires special syntax") ||
      Contains(m, "is required for iso images") || Contains(m, "has wrong type") ||
      Contains(m, "Only root") || Contains(m, "wrong file extension") ||
      Contains(m, "invalid filename") || Contains(m, "can't resize a cdrom") ||
      Contains(m, "if it's a template")) {
    return Code::kInvalid;
  }
  return std::nullopt;
}

std::string ResponseMessage(int http_status, std::string_view reason, std::string_view body) {
  if (!body.empty()) {
    // Bodies of Proxmox errors are JSON objects; anything else (an HTML page
    // from a proxy in front) is ignored in favour of the reason phrase.
    nlohmann::json doc = nlohmann::json::parse(body, nullptr, /*allow_exceptions=*/false);
    if (doc.is_object()) {
      auto it = doc.find("message");
      if (it != doc.end() && it->is_string() && !it->get<std::string>().empty()) {
        return TrimMessage(it->get<std::string>());
      }
    }
  }
  if (!reason.empty()) return TrimMessage(reason);
  return std::string(http::StandardReason(http_status));
}

Status StatusFromResponse(bool mutating, int http_status, std::string_view reason,
                          std::string_view body) {
  const std::string message = ResponseMessage(http_status, reason, body);
  const std::string text = std::to_string(http_status) + " " + message;

  // Per-parameter errors: {"errors": {"vmid": "VM 100 already exists"}}.
  std::vector<FieldError> field_errors;
  if (!body.empty()) {
    nlohmann::json doc = nlohmann::json::parse(body, nullptr, false);
    if (doc.is_object()) {
      auto it = doc.find("errors");
      if (it != doc.end() && it->is_object()) {
        for (const auto& [field, value] : it->items()) {
          field_errors.push_back(
              {field, TrimMessage(value.is_string() ? value.get<std::string>() : value.dump())});
        }
      }
    }
  }

  if (http_status == 400 && !field_errors.empty()) {
    Code code = Code::kInvalid;
    for (const auto& fe : field_errors) {
      if (CodeFromMessage(fe.message) == Code::kAlreadyExists) code = Code::kAlreadyExists;
    }
    Status s = Make(code, text);
    s.WithFieldErrors(std::move(field_errors));
    return s;
  }
  if (http_status == 401) return Make(Code::kUnauthorized, text);
  if (http_status == 403) return Make(Code::kForbidden, text);
  if (http_status == 404) return Make(Code::kNotFound, text);
  if (http_status == 429) return Make(Code::kTooManyRequests, text);
  if (http_status == 501) return Make(Code::kInvalid, text);
  if (auto code = CodeFromMessage(message)) return Make(*code, text);
  if (mutating &&
      (http_status == 504 || http_status == 596 || http_status == 597 || http_status == 599)) {
    return Make(Code::kOutcomeUnknown, text);
  }
  if (http_status >= 500) return Make(Code::kRetryable, text);
  Status s = Make(Code::kInvalid, text);
  if (!field_errors.empty()) s.WithFieldErrors(std::move(field_errors));
  return s;
}

Status StatusFromExitStatus(std::string_view exitstatus) {
  if (exitstatus == "OK" || exitstatus.starts_with("WARNINGS")) return OkStatus();
  const std::string message = "task failed: " + TrimMessage(exitstatus);
  return Make(CodeFromMessage(exitstatus).value_or(Code::kInternal), message);
}

}  // namespace nixmox::proxmox
