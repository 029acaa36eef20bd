#include "src/proxmox/errors.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

namespace nixmox::proxmox {
namespace {

using nlohmann::json;

std::string Body(const std::string& message) {
  return json{{"data", nullptr}, {"message", message + "\n"}}.dump();
}

Code ClassifyPost(int status, const std::string& text) {
  return StatusFromResponse(true, status, text, Body(text)).code();
}

TEST(PveErrorsTest, LockRefusalsAreLocked) {
  EXPECT_EQ(ClassifyPost(500, "VM 100 is locked (create)"), Code::kLocked);
  EXPECT_EQ(
      ClassifyPost(500, "can't lock file '/var/lock/qemu-server/lock-100.conf' - got timeout"),
      Code::kLocked);
  EXPECT_EQ(ClassifyPost(500, "cfs-lock 'storage-local-lvm' error: got lock request timeout"),
            Code::kLocked);
  EXPECT_EQ(
      ClassifyPost(500, "can't lock file '/var/lock/pve-manager/pve-storage-local' - got timeout"),
      Code::kLocked);
}

TEST(PveErrorsTest, MissingObjectsAreNotFound) {
  EXPECT_EQ(ClassifyPost(500, "Configuration file 'nodes/pve/qemu-server/100.conf' does not exist"),
            Code::kNotFound);
  EXPECT_EQ(ClassifyPost(500, "storage 'nope' does not exist"), Code::kNotFound);
  EXPECT_EQ(StatusFromResponse(false, 404, "Not Found", "").code(), Code::kNotFound);
}

TEST(PveErrorsTest, TakenIdsAreAlreadyExists) {
  EXPECT_EQ(ClassifyPost(500, "unable to create VM 100 - VM 100 already exists on node 'pve'"),
            Code::kAlreadyExists);
  const std::string body =
      json{{"data", nullptr}, {"errors", {{"vmid", "VM 100 already exists"}}}}.dump();
  Status s = StatusFromResponse(false, 400, "Parameter verification failed.", body);
  EXPECT_EQ(s.code(), Code::kAlreadyExists);
  ASSERT_EQ(s.field_errors().size(), 1u);
  EXPECT_EQ(s.field_errors()[0], (FieldError{"vmid", "VM 100 already exists"}));
}

TEST(PveErrorsTest, ParameterErrorsAreInvalidPerField) {
  const std::string body = json{{"data", nullptr},
                                {"errors",
                                 {{"memory", "value must have a minimum value of 16"},
                                  {"onboot", "type check ('boolean') failed - got 'true'"}}}}
                               .dump();
  Status s = StatusFromResponse(true, 400, "Parameter verification failed.", body);
  EXPECT_EQ(s.code(), Code::kInvalid);
  ASSERT_EQ(s.field_errors().size(), 2u);
  EXPECT_EQ(s.field_errors()[0].field, "memory");
  EXPECT_EQ(s.field_errors()[1].message, "type check ('boolean') failed - got 'true'");
  EXPECT_NE(s.message().find("Parameter verification failed."), std::string::npos);
}

TEST(PveErrorsTest, AuthFailures) {
  // 401 bodies from the auth layer are empty.
  EXPECT_EQ(StatusFromResponse(false, 401, "Authentication failed!", "").code(),
            Code::kUnauthorized);
  EXPECT_EQ(StatusFromResponse(false, 403, "Permission check failed (/vms/100, VM.Audit)",
                               Body("Permission check failed (/vms/100, VM.Audit)"))
                .code(),
            Code::kForbidden);
}

TEST(PveErrorsTest, ServerAndProxyFailuresAreRetryableForReads) {
  EXPECT_EQ(StatusFromResponse(false, 500, "unexpected failure", Body("unexpected failure")).code(),
            Code::kRetryable);
  EXPECT_EQ(StatusFromResponse(false, 596, "Connection timed out", "").code(), Code::kRetryable);
  EXPECT_EQ(StatusFromResponse(false, 595, "Connection refused", "").code(), Code::kRetryable);
  EXPECT_EQ(StatusFromResponse(false, 503, "Service Unavailable", "<html>").code(),
            Code::kRetryable);
}

TEST(PveErrorsTest, ProxyTimeoutOnMutationIsOutcomeUnknown) {
  // The handler behind pveproxy keeps running after a 596.
  EXPECT_EQ(StatusFromResponse(true, 596, "Connection timed out", "").code(),
            Code::kOutcomeUnknown);
  EXPECT_EQ(StatusFromResponse(true, 504, "Gateway Timeout", "").code(), Code::kOutcomeUnknown);
  EXPECT_EQ(StatusFromResponse(true, 595, "Connection refused", "").code(), Code::kRetryable);
}

TEST(PveErrorsTest, StateRefusalsAreConflict) {
  EXPECT_EQ(ClassifyPost(500, "checksum mismatch (file change by other user?)"), Code::kConflict);
  EXPECT_EQ(ClassifyPost(500, "can't remove VM 100 - protection mode enabled"), Code::kConflict);
  EXPECT_EQ(ClassifyPost(500, "VM 100 is running - destroy failed"), Code::kConflict);
  EXPECT_EQ(ClassifyPost(500, "QEMU guest agent is not running"), Code::kConflict);
}

TEST(PveErrorsTest, RequestsThatCannotSucceedAreInvalid) {
  EXPECT_EQ(ClassifyPost(500, "no options specified"), Code::kInvalid);
  EXPECT_EQ(ClassifyPost(500, "Only root can pass arbitrary filesystem paths."), Code::kInvalid);
  EXPECT_EQ(ClassifyPost(500, "storage 'local-lvm' does not support vm images"), Code::kInvalid);
  EXPECT_EQ(StatusFromExitStatus("shrinking disks is not supported").code(), Code::kInvalid);
}

TEST(PveErrorsTest, UnknownPathIsInvalid) {
  EXPECT_EQ(
      StatusFromResponse(false, 501, "Method 'GET /nodes/pve/foo' not implemented", "").code(),
      Code::kInvalid);
}

TEST(PveErrorsTest, ReadsMessageFromBodyOrReasonPhrase) {
  // PVE >= 8.4: full text in the body (reason holds the first line only).
  EXPECT_EQ(ResponseMessage(500, "first line", Body("first line\nsecond line")),
            "first line\nsecond line");
  // Older servers: reason phrase only.
  EXPECT_EQ(ResponseMessage(500, "VM 100 is locked (backup)", R"({"data":null})"),
            "VM 100 is locked (backup)");
  // Old server text classified from the reason phrase alone.
  EXPECT_EQ(StatusFromResponse(true, 500, "VM 100 is locked (backup)", R"({"data":null})").code(),
            Code::kLocked);
  // Neither: the standard phrase.
  EXPECT_EQ(ResponseMessage(502, "", ""), "Bad Gateway");
}

TEST(PveErrorsTest, ExitStatusOkAndWarningsSucceed) {
  EXPECT_TRUE(StatusFromExitStatus("OK").ok());
  EXPECT_TRUE(StatusFromExitStatus("WARNINGS: 3").ok());
}

TEST(PveErrorsTest, ExitStatusErrorsCarryTheTaskMessage) {
  Status s = StatusFromExitStatus("unable to create VM 100 - no space left on device");
  EXPECT_EQ(s.code(), Code::kInternal);
  EXPECT_NE(s.message().find("no space left on device"), std::string::npos);
  EXPECT_EQ(StatusFromExitStatus("VM 100 is locked (backup)").code(), Code::kLocked);
  EXPECT_EQ(StatusFromExitStatus("unexpected status").code(), Code::kInternal);
}

}  // namespace
}  // namespace nixmox::proxmox
