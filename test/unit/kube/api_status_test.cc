#include "src/kube/api_status.h"

#include <gtest/gtest.h>

namespace nixmox::kube {
namespace {

http::Response StatusResponse(int code, const std::string& reason, nlohmann::json details = {}) {
  nlohmann::json body = {{"kind", "Status"},         {"apiVersion", "v1"}, {"status", "Failure"},
                         {"message", "the message"}, {"reason", reason},   {"code", code}};
  if (!details.is_null()) body["details"] = details;
  return http::Response{code, "", {}, body.dump()};
}

TEST(ApiStatusTest, SuccessIsOk) {
  EXPECT_TRUE(StatusFromResponse(http::Response{200, "", {}, "{}"}).ok());
  EXPECT_TRUE(StatusFromResponse(http::Response{201, "", {}, "{}"}).ok());
}

TEST(ApiStatusTest, MapsEveryReasonToItsCode) {
  struct Case {
    int http;
    const char* reason;
    Code code;
  } cases[] = {
      {404, "NotFound", Code::kNotFound},
      {409, "AlreadyExists", Code::kAlreadyExists},
      {409, "Conflict", Code::kConflict},
      {422, "Invalid", Code::kInvalid},
      {400, "BadRequest", Code::kInvalid},
      {415, "UnsupportedMediaType", Code::kInvalid},
      {410, "Gone", Code::kGone},
      {410, "Expired", Code::kGone},
      {429, "TooManyRequests", Code::kTooManyRequests},
      {401, "Unauthorized", Code::kUnauthorized},
      {403, "Forbidden", Code::kForbidden},
      {504, "Timeout", Code::kOutcomeUnknown},
      {500, "ServerTimeout", Code::kRetryable},
      {503, "ServiceUnavailable", Code::kRetryable},
      {500, "InternalError", Code::kRetryable},
  };
  for (const auto& c : cases) {
    Status s = StatusFromResponse(StatusResponse(c.http, c.reason));
    EXPECT_EQ(s.code(), c.code) << c.reason;
    EXPECT_EQ(s.message(), "the message") << c.reason;
  }
}

TEST(ApiStatusTest, FallsBackToHttpCodeWithoutStatusBody) {
  EXPECT_EQ(StatusFromResponse({404, "", {}, "404 page not found"}).code(), Code::kNotFound);
  EXPECT_EQ(StatusFromResponse({409, "", {}, ""}).code(), Code::kConflict);
  EXPECT_EQ(StatusFromResponse({502, "", {}, "<html>bad gateway</html>"}).code(), Code::kRetryable);
  EXPECT_EQ(StatusFromResponse({401, "", {}, ""}).code(), Code::kUnauthorized);
  Status s = StatusFromResponse({418, "", {}, ""});
  EXPECT_EQ(s.code(), Code::kInternal);
  EXPECT_NE(s.message().find("418"), std::string::npos);
}

TEST(ApiStatusTest, InvalidCarriesCausesAsFieldErrors) {
  Status s = StatusFromResponse(StatusResponse(
      422, "Invalid",
      {{"name", "web"},
       {"kind", "ProxmoxVM"},
       {"causes",
        {{{"reason", "FieldValueRequired"}, {"message", "Required value"}, {"field", "spec.cores"}},
         {{"reason", "FieldValueInvalid"},
          {"message", "must be positive"},
          {"field", "spec.memory"}}}}}));
  EXPECT_EQ(s.code(), Code::kInvalid);
  ASSERT_EQ(s.field_errors().size(), 2u);
  EXPECT_EQ(s.field_errors()[0], (FieldError{"spec.cores", "Required value"}));
  EXPECT_EQ(s.field_errors()[1], (FieldError{"spec.memory", "must be positive"}));
}

TEST(ApiStatusTest, TooManyRequestsTakesRetryAfterHeader) {
  http::Response r = StatusResponse(429, "TooManyRequests");
  r.headers.Set("Retry-After", "7");
  Status s = StatusFromResponse(r);
  EXPECT_EQ(s.code(), Code::kTooManyRequests);
  ASSERT_TRUE(s.retry_after().has_value());
  EXPECT_EQ(*s.retry_after(), std::chrono::seconds(7));
}

TEST(ApiStatusTest, RetryAfterFallsBackToDetails) {
  Status s = StatusFromResponse(StatusResponse(429, "TooManyRequests", {{"retryAfterSeconds", 3}}));
  ASSERT_TRUE(s.retry_after().has_value());
  EXPECT_EQ(*s.retry_after(), std::chrono::seconds(3));
  http::Response unavailable = StatusResponse(503, "ServiceUnavailable");
  unavailable.headers.Set("Retry-After", "2");
  EXPECT_EQ(StatusFromResponse(unavailable).retry_after(), std::chrono::seconds(2));
}

TEST(ApiStatusTest, NoRetryAfterWhenUnparseable) {
  http::Response r = StatusResponse(429, "TooManyRequests");
  r.headers.Set("Retry-After", "Wed, 21 Oct 2015 07:28:00 GMT");
  EXPECT_FALSE(StatusFromResponse(r).retry_after().has_value());
}

TEST(ApiStatusTest, ContextPrefixesMessage) {
  Status s = StatusFromResponse(StatusResponse(404, "NotFound"), "get pods ns/x");
  EXPECT_EQ(s.message(), "get pods ns/x: the message");
}

TEST(ApiStatusTest, WatchErrorEventStatusUsesItsCode) {
  nlohmann::json st = {{"kind", "Status"},
                       {"status", "Failure"},
                       {"message", "too old resource version: 1 (5)"},
                       {"reason", "Expired"},
                       {"code", 410}};
  EXPECT_EQ(StatusFromApiStatus(st).code(), Code::kGone);
  st["reason"] = "";
  EXPECT_EQ(StatusFromApiStatus(st).code(), Code::kGone);
  EXPECT_EQ(StatusFromApiStatus(nlohmann::json{{"kind", "Pod"}}).code(), Code::kInternal);
}

}  // namespace
}  // namespace nixmox::kube
