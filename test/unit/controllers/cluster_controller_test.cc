#include "src/controllers/cluster_controller.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "src/api/json.h"
#include "src/api/reasons.h"
#include "src/controllers/resources.h"
#include "src/kube/conditions.h"
#include "src/kube/fake_client.h"
#include "test/unit/controllers/sim_world.h"

namespace nixmox::controllers {
namespace {

using nlohmann::json;
using std::chrono::milliseconds;
using std::chrono::seconds;
using ::testing::Contains;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using testing::kTokenId;
using testing::kTokenSecret;
using ::testing::Not;
using testing::SimWorld;

constexpr char kNs[] = "default";
constexpr char kName[] = "lab";
constexpr char kKey[] = "default/lab";
constexpr char kSecretName[] = "pve-token";
constexpr char kWrongSecret[] = "00000000-dead-beef-0000-000000000000";
// A second secret Proxmox accepts, as while a token is being rotated.
constexpr char kRotatedSecret[] = "9c1d7e2a-4b6f-4e3a-8d15-7a0b3c9e2f64";
constexpr char kCaPem[] = "-----BEGIN CERTIFICATE-----\nMIIBtest\n-----END CERTIFICATE-----\n";

std::string Base64(std::string_view in) {
  static constexpr char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  unsigned bits = 0;
  int count = 0;
  for (unsigned char c : in) {
    bits = (bits << 8) | c;
    count += 8;
    while (count >= 6) {
      count -= 6;
      out += kAlphabet[(bits >> count) & 0x3f];
    }
  }
  if (count > 0) out += kAlphabet[(bits << (6 - count)) & 0x3f];
  while (out.size() % 4 != 0) out += '=';
  return out;
}

// What a test lets the Proxmox side do besides answering normally.
struct Script {
  Status version_error;  // not OK: GetVersion fails with it
  Status list_error;     // not OK: ListClusterResources fails with it
  std::function<void(std::vector<proxmox::ClusterResource>&)> edit_resources;
};

// The real client over pve-sim, with the Script applied to the two calls the
// cluster controller makes.
class ScriptedClient final : public proxmox::PveClient {
 public:
  ScriptedClient(std::unique_ptr<proxmox::PveClient> inner, const Script& script)
      : inner_(std::move(inner)), script_(script) {}

  Result<proxmox::VersionInfo> GetVersion() override {
    if (!script_.version_error.ok()) return script_.version_error;
    return inner_->GetVersion();
  }
  Result<std::vector<proxmox::ClusterResource>> ListClusterResources(
      proxmox::ResourceType type) override {
    if (!script_.list_error.ok()) return script_.list_error;
    ASSIGN_OR_RETURN(std::vector<proxmox::ClusterResource> resources,
                     inner_->ListClusterResources(type));
    if (script_.edit_resources) script_.edit_resources(resources);
    return resources;
  }

  Result<std::vector<proxmox::NodeInfo>> ListNodes() override { return inner_->ListNodes(); }
  Result<proxmox::NodeStatus> GetNodeStatus(const std::string& node) override {
    return inner_->GetNodeStatus(node);
  }
  Result<int> NextVmid(std::optional<int> vmid) override { return inner_->NextVmid(vmid); }
  Result<std::vector<proxmox::VmSummary>> ListVms(const std::string& node) override {
    return inner_->ListVms(node);
  }
  Result<proxmox::Upid> CreateVm(const std::string& node, int vmid,
                                 const proxmox::Params& params) override {
    return inner_->CreateVm(node, vmid, params);
  }
  Result<proxmox::VmConfig> GetVmConfig(const std::string& node, int vmid) override {
    return inner_->GetVmConfig(node, vmid);
  }
  Result<std::vector<proxmox::PendingEntry>> GetVmPending(const std::string& node,
                                                          int vmid) override {
    return inner_->GetVmPending(node, vmid);
  }
  Result<std::optional<proxmox::Upid>> UpdateVmConfig(
      const std::string& node, int vmid, const proxmox::ConfigUpdate& update) override {
    return inner_->UpdateVmConfig(node, vmid, update);
  }
  Status UpdateVmConfigSync(const std::string& node, int vmid,
                            const proxmox::ConfigUpdate& update) override {
    return inner_->UpdateVmConfigSync(node, vmid, update);
  }
  Result<proxmox::VmStatus> GetVmStatus(const std::string& node, int vmid) override {
    return inner_->GetVmStatus(node, vmid);
  }
  Result<proxmox::Upid> StartVm(const std::string& node, int vmid) override {
    return inner_->StartVm(node, vmid);
  }
  Result<proxmox::Upid> ShutdownVm(const std::string& node, int vmid,
                                   const proxmox::ShutdownOptions& options) override {
    return inner_->ShutdownVm(node, vmid, options);
  }
  Result<proxmox::Upid> StopVm(const std::string& node, int vmid,
                               const proxmox::StopOptions& options) override {
    return inner_->StopVm(node, vmid, options);
  }
  Result<proxmox::Upid> RebootVm(const std::string& node, int vmid) override {
    return inner_->RebootVm(node, vmid);
  }
  Result<proxmox::Upid> DeleteVm(const std::string& node, int vmid,
                                 const proxmox::DeleteVmOptions& options) override {
    return inner_->DeleteVm(node, vmid, options);
  }
  Result<std::optional<proxmox::Upid>> ResizeDisk(const std::string& node, int vmid,
                                                  const std::string& disk,
                                                  const std::string& size) override {
    return inner_->ResizeDisk(node, vmid, disk, size);
  }
  Result<proxmox::Upid> MigrateVm(const std::string& node, int vmid,
                                  const proxmox::MigrateOptions& options) override {
    return inner_->MigrateVm(node, vmid, options);
  }
  Status AgentPing(const std::string& node, int vmid) override {
    return inner_->AgentPing(node, vmid);
  }
  Result<std::vector<proxmox::GuestInterface>> AgentNetworkInterfaces(const std::string& node,
                                                                      int vmid) override {
    return inner_->AgentNetworkInterfaces(node, vmid);
  }
  Result<std::vector<proxmox::StorageContent>> ListStorageContent(
      const std::string& node, const std::string& storage, const std::string& content) override {
    return inner_->ListStorageContent(node, storage, content);
  }
  Result<proxmox::Upid> UploadToStorage(const std::string& node, const std::string& storage,
                                        const proxmox::UploadRequest& request) override {
    return inner_->UploadToStorage(node, storage, request);
  }
  Result<std::optional<proxmox::Upid>> DeleteVolume(const std::string& node,
                                                    const std::string& storage,
                                                    const std::string& volid) override {
    return inner_->DeleteVolume(node, storage, volid);
  }
  Result<proxmox::TaskStatus> GetTaskStatus(const proxmox::Upid& upid) override {
    return inner_->GetTaskStatus(upid);
  }
  Result<std::vector<proxmox::TaskLogLine>> GetTaskLog(const proxmox::Upid& upid, int start,
                                                       int limit) override {
    return inner_->GetTaskLog(upid, start, limit);
  }

 private:
  std::unique_ptr<proxmox::PveClient> inner_;
  const Script& script_;
};

// What the controller asked the client factory for.
struct Connection {
  std::string base_url;
  std::string token_id;
  std::string secret;
  http::TlsConfig tls;
  int max_in_flight = 0;
};

class ClusterControllerTest : public ::testing::Test {
 protected:
  ClusterControllerTest() { Start({}); }

  // (Re)creates the reconciler with `options`; connect and clock are the test's.
  void Start(ClusterControllerOptions options) {
    options.clock = &world_.clock;
    options.connect =
        [this](proxmox::PveClientOptions o) -> Result<std::unique_ptr<proxmox::PveClient>> {
      const std::string header = o.token.AuthorizationHeader();
      Connection c{o.base_url, o.token.id(), header.substr(header.rfind('=') + 1), o.tls,
                   o.limits.max_in_flight};
      connections_.push_back(c);
      if (!connect_error_.ok()) return connect_error_;
      // pve-sim knows one token; the rotated secret stands for a second valid one.
      const std::string secret = c.secret == kRotatedSecret ? kTokenSecret : c.secret;
      return std::unique_ptr<proxmox::PveClient>(
          std::make_unique<ScriptedClient>(world_.NewClient(secret), script_));
    };
    reconciler_ =
        std::make_unique<ClusterReconciler>(kube_, kube_, recorder_, registry_, std::move(options));
  }

  void PutSecret(const std::string& secret, const std::string& id = kTokenId) {
    json object = {{"apiVersion", "v1"},
                   {"kind", "Secret"},
                   {"metadata", {{"name", kSecretName}, {"namespace", kNs}}},
                   {"type", "Opaque"},
                   {"data", {{"tokenID", Base64(id)}, {"tokenSecret", Base64(secret)}}}};
    if (kube_.Get(kube::resources::Secrets(), kNs, kSecretName).ok()) {
      ASSERT_TRUE(kube_.Update(kube::resources::Secrets(), object).ok());
    } else {
      ASSERT_TRUE(kube_.Create(kube::resources::Secrets(), object).ok());
    }
  }

  static api::ProxmoxCluster Cluster(const std::string& name = kName) {
    api::ProxmoxCluster cluster;
    cluster.metadata = {{"name", name}, {"namespace", kNs}};
    cluster.spec.endpoint = "https://pve.example.org:8006";
    cluster.spec.credentials_ref.name = kSecretName;
    return cluster;
  }

  void CreateCluster(const api::ProxmoxCluster& cluster = Cluster()) {
    auto created = kube_.Create(ProxmoxClusters(), api::ToJson(cluster));
    ASSERT_TRUE(created.ok()) << created.status().ToString();
  }

  // Applies `edit` to the stored cluster's spec, as `kubectl edit` would.
  void EditSpec(const std::function<void(api::ProxmoxClusterSpec&)>& edit) {
    api::ProxmoxCluster cluster = Stored();
    edit(cluster.spec);
    json object = api::ToJson(cluster);
    object.erase("status");
    auto updated = kube_.Update(ProxmoxClusters(), object);
    ASSERT_TRUE(updated.ok()) << updated.status().ToString();
  }

  kube::Object StoredObject(const std::string& name = kName) {
    auto got = kube_.Get(ProxmoxClusters(), kNs, name);
    EXPECT_TRUE(got.ok()) << got.status().ToString();
    return got.ok() ? *got : kube::Object();
  }

  api::ProxmoxCluster Stored(const std::string& name = kName) {
    auto decoded = api::ProxmoxClusterFromJson(StoredObject(name));
    EXPECT_TRUE(decoded.ok()) << decoded.status().ToString();
    return decoded.ok() ? *decoded : api::ProxmoxCluster();
  }

  Result<kube::ReconcileResult> Reconcile(const std::string& name = kName) {
    auto result = reconciler_->Reconcile(kube::Request{kNs, name});
    if (!result.ok()) errors_.push_back(result.status().ToString());
    return result;
  }

  std::optional<kube::Condition> Condition(std::string_view type) {
    return kube::FindCondition(
        StoredObject().value("status", json::object()).value("conditions", json::array()), type);
  }

  // pve-sim's count of requests to a path template, e.g. "GET /cluster/resources".
  int SimRequests(const std::string& what) {
    http::ServerRequest request;
    request.method = "GET";
    request.path = "/_sim/requests";
    return json::parse(world_.sim().Handle(request).body).value(what, 0);
  }

  // Every Event recorded about objects in the namespace.
  std::vector<json> Events() {
    auto list = kube_.List(kube::resources::Events(), kNs, {});
    EXPECT_TRUE(list.ok());
    return list.ok() ? list->items : std::vector<json>{};
  }
  std::vector<std::string> EventReasons() {
    std::vector<std::string> out;
    for (const json& e : Events()) out.push_back(e.value("reason", ""));
    return out;
  }

  SimWorld world_;
  kube::FakeClient kube_{world_.clock};
  kube::EventRecorder recorder_{kube_, kube::EventRecorderOptions{.clock = &world_.clock}};
  ClusterRegistry registry_;
  Script script_;
  Status connect_error_;
  std::vector<Connection> connections_;
  std::vector<std::string> errors_;
  std::unique_ptr<ClusterReconciler> reconciler_;
};

TEST_F(ClusterControllerTest, ConnectsAndReportsVersionNodesAndReadiness) {
  PutSecret(kTokenSecret);
  CreateCluster();

  auto result = Reconcile();
  ASSERT_TRUE(result.ok()) << result.status().ToString();
  EXPECT_EQ(result->requeue_after, seconds(30));  // the next inventory is due in one period

  api::ProxmoxClusterStatus status = Stored().status;
  EXPECT_EQ(status.version, "8.4.1");
  EXPECT_TRUE(status.ready);
  EXPECT_EQ(status.online_nodes, "3/3");
  EXPECT_EQ(status.observed_generation, 1);
  ASSERT_EQ(status.nodes.size(), 3u);
  EXPECT_EQ(status.nodes[0].name, "pve1");
  EXPECT_EQ(status.nodes[2].name, "pve3");
  for (const api::ClusterNodeStatus& node : status.nodes) {
    EXPECT_EQ(node.status, api::NodeState::kOnline) << node.name;
    EXPECT_GT(node.max_cpu, 0) << node.name;
    EXPECT_GT(node.max_memory, 0) << node.name;
  }
  ASSERT_TRUE(Condition(api::condition::kConnected));
  EXPECT_EQ(Condition(api::condition::kConnected)->status, kube::kConditionTrue);
  EXPECT_EQ(Condition(api::condition::kConnected)->reason, api::reason::kConnected);
  EXPECT_EQ(Condition(api::condition::kReady)->status, kube::kConditionTrue);
  EXPECT_EQ(Condition(api::condition::kReady)->reason, api::reason::kNodesOnline);
  EXPECT_EQ(Condition(api::condition::kReady)->observed_generation, 1);
  EXPECT_EQ(Condition(api::condition::kImageStorageReady)->status, kube::kConditionTrue);

  std::shared_ptr<ClusterRuntime> runtime = registry_.Get(kKey);
  ASSERT_NE(runtime, nullptr);
  ASSERT_NE(runtime->inventory(), nullptr);
  EXPECT_EQ(runtime->inventory()->nodes.size(), 3u);
  EXPECT_EQ(runtime->spec(), Stored().spec);

  // The client was made from the Secret and the spec.
  ASSERT_EQ(connections_.size(), 1u);
  EXPECT_EQ(connections_[0].base_url, "https://pve.example.org:8006");
  EXPECT_EQ(connections_[0].token_id, kTokenId);
  EXPECT_EQ(connections_[0].secret, kTokenSecret);
  EXPECT_FALSE(connections_[0].tls.insecure_skip_verify);
  EXPECT_EQ(connections_[0].tls.ca_pem, "");
  EXPECT_EQ(connections_[0].max_in_flight, 4);
  EXPECT_THAT(EventReasons(), ElementsAre("Connected"));
}

TEST_F(ClusterControllerTest, AddsItsFinalizerBeforeAnythingElse) {
  PutSecret(kTokenSecret);
  CreateCluster();
  ASSERT_TRUE(Reconcile().ok());
  EXPECT_THAT(StoredObject()["metadata"]["finalizers"], ElementsAre(kClusterFinalizer));
  std::vector<std::string> actions = kube_.actions();
  auto first = std::find_if(actions.begin(), actions.end(), [](const std::string& a) {
    return a.find("proxmoxclusters") != std::string::npos && a.rfind("create", 0) != 0;
  });
  ASSERT_NE(first, actions.end());
  EXPECT_EQ(*first, "patch proxmoxclusters default/lab");
}

TEST_F(ClusterControllerTest, MissingSecretOrKeyIsCredentialsNotFoundAndWaits) {
  CreateCluster();
  auto result = Reconcile();
  ASSERT_TRUE(result.ok()) << result.status().ToString();
  EXPECT_EQ(result->requeue_after, seconds(30));
  ASSERT_TRUE(Condition(api::condition::kReady));
  EXPECT_EQ(Condition(api::condition::kReady)->status, kube::kConditionFalse);
  EXPECT_EQ(Condition(api::condition::kReady)->reason, api::reason::kCredentialsNotFound);
  EXPECT_THAT(Condition(api::condition::kReady)->message, HasSubstr("Secret \"pve-token\""));
  EXPECT_EQ(Condition(api::condition::kConnected)->reason, api::reason::kCredentialsNotFound);
  EXPECT_EQ(registry_.Get(kKey), nullptr);
  EXPECT_THAT(connections_, IsEmpty());

  // A Secret without the secret key: the key is named.
  json partial = {{"apiVersion", "v1"},
                  {"kind", "Secret"},
                  {"metadata", {{"name", kSecretName}, {"namespace", kNs}}},
                  {"data", {{"tokenID", Base64(kTokenId)}}}};
  ASSERT_TRUE(kube_.Create(kube::resources::Secrets(), partial).ok());
  ASSERT_TRUE(Reconcile().ok());
  EXPECT_EQ(Condition(api::condition::kReady)->reason, api::reason::kCredentialsNotFound);
  EXPECT_THAT(Condition(api::condition::kReady)->message, HasSubstr("\"tokenSecret\""));
  EXPECT_EQ(registry_.Get(kKey), nullptr);
  EXPECT_THAT(connections_, IsEmpty());
}

TEST_F(ClusterControllerTest, WrongTokenIsAuthenticationFailedUntilTheSecretIsFixed) {
  PutSecret(kWrongSecret);
  CreateCluster();
  auto failed = Reconcile();
  ASSERT_FALSE(failed.ok());
  EXPECT_EQ(failed.status().code(), Code::kRetryable);  // the controller backs off per key
  EXPECT_FALSE(kube::IsTerminal(failed.status()));
  EXPECT_EQ(Condition(api::condition::kConnected)->status, kube::kConditionFalse);
  EXPECT_EQ(Condition(api::condition::kConnected)->reason, api::reason::kAuthenticationFailed);
  EXPECT_EQ(Condition(api::condition::kReady)->reason, api::reason::kAuthenticationFailed);
  EXPECT_FALSE(Stored().status.ready);
  EXPECT_EQ(registry_.Get(kKey), nullptr);
  ASSERT_EQ(Events().size(), 1u);
  EXPECT_EQ(Events()[0]["reason"], "ConnectionFailed");
  EXPECT_EQ(Events()[0]["type"], "Warning");
  EXPECT_THAT(Events()[0]["message"].get<std::string>(), HasSubstr("AuthenticationFailed"));

  PutSecret(kTokenSecret);
  auto fixed = Reconcile();
  ASSERT_TRUE(fixed.ok()) << fixed.status().ToString();
  EXPECT_EQ(Condition(api::condition::kConnected)->status, kube::kConditionTrue);
  EXPECT_TRUE(Stored().status.ready);
  EXPECT_NE(registry_.Get(kKey), nullptr);
  ASSERT_EQ(connections_.size(), 2u);
  EXPECT_EQ(connections_[1].secret, kTokenSecret);
}

TEST_F(ClusterControllerTest, InvalidSpecIsTerminalAndDropsTheRuntime) {
  PutSecret(kTokenSecret);
  CreateCluster();
  ASSERT_TRUE(Reconcile().ok());
  ASSERT_NE(registry_.Get(kKey), nullptr);

  EditSpec([](api::ProxmoxClusterSpec& spec) {
    spec.endpoint = "http://pve.example.org:8006";
    spec.max_concurrent_requests = 0;
  });
  auto result = Reconcile();
  ASSERT_FALSE(result.ok());
  EXPECT_TRUE(kube::IsTerminal(result.status()));
  EXPECT_EQ(registry_.Get(kKey), nullptr);
  std::optional<kube::Condition> ready = Condition(api::condition::kReady);
  ASSERT_TRUE(ready);
  EXPECT_EQ(ready->status, kube::kConditionFalse);
  EXPECT_EQ(ready->reason, api::reason::kInvalidSpec);
  EXPECT_THAT(ready->message, HasSubstr("spec.endpoint"));
  EXPECT_THAT(ready->message, HasSubstr("spec.maxConcurrentRequests"));
  EXPECT_EQ(ready->observed_generation, 2);
  EXPECT_EQ(Stored().status.observed_generation, 2);
  EXPECT_EQ(connections_.size(), 1u);  // no connection attempt with the bad spec
}

TEST_F(ClusterControllerTest, SecondReconcileMakesNoProxmoxListAndNoKubernetesWrite) {
  PutSecret(kTokenSecret);
  CreateCluster();
  ASSERT_TRUE(Reconcile().ok());
  EXPECT_EQ(SimRequests("GET /version"), 1);
  EXPECT_EQ(SimRequests("GET /cluster/resources"), 1);
  const std::size_t writes = kube_.actions().size();

  // The status write's watch event brings the key straight back.
  auto again = Reconcile();
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->requeue_after, seconds(30));
  EXPECT_EQ(SimRequests("GET /cluster/resources"), 1);
  EXPECT_EQ(kube_.actions().size(), writes);

  world_.Advance(seconds(10));
  auto early = Reconcile();
  ASSERT_TRUE(early.ok());
  EXPECT_EQ(early->requeue_after, seconds(20));
  EXPECT_EQ(SimRequests("GET /cluster/resources"), 1);

  world_.Advance(seconds(20));
  ASSERT_TRUE(Reconcile().ok());
  ASSERT_TRUE(Reconcile().ok());
  EXPECT_EQ(SimRequests("GET /cluster/resources"), 2);  // exactly one more list per period
  EXPECT_EQ(SimRequests("GET /version"), 1);            // the version is asked once per runtime
  EXPECT_EQ(connections_.size(), 1u);
}

TEST_F(ClusterControllerTest, VmCreatedInProxmoxReachesTheChangeListenerNextPeriod) {
  std::vector<InventoryChange> changes;
  registry_.SetChangeListener([&](const std::string& key, const std::vector<InventoryChange>& c) {
    EXPECT_EQ(key, kKey);
    changes.insert(changes.end(), c.begin(), c.end());
  });
  PutSecret(kTokenSecret);
  CreateCluster();
  ASSERT_TRUE(Reconcile().ok());

  // Someone creates a VM in the web UI.
  auto upid = world_.NewClient()->CreateVm("pve2", 4242, proxmox::Params().Set("name", "manual"));
  ASSERT_TRUE(upid.ok()) << upid.status().ToString();
  world_.Advance(seconds(5));
  ASSERT_TRUE(Reconcile().ok());
  EXPECT_THAT(changes, IsEmpty());  // not before the period is over

  world_.Advance(seconds(25));
  ASSERT_TRUE(Reconcile().ok());
  ASSERT_EQ(changes.size(), 1u);
  EXPECT_EQ(changes[0].kind, InventoryChange::Kind::kAdded);
  EXPECT_EQ(changes[0].vmid, 4242);
}

TEST_F(ClusterControllerTest, RotatedTokenReplacesTheRuntime) {
  PutSecret(kTokenSecret);
  CreateCluster();
  ASSERT_TRUE(Reconcile().ok());
  std::shared_ptr<ClusterRuntime> before = registry_.Get(kKey);
  ASSERT_NE(before, nullptr);

  PutSecret(kRotatedSecret);
  ASSERT_TRUE(Reconcile().ok());
  std::shared_ptr<ClusterRuntime> after = registry_.Get(kKey);
  ASSERT_NE(after, nullptr);
  EXPECT_NE(after, before);
  ASSERT_EQ(connections_.size(), 2u);
  EXPECT_EQ(connections_[1].secret, kRotatedSecret);
  EXPECT_EQ(SimRequests("GET /version"), 2);
  EXPECT_NE(after->inventory(), nullptr);

  // An unchanged Secret keeps it.
  ASSERT_TRUE(Reconcile().ok());
  EXPECT_EQ(registry_.Get(kKey), after);

  // New request limits need a new client, hence a new runtime.
  EditSpec([](api::ProxmoxClusterSpec& spec) { spec.max_concurrent_requests = 2; });
  ASSERT_TRUE(Reconcile().ok());
  EXPECT_NE(registry_.Get(kKey), after);
  ASSERT_EQ(connections_.size(), 3u);
  EXPECT_EQ(connections_[2].max_in_flight, 2);
}

TEST_F(ClusterControllerTest, ImageStorageWithoutImportIsReportedWhileReadyStaysTrue) {
  PutSecret(kTokenSecret);
  api::ProxmoxCluster cluster = Cluster();
  cluster.spec.image_storage = "local-lvm";  // lvmthin: images,rootdir
  CreateCluster(cluster);
  ASSERT_TRUE(Reconcile().ok());
  std::optional<kube::Condition> storage = Condition(api::condition::kImageStorageReady);
  ASSERT_TRUE(storage);
  EXPECT_EQ(storage->status, kube::kConditionFalse);
  EXPECT_EQ(storage->reason, api::reason::kStorageContentMissing);
  EXPECT_THAT(storage->message, HasSubstr("pvesm set local-lvm --content images,rootdir,import"));
  EXPECT_THAT(storage->message, HasSubstr("Ready is not affected"));
  EXPECT_EQ(Condition(api::condition::kReady)->status, kube::kConditionTrue);
  EXPECT_TRUE(Stored().status.ready);
  EXPECT_THAT(EventReasons(), Contains("StorageContentMissing"));

  EditSpec([](api::ProxmoxClusterSpec& spec) { spec.image_storage = "nas"; });
  ASSERT_TRUE(Reconcile().ok());
  EXPECT_EQ(Condition(api::condition::kImageStorageReady)->reason, api::reason::kStorageNotFound);
  EXPECT_EQ(Condition(api::condition::kReady)->status, kube::kConditionTrue);

  EditSpec([](api::ProxmoxClusterSpec& spec) { spec.image_storage = "local"; });
  ASSERT_TRUE(Reconcile().ok());
  EXPECT_EQ(Condition(api::condition::kImageStorageReady)->status, kube::kConditionTrue);
  EXPECT_EQ(Condition(api::condition::kImageStorageReady)->reason, api::reason::kImportEnabled);
}

TEST_F(ClusterControllerTest, AllowedNodesFilterAndUnknownOrOfflineNodesCount) {
  script_.edit_resources = [](std::vector<proxmox::ClusterResource>& resources) {
    for (proxmox::ClusterResource& r : resources) {
      if (r.type == "node" && r.node == "pve2") r.status = "offline";
    }
  };
  PutSecret(kTokenSecret);
  api::ProxmoxCluster cluster = Cluster();
  cluster.spec.allowed_nodes = {"pve3", "pve2", "pve9"};
  CreateCluster(cluster);
  ASSERT_TRUE(Reconcile().ok());

  api::ProxmoxClusterStatus status = Stored().status;
  ASSERT_EQ(status.nodes.size(), 3u);
  EXPECT_EQ(status.nodes[0].name, "pve3");
  EXPECT_EQ(status.nodes[0].status, api::NodeState::kOnline);
  EXPECT_EQ(status.nodes[1].name, "pve2");
  EXPECT_EQ(status.nodes[1].status, api::NodeState::kOffline);
  EXPECT_EQ(status.nodes[2].name, "pve9");  // not in Proxmox
  EXPECT_EQ(status.nodes[2].status, api::NodeState::kUnknown);
  EXPECT_EQ(status.online_nodes, "1/3");
  EXPECT_TRUE(status.ready);
  std::shared_ptr<ClusterRuntime> runtime = registry_.Get(kKey);

  // Editing the allowed nodes needs no new connection and no new list.
  EditSpec([](api::ProxmoxClusterSpec& spec) { spec.allowed_nodes = {"pve2", "pve9"}; });
  ASSERT_TRUE(Reconcile().ok());
  EXPECT_EQ(registry_.Get(kKey), runtime);
  EXPECT_EQ(SimRequests("GET /version"), 1);
  EXPECT_EQ(SimRequests("GET /cluster/resources"), 1);
  status = Stored().status;
  EXPECT_EQ(status.online_nodes, "0/2");
  EXPECT_FALSE(status.ready);
  EXPECT_EQ(Condition(api::condition::kReady)->reason, api::reason::kNoOnlineNodes);
  EXPECT_THAT(Condition(api::condition::kReady)->message, HasSubstr("pve2 Offline"));
  EXPECT_EQ(Condition(api::condition::kConnected)->status, kube::kConditionTrue);
  EXPECT_THAT(EventReasons(), Contains("NoOnlineNodes"));
}

TEST_F(ClusterControllerTest, DeletionWaitsForProxmoxVmsThenRemovesTheFinalizer) {
  PutSecret(kTokenSecret);
  CreateCluster();
  ASSERT_TRUE(Reconcile().ok());
  const auto add_vm = [&](const std::string& name, const std::string& cluster) {
    api::ProxmoxVm vm;
    vm.metadata = {{"name", name}, {"namespace", kNs}};
    vm.spec.cluster_ref.name = cluster;
    ASSERT_TRUE(kube_.Create(ProxmoxVms(), api::ToJson(vm)).ok());
  };
  add_vm("web", kName);
  add_vm("db", "other-cluster");

  ASSERT_TRUE(kube_.Delete(ProxmoxClusters(), kNs, kName).ok());
  auto waiting = Reconcile();
  ASSERT_TRUE(waiting.ok()) << waiting.status().ToString();
  EXPECT_EQ(waiting->requeue_after, seconds(10));
  std::optional<kube::Condition> ready = Condition(api::condition::kReady);
  ASSERT_TRUE(ready);
  EXPECT_EQ(ready->reason, api::reason::kDeleting);
  EXPECT_THAT(ready->message, HasSubstr("1 ProxmoxVM"));
  EXPECT_THAT(StoredObject()["metadata"]["finalizers"], ElementsAre(kClusterFinalizer));
  EXPECT_NE(registry_.Get(kKey), nullptr);  // the VM still needs it to clean up

  ASSERT_TRUE(kube_.Delete(ProxmoxVms(), kNs, "web").ok());
  auto done = Reconcile();
  ASSERT_TRUE(done.ok()) << done.status().ToString();
  EXPECT_EQ(done->requeue_after, milliseconds(0));
  EXPECT_EQ(kube_.Get(ProxmoxClusters(), kNs, kName).status().code(), Code::kNotFound);
  EXPECT_EQ(registry_.Get(kKey), nullptr);

  // Gone: nothing left to do.
  ASSERT_TRUE(Reconcile().ok());
}

TEST_F(ClusterControllerTest, ClusterThatIsGoneLosesItsRuntime) {
  PutSecret(kTokenSecret);
  CreateCluster();
  ASSERT_TRUE(Reconcile().ok());
  ASSERT_NE(registry_.Get(kKey), nullptr);
  // Removed behind the controller's back (finalizer stripped by hand).
  ASSERT_TRUE(kube_
                  .Patch(ProxmoxClusters(), kNs, kName, kube::PatchType::kMerge,
                         {{"metadata", {{"finalizers", json::array()}}}})
                  .ok());
  ASSERT_TRUE(kube_.Delete(ProxmoxClusters(), kNs, kName).ok());
  ASSERT_TRUE(Reconcile().ok());
  EXPECT_EQ(registry_.Get(kKey), nullptr);
}

TEST_F(ClusterControllerTest, TlsFailuresAreReportedAsTlsError) {
  PutSecret(kTokenSecret);
  CreateCluster();
  // What the HTTP client reports for an untrusted server certificate.
  script_.version_error =
      RetryableError("GET /api2/json/version: Error in SSL handshake: certificate verify failed");
  ASSERT_FALSE(Reconcile().ok());
  EXPECT_EQ(Condition(api::condition::kConnected)->reason, api::reason::kTlsError);
  EXPECT_EQ(registry_.Get(kKey), nullptr);

  // An unusable CA bundle fails when the client is made.
  script_.version_error = OkStatus();
  connect_error_ = InvalidError("CA bundle holds no PEM certificate");
  auto failed = Reconcile();
  ASSERT_FALSE(failed.ok());
  EXPECT_FALSE(kube::IsTerminal(failed.status()));  // the CA source can change
  EXPECT_EQ(Condition(api::condition::kConnected)->reason, api::reason::kTlsError);

  // Anything else is Unreachable.
  connect_error_ = OkStatus();
  script_.version_error = RetryableError("GET /api2/json/version: Failed to connect");
  ASSERT_FALSE(Reconcile().ok());
  EXPECT_EQ(Condition(api::condition::kConnected)->reason, api::reason::kUnreachable);

  script_.version_error = ForbiddenError("Permission check failed");
  ASSERT_FALSE(Reconcile().ok());
  EXPECT_EQ(Condition(api::condition::kConnected)->reason, api::reason::kPermissionDenied);
}

TEST_F(ClusterControllerTest, TrustComesFromCaBundleOrCaRefAndVerificationStaysOn) {
  PutSecret(kTokenSecret);
  api::ProxmoxCluster cluster = Cluster();
  cluster.spec.tls.ca_bundle = kCaPem;
  CreateCluster(cluster);
  ASSERT_TRUE(Reconcile().ok());
  ASSERT_EQ(connections_.size(), 1u);
  EXPECT_EQ(connections_[0].tls.ca_pem, kCaPem);
  EXPECT_FALSE(connections_[0].tls.insecure_skip_verify);

  // A caRef to a ConfigMap that is not there yet: TLSError, and a look again later.
  EditSpec([](api::ProxmoxClusterSpec& spec) {
    spec.tls.ca_bundle.clear();
    spec.tls.ca_ref = api::CaRef{api::CaSourceKind::kConfigMap, "pve-ca", "ca.crt"};
  });
  auto waiting = Reconcile();
  ASSERT_TRUE(waiting.ok());
  EXPECT_EQ(waiting->requeue_after, seconds(30));
  EXPECT_EQ(Condition(api::condition::kConnected)->reason, api::reason::kTlsError);
  EXPECT_THAT(Condition(api::condition::kConnected)->message, HasSubstr("ConfigMap \"pve-ca\""));
  EXPECT_EQ(registry_.Get(kKey), nullptr);

  json config_map = {{"apiVersion", "v1"},
                     {"kind", "ConfigMap"},
                     {"metadata", {{"name", "pve-ca"}, {"namespace", kNs}}},
                     {"data", {{"ca.crt", kCaPem}}}};
  ASSERT_TRUE(kube_.Create(kube::resources::ConfigMaps(), config_map).ok());
  ASSERT_TRUE(Reconcile().ok());
  ASSERT_EQ(connections_.size(), 2u);
  EXPECT_EQ(connections_[1].tls.ca_pem, kCaPem);

  EditSpec([](api::ProxmoxClusterSpec& spec) {
    spec.tls.ca_ref.reset();
    spec.tls.insecure_skip_tls_verify = true;
  });
  ASSERT_TRUE(Reconcile().ok());
  ASSERT_EQ(connections_.size(), 3u);
  EXPECT_TRUE(connections_[2].tls.insecure_skip_verify);
  EXPECT_EQ(connections_[2].tls.ca_pem, "");
}

TEST_F(ClusterControllerTest, FailedListKeepsTheRuntimeAndItsLastInventory) {
  PutSecret(kTokenSecret);
  CreateCluster();
  ASSERT_TRUE(Reconcile().ok());
  std::shared_ptr<ClusterRuntime> runtime = registry_.Get(kKey);
  std::shared_ptr<const Inventory> inventory = runtime->inventory();

  script_.list_error = RetryableError("GET /api2/json/cluster/resources: Failed to connect");
  world_.Advance(seconds(30));
  auto failed = Reconcile();
  ASSERT_FALSE(failed.ok());
  EXPECT_EQ(failed.status().code(), Code::kRetryable);
  EXPECT_EQ(Condition(api::condition::kReady)->reason, api::reason::kUnreachable);
  EXPECT_FALSE(Stored().status.ready);
  EXPECT_EQ(Stored().status.online_nodes, "3/3");  // what was last seen stays in status
  EXPECT_EQ(registry_.Get(kKey), runtime);
  EXPECT_EQ(runtime->inventory(), inventory);

  script_.list_error = OkStatus();
  ASSERT_TRUE(Reconcile().ok());
  EXPECT_TRUE(Stored().status.ready);
  EXPECT_EQ(registry_.Get(kKey), runtime);
  EXPECT_NE(runtime->inventory(), inventory);
  EXPECT_EQ(connections_.size(), 1u);
}

TEST_F(ClusterControllerTest, OperatorFlagsCapRequestsAndOverrideThePeriod) {
  Start({.max_inflight = 2, .inventory_period = seconds(10)});
  PutSecret(kTokenSecret);
  CreateCluster();
  auto result = Reconcile();
  ASSERT_TRUE(result.ok());
  EXPECT_EQ(result->requeue_after, seconds(10));
  ASSERT_EQ(connections_.size(), 1u);
  EXPECT_EQ(connections_[0].max_in_flight, 2);

  world_.Advance(seconds(10));
  ASSERT_TRUE(Reconcile().ok());
  EXPECT_EQ(SimRequests("GET /cluster/resources"), 2);
}

TEST_F(ClusterControllerTest, EventsAreRecordedOnTransitionsOnly) {
  PutSecret(kTokenSecret);
  CreateCluster();
  for (int period = 0; period < 4; ++period) {
    ASSERT_TRUE(Reconcile().ok());
    world_.Advance(seconds(30));
  }
  EXPECT_THAT(EventReasons(), ElementsAre("Connected"));
  for (const json& e : Events()) EXPECT_EQ(e["count"], 1) << e.dump();

  PutSecret(kWrongSecret);
  ASSERT_FALSE(Reconcile().ok());
  ASSERT_FALSE(Reconcile().ok());
  std::vector<std::string> reasons = EventReasons();
  EXPECT_EQ(std::count(reasons.begin(), reasons.end(), "ConnectionFailed"), 1);
  for (const json& e : Events()) EXPECT_EQ(e["count"], 1) << e.dump();
}

TEST_F(ClusterControllerTest, TokenSecretNeverAppearsInStatusEventsOrErrors) {
  PutSecret(kWrongSecret);
  CreateCluster();
  ASSERT_FALSE(Reconcile().ok());
  PutSecret(kTokenSecret);
  ASSERT_TRUE(Reconcile().ok());
  script_.list_error = UnauthorizedError("authentication failure");
  world_.Advance(seconds(30));
  ASSERT_FALSE(Reconcile().ok());

  ASSERT_FALSE(errors_.empty());
  std::string everything = StoredObject().dump();
  for (const json& e : Events()) everything += e.dump();
  for (const std::string& error : errors_) everything += error;
  for (const char* secret : {kTokenSecret, kWrongSecret}) {
    EXPECT_THAT(everything, Not(HasSubstr(secret)));
    EXPECT_THAT(everything, Not(HasSubstr(Base64(secret))));
  }
  EXPECT_THAT(everything, HasSubstr("AuthenticationFailed"));  // the failures were reported
}

TEST(ClusterKeysForReferenceTest, FindsClustersThatUseTheSecretOrConfigMap) {
  FakeClock clock;
  kube::FakeClient kube(clock);
  const auto add = [&](const std::string& ns, const std::string& name, const std::string& secret,
                       std::optional<api::CaRef> ca) {
    api::ProxmoxCluster cluster;
    cluster.metadata = {{"name", name}, {"namespace", ns}};
    cluster.spec.endpoint = "https://pve.example.org:8006";
    cluster.spec.credentials_ref.name = secret;
    cluster.spec.tls.ca_ref = std::move(ca);
    ASSERT_TRUE(kube.Create(ProxmoxClusters(), api::ToJson(cluster)).ok());
  };
  add("team", "a", "token", std::nullopt);
  add("team", "b", "other", api::CaRef{api::CaSourceKind::kConfigMap, "ca", "ca.crt"});
  add("team", "c", "other", api::CaRef{api::CaSourceKind::kSecret, "ca", "ca.crt"});
  add("elsewhere", "d", "token", std::nullopt);

  const auto object = [](const std::string& kind, const std::string& name) {
    return json{{"kind", kind}, {"metadata", {{"name", name}, {"namespace", "team"}}}};
  };
  EXPECT_THAT(ClusterKeysForReference(kube, object("Secret", "token")), ElementsAre("team/a"));
  EXPECT_THAT(ClusterKeysForReference(kube, object("ConfigMap", "ca")), ElementsAre("team/b"));
  EXPECT_THAT(ClusterKeysForReference(kube, object("Secret", "ca")), ElementsAre("team/c"));
  EXPECT_THAT(ClusterKeysForReference(kube, object("ConfigMap", "token")), IsEmpty());
  EXPECT_THAT(ClusterKeysForReference(kube, object("Secret", "unused")), IsEmpty());
}

}  // namespace
}  // namespace nixmox::controllers
