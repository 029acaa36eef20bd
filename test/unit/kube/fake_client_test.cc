// The fake must keep the API server's rules, or reconciler tests built on it lie.
#include "src/kube/fake_client.h"

#include <gtest/gtest.h>

namespace nixmox::kube {
namespace {

const ResourceType kVms{"nixmox.io", "v1alpha1", "proxmoxvms", true, "ProxmoxVM"};

Object Vm(const std::string& name, int cores = 1) {
  return {{"metadata", {{"name", name}, {"namespace", "n"}, {"labels", {{"app", name}}}}},
          {"spec", {{"cores", cores}}}};
}

TEST(FakeClientTest, CreateGetAndAlreadyExists) {
  FakeClient c;
  auto created = c.Create(kVms, Vm("a"));
  ASSERT_TRUE(created.ok());
  EXPECT_FALSE(UidOf(*created).empty());
  EXPECT_EQ(GenerationOf(*created), 1);
  EXPECT_EQ((*created)["kind"], "ProxmoxVM");
  EXPECT_EQ(c.Create(kVms, Vm("a")).status().code(), Code::kAlreadyExists);
  EXPECT_EQ(c.Get(kVms, "n", "b").status().code(), Code::kNotFound);
  EXPECT_EQ(*c.Get(kVms, "n", "a"), *created);
}

TEST(FakeClientTest, StaleUpdateConflictsAndSpecChangeBumpsGeneration) {
  FakeClient c;
  Object a = *c.Create(kVms, Vm("a"));
  Object changed = a;
  changed["spec"]["cores"] = 4;
  auto updated = c.Update(kVms, changed);
  ASSERT_TRUE(updated.ok());
  EXPECT_EQ(GenerationOf(*updated), 2);
  EXPECT_EQ(c.Update(kVms, changed).status().code(), Code::kConflict);  // stale version
  Object labels_only = *updated;
  labels_only["metadata"]["labels"]["x"] = "y";
  EXPECT_EQ(GenerationOf(*c.Update(kVms, labels_only)), 2);
}

TEST(FakeClientTest, StatusOnlyThroughSubresource) {
  FakeClient c;
  Object a = *c.Create(kVms, Vm("a"));
  Object with_status = a;
  with_status["status"]["phase"] = "Running";
  with_status["spec"]["cores"] = 8;
  auto via_update = c.Update(kVms, with_status);
  EXPECT_FALSE(via_update->contains("status"));  // ignored on the main resource
  with_status["metadata"]["resourceVersion"] = ResourceVersionOf(*via_update);
  auto via_status = c.UpdateStatus(kVms, with_status);
  ASSERT_TRUE(via_status.ok());
  EXPECT_EQ((*via_status)["status"]["phase"], "Running");
  EXPECT_EQ((*via_status)["spec"]["cores"], 8);  // from the earlier update, not this one
  auto patched =
      c.Patch(kVms, "n", "a", PatchType::kMerge, {{"status", {{"phase", "Stopped"}}}}, "status");
  EXPECT_EQ((*patched)["status"]["phase"], "Stopped");
}

TEST(FakeClientTest, FinalizersDelayDeletion) {
  FakeClient c;
  Object a = Vm("a");
  a["metadata"]["finalizers"] = {"nixmox.io/vm"};
  ASSERT_TRUE(c.Create(kVms, a).ok());
  ASSERT_TRUE(c.Delete(kVms, "n", "a").ok());
  auto deleting = c.Get(kVms, "n", "a");
  ASSERT_TRUE(deleting.ok());  // still there, marked
  EXPECT_FALSE(StringAt(*deleting, {"metadata", "deletionTimestamp"}).empty());
  auto json_patch = nlohmann::json::array(
      {{{"op", "test"}, {"path", "/metadata/finalizers/0"}, {"value", "nixmox.io/vm"}},
       {{"op", "remove"}, {"path", "/metadata/finalizers/0"}}});
  ASSERT_TRUE(c.Patch(kVms, "n", "a", PatchType::kJson, json_patch).ok());
  EXPECT_EQ(c.Get(kVms, "n", "a").status().code(), Code::kNotFound);  // gone with the finalizer
}

TEST(FakeClientTest, DeletePreconditions) {
  FakeClient c;
  Object a = *c.Create(kVms, Vm("a"));
  DeleteOptions wrong_uid;
  wrong_uid.precondition_uid = "other";
  EXPECT_EQ(c.Delete(kVms, "n", "a", wrong_uid).code(), Code::kConflict);
  DeleteOptions right;
  right.precondition_uid = UidOf(a);
  right.precondition_resource_version = ResourceVersionOf(a);
  EXPECT_TRUE(c.Delete(kVms, "n", "a", right).ok());
  EXPECT_EQ(c.Delete(kVms, "n", "a").code(), Code::kNotFound);
}

TEST(FakeClientTest, ListSelectsAndWatchReplaysFromVersion) {
  FakeClient c;
  ASSERT_TRUE(c.Create(kVms, Vm("a")).ok());
  auto list = c.List(kVms, "n", {});
  ASSERT_TRUE(list.ok());
  const std::string rv = list->resource_version;
  ASSERT_TRUE(c.Create(kVms, Vm("b")).ok());
  ASSERT_TRUE(c.Delete(kVms, "n", "a").ok());
  ListOptions sel;
  sel.label_selector = "app=b";
  EXPECT_EQ(c.List(kVms, "", sel)->items.size(), 1u);
  std::vector<std::string> seen;
  ListOptions from;
  from.resource_version = rv;
  ASSERT_TRUE(c.Watch(kVms, "n", from, [&](const WatchEvent& e) {
                 seen.push_back(std::to_string(static_cast<int>(e.type)) + NameOf(e.object));
                 return true;
               }).ok());
  EXPECT_EQ(seen, (std::vector<std::string>{"0b", "2a"}));  // ADDED b, DELETED a
  c.CompactForTest();
  EXPECT_EQ(c.Watch(kVms, "n", from, [](const WatchEvent&) { return true; }).code(), Code::kGone);
}

TEST(FakeClientTest, InjectedFailuresAndActions) {
  FakeClient c;
  c.FailNext("create", Status(Code::kTooManyRequests, "slow down"));
  EXPECT_EQ(c.Create(kVms, Vm("a")).status().code(), Code::kTooManyRequests);
  ASSERT_TRUE(c.Create(kVms, Vm("a")).ok());
  ASSERT_TRUE(c.Delete(kVms, "n", "a").ok());
  EXPECT_EQ(c.actions(),
            (std::vector<std::string>{"create proxmoxvms n/a", "delete proxmoxvms n/a"}));
}

}  // namespace
}  // namespace nixmox::kube
