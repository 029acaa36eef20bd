#include <gtest/gtest.h>

#include "src/kube/conditions.h"
#include "src/kube/events.h"
#include "src/kube/fake_client.h"
#include "src/kube/time.h"

namespace nixmox::kube {
namespace {

using std::chrono::seconds;

Condition Ready(const char* status, const char* reason, std::int64_t gen = 1) {
  return Condition{"Ready", status, reason, std::string("because ") + reason, gen, {}};
}

TEST(ConditionsTest, NewConditionGetsTransitionTimeWithoutFraction) {
  FakeClock clock;
  clock.Advance(std::chrono::milliseconds(1500));
  nlohmann::json conds;  // null becomes an array
  EXPECT_TRUE(SetCondition(conds, Ready("False", "Provisioning"), clock.WallNow()));
  ASSERT_TRUE(conds.is_array());
  ASSERT_EQ(conds.size(), 1u);
  EXPECT_EQ(conds[0]["lastTransitionTime"], "2026-01-01T00:00:01Z");
  EXPECT_EQ(conds[0]["observedGeneration"], 1);
  EXPECT_EQ(conds[0]["reason"], "Provisioning");
}

TEST(ConditionsTest, TransitionTimeMovesOnlyWhenStatusMoves) {
  FakeClock clock;
  nlohmann::json conds;
  SetCondition(conds, Ready("False", "Provisioning"), clock.WallNow());
  clock.Advance(seconds(60));
  // Same status, new reason and generation: updated, time kept.
  EXPECT_TRUE(SetCondition(conds, Ready("False", "WaitingForTask", 2), clock.WallNow()));
  EXPECT_EQ(conds[0]["lastTransitionTime"], "2026-01-01T00:00:00Z");
  EXPECT_EQ(conds[0]["reason"], "WaitingForTask");
  EXPECT_EQ(conds[0]["observedGeneration"], 2);
  // Exactly the same: nothing changed, so no status write is needed.
  EXPECT_FALSE(SetCondition(conds, Ready("False", "WaitingForTask", 2), clock.WallNow()));
  clock.Advance(seconds(60));
  EXPECT_TRUE(SetCondition(conds, Ready("True", "Running", 2), clock.WallNow()));
  EXPECT_EQ(conds[0]["lastTransitionTime"], "2026-01-01T00:02:00Z");
  EXPECT_EQ(conds.size(), 1u);
}

TEST(ConditionsTest, FindRemoveAndIsTrue) {
  FakeClock clock;
  nlohmann::json conds;
  SetCondition(conds, Ready("True", "Running"), clock.WallNow());
  SetCondition(conds, Condition{"ImageReady", "False", "Building", "", 0, {}}, clock.WallNow());
  EXPECT_TRUE(IsConditionTrue(conds, "Ready"));
  EXPECT_FALSE(IsConditionTrue(conds, "ImageReady"));
  EXPECT_FALSE(IsConditionTrue(conds, "Missing"));
  auto img = FindCondition(conds, "ImageReady");
  ASSERT_TRUE(img.has_value());
  EXPECT_EQ(img->reason, "Building");
  EXPECT_EQ(img->observed_generation, 0);
  EXPECT_FALSE(conds[1].contains("observedGeneration"));
  EXPECT_EQ(img->last_transition_time, clock.WallNow());
  EXPECT_TRUE(RemoveCondition(conds, "ImageReady"));
  EXPECT_FALSE(RemoveCondition(conds, "ImageReady"));
  EXPECT_EQ(conds.size(), 1u);
}

class EventsTest : public ::testing::Test {
 protected:
  EventsTest() {
    EventRecorderOptions o;
    o.component = "nixmox-operator";
    o.instance = "pod-1";
    o.clock = &clock_;
    recorder_ = std::make_unique<EventRecorder>(client_, o);
  }
  std::vector<Object> Events() { return client_.List(resources::Events(), "", {})->items; }
  FakeClock clock_;
  FakeClient client_{clock_};
  std::unique_ptr<EventRecorder> recorder_;
  Object vm_ = {
      {"apiVersion", "nixmox.io/v1alpha1"},
      {"kind", "ProxmoxVM"},
      {"metadata",
       {{"name", "web"}, {"namespace", "prod"}, {"uid", "u-1"}, {"resourceVersion", "7"}}}};
};

TEST_F(EventsTest, CreatesEventReferencingObject) {
  ASSERT_TRUE(recorder_->Event(vm_, kEventNormal, "Created", "created VM 100").ok());
  auto events = Events();
  ASSERT_EQ(events.size(), 1u);
  const Object& e = events[0];
  EXPECT_EQ(NamespaceOf(e), "prod");
  EXPECT_EQ(NameOf(e).rfind("web.", 0), 0u);
  EXPECT_EQ(e["involvedObject"]["kind"], "ProxmoxVM");
  EXPECT_EQ(e["involvedObject"]["uid"], "u-1");
  EXPECT_EQ(e["involvedObject"]["apiVersion"], "nixmox.io/v1alpha1");
  EXPECT_EQ(e["type"], "Normal");
  EXPECT_EQ(e["reason"], "Created");
  EXPECT_EQ(e["message"], "created VM 100");
  EXPECT_EQ(e["count"], 1);
  EXPECT_EQ(e["source"]["component"], "nixmox-operator");
  EXPECT_EQ(e["source"]["host"], "pod-1");
  EXPECT_EQ(e["firstTimestamp"], "2026-01-01T00:00:00Z");
}

TEST_F(EventsTest, RepeatsAggregateIntoCount) {
  ASSERT_TRUE(recorder_->Event(vm_, kEventWarning, "TaskFailed", "VM 100 is locked").ok());
  clock_.Advance(seconds(30));
  ASSERT_TRUE(recorder_->Event(vm_, kEventWarning, "TaskFailed", "VM 100 is locked").ok());
  ASSERT_TRUE(recorder_->Event(vm_, kEventWarning, "TaskFailed", "VM 100 is locked").ok());
  ASSERT_TRUE(recorder_->Event(vm_, kEventWarning, "TaskFailed", "other message").ok());
  auto events = Events();
  ASSERT_EQ(events.size(), 2u);
  int counts = 0;
  for (const auto& e : events) {
    if (e["message"] == "VM 100 is locked") {
      EXPECT_EQ(e["count"], 3);
      EXPECT_EQ(e["firstTimestamp"], "2026-01-01T00:00:00Z");
      EXPECT_EQ(e["lastTimestamp"], "2026-01-01T00:00:30Z");
      ++counts;
    }
  }
  EXPECT_EQ(counts, 1);
}

TEST_F(EventsTest, ExpiredEventStartsOver) {
  ASSERT_TRUE(recorder_->Event(vm_, kEventNormal, "Started", "started").ok());
  auto first = Events()[0];
  ASSERT_TRUE(client_.Delete(resources::Events(), "prod", NameOf(first)).ok());  // TTL expiry
  ASSERT_TRUE(recorder_->Event(vm_, kEventNormal, "Started", "started").ok());
  auto events = Events();
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0]["count"], 1);
}

TEST_F(EventsTest, ClusterScopedObjectEventsGoToDefaultNamespace) {
  Object ns = {{"apiVersion", "v1"}, {"kind", "Namespace"}, {"metadata", {{"name", "prod"}}}};
  ASSERT_TRUE(recorder_->Event(ns, kEventNormal, "Seen", "hello").ok());
  EXPECT_EQ(NamespaceOf(Events()[0]), "default");
  EXPECT_EQ(recorder_->Event(Object::object(), kEventNormal, "X", "y").code(), Code::kInvalid);
}

TEST_F(EventsTest, WriteFailureIsReturned) {
  client_.FailNext("create", ForbiddenError("cannot create events"));
  EXPECT_EQ(recorder_->Event(vm_, kEventNormal, "Created", "x").code(), Code::kForbidden);
}

}  // namespace
}  // namespace nixmox::kube
