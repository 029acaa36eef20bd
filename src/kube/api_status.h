// Turns an API server error response (a metav1.Status body, or whatever a proxy
// in front of it sent) into a nixmox Status with a code the caller can act on.
#pragma once

#include <nlohmann/json.hpp>
#include <string_view>

#include "src/common/status.h"
#include "src/http/http.h"

namespace nixmox::kube {

// OK for 2xx. Otherwise the code comes from the Status reason when the body is a
// metav1.Status, from the HTTP status when it is not:
//   NotFound 404, AlreadyExists 409 (reason AlreadyExists), Conflict 409,
//   Invalid 422 (causes become field errors) and 400/405/406/413/415,
//   Gone 410 (also reason Expired), TooManyRequests 429 (Retry-After header or
//   details.retryAfterSeconds), Unauthorized 401, Forbidden 403,
//   OutcomeUnknown 504 (reason Timeout: the request may still complete),
//   Retryable for other 5xx (with Retry-After when given).
// `context` prefixes the message ("get proxmoxvms default/web").
Status StatusFromResponse(const http::Response& response, std::string_view context = "");

// The same mapping for a metav1.Status object that arrived as a watch ERROR event.
Status StatusFromApiStatus(const nlohmann::json& status, std::string_view context = "");

}  // namespace nixmox::kube
