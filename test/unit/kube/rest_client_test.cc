#include "src/kube/rest_client.h"

#include <gtest/gtest.h>

#include "test/unit/kube/fake_http.h"

namespace nixmox::kube {
namespace {

using testing::FakeHttpClient;

const ResourceType kVms{"nixmox.io", "v1alpha1", "proxmoxvms", true, "ProxmoxVM"};

class RestClientTest : public ::testing::Test {
 protected:
  std::shared_ptr<FakeHttpClient> http_ = std::make_shared<FakeHttpClient>();
  RestClient client_{http_, StaticToken("s3cret-token")};
};

TEST(ResourcePathTest, CoreAndGroupNamespacedAndCluster) {
  EXPECT_EQ(ResourcePath(resources::Pods(), "ns", "p"), "/api/v1/namespaces/ns/pods/p");
  EXPECT_EQ(ResourcePath(resources::Pods(), ""), "/api/v1/pods");
  EXPECT_EQ(ResourcePath(resources::Namespaces(), "ignored", "kube-system"),
            "/api/v1/namespaces/kube-system");
  EXPECT_EQ(ResourcePath(kVms, "default", "web", "status"),
            "/apis/nixmox.io/v1alpha1/namespaces/default/proxmoxvms/web/status");
  EXPECT_EQ(ResourcePath(kVms, "default"),
            "/apis/nixmox.io/v1alpha1/namespaces/default/proxmoxvms");
  const ResourceType crd{"apiextensions.k8s.io", "v1", "customresourcedefinitions", false,
                         "CustomResourceDefinition"};
  EXPECT_EQ(ResourcePath(crd, "", "x.nixmox.io"),
            "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/x.nixmox.io");
}

TEST(ResourcePathTest, ListQueryEncodesSelectorsAndPaging) {
  ListOptions o;
  o.label_selector = "app=web,tier in (a,b)";
  o.field_selector = "metadata.name=x";
  o.limit = 50;
  o.continue_token = "tok";
  auto q = ListQuery(o, false);
  EXPECT_EQ(http::EncodeQuery(q),
            "labelSelector=app%3Dweb%2Ctier%20in%20%28a%2Cb%29&fieldSelector=metadata.name%3Dx"
            "&limit=50&continue=tok");
  ListOptions w;
  w.resource_version = "42";
  w.allow_watch_bookmarks = true;
  w.timeout_seconds = 300;
  w.limit = 5;  // ignored for watches
  EXPECT_EQ(http::EncodeQuery(ListQuery(w, true)),
            "resourceVersion=42&watch=true&allowWatchBookmarks=true&timeoutSeconds=300");
}

TEST_F(RestClientTest, GetSendsBearerTokenAndParsesObject) {
  http_->Push(200, R"({"metadata":{"name":"web","namespace":"default"}})");
  auto obj = client_.Get(kVms, "default", "web");
  ASSERT_TRUE(obj.ok()) << obj.status().ToString();
  EXPECT_EQ(NameOf(*obj), "web");
  auto req = http_->last();
  EXPECT_EQ(req.method, "GET");
  EXPECT_EQ(req.target, "/apis/nixmox.io/v1alpha1/namespaces/default/proxmoxvms/web");
  EXPECT_EQ(req.headers.Get("Authorization"), "Bearer s3cret-token");
}

TEST_F(RestClientTest, GetNotFoundNeverLeaksToken) {
  http_->Push(
      404,
      R"({"kind":"Status","reason":"NotFound","message":"proxmoxvms \"web\" not found","code":404})");
  auto obj = client_.Get(kVms, "default", "web");
  EXPECT_EQ(obj.status().code(), Code::kNotFound);
  EXPECT_EQ(obj.status().ToString().find("s3cret"), std::string::npos);
}

TEST_F(RestClientTest, WithTimeoutBoundsEachRequest) {
  http_->Push(200, "{}");
  auto bounded = client_.WithTimeout(std::chrono::milliseconds(5000));
  ASSERT_TRUE(bounded->Get(resources::Leases(), "ns", "l").ok());
  EXPECT_EQ(http_->last().timeout, std::chrono::milliseconds(5000));
  EXPECT_EQ(http_->last().headers.Get("Authorization"), "Bearer s3cret-token");
  http_->Push(200, "{}");
  ASSERT_TRUE(client_.Get(resources::Leases(), "ns", "l").ok());
  EXPECT_FALSE(http_->last().timeout.has_value());
}

TEST_F(RestClientTest, TransportErrorKeepsCode) {
  http_->PushError(RetryableError("connection refused"));
  EXPECT_EQ(client_.Get(kVms, "default", "web").status().code(), Code::kRetryable);
}

TEST_F(RestClientTest, ListReadsItemsVersionAndContinue) {
  http_->Push(200, R"({"kind":"ProxmoxVMList","metadata":{"resourceVersion":"77","continue":"c1"},
                       "items":[{"metadata":{"name":"a","namespace":"n"}}]})");
  ListOptions o;
  o.label_selector = "app=x";
  o.limit = 1;
  auto list = client_.List(kVms, "n", o);
  ASSERT_TRUE(list.ok());
  EXPECT_EQ(list->resource_version, "77");
  EXPECT_EQ(list->continue_token, "c1");
  ASSERT_EQ(list->items.size(), 1u);
  // List items come without apiVersion/kind; the client restores them.
  EXPECT_EQ(list->items[0]["kind"], "ProxmoxVM");
  EXPECT_EQ(list->items[0]["apiVersion"], "nixmox.io/v1alpha1");
  EXPECT_EQ(http_->last().target,
            "/apis/nixmox.io/v1alpha1/namespaces/n/proxmoxvms?labelSelector=app%3Dx&limit=1");
}

TEST_F(RestClientTest, ListAllFollowsContinueTokens) {
  http_->Push(
      200,
      R"({"metadata":{"resourceVersion":"5","continue":"p2"},"items":[{"metadata":{"name":"a"}}]})");
  http_->Push(200, R"({"metadata":{"resourceVersion":"5"},"items":[{"metadata":{"name":"b"}}]})");
  auto all = ListAll(client_, resources::Namespaces(), "", {}, 1);
  ASSERT_TRUE(all.ok());
  EXPECT_EQ(all->items.size(), 2u);
  auto reqs = http_->requests();
  ASSERT_EQ(reqs.size(), 2u);
  EXPECT_EQ(reqs[0].target, "/api/v1/namespaces?limit=1");
  EXPECT_EQ(reqs[1].target, "/api/v1/namespaces?limit=1&continue=p2");
}

TEST_F(RestClientTest, CreatePostsToCollectionOfObjectNamespace) {
  http_->Push(201, R"({"metadata":{"name":"web","namespace":"prod","uid":"u1"}})");
  nlohmann::json obj = {{"apiVersion", "nixmox.io/v1alpha1"},
                        {"kind", "ProxmoxVM"},
                        {"metadata", {{"name", "web"}, {"namespace", "prod"}}}};
  auto created = client_.Create(kVms, obj);
  ASSERT_TRUE(created.ok());
  EXPECT_EQ(UidOf(*created), "u1");
  auto req = http_->last();
  EXPECT_EQ(req.method, "POST");
  EXPECT_EQ(req.target, "/apis/nixmox.io/v1alpha1/namespaces/prod/proxmoxvms");
  EXPECT_EQ(req.headers.Get("Content-Type"), "application/json");
  EXPECT_EQ(nlohmann::json::parse(FakeHttpClient::Body(req)), obj);
}

TEST_F(RestClientTest, CreateNamespacedWithoutNamespaceIsInvalid) {
  auto created = client_.Create(kVms, {{"metadata", {{"name", "web"}}}});
  EXPECT_EQ(created.status().code(), Code::kInvalid);
  EXPECT_TRUE(http_->requests().empty());
}

TEST_F(RestClientTest, AlreadyExistsAndConflictAreDistinct) {
  http_->Push(409, R"({"kind":"Status","reason":"AlreadyExists","code":409})");
  http_->Push(409, R"({"kind":"Status","reason":"Conflict","code":409})");
  nlohmann::json obj = {
      {"metadata", {{"name", "web"}, {"namespace", "n"}, {"resourceVersion", "1"}}}};
  EXPECT_EQ(client_.Create(kVms, obj).status().code(), Code::kAlreadyExists);
  EXPECT_EQ(client_.Update(kVms, obj).status().code(), Code::kConflict);
  EXPECT_EQ(http_->last().method, "PUT");
  EXPECT_EQ(http_->last().target, "/apis/nixmox.io/v1alpha1/namespaces/n/proxmoxvms/web");
}

TEST_F(RestClientTest, UpdateStatusPutsToStatusSubresource) {
  http_->Push(200, R"({"metadata":{"name":"web"}})");
  nlohmann::json obj = {{"metadata", {{"name", "web"}, {"namespace", "n"}}},
                        {"status", {{"phase", "Running"}}}};
  ASSERT_TRUE(client_.UpdateStatus(kVms, obj).ok());
  EXPECT_EQ(http_->last().method, "PUT");
  EXPECT_EQ(http_->last().target, "/apis/nixmox.io/v1alpha1/namespaces/n/proxmoxvms/web/status");
}

TEST_F(RestClientTest, PatchUsesContentTypeOfPatchKind) {
  http_->Push(200, "{}");
  http_->Push(200, "{}");
  http_->Push(200, "{}");
  ASSERT_TRUE(client_.Patch(kVms, "n", "web", PatchType::kMerge, {{"spec", {{"cores", 2}}}}).ok());
  EXPECT_EQ(http_->last().headers.Get("Content-Type"), "application/merge-patch+json");
  EXPECT_EQ(http_->last().method, "PATCH");
  nlohmann::json ops =
      nlohmann::json::array({{{"op", "remove"}, {"path", "/metadata/finalizers/0"}}});
  ASSERT_TRUE(client_.Patch(kVms, "n", "web", PatchType::kJson, ops).ok());
  EXPECT_EQ(http_->last().headers.Get("Content-Type"), "application/json-patch+json");
  EXPECT_EQ(nlohmann::json::parse(FakeHttpClient::Body(http_->last())), ops);
  ASSERT_TRUE(client_.Patch(kVms, "n", "web", PatchType::kMerge, {{"status", {}}}, "status").ok());
  EXPECT_EQ(http_->last().target, "/apis/nixmox.io/v1alpha1/namespaces/n/proxmoxvms/web/status");
}

TEST_F(RestClientTest, DeleteSendsPreconditionsAndPropagation) {
  http_->Push(200, R"({"kind":"Status","status":"Success"})");
  DeleteOptions o;
  o.propagation_policy = "Foreground";
  o.precondition_uid = "u1";
  o.precondition_resource_version = "9";
  ASSERT_TRUE(client_.Delete(resources::Jobs(), "n", "build-1", o).ok());
  auto req = http_->last();
  EXPECT_EQ(req.method, "DELETE");
  EXPECT_EQ(req.target, "/apis/batch/v1/namespaces/n/jobs/build-1");
  auto body = nlohmann::json::parse(FakeHttpClient::Body(req));
  EXPECT_EQ(body["propagationPolicy"], "Foreground");
  EXPECT_EQ(body["preconditions"]["uid"], "u1");
  EXPECT_EQ(body["preconditions"]["resourceVersion"], "9");
  EXPECT_EQ(body["kind"], "DeleteOptions");
}

TEST_F(RestClientTest, WatchDeliversEventsInOrder) {
  http_->PushStream(
      {R"({"type":"ADDED","object":{"metadata":{"name":"a","resourceVersion":"2"}}})", "",
       R"({"type":"MODIFIED","object":{"metadata":{"name":"a","resourceVersion":"3"}}})",
       R"({"type":"BOOKMARK","object":{"metadata":{"resourceVersion":"4"}}})",
       R"({"type":"DELETED","object":{"metadata":{"name":"a","resourceVersion":"5"}}})"});
  std::vector<WatchEvent::Type> types;
  ListOptions o;
  o.resource_version = "1";
  o.allow_watch_bookmarks = true;
  Status s = client_.Watch(kVms, "", o, [&](const WatchEvent& e) {
    types.push_back(e.type);
    return true;
  });
  EXPECT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(types, (std::vector<WatchEvent::Type>{
                       WatchEvent::Type::kAdded, WatchEvent::Type::kModified,
                       WatchEvent::Type::kBookmark, WatchEvent::Type::kDeleted}));
  EXPECT_EQ(
      http_->last().target,
      "/apis/nixmox.io/v1alpha1/proxmoxvms?resourceVersion=1&watch=true&allowWatchBookmarks=true");
  EXPECT_EQ(http_->last().headers.Get("Authorization"), "Bearer s3cret-token");
}

TEST_F(RestClientTest, WatchErrorEventEndsWithGone) {
  http_->PushStream(
      {R"({"type":"ERROR","object":{"kind":"Status","reason":"Expired","code":410,"message":"too old resource version"}})",
       R"({"type":"ADDED","object":{"metadata":{"name":"never"}}})"});
  int events = 0;
  Status s = client_.Watch(kVms, "n", {}, [&](const WatchEvent&) {
    ++events;
    return true;
  });
  EXPECT_EQ(s.code(), Code::kGone);
  EXPECT_EQ(events, 0);
}

TEST_F(RestClientTest, WatchHttpGoneIsGone) {
  http_->Push(410, R"({"kind":"Status","reason":"Expired","code":410})");
  Status s = client_.Watch(kVms, "n", {}, [](const WatchEvent&) { return true; });
  EXPECT_EQ(s.code(), Code::kGone);
}

TEST_F(RestClientTest, WatchGarbageLineIsInternal) {
  http_->PushStream({"not json"});
  EXPECT_EQ(client_.Watch(kVms, "n", {}, [](const WatchEvent&) { return true; }).code(),
            Code::kInternal);
}

}  // namespace
}  // namespace nixmox::kube
