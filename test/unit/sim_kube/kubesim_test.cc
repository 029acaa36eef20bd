// kubesim's object semantics, driven in process through KubeSim::Handle().
#include "test/sim/kube/kubesim.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "src/common/clock.h"
#include "test/sim/kube/table.h"

namespace nixmox::kubesim {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

constexpr char kToken[] = "test-token";

struct Reply {
  int status = 0;
  json body;
  http::Headers headers;
  std::string raw;
};

// Collects watch events; reports itself closed after `want` of them.
class Collector : public http::StreamWriter {
 public:
  explicit Collector(size_t want) : want_(want) {}
  bool Write(std::string_view chunk) override {
    buffer_ += chunk;
    size_t nl;
    while ((nl = buffer_.find('\n')) != std::string::npos) {
      events.push_back(json::parse(buffer_.substr(0, nl)));
      buffer_.erase(0, nl + 1);
    }
    return events.size() < want_;
  }
  bool closed() const override { return events.size() >= want_; }
  std::vector<std::string> Types() const {
    std::vector<std::string> out;
    for (const auto& e : events) out.push_back(e["type"]);
    return out;
  }
  std::vector<json> events;

 private:
  size_t want_;
  std::string buffer_;
};

json WidgetCrd() {
  return json::parse(R"({
    "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
    "metadata": {"name": "widgets.test.nixmox.io"},
    "spec": {
      "group": "test.nixmox.io", "scope": "Namespaced",
      "names": {"plural": "widgets", "singular": "widget", "kind": "Widget",
                "shortNames": ["wd"], "categories": ["nixmox"]},
      "versions": [{
        "name": "v1alpha1", "served": true, "storage": true,
        "subresources": {"status": {}},
        "additionalPrinterColumns": [
          {"name": "Size", "type": "integer", "jsonPath": ".spec.size"},
          {"name": "Ready", "type": "string",
           "jsonPath": ".status.conditions[?(@.type==\"Ready\")].status"}],
        "schema": {"openAPIV3Schema": {
          "type": "object",
          "properties": {
            "spec": {"type": "object", "required": ["size"], "properties": {
              "size": {"type": "integer", "minimum": 1, "maximum": 100},
              "color": {"type": "string", "enum": ["red", "green"], "default": "green"},
              "label": {"type": "string", "minLength": 2, "maxLength": 5, "pattern": "^[a-z]+$"},
              "disks": {"type": "array", "items": {"type": "object", "required": ["size"],
                "properties": {"size": {"type": "integer", "minimum": 1}}}},
              "tags": {"type": "object", "additionalProperties": {"type": "string"}}}},
            "status": {"type": "object", "properties": {
              "phase": {"type": "string"},
              "conditions": {"type": "array", "items": {"type": "object",
                "x-kubernetes-preserve-unknown-fields": true}}}}}}}}]}})");
}

json Widget(const std::string& name, int size) {
  return {{"apiVersion", "test.nixmox.io/v1alpha1"},
          {"kind", "Widget"},
          {"metadata", {{"name", name}}},
          {"spec", {{"size", size}}}};
}

json ConfigMap(const std::string& name, json labels = json::object()) {
  return {{"apiVersion", "v1"},
          {"kind", "ConfigMap"},
          {"metadata", {{"name", name}, {"labels", labels}}},
          {"data", {{"k", "v"}}}};
}

class KubeSimTest : public ::testing::Test {
 protected:
  void SetUp() override { Start(Options{}); }

  void Start(Options options) {
    options.clock = &clock_;
    options.token = kToken;
    sim_ = std::make_unique<KubeSim>(options);
  }

  http::ServerRequest Request(const std::string& method, const std::string& target,
                              const std::string& body, const std::string& content_type,
                              const std::string& accept) {
    http::ServerRequest req;
    req.method = method;
    size_t q = target.find('?');
    req.path = target.substr(0, q);
    if (q != std::string::npos) {
      req.raw_query = target.substr(q + 1);
      req.query = http::DecodeQuery(req.raw_query);
    }
    req.headers.Set("Authorization", std::string("Bearer ") + kToken);
    if (!content_type.empty()) req.headers.Set("Content-Type", content_type);
    if (!accept.empty()) req.headers.Set("Accept", accept);
    req.body = body;
    return req;
  }

  Reply Do(const std::string& method, const std::string& target, const json& body = nullptr,
           const std::string& content_type = "application/json",
           const std::string& accept = "application/json") {
    http::ServerResponse resp = sim_->Handle(
        Request(method, target, body.is_null() ? "" : body.dump(), content_type, accept));
    Reply r;
    r.status = resp.status;
    r.headers = resp.headers;
    r.raw = resp.body;
    r.body = json::parse(resp.body, nullptr, /*allow_exceptions=*/false);
    return r;
  }

  Reply Patch(const std::string& target, const std::string& type, const std::string& patch) {
    http::ServerResponse resp = sim_->Handle(Request("PATCH", target, patch, type, ""));
    return Reply{resp.status, json::parse(resp.body, nullptr, false), resp.headers, resp.body};
  }

  // Runs a watch in this thread until it delivered `want` events.
  Collector Watch(const std::string& target, size_t want,
                  const std::string& accept = "application/json") {
    http::ServerResponse resp = sim_->Handle(Request("GET", target, "", "", accept));
    Collector c(want);
    EXPECT_EQ(resp.status, 200) << resp.body;
    if (resp.stream) resp.stream(c);
    return c;
  }

  void InstallCrd() {
    Reply r = Do("POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", WidgetCrd());
    ASSERT_EQ(r.status, 201) << r.raw;
  }

  static std::string Rv(const json& o) { return o["metadata"]["resourceVersion"]; }

  FakeClock clock_;
  std::unique_ptr<KubeSim> sim_;
};

const char kCms[] = "/api/v1/namespaces/default/configmaps";
const char kWidgets[] = "/apis/test.nixmox.io/v1alpha1/namespaces/default/widgets";

TEST_F(KubeSimTest, RejectsRequestsWithoutTheBearerToken) {
  http::ServerRequest req = Request("GET", "/api/v1/namespaces", "", "", "");
  req.headers.Remove("Authorization");
  http::ServerResponse resp = sim_->Handle(req);
  EXPECT_EQ(resp.status, 401);
  EXPECT_EQ(json::parse(resp.body)["reason"], "Unauthorized");
  req.headers.Set("Authorization", "Bearer wrong");
  EXPECT_EQ(sim_->Handle(req).status, 401);
}

TEST_F(KubeSimTest, StartsWithDefaultAndKubeSystemNamespaces) {
  Reply r = Do("GET", "/api/v1/namespaces");
  ASSERT_EQ(r.status, 200);
  std::vector<std::string> names;
  for (const auto& ns : r.body["items"]) names.push_back(ns["metadata"]["name"]);
  EXPECT_THAT(names, ::testing::IsSupersetOf({"default", "kube-system"}));
  EXPECT_EQ(r.body["kind"], "NamespaceList");
}

TEST_F(KubeSimTest, CreateSetsUidResourceVersionAndCreationTimestamp) {
  Reply r = Do("POST", kCms, ConfigMap("a"));
  ASSERT_EQ(r.status, 201) << r.raw;
  const json& md = r.body["metadata"];
  EXPECT_EQ(md["uid"].get<std::string>().size(), 36u);
  EXPECT_FALSE(Rv(r.body).empty());
  EXPECT_THAT(md["creationTimestamp"].get<std::string>(),
              ::testing::MatchesRegex("[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z"));
  EXPECT_EQ(md["namespace"], "default");
  Reply got = Do("GET", std::string(kCms) + "/a");
  EXPECT_EQ(got.status, 200);
  EXPECT_EQ(got.body["metadata"]["uid"], md["uid"]);
}

TEST_F(KubeSimTest, ResourceVersionsComeFromOneClusterWideCounter) {
  InstallCrd();
  Reply a = Do("POST", kCms, ConfigMap("a"));
  Reply w = Do("POST", kWidgets, Widget("w", 1));
  Reply b = Do("POST", kCms, ConfigMap("b"));
  uint64_t ra = std::stoull(Rv(a.body)), rw = std::stoull(Rv(w.body)), rb = std::stoull(Rv(b.body));
  EXPECT_LT(ra, rw);
  EXPECT_LT(rw, rb);
  Reply list = Do("GET", kCms);
  EXPECT_GE(std::stoull(list.body["metadata"]["resourceVersion"].get<std::string>()), rb);
}

TEST_F(KubeSimTest, CreatingATakenNameIsAlreadyExists) {
  ASSERT_EQ(Do("POST", kCms, ConfigMap("a")).status, 201);
  Reply r = Do("POST", kCms, ConfigMap("a"));
  EXPECT_EQ(r.status, 409);
  EXPECT_EQ(r.body["reason"], "AlreadyExists");
  EXPECT_EQ(r.body["message"], "configmaps \"a\" already exists");
}

TEST_F(KubeSimTest, GenerateNameMakesAUniqueName) {
  json cm = ConfigMap("");
  cm["metadata"].erase("name");
  cm["metadata"]["generateName"] = "gen-";
  Reply a = Do("POST", kCms, cm);
  Reply b = Do("POST", kCms, cm);
  ASSERT_EQ(a.status, 201);
  ASSERT_EQ(b.status, 201);
  EXPECT_THAT(a.body["metadata"]["name"].get<std::string>(), HasSubstr("gen-"));
  EXPECT_NE(a.body["metadata"]["name"], b.body["metadata"]["name"]);
}

TEST_F(KubeSimTest, NamespacedKindsNeedAnExistingNamespace) {
  Reply r = Do("POST", "/api/v1/namespaces/nope/configmaps", ConfigMap("a"));
  EXPECT_EQ(r.status, 404);
  EXPECT_EQ(r.body["message"], "namespaces \"nope\" not found");
  // The cluster-wide path of a namespaced kind only lists.
  EXPECT_EQ(Do("POST", "/api/v1/configmaps", ConfigMap("a")).status, 405);
}

TEST_F(KubeSimTest, InvalidNameIsRejected) {
  Reply r = Do("POST", kCms, ConfigMap("Bad_Name"));
  EXPECT_EQ(r.status, 422);
  EXPECT_EQ(r.body["details"]["causes"][0]["field"], "metadata.name");
}

TEST_F(KubeSimTest, UpdateWithStaleResourceVersionIsConflict) {
  Reply created = Do("POST", kCms, ConfigMap("a"));
  json first = created.body;
  first["data"]["k"] = "v2";
  ASSERT_EQ(Do("PUT", std::string(kCms) + "/a", first).status, 200);
  json stale = created.body;
  stale["data"]["k"] = "v3";
  Reply r = Do("PUT", std::string(kCms) + "/a", stale);
  EXPECT_EQ(r.status, 409);
  EXPECT_EQ(r.body["reason"], "Conflict");
  EXPECT_THAT(r.body["message"].get<std::string>(),
              HasSubstr("the object has been modified; please apply your changes to the latest "
                        "version and try again"));
  EXPECT_EQ(Do("GET", std::string(kCms) + "/a").body["data"]["k"], "v2");
}

TEST_F(KubeSimTest, UpdateThatChangesNothingKeepsTheResourceVersion) {
  Reply created = Do("POST", kCms, ConfigMap("a"));
  Reply same = Do("PUT", std::string(kCms) + "/a", created.body);
  EXPECT_EQ(same.status, 200);
  EXPECT_EQ(Rv(same.body), Rv(created.body));
}

TEST_F(KubeSimTest, GenerationMovesOnSpecChangesOnly) {
  InstallCrd();
  Reply w = Do("POST", kWidgets, Widget("w", 1));
  EXPECT_EQ(w.body["metadata"]["generation"], 1);
  Reply labelled = Patch(std::string(kWidgets) + "/w", "application/merge-patch+json",
                         R"({"metadata":{"labels":{"a":"b"}}})");
  EXPECT_EQ(labelled.body["metadata"]["generation"], 1);
  EXPECT_NE(Rv(labelled.body), Rv(w.body));
  Reply resized =
      Patch(std::string(kWidgets) + "/w", "application/merge-patch+json", R"({"spec":{"size":2}})");
  EXPECT_EQ(resized.body["metadata"]["generation"], 2);
  Reply status = Patch(std::string(kWidgets) + "/w/status", "application/merge-patch+json",
                       R"({"status":{"phase":"Ready"}})");
  EXPECT_EQ(status.body["metadata"]["generation"], 2);
}

TEST_F(KubeSimTest, MainEndpointIgnoresStatusAndStatusEndpointChangesOnlyStatus) {
  InstallCrd();
  ASSERT_EQ(Do("POST", kWidgets, Widget("w", 1)).status, 201);
  Reply main = Patch(std::string(kWidgets) + "/w", "application/merge-patch+json",
                     R"({"spec":{"size":7},"status":{"phase":"Sneaky"}})");
  ASSERT_EQ(main.status, 200) << main.raw;
  EXPECT_EQ(main.body["spec"]["size"], 7);
  EXPECT_FALSE(main.body.contains("status"));

  Reply status =
      Patch(std::string(kWidgets) + "/w/status", "application/merge-patch+json",
            R"({"spec":{"size":9},"metadata":{"labels":{"x":"y"}},"status":{"phase":"Ready"}})");
  ASSERT_EQ(status.status, 200) << status.raw;
  EXPECT_EQ(status.body["status"]["phase"], "Ready");
  EXPECT_EQ(status.body["spec"]["size"], 7);
  EXPECT_FALSE(status.body["metadata"].contains("labels"));
}

TEST_F(KubeSimTest, CreateDropsStatusOfKindsWithStatusSubresource) {
  InstallCrd();
  json w = Widget("w", 1);
  w["status"] = {{"phase", "Ready"}};
  Reply r = Do("POST", kWidgets, w);
  EXPECT_FALSE(r.body.contains("status"));
}

TEST_F(KubeSimTest, DeleteWithFinalizerMarksAndRemovingTheLastFinalizerDeletes) {
  json cm = ConfigMap("a");
  cm["metadata"]["finalizers"] = {"example.com/hold"};
  ASSERT_EQ(Do("POST", kCms, cm).status, 201);
  Reply del = Do("DELETE", std::string(kCms) + "/a");
  ASSERT_EQ(del.status, 200);
  EXPECT_TRUE(del.body["metadata"].contains("deletionTimestamp"));
  Reply still = Do("GET", std::string(kCms) + "/a");
  ASSERT_EQ(still.status, 200);
  EXPECT_TRUE(still.body["metadata"].contains("deletionTimestamp"));

  // New finalizers cannot be added while deleting.
  Reply added = Patch(std::string(kCms) + "/a", "application/merge-patch+json",
                      R"({"metadata":{"finalizers":["example.com/hold","example.com/more"]}})");
  EXPECT_EQ(added.status, 422);

  Reply cleared = Patch(std::string(kCms) + "/a", "application/merge-patch+json",
                        R"({"metadata":{"finalizers":null}})");
  EXPECT_EQ(cleared.status, 200);
  EXPECT_EQ(Do("GET", std::string(kCms) + "/a").status, 404);
}

TEST_F(KubeSimTest, BackgroundDeletionCollectsDependents) {
  Reply owner = Do("POST", kCms, ConfigMap("owner"));
  json dep = ConfigMap("dep");
  dep["metadata"]["ownerReferences"] = {{{"apiVersion", "v1"},
                                         {"kind", "ConfigMap"},
                                         {"name", "owner"},
                                         {"uid", owner.body["metadata"]["uid"]}}};
  ASSERT_EQ(Do("POST", kCms, dep).status, 201);
  ASSERT_EQ(Do("DELETE", std::string(kCms) + "/owner?propagationPolicy=Background").status, 200);
  EXPECT_EQ(Do("GET", std::string(kCms) + "/owner").status, 404);
  EXPECT_EQ(Do("GET", std::string(kCms) + "/dep").status, 404);
}

TEST_F(KubeSimTest, ForegroundDeletionWaitsForDependents) {
  Reply owner = Do("POST", kCms, ConfigMap("owner"));
  json dep = ConfigMap("dep");
  dep["metadata"]["finalizers"] = {"example.com/hold"};
  dep["metadata"]["ownerReferences"] = {{{"apiVersion", "v1"},
                                         {"kind", "ConfigMap"},
                                         {"name", "owner"},
                                         {"uid", owner.body["metadata"]["uid"]},
                                         {"blockOwnerDeletion", true}}};
  ASSERT_EQ(Do("POST", kCms, dep).status, 201);
  Reply del = Do("DELETE", std::string(kCms) + "/owner", {{"propagationPolicy", "Foreground"}});
  ASSERT_EQ(del.status, 200);
  Reply o = Do("GET", std::string(kCms) + "/owner");
  ASSERT_EQ(o.status, 200);
  EXPECT_THAT(o.body["metadata"]["finalizers"], ElementsAre("foregroundDeletion"));
  Reply d = Do("GET", std::string(kCms) + "/dep");
  EXPECT_TRUE(d.body["metadata"].contains("deletionTimestamp"));

  Patch(std::string(kCms) + "/dep", "application/merge-patch+json",
        R"({"metadata":{"finalizers":null}})");
  EXPECT_EQ(Do("GET", std::string(kCms) + "/dep").status, 404);
  EXPECT_EQ(Do("GET", std::string(kCms) + "/owner").status, 404);
}

TEST_F(KubeSimTest, OrphanDeletionKeepsDependentsWithoutTheOwnerReference) {
  Reply owner = Do("POST", kCms, ConfigMap("owner"));
  json dep = ConfigMap("dep");
  dep["metadata"]["ownerReferences"] = {{{"apiVersion", "v1"},
                                         {"kind", "ConfigMap"},
                                         {"name", "owner"},
                                         {"uid", owner.body["metadata"]["uid"]}}};
  ASSERT_EQ(Do("POST", kCms, dep).status, 201);
  ASSERT_EQ(Do("DELETE", std::string(kCms) + "/owner?propagationPolicy=Orphan").status, 200);
  EXPECT_EQ(Do("GET", std::string(kCms) + "/owner").status, 404);
  Reply d = Do("GET", std::string(kCms) + "/dep");
  ASSERT_EQ(d.status, 200);
  EXPECT_FALSE(d.body["metadata"].contains("ownerReferences"));
}

TEST_F(KubeSimTest, LabelAndFieldSelectorsFilterLists) {
  Do("POST", kCms, ConfigMap("a", {{"app", "web"}, {"tier", "front"}}));
  Do("POST", kCms, ConfigMap("b", {{"app", "web"}, {"tier", "back"}}));
  Do("POST", kCms, ConfigMap("c", {{"app", "db"}}));
  auto names = [&](const std::string& query) {
    std::vector<std::string> out;
    Reply r = Do("GET", std::string(kCms) + "?" + query);
    EXPECT_EQ(r.status, 200) << r.raw;
    for (const auto& i : r.body["items"]) out.push_back(i["metadata"]["name"]);
    return out;
  };
  EXPECT_THAT(names("labelSelector=app%3Dweb"), ElementsAre("a", "b"));
  EXPECT_THAT(names("labelSelector=app%3Dweb,tier!%3Dfront"), ElementsAre("b"));
  EXPECT_THAT(names("labelSelector=tier%20in%20(front,back)"), ElementsAre("a", "b"));
  EXPECT_THAT(names("labelSelector=!tier"), ElementsAre("c"));
  EXPECT_THAT(names("labelSelector=tier"), ElementsAre("a", "b"));
  EXPECT_THAT(names("fieldSelector=metadata.name%3Dc"), ElementsAre("c"));
  EXPECT_THAT(names("fieldSelector=metadata.name!%3Dc"), ElementsAre("a", "b"));
}

TEST_F(KubeSimTest, UnsupportedFieldSelectorIsBadRequest) {
  Reply r = Do("GET", std::string(kCms) + "?fieldSelector=data.k%3Dv");
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(r.body["message"], "field label not supported: data.k");
}

TEST_F(KubeSimTest, LimitAndContinuePageThroughAList) {
  for (const char* n : {"a", "b", "c", "d", "e"}) Do("POST", kCms, ConfigMap(n));
  std::vector<std::string> seen;
  std::string token;
  int pages = 0;
  do {
    std::string q = std::string(kCms) + "?limit=2";
    if (!token.empty()) q += "&continue=" + http::PercentEncode(token);
    Reply r = Do("GET", q);
    ASSERT_EQ(r.status, 200) << r.raw;
    EXPECT_LE(r.body["items"].size(), 2u);
    for (const auto& i : r.body["items"]) seen.push_back(i["metadata"]["name"]);
    token = r.body["metadata"].value("continue", "");
    if (pages == 0) {
      EXPECT_EQ(r.body["metadata"]["remainingItemCount"], 3);
    }
    ++pages;
  } while (!token.empty() && pages < 10);
  EXPECT_EQ(pages, 3);
  EXPECT_THAT(seen, ElementsAre("a", "b", "c", "d", "e"));
}

TEST_F(KubeSimTest, MergeJsonAndStrategicMergePatches) {
  json pod = {{"apiVersion", "v1"},
              {"kind", "Pod"},
              {"metadata", {{"name", "p"}}},
              {"spec",
               {{"containers",
                 {{{"name", "a"}, {"image", "img:1"}}, {{"name", "b"}, {"image", "img:1"}}}}}}};
  ASSERT_EQ(Do("POST", "/api/v1/namespaces/default/pods", pod).status, 201);
  const std::string path = "/api/v1/namespaces/default/pods/p";
  Reply smp = Patch(path, "application/strategic-merge-patch+json",
                    R"({"spec":{"containers":[{"name":"b","image":"img:2"}]}})");
  ASSERT_EQ(smp.status, 200) << smp.raw;
  ASSERT_EQ(smp.body["spec"]["containers"].size(), 2u);
  EXPECT_EQ(smp.body["spec"]["containers"][0]["image"], "img:1");
  EXPECT_EQ(smp.body["spec"]["containers"][1]["image"], "img:2");

  Reply merge = Patch(path, "application/merge-patch+json", R"({"metadata":{"labels":{"x":"1"}}})");
  EXPECT_EQ(merge.body["metadata"]["labels"]["x"], "1");

  Reply jp = Patch(path, "application/json-patch+json",
                   R"([{"op":"replace","path":"/metadata/labels/x","value":"2"}])");
  ASSERT_EQ(jp.status, 200) << jp.raw;
  EXPECT_EQ(jp.body["metadata"]["labels"]["x"], "2");

  Reply failed = Patch(path, "application/json-patch+json",
                       R"([{"op":"test","path":"/metadata/labels/x","value":"nope"}])");
  EXPECT_EQ(failed.status, 422);
}

TEST_F(KubeSimTest, StrategicMergePatchOfACustomResourceIsUnsupportedMediaType) {
  InstallCrd();
  Do("POST", kWidgets, Widget("w", 1));
  Reply r = Patch(std::string(kWidgets) + "/w", "application/strategic-merge-patch+json",
                  R"({"spec":{"size":2}})");
  EXPECT_EQ(r.status, 415);
}

TEST_F(KubeSimTest, ServerSideApplyCreatesThenMerges) {
  const std::string path = std::string(kCms) + "/applied?fieldManager=test";
  Reply created =
      Patch(path, "application/apply-patch+yaml",
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: applied\ndata:\n  a: '1'\n");
  ASSERT_EQ(created.status, 201) << created.raw;
  Reply merged =
      Patch(path, "application/apply-patch+yaml",
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: applied\ndata:\n  b: '2'\n");
  ASSERT_EQ(merged.status, 200) << merged.raw;
  EXPECT_EQ(merged.body["data"]["a"], "1");
  EXPECT_EQ(merged.body["data"]["b"], "2");
  Reply no_manager = Patch(std::string(kCms) + "/applied", "application/apply-patch+yaml", "{}");
  EXPECT_EQ(no_manager.status, 400);
}

TEST_F(KubeSimTest, CrdRegistersItsResourceInDiscoveryAndIsEstablished) {
  InstallCrd();
  Reply crd =
      Do("GET", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/widgets.test.nixmox.io");
  bool established = false;
  for (const auto& c : crd.body["status"]["conditions"]) {
    if (c["type"] == "Established" && c["status"] == "True") established = true;
  }
  EXPECT_TRUE(established);
  Reply groups = Do("GET", "/apis");
  bool listed = false;
  for (const auto& g : groups.body["groups"]) listed |= g["name"] == "test.nixmox.io";
  EXPECT_TRUE(listed);
  Reply resources = Do("GET", "/apis/test.nixmox.io/v1alpha1");
  ASSERT_EQ(resources.status, 200);
  const json& list = resources.body["resources"];
  ASSERT_EQ(list.size(), 2u);
  EXPECT_EQ(list[0]["name"], "widgets");
  EXPECT_EQ(list[0]["kind"], "Widget");
  EXPECT_EQ(list[0]["namespaced"], true);
  EXPECT_THAT(list[0]["shortNames"], ElementsAre("wd"));
  EXPECT_THAT(list[0]["categories"], ElementsAre("nixmox"));
  EXPECT_EQ(list[1]["name"], "widgets/status");
}

TEST_F(KubeSimTest, InvalidCrdIsRejected) {
  json crd = WidgetCrd();
  crd["metadata"]["name"] = "wrong.name.io";
  Reply r = Do("POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", crd);
  EXPECT_EQ(r.status, 422);
  EXPECT_EQ(r.body["details"]["causes"][0]["field"], "metadata.name");
}

TEST_F(KubeSimTest, SchemaViolationsAreInvalidAndNameTheField) {
  InstallCrd();
  json w = Widget("bad", 0);
  w["spec"]["color"] = "purple";
  w["spec"]["label"] = "toolonglabel";
  w["spec"]["disks"] = {{{"size", 0}}, json::object()};
  w["spec"]["tags"] = {{"a", 1}};
  Reply r = Do("POST", kWidgets, w);
  ASSERT_EQ(r.status, 422) << r.raw;
  EXPECT_EQ(r.body["reason"], "Invalid");
  std::map<std::string, std::string> causes;
  for (const auto& c : r.body["details"]["causes"]) causes[c["field"]] = c["message"];
  EXPECT_EQ(causes["spec.size"],
            "Invalid value: 0: spec.size in body should be greater than or equal to 1");
  EXPECT_EQ(causes["spec.color"],
            "Unsupported value: \"purple\": supported values: \"red\", \"green\"");
  EXPECT_THAT(causes["spec.label"], HasSubstr("Too long: may not be more than 5 bytes"));
  EXPECT_THAT(causes["spec.disks[0].size"], HasSubstr("greater than or equal to 1"));
  EXPECT_EQ(causes["spec.disks[1].size"], "Required value");
  EXPECT_THAT(causes["spec.tags.a"], HasSubstr("must be of type string"));
  EXPECT_THAT(r.body["message"].get<std::string>(),
              HasSubstr("Widget.test.nixmox.io \"bad\" is invalid: ["));

  json missing = Widget("missing", 1);
  missing["spec"].erase("size");
  Reply m = Do("POST", kWidgets, missing);
  EXPECT_EQ(m.status, 422);
  EXPECT_EQ(m.body["message"],
            "Widget.test.nixmox.io \"missing\" is invalid: spec.size: Required value");

  json typed = Widget("typed", 1);
  typed["spec"]["size"] = "three";
  Reply t = Do("POST", kWidgets, typed);
  EXPECT_EQ(t.status, 422);
  EXPECT_EQ(t.body["details"]["causes"][0]["field"], "spec.size");

  json pattern = Widget("pattern", 1);
  pattern["spec"]["label"] = "A1";
  Reply p = Do("POST", kWidgets, pattern);
  EXPECT_EQ(p.body["details"]["causes"][0]["message"],
            "Invalid value: \"A1\": spec.label in body should match '^[a-z]+$'");
}

TEST_F(KubeSimTest, DefaultsAreAppliedAndUnknownFieldsPruned) {
  InstallCrd();
  json w = Widget("w", 1);
  w["spec"]["bogus"] = true;
  Reply r = Do("POST", kWidgets, w);
  ASSERT_EQ(r.status, 201) << r.raw;
  EXPECT_EQ(r.body["spec"]["color"], "green");
  EXPECT_FALSE(r.body["spec"].contains("bogus"));
  EXPECT_THAT(r.headers.Get("Warning").value_or(""), HasSubstr("unknown field \\\"spec.bogus\\\""));

  json strict = Widget("strict", 1);
  strict["spec"]["bogus"] = true;
  Reply s = Do("POST", std::string(kWidgets) + "?fieldValidation=Strict", strict);
  EXPECT_EQ(s.status, 400);
  EXPECT_THAT(s.body["message"].get<std::string>(),
              HasSubstr("strict decoding error: unknown field \"spec.bogus\""));
}

TEST_F(KubeSimTest, TableFormatUsesThePrinterColumns) {
  InstallCrd();
  Do("POST", kWidgets, Widget("w", 4));
  Patch(
      std::string(kWidgets) + "/w/status", "application/merge-patch+json",
      R"({"status":{"conditions":[{"type":"Other","status":"False"},{"type":"Ready","status":"True"}]}})");
  Reply r = Do("GET", std::string(kWidgets) + "?includeObject=Object", nullptr, "",
               "application/json;as=Table;v=v1;g=meta.k8s.io,application/json");
  ASSERT_EQ(r.status, 200) << r.raw;
  EXPECT_EQ(r.body["kind"], "Table");
  std::vector<std::string> columns;
  for (const auto& c : r.body["columnDefinitions"]) columns.push_back(c["name"]);
  EXPECT_THAT(columns, ElementsAre("Name", "Size", "Ready"));
  ASSERT_EQ(r.body["rows"].size(), 1u);
  EXPECT_EQ(r.body["rows"][0]["cells"], json::parse(R"(["w", 4, "True"])"));
  EXPECT_EQ(r.body["rows"][0]["object"]["kind"], "Widget");

  Reply builtin = Do("GET", "/api/v1/namespaces/default", nullptr, "",
                     "application/json;as=Table;v=v1;g=meta.k8s.io");
  EXPECT_EQ(builtin.body["rows"][0]["cells"][1], "Active");
  EXPECT_EQ(builtin.body["rows"][0]["object"]["kind"], "PartialObjectMetadata");
}

TEST_F(KubeSimTest, WatchDeliversAddedModifiedDeletedInOrder) {
  Reply list = Do("GET", kCms);
  std::string rv = list.body["metadata"]["resourceVersion"];
  Do("POST", kCms, ConfigMap("a"));
  Patch(std::string(kCms) + "/a", "application/merge-patch+json", R"({"data":{"k":"2"}})");
  Do("DELETE", std::string(kCms) + "/a");
  Collector c = Watch(std::string(kCms) + "?watch=true&resourceVersion=" + rv, 3);
  EXPECT_THAT(c.Types(), ElementsAre("ADDED", "MODIFIED", "DELETED"));
  EXPECT_EQ(c.events[1]["object"]["data"]["k"], "2");
  uint64_t last = 0;
  for (const auto& e : c.events) {
    uint64_t v = std::stoull(e["object"]["metadata"]["resourceVersion"].get<std::string>());
    EXPECT_GT(v, last);
    last = v;
  }
}

TEST_F(KubeSimTest, WatchWithoutResourceVersionStartsWithTheCurrentObjects) {
  Do("POST", kCms, ConfigMap("a"));
  Do("POST", kCms, ConfigMap("b"));
  Collector c = Watch(std::string(kCms) + "?watch=1", 2);
  EXPECT_THAT(c.Types(), ElementsAre("ADDED", "ADDED"));
}

TEST_F(KubeSimTest, WatchWithSelectorSeesObjectsLeaveAndEnterTheSelection) {
  std::string rv = Do("GET", kCms).body["metadata"]["resourceVersion"];
  Do("POST", kCms, ConfigMap("a", {{"app", "web"}}));
  Patch(std::string(kCms) + "/a", "application/merge-patch+json",
        R"({"metadata":{"labels":{"app":"db"}}})");
  Patch(std::string(kCms) + "/a", "application/merge-patch+json",
        R"({"metadata":{"labels":{"app":"web"}}})");
  Collector c =
      Watch(std::string(kCms) + "?watch=true&labelSelector=app%3Dweb&resourceVersion=" + rv, 3);
  EXPECT_THAT(c.Types(), ElementsAre("ADDED", "DELETED", "ADDED"));
}

TEST_F(KubeSimTest, WatchFromAVersionOutsideTheWindowIsGone) {
  Options o;
  o.watch_window = 2;
  Start(o);
  std::string rv = Do("GET", kCms).body["metadata"]["resourceVersion"];
  for (const char* n : {"a", "b", "c"}) Do("POST", kCms, ConfigMap(n));
  Collector c = Watch(std::string(kCms) + "?watch=true&resourceVersion=" + rv, 1);
  ASSERT_THAT(c.Types(), ElementsAre("ERROR"));
  EXPECT_EQ(c.events[0]["object"]["code"], 410);
  EXPECT_EQ(c.events[0]["object"]["reason"], "Expired");
  // A continue token from before the window is gone as well.
  Do("POST", kCms, ConfigMap("d"));
  std::string token = Do("GET", std::string(kCms) + "?limit=1").body["metadata"]["continue"];
  for (const char* n : {"e", "f", "g"}) Do("POST", kCms, ConfigMap(n));
  EXPECT_EQ(Do("GET", std::string(kCms) + "?limit=1&continue=" + http::PercentEncode(token)).status,
            410);
}

TEST_F(KubeSimTest, WatchSendsBookmarksWhenAskedFor) {
  Options o;
  o.bookmark_interval = std::chrono::milliseconds(0);
  Start(o);
  std::string rv = Do("GET", kCms).body["metadata"]["resourceVersion"];
  Collector c =
      Watch(std::string(kCms) + "?watch=true&allowWatchBookmarks=true&resourceVersion=" + rv, 1);
  ASSERT_THAT(c.Types(), ElementsAre("BOOKMARK"));
  EXPECT_EQ(c.events[0]["object"]["kind"], "ConfigMap");
  EXPECT_EQ(c.events[0]["object"]["metadata"]["resourceVersion"], rv);
}

TEST_F(KubeSimTest, WatchListEndsInitialEventsWithABookmark) {
  Do("POST", kCms, ConfigMap("a"));
  Collector c = Watch(std::string(kCms) +
                          "?watch=true&sendInitialEvents=true&allowWatchBookmarks=true&"
                          "resourceVersionMatch=NotOlderThan",
                      2);
  ASSERT_THAT(c.Types(), ElementsAre("ADDED", "BOOKMARK"));
  EXPECT_EQ(c.events[1]["object"]["metadata"]["annotations"]["k8s.io/initial-events-end"], "true");
}

TEST_F(KubeSimTest, WatchInTableFormatSendsRows) {
  std::string rv = Do("GET", kCms).body["metadata"]["resourceVersion"];
  Do("POST", kCms, ConfigMap("a"));
  Collector c = Watch(std::string(kCms) + "?watch=true&resourceVersion=" + rv, 1,
                      "application/json;as=Table;v=v1;g=meta.k8s.io");
  ASSERT_EQ(c.events.size(), 1u);
  EXPECT_EQ(c.events[0]["object"]["kind"], "Table");
  EXPECT_EQ(c.events[0]["object"]["rows"][0]["cells"][0], "a");
}

TEST_F(KubeSimTest, DeletingACrdRemovesItsObjectsAndItsResource) {
  InstallCrd();
  Do("POST", kWidgets, Widget("w", 1));
  Reply del = Do("DELETE",
                 "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/widgets.test.nixmox.io");
  EXPECT_EQ(del.status, 200);
  EXPECT_EQ(
      Do("GET", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/widgets.test.nixmox.io")
          .status,
      404);
  EXPECT_EQ(Do("GET", "/apis/test.nixmox.io/v1alpha1").status, 404);
  EXPECT_EQ(Do("GET", kWidgets).status, 404);
}

TEST_F(KubeSimTest, WatchOnACustomResourceEndsWhenItsCrdIsDeleted) {
  InstallCrd();
  Do("POST", kWidgets, Widget("w", 1));
  std::string rv = Do("GET", kWidgets).body["metadata"]["resourceVersion"];
  http::ServerResponse watch = sim_->Handle(
      Request("GET", std::string(kWidgets) + "?watch=true&resourceVersion=" + rv, "", "", ""));
  ASSERT_EQ(watch.status, 200);
  ASSERT_EQ(
      Do("DELETE", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/widgets.test.nixmox.io")
          .status,
      200);
  // Asks for more events than will come: the stream must end by itself.
  Collector c(100);
  watch.stream(c);
  EXPECT_THAT(c.Types(), ElementsAre("DELETED"));
}

TEST_F(KubeSimTest, CountsRequestsByVerbResourceAndSubresource) {
  InstallCrd();
  Do("POST", kCms, ConfigMap("a"));
  Do("GET", std::string(kCms) + "/a");
  Do("GET", kCms);
  Do("POST", kWidgets, Widget("w", 1));
  Patch(std::string(kWidgets) + "/w/status", "application/merge-patch+json",
        R"({"status": {"phase": "Up"}})");
  Do("GET", std::string(kWidgets) + "/w/status");
  Do("DELETE", std::string(kCms) + "/missing");  // failed requests count too
  Collector c = Watch(std::string(kCms) + "?watch=true", 1);

  Reply counters = Do("GET", "/_sim/requests");
  ASSERT_EQ(counters.status, 200);
  EXPECT_EQ(counters.body, json::parse(R"({
    "POST customresourcedefinitions.apiextensions.k8s.io": 1,
    "POST configmaps": 1, "GET configmaps": 1, "LIST configmaps": 1,
    "DELETE configmaps": 1, "WATCH configmaps": 1,
    "POST widgets.test.nixmox.io": 1, "PATCH widgets.test.nixmox.io/status": 1,
    "GET widgets.test.nixmox.io/status": 1})"));
  EXPECT_EQ(Do("DELETE", "/_sim/requests").status, 200);
  EXPECT_EQ(Do("GET", "/_sim/requests").body, json::object());
}

TEST_F(KubeSimTest, DropWatchesEndsOpenStreamsAndTheyCanResume) {
  const std::string rv = Rv(Do("POST", kCms, ConfigMap("a")).body);
  http::ServerResponse watch = sim_->Handle(
      Request("GET", std::string(kCms) + "?watch=true&resourceVersion=" + rv, "", "", ""));
  ASSERT_EQ(watch.status, 200);
  Collector c(100);  // more than will ever come: only the drop ends it
  std::thread streaming([&] { watch.stream(c); });
  Do("POST", kCms, ConfigMap("b"));
  int dropped = 0;
  for (int i = 0; i < 500 && dropped == 0; ++i) {
    dropped = Do("POST", "/_sim/drop-watches").body.value("dropped", 0);
    if (dropped == 0) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  streaming.join();
  EXPECT_EQ(dropped, 1);

  // Resuming from the last version seen delivers what the dropped one missed.
  std::vector<std::string> names;
  std::string last = rv;
  for (const json& e : c.events) {
    names.push_back(e["object"]["metadata"]["name"]);
    last = Rv(e["object"]);
  }
  Do("POST", kCms, ConfigMap("c"));
  Collector resumed =
      Watch(std::string(kCms) + "?watch=true&resourceVersion=" + last, 2 - names.size());
  for (const json& e : resumed.events) names.push_back(e["object"]["metadata"]["name"]);
  EXPECT_THAT(names, ElementsAre("b", "c"));
}

TEST_F(KubeSimTest, DeletingANamespaceRemovesItsContent) {
  ASSERT_EQ(Do("POST", "/api/v1/namespaces",
               {{"apiVersion", "v1"}, {"kind", "Namespace"}, {"metadata", {{"name", "tmp"}}}})
                .status,
            201);
  json cm = ConfigMap("held");
  cm["metadata"]["finalizers"] = {"example.com/hold"};
  ASSERT_EQ(Do("POST", "/api/v1/namespaces/tmp/configmaps", cm).status, 201);
  ASSERT_EQ(Do("DELETE", "/api/v1/namespaces/tmp").status, 200);
  Reply ns = Do("GET", "/api/v1/namespaces/tmp");
  EXPECT_EQ(ns.body["status"]["phase"], "Terminating");
  EXPECT_EQ(Do("POST", "/api/v1/namespaces/tmp/configmaps", ConfigMap("new")).status, 403);
  Patch("/api/v1/namespaces/tmp/configmaps/held", "application/merge-patch+json",
        R"({"metadata":{"finalizers":null}})");
  EXPECT_EQ(Do("GET", "/api/v1/namespaces/tmp").status, 404);
}

TEST_F(KubeSimTest, SecretStringDataIsStoredBase64Encoded) {
  json s = {{"apiVersion", "v1"},
            {"kind", "Secret"},
            {"metadata", {{"name", "s"}}},
            {"stringData", {{"token", "abc"}}}};
  Reply r = Do("POST", "/api/v1/namespaces/default/secrets", s);
  ASSERT_EQ(r.status, 201);
  EXPECT_EQ(r.body["data"]["token"], "YWJj");
  EXPECT_EQ(r.body["type"], "Opaque");
  EXPECT_FALSE(r.body.contains("stringData"));
}

TEST_F(KubeSimTest, JobsGetSelectorAndDefaults) {
  json job = json::parse(R"({"apiVersion":"batch/v1","kind":"Job","metadata":{"name":"j"},
    "spec":{"template":{"spec":{"restartPolicy":"Never",
      "containers":[{"name":"c","image":"busybox","command":["true"]}]}}}})");
  Reply r = Do("POST", "/apis/batch/v1/namespaces/default/jobs", job);
  ASSERT_EQ(r.status, 201) << r.raw;
  EXPECT_EQ(r.body["spec"]["backoffLimit"], 6);
  std::string uid = r.body["metadata"]["uid"];
  EXPECT_EQ(r.body["spec"]["selector"]["matchLabels"]["batch.kubernetes.io/controller-uid"], uid);
  EXPECT_EQ(r.body["spec"]["template"]["metadata"]["labels"]["job-name"], "j");
  json bad = job;
  bad["metadata"]["name"] = "bad";
  bad["spec"]["template"]["spec"].erase("restartPolicy");
  Reply b = Do("POST", "/apis/batch/v1/namespaces/default/jobs", bad);
  EXPECT_EQ(b.status, 422);
  EXPECT_EQ(b.body["details"]["causes"][0]["field"], "spec.template.spec.restartPolicy");
}

json Deployment(const std::string& name, json selector_labels, json template_labels) {
  return {{"apiVersion", "apps/v1"},
          {"kind", "Deployment"},
          {"metadata", {{"name", name}}},
          {"spec",
           {{"selector", {{"matchLabels", selector_labels}}},
            {"template",
             {{"metadata", {{"labels", template_labels}}},
              {"spec",
               {{"containers",
                 {{{"name", "c"},
                   {"image", "operator:1"},
                   {"ports", {{{"containerPort", 8080}}}}}}}}}}}}}};
}

const char kDeployments[] = "/apis/apps/v1/namespaces/default/deployments";
const char kRbac[] = "/apis/rbac.authorization.k8s.io/v1";

TEST_F(KubeSimTest, DeploymentsGetTheAppsDefaultsAndAnEmptyStatus) {
  Reply r = Do("POST", kDeployments, Deployment("op", {{"app", "op"}}, {{"app", "op"}}));
  ASSERT_EQ(r.status, 201) << r.raw;
  const json& spec = r.body["spec"];
  EXPECT_EQ(spec["replicas"], 1);
  EXPECT_EQ(spec["strategy"]["type"], "RollingUpdate");
  EXPECT_EQ(spec["strategy"]["rollingUpdate"]["maxSurge"], "25%");
  EXPECT_EQ(spec["revisionHistoryLimit"], 10);
  EXPECT_EQ(spec["progressDeadlineSeconds"], 600);
  const json& pod = spec["template"]["spec"];
  EXPECT_EQ(pod["restartPolicy"], "Always");
  EXPECT_FALSE(pod.contains("serviceAccountName"));  // only pods get "default"
  EXPECT_EQ(pod["containers"][0]["terminationMessagePolicy"], "File");
  EXPECT_EQ(pod["containers"][0]["ports"][0]["protocol"], "TCP");
  EXPECT_EQ(r.body["metadata"]["generation"], 1);
  EXPECT_EQ(r.body["status"], json::object());

  // The spec moves the generation; status is written only through /status.
  json next = r.body;
  next["spec"]["replicas"] = 2;
  next["status"] = {{"readyReplicas", 2}};
  Reply updated = Do("PUT", std::string(kDeployments) + "/op", next);
  ASSERT_EQ(updated.status, 200) << updated.raw;
  EXPECT_EQ(updated.body["metadata"]["generation"], 2);
  EXPECT_EQ(updated.body["status"], json::object());
}

TEST_F(KubeSimTest, DeploymentSelectorMustMatchItsTemplateAndNeverChange) {
  Reply missing = Do("POST", kDeployments, Deployment("a", {{"app", "a"}}, {{"app", "other"}}));
  ASSERT_EQ(missing.status, 422) << missing.raw;
  EXPECT_EQ(missing.body["details"]["causes"][0]["field"], "spec.template.metadata.labels");
  EXPECT_THAT(missing.body["message"].get<std::string>(),
              HasSubstr("map[string]string{\"app\":\"other\"}: `selector` does not match "
                        "template `labels`"));

  json never = Deployment("b", {{"app", "b"}}, {{"app", "b"}});
  never["spec"]["template"]["spec"]["restartPolicy"] = "Never";
  Reply restart = Do("POST", kDeployments, never);
  ASSERT_EQ(restart.status, 422);
  EXPECT_EQ(restart.body["details"]["causes"][0]["field"], "spec.template.spec.restartPolicy");

  Reply created =
      Do("POST", kDeployments, Deployment("c", {{"app", "c"}}, {{"app", "c"}, {"tier", "x"}}));
  ASSERT_EQ(created.status, 201) << created.raw;
  Reply moved = Patch(std::string(kDeployments) + "/c", "application/strategic-merge-patch+json",
                      R"({"spec":{"selector":{"matchLabels":{"tier":"x"}}}})");
  EXPECT_EQ(moved.status, 422);
  EXPECT_THAT(moved.raw, HasSubstr("field is immutable"));
}

TEST_F(KubeSimTest, RbacKindsAreServedWithTheirScopes) {
  Reply list = Do("GET", kRbac);
  ASSERT_EQ(list.status, 200) << list.raw;
  std::map<std::string, bool> namespaced;
  for (const auto& r : list.body["resources"]) namespaced[r["name"]] = r["namespaced"];
  EXPECT_EQ(namespaced, (std::map<std::string, bool>{{"clusterrolebindings", false},
                                                     {"clusterroles", false},
                                                     {"rolebindings", true},
                                                     {"roles", true}}));
  json role = json::parse(R"({"apiVersion":"rbac.authorization.k8s.io/v1","kind":"ClusterRole",
    "metadata":{"name":"reader","namespace":"ignored"},
    "rules":[{"apiGroups":[""],"resources":["pods"],"verbs":["get"]},
             {"nonResourceURLs":["/healthz"],"verbs":["get"]}]})");
  Reply created = Do("POST", std::string(kRbac) + "/clusterroles", role);
  ASSERT_EQ(created.status, 201) << created.raw;
  EXPECT_FALSE(created.body["metadata"].contains("namespace"));
  EXPECT_EQ(Do("GET", std::string(kRbac) + "/clusterroles/reader").status, 200);

  // A namespaced Role may not name non-resource URLs, and every rule needs verbs.
  json bad = role;
  bad["kind"] = "Role";
  bad["metadata"] = {{"name", "bad"}};
  bad["rules"][0].erase("verbs");
  Reply rejected = Do("POST", std::string(kRbac) + "/namespaces/default/roles", bad);
  ASSERT_EQ(rejected.status, 422) << rejected.raw;
  std::vector<std::string> fields;
  for (const auto& c : rejected.body["details"]["causes"]) fields.push_back(c["field"]);
  EXPECT_THAT(fields, ElementsAre("rules[0].verbs", "rules[1].nonResourceURLs"));
}

TEST_F(KubeSimTest, RoleBindingsDefaultTheirGroupsAndKeepTheirRoleRef) {
  json binding = json::parse(R"({"apiVersion":"rbac.authorization.k8s.io/v1",
    "kind":"ClusterRoleBinding","metadata":{"name":"op"},
    "roleRef":{"kind":"ClusterRole","name":"reader"},
    "subjects":[{"kind":"ServiceAccount","name":"op","namespace":"default"},
                {"kind":"Group","name":"admins"}]})");
  Reply created = Do("POST", std::string(kRbac) + "/clusterrolebindings", binding);
  ASSERT_EQ(created.status, 201) << created.raw;
  EXPECT_EQ(created.body["roleRef"]["apiGroup"], "rbac.authorization.k8s.io");
  EXPECT_EQ(created.body["subjects"][1]["apiGroup"], "rbac.authorization.k8s.io");
  Reply changed = Patch(std::string(kRbac) + "/clusterrolebindings/op",
                        "application/merge-patch+json", R"({"roleRef":{"name":"writer"}})");
  EXPECT_EQ(changed.status, 422);
  EXPECT_THAT(changed.raw, HasSubstr("cannot change roleRef"));

  // A cluster role binding's service account needs a namespace; Role is not bindable there.
  json bad = binding;
  bad["metadata"]["name"] = "bad";
  bad["roleRef"]["kind"] = "Role";
  bad["subjects"][0].erase("namespace");
  Reply rejected = Do("POST", std::string(kRbac) + "/clusterrolebindings", bad);
  ASSERT_EQ(rejected.status, 422) << rejected.raw;
  const std::string message = rejected.body["message"];
  EXPECT_THAT(message, HasSubstr("roleRef.kind: Unsupported value: \"Role\""));
  EXPECT_THAT(message, HasSubstr("subjects[0].namespace: Required value"));

  Reply table = Do("GET", std::string(kRbac) + "/clusterrolebindings", nullptr, "",
                   "application/json;as=Table;v=v1;g=meta.k8s.io");
  std::vector<std::string> columns;
  for (const auto& c : table.body["columnDefinitions"]) columns.push_back(c["name"]);
  EXPECT_THAT(columns, ElementsAre("Name", "Role", "Age"));
  EXPECT_EQ(table.body["rows"][0]["cells"][1], "ClusterRole/reader");
}

TEST_F(KubeSimTest, PodDisruptionBudgetsTakeMinAvailableOrMaxUnavailable) {
  const std::string pdbs = "/apis/policy/v1/namespaces/default/poddisruptionbudgets";
  json pdb = json::parse(R"({"apiVersion":"policy/v1","kind":"PodDisruptionBudget",
    "metadata":{"name":"op"},
    "spec":{"minAvailable":1,"selector":{"matchLabels":{"app":"op"}}}})");
  Reply created = Do("POST", pdbs, pdb);
  ASSERT_EQ(created.status, 201) << created.raw;
  EXPECT_EQ(created.body["status"]["disruptionsAllowed"], 0);
  EXPECT_EQ(created.body["status"]["expectedPods"], 0);
  Reply table = Do("GET", pdbs, nullptr, "", "application/json;as=Table;v=v1;g=meta.k8s.io");
  EXPECT_EQ(table.body["rows"][0]["cells"][1], "1");
  EXPECT_EQ(table.body["rows"][0]["cells"][2], "N/A");

  json both = pdb;
  both["metadata"]["name"] = "both";
  both["spec"]["maxUnavailable"] = "150%";
  Reply rejected = Do("POST", pdbs, both);
  ASSERT_EQ(rejected.status, 422) << rejected.raw;
  const std::string message = rejected.body["message"];
  EXPECT_THAT(message, HasSubstr("minAvailable and maxUnavailable cannot be both set"));
  EXPECT_THAT(message,
              HasSubstr("spec.maxUnavailable: Invalid value: \"150%\": must not be greater "
                        "than 100%"));
}

TEST_F(KubeSimTest, DeploymentTableShowsReadyOfDesiredReplicas) {
  Reply created = Do("POST", kDeployments, Deployment("op", {{"app", "op"}}, {{"app", "op"}}));
  ASSERT_EQ(created.status, 201) << created.raw;
  Reply status =
      Patch(std::string(kDeployments) + "/op/status", "application/merge-patch+json",
            R"({"status":{"readyReplicas":1,"updatedReplicas":1,"availableReplicas":1}})");
  ASSERT_EQ(status.status, 200) << status.raw;
  Reply table =
      Do("GET", kDeployments, nullptr, "", "application/json;as=Table;v=v1;g=meta.k8s.io");
  std::vector<std::string> columns;
  for (const auto& c : table.body["columnDefinitions"]) columns.push_back(c["name"]);
  EXPECT_THAT(columns, ElementsAre("Name", "Ready", "Up-to-date", "Available", "Age"));
  EXPECT_EQ(table.body["rows"][0]["cells"][1], "1/1");
  EXPECT_EQ(table.body["rows"][0]["cells"][3], 1);
}

TEST_F(KubeSimTest, AggregatedDiscoveryListsGroupsResourcesAndSubresources) {
  InstallCrd();
  const std::string accept =
      "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json";
  Reply apis = Do("GET", "/apis", nullptr, "", accept);
  ASSERT_EQ(apis.status, 200);
  EXPECT_THAT(apis.headers.Get("Content-Type").value_or(""), HasSubstr("as=APIGroupDiscoveryList"));
  EXPECT_EQ(apis.body["kind"], "APIGroupDiscoveryList");
  json widgets;
  for (const auto& g : apis.body["items"]) {
    if (g["metadata"]["name"] != "test.nixmox.io") continue;
    widgets = g["versions"][0]["resources"][0];
  }
  ASSERT_TRUE(widgets.is_object()) << apis.raw;
  EXPECT_EQ(widgets["resource"], "widgets");
  EXPECT_EQ(widgets["scope"], "Namespaced");
  EXPECT_EQ(widgets["responseKind"]["kind"], "Widget");
  EXPECT_EQ(widgets["subresources"][0]["subresource"], "status");
  // Without the aggregated type in Accept, the legacy document comes back.
  Reply legacy = Do("GET", "/apis");
  EXPECT_EQ(legacy.body["kind"], "APIGroupList");
  Reply core = Do("GET", "/api", nullptr, "", accept);
  EXPECT_EQ(core.body["items"][0]["versions"][0]["version"], "v1");
}

TEST_F(KubeSimTest, DiscoveryAndOpenApiDescribeTheBuiltins) {
  Reply api = Do("GET", "/api");
  EXPECT_THAT(api.body["versions"], ElementsAre("v1"));
  Reply v1 = Do("GET", "/api/v1");
  std::vector<std::string> names;
  for (const auto& r : v1.body["resources"]) names.push_back(r["name"]);
  EXPECT_THAT(names,
              ::testing::IsSupersetOf({"namespaces", "secrets", "configmaps", "events", "pods",
                                       "pods/status", "pods/log", "serviceaccounts", "services"}));
  EXPECT_EQ(Do("GET", "/apis/batch/v1").status, 200);
  EXPECT_EQ(Do("GET", "/apis/coordination.k8s.io/v1").status, 200);
  EXPECT_EQ(Do("GET", "/version").body["major"], "1");
  Reply root = Do("GET", "/openapi/v3");
  ASSERT_TRUE(root.body["paths"].contains("apis/batch/v1"));
  std::string url = root.body["paths"]["apis/batch/v1"]["serverRelativeURL"];
  Reply doc = Do("GET", url);
  ASSERT_EQ(doc.status, 200);
  const json& patch =
      doc.body["paths"]["/apis/batch/v1/namespaces/{namespace}/jobs/{name}"]["patch"];
  EXPECT_EQ(patch["x-kubernetes-group-version-kind"]["kind"], "Job");
}

// Protobuf wire encoding, enough to build what kubectl's typed client sends.
std::string Varint(uint64_t v) {
  std::string out;
  while (v >= 0x80) {
    out += char((v & 0x7f) | 0x80);
    v >>= 7;
  }
  out += char(v);
  return out;
}
std::string Bytes(int field, const std::string& data) {
  return Varint(uint64_t(field) << 3 | 2) + Varint(data.size()) + data;
}
std::string Entry(int field, const std::string& k, const std::string& v) {
  return Bytes(field, Bytes(1, k) + Bytes(2, v));
}

TEST_F(KubeSimTest, DecodesProtobufBodiesOfTheKindsKubectlCreates) {
  std::string meta = Bytes(1, "pb") + Entry(11, "app", "web");
  std::string secret = Bytes(1, meta) + Entry(2, "token", "abc") + Bytes(3, "Opaque");
  std::string envelope =
      std::string("k8s\0", 4) + Bytes(1, Bytes(1, "v1") + Bytes(2, "Secret")) + Bytes(2, secret);
  http::ServerRequest req = Request("POST", "/api/v1/namespaces/default/secrets", envelope,
                                    "application/vnd.kubernetes.protobuf", "");
  http::ServerResponse resp = sim_->Handle(req);
  ASSERT_EQ(resp.status, 201) << resp.body;
  json body = json::parse(resp.body);
  EXPECT_EQ(body["metadata"]["name"], "pb");
  EXPECT_EQ(body["metadata"]["labels"]["app"], "web");
  EXPECT_EQ(body["data"]["token"], "YWJj");

  std::string pod = std::string("k8s\0", 4) + Bytes(1, Bytes(1, "v1") + Bytes(2, "Pod")) +
                    Bytes(2, Bytes(1, Bytes(1, "p")));
  EXPECT_EQ(sim_->Handle(Request("POST", "/api/v1/namespaces/default/pods", pod,
                                 "application/vnd.kubernetes.protobuf", ""))
                .status,
            415);
}

TEST_F(KubeSimTest, UpdatingACrdChangesWhatIsServed) {
  InstallCrd();
  Do("POST", kWidgets, Widget("w", 4));
  Reply crd =
      Do("GET", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/widgets.test.nixmox.io");
  json next = crd.body;
  next["spec"]["versions"][0]["additionalPrinterColumns"] = {
      {{"name", "Colour"}, {"type", "string"}, {"jsonPath", ".spec.color"}}};
  Reply updated =
      Do("PUT", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/widgets.test.nixmox.io",
         next);
  ASSERT_EQ(updated.status, 200) << updated.raw;
  EXPECT_EQ(updated.body["metadata"]["generation"], 2);
  Reply table = Do("GET", kWidgets, nullptr, "", "application/json;as=Table;v=v1;g=meta.k8s.io");
  EXPECT_EQ(table.body["rows"][0]["cells"], json::parse(R"(["w", "green"])"));
}

TEST_F(KubeSimTest, OwnerReferencesNeedTheirIdentifyingFields) {
  json cm = ConfigMap("a");
  cm["metadata"]["ownerReferences"] = {
      {{"apiVersion", "v1"}, {"kind", "ConfigMap"}, {"name", "x"}}};
  Reply r = Do("POST", kCms, cm);
  EXPECT_EQ(r.status, 422);
  EXPECT_EQ(r.body["details"]["causes"][0]["field"], "metadata.ownerReferences[0].uid");
}

TEST_F(KubeSimTest, DryRunWritesNothing) {
  Reply r = Do("POST", std::string(kCms) + "?dryRun=All", ConfigMap("a"));
  EXPECT_EQ(r.status, 201);
  EXPECT_EQ(Do("GET", std::string(kCms) + "/a").status, 404);
}

TEST_F(KubeSimTest, DeletePreconditionsAreChecked) {
  Do("POST", kCms, ConfigMap("a"));
  Reply r = Do("DELETE", std::string(kCms) + "/a", {{"preconditions", {{"uid", "not-it"}}}});
  EXPECT_EQ(r.status, 409);
  EXPECT_EQ(Do("GET", std::string(kCms) + "/a").status, 200);
}

TEST(JsonPathTest, EvaluatesPrinterColumnPaths) {
  json o = json::parse(R"({"spec":{"a":[{"n":1},{"n":2}]},
    "status":{"conditions":[{"type":"A","status":"False"},{"type":"Ready","status":"True"}]}})");
  EXPECT_EQ(EvalJsonPath(o, ".spec.a[1].n")[0], 2);
  EXPECT_EQ(EvalJsonPath(o, ".spec.a[*].n").size(), 2u);
  EXPECT_EQ(EvalJsonPath(o, ".status.conditions[?(@.type==\"Ready\")].status")[0], "True");
  EXPECT_TRUE(EvalJsonPath(o, ".spec.missing").empty());
}

TEST(HumanDurationTest, PrintsAgesLikeKubectl) {
  using std::chrono::seconds;
  EXPECT_EQ(HumanDuration(seconds(5)), "5s");
  EXPECT_EQ(HumanDuration(seconds(150)), "2m30s");
  EXPECT_EQ(HumanDuration(seconds(3600 * 3)), "3h");
  EXPECT_EQ(HumanDuration(seconds(86400 * 3)), "3d");
}

}  // namespace
}  // namespace nixmox::kubesim
