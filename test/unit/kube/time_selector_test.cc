#include <gtest/gtest.h>

#include "src/kube/selector.h"
#include "src/kube/time.h"

namespace nixmox::kube {
namespace {

using std::chrono::microseconds;
using std::chrono::seconds;

Clock::WallTime At(long long secs, long long micros = 0) {
  return Clock::WallTime(
      std::chrono::duration_cast<Clock::WallTime::duration>(seconds(secs) + microseconds(micros)));
}

TEST(TimeTest, TimeHasNoFractionAndMicroTimeExactlySixDigits) {
  // 2026-11-22T13:10:53.191Z
  const auto t = At(1795353053, 191000);
  EXPECT_EQ(FormatTime(t), "2026-11-22T13:10:53Z");
  EXPECT_EQ(FormatMicroTime(t), "2026-11-22T13:10:53.191000Z");
  EXPECT_EQ(FormatMicroTime(At(1795353053)), "2026-11-22T13:10:53.000000Z");
}

TEST(TimeTest, ParsesWithAndWithoutFractionAndOffsets) {
  EXPECT_EQ(*ParseTime("2026-11-22T13:10:53Z"), At(1795353053));
  EXPECT_EQ(*ParseTime("2026-11-22T13:10:53.191000Z"), At(1795353053, 191000));
  EXPECT_EQ(*ParseTime("2026-11-22T13:10:53.5Z"), At(1795353053, 500000));
  EXPECT_EQ(*ParseTime("2026-11-22T14:10:53+01:00"), At(1795353053));
  EXPECT_EQ(ParseTime("2026-11-22 13:10:53").status().code(), Code::kInvalid);
  EXPECT_EQ(ParseTime("2026-13-22T13:10:53Z").status().code(), Code::kInvalid);
  EXPECT_EQ(ParseTime("2026-11-22T13:10:53").status().code(), Code::kInvalid);
}

TEST(TimeTest, RoundTripsMicroTime) {
  const auto t = At(1767225600, 123456);
  EXPECT_EQ(*ParseTime(FormatMicroTime(t)), t);
}

Object WithLabels(nlohmann::json labels) {
  return {{"metadata", {{"name", "x"}, {"namespace", "n"}, {"labels", labels}}}};
}

TEST(LabelSelectorTest, EqualityAndSetTerms) {
  auto obj = WithLabels({{"app", "web"}, {"tier", "front"}, {"gpu", "yes"}});
  auto match = [&](const char* sel) {
    auto s = LabelSelector::Parse(sel);
    EXPECT_TRUE(s.ok()) << sel;
    return s.ok() && s->Matches(obj);
  };
  EXPECT_TRUE(match(""));
  EXPECT_TRUE(match("app=web"));
  EXPECT_TRUE(match("app==web,tier=front"));
  EXPECT_FALSE(match("app=db"));
  EXPECT_TRUE(match("app!=db"));
  EXPECT_TRUE(match("missing!=x"));
  EXPECT_TRUE(match("tier in (back, front)"));
  EXPECT_FALSE(match("tier notin (front)"));
  EXPECT_TRUE(match("zone notin (a)"));
  EXPECT_TRUE(match("gpu"));
  EXPECT_FALSE(match("!gpu"));
  EXPECT_TRUE(match("!legacy,app=web"));
  EXPECT_FALSE(match("legacy"));
}

TEST(LabelSelectorTest, RejectsMalformed) {
  EXPECT_FALSE(LabelSelector::Parse("tier in (a").ok());
  EXPECT_FALSE(LabelSelector::Parse("tier maybe (a)").ok());
  EXPECT_FALSE(LabelSelector::Parse("=x").ok());
  EXPECT_FALSE(LabelSelector::Parse("tier in ()").ok());
}

TEST(FieldSelectorTest, NameAndNamespace) {
  auto obj = WithLabels({});
  EXPECT_TRUE(FieldSelector::Parse("metadata.name=x")->Matches(obj));
  EXPECT_FALSE(FieldSelector::Parse("metadata.name!=x")->Matches(obj));
  EXPECT_TRUE(FieldSelector::Parse("metadata.namespace==n,metadata.name=x")->Matches(obj));
  EXPECT_EQ(FieldSelector::Parse("status.phase=Running").status().code(), Code::kInvalid);
}

}  // namespace
}  // namespace nixmox::kube
