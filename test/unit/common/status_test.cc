#include "src/common/status.h"

#include <gtest/gtest.h>

#include <memory>

namespace nixmox {
namespace {

Result<int> Half(int x) {
  if (x % 2 != 0) return InvalidError("odd: " + std::to_string(x));
  return x / 2;
}

Result<int> Quarter(int x) {
  ASSIGN_OR_RETURN(int h, Half(x));
  ASSIGN_OR_RETURN(int q, Half(h));
  return q;
}

Status CheckEven(int x) {
  RETURN_IF_ERROR(Half(x));
  return OkStatus();
}

TEST(StatusTest, DefaultIsOk) {
  Status s;
  EXPECT_TRUE(s.ok());
  EXPECT_EQ(s.code(), Code::kOk);
  EXPECT_EQ(s.ToString(), "OK");
}

TEST(StatusTest, ToStringNamesCodeMessageAndFields) {
  Status s = InvalidError("parameter verification failed");
  s.WithFieldErrors({{"memory", "value must be at least 16"}});
  EXPECT_EQ(s.ToString(),
            "Invalid: parameter verification failed; memory: value must be at least 16");
}

TEST(StatusTest, AnnotatePrefixesOnlyErrors) {
  Status err = LockedError("VM 100 is locked (create)");
  err.Annotate("configuring VM 100");
  EXPECT_EQ(err.message(), "configuring VM 100: VM 100 is locked (create)");
  Status ok;
  ok.Annotate("ignored");
  EXPECT_TRUE(ok.ok());
  EXPECT_EQ(ok.message(), "");
}

TEST(StatusTest, TransientCodesAreTheRetryableOnes) {
  EXPECT_TRUE(LockedError("x").IsTransient());
  EXPECT_TRUE(RetryableError("x").IsTransient());
  EXPECT_TRUE(OutcomeUnknownError("x").IsTransient());
  EXPECT_FALSE(InvalidError("x").IsTransient());
  EXPECT_FALSE(UnauthorizedError("x").IsTransient());
  EXPECT_FALSE(NotFoundError("x").IsTransient());
}

TEST(ResultTest, AssignOrReturnPropagatesFirstError) {
  auto ok = Quarter(12);
  ASSERT_TRUE(ok.ok());
  EXPECT_EQ(*ok, 3);

  auto bad = Quarter(6);  // 6 -> 3 -> odd
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), Code::kInvalid);
  EXPECT_EQ(bad.status().message(), "odd: 3");
}

TEST(ResultTest, ReturnIfErrorAcceptsResults) {
  EXPECT_TRUE(CheckEven(4).ok());
  EXPECT_EQ(CheckEven(5).code(), Code::kInvalid);
}

TEST(ResultTest, HoldsMoveOnlyValues) {
  Result<std::unique_ptr<int>> r = std::make_unique<int>(7);
  ASSERT_TRUE(r.ok());
  std::unique_ptr<int> p = std::move(r).value();
  EXPECT_EQ(*p, 7);
}

TEST(ResultTest, ValueOrFallsBackOnError) {
  EXPECT_EQ(Half(3).value_or(-1), -1);
  EXPECT_EQ(Half(4).value_or(-1), 2);
}

}  // namespace
}  // namespace nixmox
