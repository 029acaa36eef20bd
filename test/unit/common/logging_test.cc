#include "src/common/logging.h"

#include <gtest/gtest.h>

namespace nixmox {
namespace {

TEST(LoggingTest, RejectsUnknownLevelAndFormat) {
  EXPECT_EQ(SetupLogging({"loud", "text"}).code(), Code::kInvalid);
  EXPECT_EQ(SetupLogging({"info", "xml"}).code(), Code::kInvalid);
  EXPECT_TRUE(SetupLogging({"off", "json"}).ok());
  EXPECT_TRUE(SetupLogging({"debug", "text"}).ok());
}

TEST(LoggingTest, JsonEscapeHandlesQuotesAndControls) {
  EXPECT_EQ(JsonEscape("a\"b\\c\nd\x01"), "a\\\"b\\\\c\\nd\\u0001");
}

}  // namespace
}  // namespace nixmox
