#include "src/kube/api_status.h"

#include <charconv>
#include <string>

namespace nixmox::kube {
namespace {

Code CodeForReason(std::string_view reason) {
  if (reason == "NotFound") return Code::kNotFound;
  if (reason == "AlreadyExists") return Code::kAlreadyExists;
  if (reason == "Conflict") return Code::kConflict;
  if (reason == "Invalid" || reason == "BadRequest" || reason == "MethodNotAllowed" ||
      reason == "NotAcceptable" || reason == "RequestEntityTooLarge" ||
      reason == "UnsupportedMediaType") {
    return Code::kInvalid;
  }
  if (reason == "Gone" || reason == "Expired") return Code::kGone;
  if (reason == "TooManyRequests") return Code::kTooManyRequests;
  if (reason == "Unauthorized") return Code::kUnauthorized;
  if (reason == "Forbidden") return Code::kForbidden;
  // Timeout: the server gave up waiting but the operation may still complete.
  if (reason == "Timeout") return Code::kOutcomeUnknown;
  if (reason == "ServerTimeout" || reason == "ServiceUnavailable" || reason == "InternalError") {
    return Code::kRetryable;
  }
  return Code::kOk;  // unknown: decide by HTTP code
}

Code CodeForHttp(int status) {
  switch (status) {
    case 400:
    case 405:
    case 406:
    case 413:
    case 415:
    case 422:
      return Code::kInvalid;
    case 401:
      return Code::kUnauthorized;
    case 403:
      return Code::kForbidden;
    case 404:
      return Code::kNotFound;
    case 409:
      return Code::kConflict;
    case 410:
      return Code::kGone;
    case 429:
      return Code::kTooManyRequests;
    case 504:
      return Code::kOutcomeUnknown;
    default:
      break;
  }
  if (status >= 500) return Code::kRetryable;
  return Code::kInternal;  // an unexpected 1xx/3xx/4xx
}

std::optional<std::chrono::milliseconds> ParseRetryAfter(std::string_view v) {
  while (!v.empty() && v.front() == ' ') v.remove_prefix(1);
  while (!v.empty() && v.back() == ' ') v.remove_suffix(1);
  long long secs = 0;
  auto [ptr, ec] = std::from_chars(v.data(), v.data() + v.size(), secs);
  if (ec != std::errc() || ptr != v.data() + v.size() || secs < 0) return std::nullopt;
  return std::chrono::seconds(secs);
}

std::string Str(const nlohmann::json& j, const char* key) {
  if (!j.is_object()) return "";
  auto it = j.find(key);
  return it != j.end() && it->is_string() ? it->get<std::string>() : "";
}

Status Build(int http_status, const nlohmann::json& st, const std::string& raw_body,
             std::optional<std::chrono::milliseconds> retry_after, std::string_view context) {
  const bool is_status = st.is_object() && Str(st, "kind") == "Status";
  if (http_status == 0 && is_status) {
    auto c = st.find("code");
    if (c != st.end() && c->is_number_integer()) http_status = c->get<int>();
  }
  Code code = is_status ? CodeForReason(Str(st, "reason")) : Code::kOk;
  // AlreadyExists and Conflict share 409; the reason tells them apart.
  if (code == Code::kOk) code = CodeForHttp(http_status);

  std::string message = is_status ? Str(st, "message") : "";
  if (message.empty()) {
    message = "HTTP " + std::to_string(http_status);
    // A non-Status body (a proxy's HTML page) is shown briefly; it never holds our token.
    if (!raw_body.empty() && !is_status) message += ": " + raw_body.substr(0, 200);
  }
  Status status(code, std::move(message));
  if (!context.empty()) status.Annotate(context);

  if (is_status) {
    auto details = st.find("details");
    if (details != st.end() && details->is_object()) {
      auto causes = details->find("causes");
      if (causes != details->end() && causes->is_array()) {
        std::vector<FieldError> fields;
        for (const auto& c : *causes) {
          std::string msg = Str(c, "message");
          if (msg.empty()) msg = Str(c, "reason");
          fields.push_back({Str(c, "field"), std::move(msg)});
        }
        if (!fields.empty()) status.WithFieldErrors(std::move(fields));
      }
      auto ra = details->find("retryAfterSeconds");
      if (!retry_after && ra != details->end() && ra->is_number_integer() &&
          ra->get<long long>() >= 0) {
        retry_after = std::chrono::seconds(ra->get<long long>());
      }
    }
  }
  if (retry_after) status.WithRetryAfter(*retry_after);
  return status;
}

}  // namespace

Status StatusFromResponse(const http::Response& response, std::string_view context) {
  if (response.status >= 200 && response.status < 300) return OkStatus();
  std::optional<std::chrono::milliseconds> retry_after;
  if (auto h = response.headers.Get("Retry-After")) retry_after = ParseRetryAfter(*h);
  auto body = nlohmann::json::parse(response.body, nullptr, /*allow_exceptions=*/false);
  return Build(response.status, body, response.body, retry_after, context);
}

Status StatusFromApiStatus(const nlohmann::json& status, std::string_view context) {
  if (Str(status, "kind") != "Status") {
    return Status(Code::kInternal, std::string(context.empty() ? "" : std::string(context) + ": ") +
                                       "watch ERROR event without a Status object");
  }
  return Build(0, status, "", std::nullopt, context);
}

}  // namespace nixmox::kube
