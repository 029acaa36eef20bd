// The kube client runtime against a real API server process (kubesim, or the
// cluster in NIXMOX_TEST_KUBECONFIG) over HTTP on loopback.
#include <gtest/gtest.h>

#include <condition_variable>
#include <thread>

#include "src/kube/informer.h"
#include "src/kube/rest_client.h"
#include "test/integration/kube/test_cluster.h"

namespace nixmox::kube {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

Object ConfigMap(const std::string& ns, const std::string& name, nlohmann::json labels = {},
                 nlohmann::json data = {{"k", "v"}}) {
  Object o = {{"apiVersion", "v1"},
              {"kind", "ConfigMap"},
              {"metadata", {{"name", name}, {"namespace", ns}}},
              {"data", data}};
  if (!labels.is_null()) o["metadata"]["labels"] = labels;
  return o;
}

class KubeClientIT : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_EQ(cluster_.error(), ""); }
  RestClient& c() { return cluster_.client(); }
  const std::string& ns() { return cluster_.ns(); }

  // Watches from `rv` for about a second and returns "TYPE name" per event.
  std::vector<std::string> WatchFrom(const std::string& rv, const std::string& labels = "") {
    std::vector<std::string> seen;
    ListOptions o;
    o.resource_version = rv;
    o.timeout_seconds = 1;
    o.label_selector = labels;
    Status s = c().Watch(resources::ConfigMaps(), ns(), o, [&](const WatchEvent& e) {
      static const char* names[] = {"ADDED", "MODIFIED", "DELETED", "BOOKMARK", "ERROR"};
      seen.push_back(std::string(names[static_cast<int>(e.type)]) + " " + NameOf(e.object));
      return true;
    });
    EXPECT_TRUE(s.ok()) << s.ToString();
    return seen;
  }

  testing::TestCluster cluster_;
};

TEST_F(KubeClientIT, ListThenWatchSeesChangesInOrder) {
  ASSERT_TRUE(c().Create(resources::ConfigMaps(), ConfigMap(ns(), "a")).ok());
  auto list = c().List(resources::ConfigMaps(), ns(), {});
  ASSERT_TRUE(list.ok()) << list.status().ToString();
  ASSERT_EQ(list->items.size(), 1u);
  ASSERT_FALSE(list->resource_version.empty());
  ASSERT_TRUE(c().Create(resources::ConfigMaps(), ConfigMap(ns(), "b")).ok());
  ASSERT_TRUE(
      c().Patch(resources::ConfigMaps(), ns(), "a", PatchType::kMerge, {{"data", {{"k", "v2"}}}})
          .ok());
  ASSERT_TRUE(c().Delete(resources::ConfigMaps(), ns(), "a").ok());
  EXPECT_EQ(WatchFrom(list->resource_version),
            (std::vector<std::string>{"ADDED b", "MODIFIED a", "DELETED a"}));
}

TEST_F(KubeClientIT, LabelSelectorsFilterListsAndWatches) {
  auto start = c().List(resources::ConfigMaps(), ns(), {});
  ASSERT_TRUE(start.ok());
  ASSERT_TRUE(c().Create(resources::ConfigMaps(), ConfigMap(ns(), "web", {{"app", "web"}})).ok());
  ASSERT_TRUE(c().Create(resources::ConfigMaps(), ConfigMap(ns(), "db", {{"app", "db"}})).ok());
  ASSERT_TRUE(c().Create(resources::ConfigMaps(), ConfigMap(ns(), "plain")).ok());
  ListOptions o;
  o.label_selector = "app in (web,cache)";
  auto web = c().List(resources::ConfigMaps(), ns(), o);
  ASSERT_TRUE(web.ok());
  ASSERT_EQ(web->items.size(), 1u);
  EXPECT_EQ(NameOf(web->items[0]), "web");
  o.label_selector = "!app";
  auto plain = c().List(resources::ConfigMaps(), ns(), o);
  ASSERT_EQ(plain->items.size(), 1u);
  EXPECT_EQ(NameOf(plain->items[0]), "plain");
  EXPECT_EQ(WatchFrom(start->resource_version, "app=db"), (std::vector<std::string>{"ADDED db"}));
}

TEST_F(KubeClientIT, PagesWithLimitAndContinue) {
  for (int i = 0; i < 5; ++i) {
    ASSERT_TRUE(
        c().Create(resources::ConfigMaps(), ConfigMap(ns(), "cm-" + std::to_string(i))).ok());
  }
  ListOptions o;
  o.limit = 2;
  auto page = c().List(resources::ConfigMaps(), ns(), o);
  ASSERT_TRUE(page.ok());
  EXPECT_EQ(page->items.size(), 2u);
  EXPECT_FALSE(page->continue_token.empty());
  auto all = ListAll(c(), resources::ConfigMaps(), ns(), {}, 2);
  ASSERT_TRUE(all.ok()) << all.status().ToString();
  EXPECT_EQ(all->items.size(), 5u);
}

TEST_F(KubeClientIT, ErrorsCarryTheirCodes) {
  auto created = c().Create(resources::ConfigMaps(), ConfigMap(ns(), "x"));
  ASSERT_TRUE(created.ok());
  EXPECT_EQ(c().Create(resources::ConfigMaps(), ConfigMap(ns(), "x")).status().code(),
            Code::kAlreadyExists);
  EXPECT_EQ(c().Get(resources::ConfigMaps(), ns(), "missing").status().code(), Code::kNotFound);
  // A stale resourceVersion conflicts.
  Object first = *created;
  first["data"]["k"] = "one";
  ASSERT_TRUE(c().Update(resources::ConfigMaps(), first).ok());
  first["data"]["k"] = "two";
  EXPECT_EQ(c().Update(resources::ConfigMaps(), first).status().code(), Code::kConflict);
  // A name the API rejects is Invalid.
  auto bad = c().Create(resources::ConfigMaps(), ConfigMap(ns(), "Not_A_Name"));
  EXPECT_EQ(bad.status().code(), Code::kInvalid) << bad.status().ToString();
  ASSERT_FALSE(bad.status().field_errors().empty());
  EXPECT_EQ(bad.status().field_errors()[0].field, "metadata.name");
  // Delete preconditions.
  DeleteOptions wrong;
  wrong.precondition_uid = "not-the-uid";
  EXPECT_EQ(c().Delete(resources::ConfigMaps(), ns(), "x", wrong).code(), Code::kConflict);
  DeleteOptions right;
  right.precondition_uid = UidOf(*created);
  right.propagation_policy = "Background";
  EXPECT_TRUE(c().Delete(resources::ConfigMaps(), ns(), "x", right).ok());
}

TEST_F(KubeClientIT, JsonPatchAppliesOperations) {
  ASSERT_TRUE(c().Create(resources::ConfigMaps(), ConfigMap(ns(), "p")).ok());
  auto patched =
      c().Patch(resources::ConfigMaps(), ns(), "p", PatchType::kJson,
                nlohmann::json::array({{{"op", "add"}, {"path", "/data/new"}, {"value", "n"}},
                                       {{"op", "remove"}, {"path", "/data/k"}}}));
  ASSERT_TRUE(patched.ok()) << patched.status().ToString();
  EXPECT_EQ((*patched)["data"], (nlohmann::json{{"new", "n"}}));
}

TEST_F(KubeClientIT, FinalizersHoldDeletionUntilRemoved) {
  Object cm = ConfigMap(ns(), "held");
  cm["metadata"]["finalizers"] = {"nixmox.io/test"};
  ASSERT_TRUE(c().Create(resources::ConfigMaps(), cm).ok());
  ASSERT_TRUE(c().Delete(resources::ConfigMaps(), ns(), "held").ok());
  auto deleting = c().Get(resources::ConfigMaps(), ns(), "held");
  ASSERT_TRUE(deleting.ok()) << deleting.status().ToString();
  EXPECT_FALSE(StringAt(*deleting, {"metadata", "deletionTimestamp"}).empty());
  ASSERT_TRUE(c().Patch(resources::ConfigMaps(), ns(), "held", PatchType::kMerge,
                        {{"metadata", {{"finalizers", nullptr}}}})
                  .ok());
  EXPECT_EQ(c().Get(resources::ConfigMaps(), ns(), "held").status().code(), Code::kNotFound);
}

TEST_F(KubeClientIT, StatusSubresourceSeparatesSpecAndStatus) {
  const ResourceType crds{"apiextensions.k8s.io", "v1", "customresourcedefinitions", false,
                          "CustomResourceDefinition"};
  const std::string group = "it.nixmox.io";
  const std::string plural = "widgets" + ns().substr(ns().rfind('-') + 1);
  Object crd = {
      {"apiVersion", "apiextensions.k8s.io/v1"},
      {"kind", "CustomResourceDefinition"},
      {"metadata", {{"name", plural + "." + group}}},
      {"spec",
       {{"group", group},
        {"scope", "Namespaced"},
        {"names",
         {{"plural", plural},
          {"singular", plural.substr(0, plural.size() - 1)},
          {"kind", "Widget"},
          {"listKind", "WidgetList"}}},
        {"versions",
         {{{"name", "v1"},
           {"served", true},
           {"storage", true},
           {"subresources", {{"status", nlohmann::json::object()}}},
           {"schema",
            {{"openAPIV3Schema",
              {{"type", "object"}, {"x-kubernetes-preserve-unknown-fields", true}}}}}}}}}}};
  auto created_crd = c().Create(crds, crd);
  ASSERT_TRUE(created_crd.ok()) << created_crd.status().ToString();
  const ResourceType widgets{group, "v1", plural, true, "Widget"};
  // A real API server needs a moment to serve a new CRD.
  Result<Object> w = NotFoundError("not tried");
  Stop never;
  for (int i = 0; i < 100; ++i) {
    w = c().Create(widgets, {{"apiVersion", group + "/v1"},
                             {"kind", "Widget"},
                             {"metadata", {{"name", "w"}, {"namespace", ns()}}},
                             {"spec", {{"size", 1}}}});
    if (w.ok() || w.status().code() != Code::kNotFound) break;
    never.WaitFor(milliseconds(100));
  }
  ASSERT_TRUE(w.ok()) << w.status().ToString();
  EXPECT_EQ(GenerationOf(*w), 1);

  Object both = *w;
  both["spec"]["size"] = 2;
  both["status"] = {{"phase", "Ignored"}};
  auto updated = c().Update(widgets, both);
  ASSERT_TRUE(updated.ok()) << updated.status().ToString();
  EXPECT_FALSE(updated->contains("status"));  // the main resource ignores status
  EXPECT_EQ(GenerationOf(*updated), 2);

  Object st = *updated;
  st["status"] = {{"phase", "Ready"}};
  st["spec"]["size"] = 99;
  auto with_status = c().UpdateStatus(widgets, st);
  ASSERT_TRUE(with_status.ok()) << with_status.status().ToString();
  EXPECT_EQ((*with_status)["status"]["phase"], "Ready");
  EXPECT_EQ((*with_status)["spec"]["size"], 2);  // the status subresource ignores spec
  EXPECT_EQ(GenerationOf(*with_status), 2);      // status writes never bump generation
  auto patched = c().Patch(widgets, ns(), "w", PatchType::kMerge,
                           {{"status", {{"phase", "Patched"}}}}, "status");
  ASSERT_TRUE(patched.ok()) << patched.status().ToString();
  EXPECT_EQ((*patched)["status"]["phase"], "Patched");
  (void)c().Delete(crds, "", plural + "." + group);
}

TEST_F(KubeClientIT, InitialEventsEndWithBookmark) {
  ASSERT_TRUE(c().Create(resources::ConfigMaps(), ConfigMap(ns(), "one")).ok());
  ListOptions o;
  o.send_initial_events = true;
  o.allow_watch_bookmarks = true;
  o.resource_version_match = "NotOlderThan";
  o.timeout_seconds = 1;
  std::vector<WatchEvent> events;
  Status s = c().Watch(resources::ConfigMaps(), ns(), o, [&](const WatchEvent& e) {
    events.push_back(e);
    return e.type != WatchEvent::Type::kBookmark;
  });
  ASSERT_TRUE(s.ok()) << s.ToString();
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[0].type, WatchEvent::Type::kAdded);
  EXPECT_EQ(events[1].type, WatchEvent::Type::kBookmark);
  EXPECT_FALSE(ResourceVersionOf(events[1].object).empty());
  EXPECT_EQ(StringAt(events[1].object, {"metadata", "annotations", "k8s.io/initial-events-end"}),
            "true");
}

// Waits (by condition variable) for the informer's handlers to record `want`.
class Recorder {
 public:
  EventHandlers Handlers() {
    EventHandlers h;
    h.on_add = [this](const Object& o) { Log("add " + NameOf(o)); };
    h.on_update = [this](const Object&, const Object& o) { Log("update " + NameOf(o)); };
    h.on_delete = [this](const Object& o) { Log("delete " + NameOf(o)); };
    return h;
  }
  bool WaitFor(const std::string& want) {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, seconds(20),
                        [&] { return std::find(log_.begin(), log_.end(), want) != log_.end(); });
  }
  std::vector<std::string> log() {
    std::lock_guard lock(mu_);
    return log_;
  }

 private:
  void Log(std::string s) {
    std::lock_guard lock(mu_);
    log_.push_back(std::move(s));
    cv_.notify_all();
  }
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::string> log_;
};

TEST_F(KubeClientIT, InformerCacheFollowsTheServer) {
  ASSERT_TRUE(c().Create(resources::ConfigMaps(), ConfigMap(ns(), "pre")).ok());
  Informer informer(c(), resources::ConfigMaps(), ns());
  Recorder rec;
  informer.AddHandlers(rec.Handlers());
  Stop stop;
  std::thread runner([&] { informer.Run(stop); });
  ASSERT_TRUE(informer.WaitForSync(stop));
  EXPECT_TRUE(rec.WaitFor("add pre"));
  ASSERT_TRUE(c().Create(resources::ConfigMaps(), ConfigMap(ns(), "live")).ok());
  EXPECT_TRUE(rec.WaitFor("add live"));
  ASSERT_TRUE(c().Delete(resources::ConfigMaps(), ns(), "pre").ok());
  EXPECT_TRUE(rec.WaitFor("delete pre"));
  EXPECT_EQ(informer.store().Keys(), (std::vector<std::string>{ns() + "/live"}));
  stop.Request();
  runner.join();
}

TEST(KubeTlsIT, VerifiesServerWithKubeconfigCaAndRejectsWrongToken) {
  testing::TestCluster cluster({"--tls"});
  ASSERT_EQ(cluster.error(), "");
  auto config = LoadKubeconfig(cluster.kubeconfig());
  ASSERT_TRUE(config.ok());
  if (!cluster.external()) {
    EXPECT_EQ(config->server.rfind("https://", 0), 0u) << config->server;
    EXPECT_FALSE(config->tls.ca_pem.empty());  // certificate-authority-data
    EXPECT_FALSE(config->tls.insecure_skip_verify);
  }
  auto ns = cluster.client().Get(resources::Namespaces(), "", cluster.ns());
  ASSERT_TRUE(ns.ok()) << ns.status().ToString();
  EXPECT_EQ(NameOf(*ns), cluster.ns());

  auto http = NewHttpClient(*config);
  ASSERT_TRUE(http.ok());
  RestClient wrong(std::shared_ptr<http::Client>(std::move(*http)), StaticToken("not-the-token"));
  auto denied = wrong.Get(resources::Namespaces(), "", cluster.ns());
  EXPECT_EQ(denied.status().code(), Code::kUnauthorized) << denied.status().ToString();
  EXPECT_EQ(denied.status().ToString().find("not-the-token"), std::string::npos);
}

TEST(KubeGoneIT, ReflectorRelistsAfterGoneAndEmitsDeletes) {
  testing::TestCluster cluster({"--watch-window", "3"});
  ASSERT_EQ(cluster.error(), "");
  if (cluster.external()) GTEST_SKIP() << "needs kubesim's small watch window";
  RestClient& c = cluster.client();
  const std::string ns = cluster.ns();
  for (const char* n : {"keep", "drop"}) {
    ASSERT_TRUE(c.Create(resources::ConfigMaps(), ConfigMap(ns, n)).ok());
  }
  auto lw = NewListerWatcher(c, resources::ConfigMaps(), ns);
  InformerOptions io;
  io.reflector.min_watch_timeout = seconds(1);
  Informer informer(*lw, resources::ConfigMaps(), io);
  Recorder rec;
  informer.AddHandlers(rec.Handlers());
  // Round 1: list and a short watch that the server ends.
  ASSERT_TRUE(informer.reflector().ListAndWatch(nullptr).ok());
  EXPECT_EQ(informer.store().size(), 2u);
  // Meanwhile more changes than the server's watch window keeps.
  ASSERT_TRUE(c.Delete(resources::ConfigMaps(), ns, "drop").ok());
  for (int i = 0; i < 6; ++i) {
    ASSERT_TRUE(c.Patch(resources::ConfigMaps(), ns, "keep", PatchType::kMerge,
                        {{"data", {{"i", std::to_string(i)}}}})
                    .ok());
  }
  // Round 2: resuming from the old version is Gone.
  Status gone = informer.reflector().ListAndWatch(nullptr);
  EXPECT_EQ(gone.code(), Code::kGone) << gone.ToString();
  EXPECT_TRUE(informer.reflector().needs_relist());
  // Round 3: relist replaces the cache and reports the delete it missed.
  ASSERT_TRUE(informer.reflector().ListAndWatch(nullptr).ok());
  EXPECT_TRUE(rec.WaitFor("delete drop"));
  EXPECT_TRUE(rec.WaitFor("update keep"));
  EXPECT_EQ(informer.store().Keys(), (std::vector<std::string>{ns + "/keep"}));
  EXPECT_EQ(StringAt(*informer.store().Get(ns + "/keep"), {"data", "i"}), "5");
}

}  // namespace
}  // namespace nixmox::kube
