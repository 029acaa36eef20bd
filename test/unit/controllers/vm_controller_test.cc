#include "src/controllers/vm_controller.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fstream>
#include <functional>
#include <set>

#include "src/api/json.h"
#include "src/api/reasons.h"
#include "src/common/metrics.h"
#include "src/controllers/resources.h"
#include "src/controllers/vm_plan.h"
#include "src/controllers/vm_reconcile.h"
#include "src/kube/fake_client.h"
#include "src/kube/informer.h"
#include "test/unit/controllers/sim_world.h"

namespace nixmox::controllers {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;
using ::testing::Contains;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;
using testing::SimWorld;

constexpr char kNs[] = "default";
constexpr char kStorePath[] = "/nix/store/0c3kxwjl5yhy7m1s0cdmpqmcjhq4mzxs-nixos-web";
constexpr char kNewStorePath[] = "/nix/store/9xg1hz8mq6r3lppxm2jq0wb3c5ndjf0a-nixos-web";

// Says which addresses answer: every IPv4 address of pve-sim's guest network.
class FakeProber final : public Prober {
 public:
  std::optional<bool> Check(const std::string& address, int port, milliseconds, milliseconds,
                            std::function<void()>) override {
    ports.insert(port);
    return address.starts_with("10.99.");
  }
  bool Allowed(std::string_view) const override { return true; }

  std::set<int> ports;
};

// The first 32 bytes of a qcow2 image: magic, and the virtual size at offset 24.
std::string QcowHeader(std::uint64_t virtual_size) {
  std::string header(32, '\0');
  header.replace(0, 4, "QFI\xfb");
  for (int i = 0; i < 8; ++i) header[24 + i] = static_cast<char>(virtual_size >> (56 - 8 * i));
  return header;
}

class VmControllerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    cluster_.endpoint = "https://pve.example:8006";
    cluster_.credentials_ref.name = "pve-token";
    runtime_ =
        std::make_shared<ClusterRuntime>("default/lab", cluster_, world_.NewClient(), world_.clock);
    registry_.Put(runtime_);
    UploadImage("nixos-web.qcow2");
    CreateCluster("lab");
    api::NixImage image;
    image.metadata = {{"name", "web"}, {"namespace", kNs}};
    image.spec.flake = "github:example/infra";
    image.spec.attribute = "nixosConfigurations.web.config.system.build.image";
    image.spec.cluster_ref.name = "lab";
    image.status.phase = api::ImagePhase::kReady;
    image.status.store_path = kStorePath;
    image.status.volume_id = "local:import/nixos-web.qcow2";
    Create(NixImages(), api::ToJson(image));
    reconciler_ = NewReconciler();
  }

  std::unique_ptr<VmReconciler> NewReconciler() {
    VmControllerOptions options;
    options.clock = &world_.clock;
    options.prober = &prober_;
    return std::make_unique<VmReconciler>(kube_, kube_, events_, registry_, options);
  }

  // Puts a 1 GiB image into `local` (content import) on every node.
  void UploadImage(const std::string& name) {
    const std::string file = ::testing::TempDir() + name;
    std::ofstream(file, std::ios::binary) << QcowHeader(1ULL << 30);
    for (const char* node : {"pve1", "pve2", "pve3"}) {
      auto upid = pve().UploadToStorage(node, "local", {"import", file, name, "", ""});
      ASSERT_TRUE(upid.ok()) << upid.status().ToString();
    }
    world_.Advance(seconds(5));
    ASSERT_TRUE(runtime_->RefreshInventory().ok());
  }

  void CreateCluster(const std::string& name) {
    api::ProxmoxCluster cluster;
    cluster.metadata = {{"name", name}, {"namespace", kNs}};
    cluster.spec = cluster_;
    Create(ProxmoxClusters(), api::ToJson(cluster));
  }

  void Create(const kube::ResourceType& type, const kube::Object& obj) {
    auto created = kube_.Create(type, obj);
    ASSERT_TRUE(created.ok()) << created.status().ToString();
  }

  static api::ProxmoxVm NewVm(const std::string& name) {
    api::ProxmoxVm vm;
    vm.metadata = {{"name", name}, {"namespace", kNs}};
    vm.spec.cluster_ref.name = "lab";
    vm.spec.image_ref = api::LocalObjectReference{"web"};
    vm.spec.cpu.cores = 2;
    vm.spec.memory_mib = 1024;
    return vm;
  }
  void Apply(const api::ProxmoxVm& vm) { Create(ProxmoxVms(), api::ToJson(vm)); }

  kube::Object Object(const std::string& name) {
    auto got = kube_.Get(ProxmoxVms(), kNs, name);
    EXPECT_TRUE(got.ok()) << got.status().ToString();
    return got.ok() ? *got : kube::Object::object();
  }
  bool Exists(const std::string& name) { return kube_.Get(ProxmoxVms(), kNs, name).ok(); }
  api::ProxmoxVm Vm(const std::string& name) {
    auto vm = api::ProxmoxVmFromJson(Object(name));
    EXPECT_TRUE(vm.ok()) << vm.status().ToString();
    return vm.ok() ? *vm : api::ProxmoxVm{};
  }
  // "Status/Reason" of a condition, "" when absent.
  std::string ConditionOf(const std::string& name, std::string_view type) {
    for (const api::Condition& c : Vm(name).status.conditions) {
      if (c.type == type) return std::string(api::EnumName(c.status)) + "/" + c.reason;
    }
    return "";
  }
  void Edit(const std::string& name, const std::function<void(kube::Object&)>& change) {
    kube::Object obj = Object(name);
    change(obj);
    auto updated = kube_.Update(ProxmoxVms(), obj);
    ASSERT_TRUE(updated.ok()) << updated.status().ToString();
  }
  void EditStatus(const std::string& name, const std::function<void(kube::Object&)>& change) {
    kube::Object obj = Object(name);
    change(obj);
    auto updated = kube_.UpdateStatus(ProxmoxVms(), obj);
    ASSERT_TRUE(updated.ok()) << updated.status().ToString();
  }

  Result<kube::ReconcileResult> Pass(const std::string& name) {
    last_ = reconciler_->Reconcile({kNs, name});
    return last_;
  }
  // Moves time by what the pass asked for (a second after an error, the
  // backoff's first step), lets pve-sim finish what is due, and lists the
  // cluster again as the ProxmoxCluster controller does every period.
  void Wait(const Result<kube::ReconcileResult>& result) {
    milliseconds delay = seconds(1);
    if (result.ok() && result->requeue_after > milliseconds(0)) delay = result->requeue_after;
    world_.Advance(delay);
    ASSERT_TRUE(runtime_->RefreshInventory().ok());
  }
  // Passes (and waits) until `done` holds; false when `max_passes` ran first.
  bool Converge(const std::string& name, int max_passes, const std::function<bool()>& done) {
    for (int i = 0; i < max_passes; ++i) {
      static_cast<void>(Pass(name));
      if (done()) return true;
      Wait(last_);
    }
    return false;
  }
  bool ConvergeReady(const std::string& name, int max_passes = 40) {
    return Converge(name, max_passes, [&] { return ConditionOf(name, "Ready") == "True/Running"; });
  }

  proxmox::PveClient& pve() { return runtime_->client(); }
  proxmox::VmConfig Config(int vmid, const std::string& node = "") {
    auto config = pve().GetVmConfig(node.empty() ? Vm("web").status.node : node, vmid);
    EXPECT_TRUE(config.ok()) << config.status().ToString();
    return config.ok() ? *config : proxmox::VmConfig();
  }
  std::vector<proxmox::ClusterResource> SimVms() {
    auto vms = pve().ListClusterResources(proxmox::ResourceType::kVm);
    EXPECT_TRUE(vms.ok());
    return vms.ok() ? *vms : std::vector<proxmox::ClusterResource>{};
  }
  const proxmox::ClusterResource* SimVm(int vmid) { return runtime_->inventory()->FindVm(vmid); }
  // Finishes what a test did to pve-sim by hand and lists again.
  void Settle() {
    world_.Advance(seconds(10));
    ASSERT_TRUE(runtime_->RefreshInventory().ok());
  }

  nlohmann::json Sim(const std::string& method, const std::string& path,
                     const std::string& body = "") {
    http::ServerRequest request;
    request.method = method;
    request.path = path;
    request.body = body;
    request.headers.Set("Content-Type", "application/json");
    return nlohmann::json::parse(world_.sim().Handle(request).body, nullptr, false);
  }
  // pve-sim's request counters since the last ClearRequests, e.g. "POST /nodes/{node}/qemu".
  nlohmann::json Requests() { return Sim("GET", "/_sim/requests"); }
  void ClearRequests() { Sim("DELETE", "/_sim/requests"); }
  static int Mutations(const nlohmann::json& requests) {
    int n = 0;
    for (const auto& [key, count] : requests.items()) {
      if (!key.starts_with("GET ")) n += count.get<int>();
    }
    return n;
  }
  // Writes to Kubernetes other than events.
  std::vector<std::string> ObjectWrites() {
    std::vector<std::string> out;
    for (const std::string& action : kube_.actions()) {
      if (action.find(" events ") == std::string::npos) out.push_back(action);
    }
    return out;
  }
  // "Type/Reason" of every event recorded.
  std::vector<std::string> Events() {
    std::vector<std::string> out;
    auto events = kube_.List(kube::resources::Events(), kNs, {});
    EXPECT_TRUE(events.ok());
    for (const kube::Object& e : events->items) {
      out.push_back(kube::StringAt(e, {"type"}) + "/" + kube::StringAt(e, {"reason"}));
    }
    return out;
  }

  SimWorld world_;
  kube::FakeClient kube_{world_.clock};
  kube::EventRecorder events_{kube_, {.clock = &world_.clock}};
  FakeProber prober_;
  api::ProxmoxClusterSpec cluster_;
  ClusterRegistry registry_;
  std::shared_ptr<ClusterRuntime> runtime_;
  std::unique_ptr<VmReconciler> reconciler_;
  Result<kube::ReconcileResult> last_ = kube::ReconcileResult{};

  // Three VMs Ready on NixImage web, which then moves to kNewStorePath.
  void ThreeVmsThenANewImage();
  // ThreeVmsThenANewImage, then round robin passes until all three run the
  // new image, never more than one (maxUnavailable 1) between stop and Ready.
  void RollOutThree();
};

// ---------------------------------------------------------------------------
// Creation

TEST_F(VmControllerTest, CreatesVmThatRunsWithAReachablePrimaryIp) {
  Apply(NewVm("web"));
  ASSERT_TRUE(ConvergeReady("web"));

  api::ProxmoxVm vm = Vm("web");
  ASSERT_TRUE(vm.status.vmid.has_value());
  EXPECT_EQ(vm.status.phase, api::VmPhase::kRunning);
  EXPECT_TRUE(vm.status.primary_ip.starts_with("10.99.")) << vm.status.primary_ip;
  EXPECT_EQ(vm.status.image_store_path, kStorePath);
  EXPECT_EQ(vm.status.observed_generation, 1);
  EXPECT_THAT(Object("web")["metadata"]["finalizers"], Contains(kFinalizer));
  EXPECT_EQ(ConditionOf("web", "AgentConnected"), "True/AgentResponding");
  EXPECT_EQ(ConditionOf("web", "Reachable"), "True/ProbeSucceeded");
  EXPECT_EQ(ConditionOf("web", "InSync"), "True/UpToDate");
  EXPECT_EQ(ConditionOf("web", "Provisioned"), "True/Created");
  EXPECT_EQ(prober_.ports, std::set<int>{22});

  ASSERT_EQ(SimVms().size(), 1u);
  proxmox::VmConfig config = Config(*vm.status.vmid);
  EXPECT_EQ(config.name(), "web");
  EXPECT_EQ(config.cores(), 2);
  EXPECT_THAT(config.tags(), Contains(UidTag(kube::UidOf(Object("web")))));
  EXPECT_THAT(config.tags(), Contains(ImageTag(kStorePath)));
  EXPECT_THAT(Events(), Contains("Normal/Creating"));
  EXPECT_THAT(Events(), Contains("Normal/Starting"));
}

TEST_F(VmControllerTest, WritesVmidAndNodeBeforeCreating) {
  Apply(NewVm("web"));
  ClearRequests();
  const std::size_t before = ObjectWrites().size();
  // The finalizer first, then status with the chosen VMID, and only then,
  // in the same pass, the create; then status again with its task.
  ASSERT_TRUE(Pass("web").ok());
  std::vector<std::string> writes = ObjectWrites();
  writes.erase(writes.begin(), writes.begin() + before);
  EXPECT_THAT(writes,
              ElementsAre("update proxmoxvms default/web", "update_status proxmoxvms default/web",
                          "update_status proxmoxvms default/web"));
  api::ProxmoxVm vm = Vm("web");
  ASSERT_TRUE(vm.status.vmid.has_value());
  EXPECT_FALSE(vm.status.node.empty());
  EXPECT_EQ(vm.status.phase, api::VmPhase::kProvisioning);
  EXPECT_EQ(Requests().value("POST /nodes/{node}/qemu", 0), 1) << Requests().dump();
  ASSERT_TRUE(Vm("web").status.last_task.has_value());
  EXPECT_THAT(Vm("web").status.last_task->upid, ::testing::HasSubstr(":qmcreate:"));
  std::vector<proxmox::ClusterResource> vms = SimVms();
  ASSERT_EQ(vms.size(), 1u);
  EXPECT_EQ(vms[0].vmid, vm.status.vmid);
  EXPECT_EQ(vms[0].node, vm.status.node);
}

TEST_F(VmControllerTest, LostVmidWriteDuringCreateFindsTheSameVm) {
  Apply(NewVm("web"));
  ASSERT_TRUE(Converge("web", 5, [&] { return Vm("web").status.last_task.has_value(); }));
  const int vmid = *Vm("web").status.vmid;
  // The status write is lost while the create runs (its VM has no tags yet).
  EditStatus("web", [](kube::Object& o) {
    o["status"].erase("vmid");
    o["status"].erase("lastTask");
  });

  ASSERT_TRUE(ConvergeReady("web"));
  EXPECT_EQ(Vm("web").status.vmid, vmid);
  EXPECT_EQ(SimVms().size(), 1u);
}

TEST_F(VmControllerTest, AfterARestartALostStatusIsFoundAgainByTheUidTag) {
  Apply(NewVm("web"));
  ASSERT_TRUE(ConvergeReady("web"));
  const int vmid = *Vm("web").status.vmid;
  EditStatus("web", [](kube::Object& o) {
    o["status"].erase("vmid");
    o["status"].erase("node");
    o["status"].erase("lastTask");
  });
  reconciler_ = NewReconciler();  // the operator restarted: nothing in memory

  ASSERT_TRUE(ConvergeReady("web"));
  EXPECT_EQ(Vm("web").status.vmid, vmid);
  EXPECT_EQ(SimVms().size(), 1u);
  EXPECT_THAT(Events(), Contains("Normal/Adopted"));
}

TEST_F(VmControllerTest, CreationsPerStorageStayWithinTheNodesBound) {
  ASSERT_EQ(cluster_.max_creates_per_storage, 2);
  // local-lvm is each node's own storage: the bound is per node.
  std::vector<std::string> woken;
  runtime_->storage_slots().SetWaker([&](const std::string& key) { woken.push_back(key); });
  const std::vector<std::string> names = {"a", "b", "c"};
  for (const std::string& name : names) {
    api::ProxmoxVm vm = NewVm(name);
    vm.spec.node = "pve2";
    Apply(vm);
  }
  bool waited = false;
  for (int round = 0; round < 40; ++round) {
    for (const std::string& name : names) {
      static_cast<void>(Pass(name));
      waited |= ConditionOf(name, "Provisioned") == "False/WaitingForStorage";
    }
    int creating = 0;
    for (const auto& vm : SimVms()) creating += vm.lock == "create";
    ASSERT_LE(creating, 2) << "round " << round;
    EXPECT_LE(runtime_->storage_slots().InUse("pve2/local-lvm"), 2);
    world_.Advance(seconds(1));
    ASSERT_TRUE(runtime_->RefreshInventory().ok());
  }
  EXPECT_TRUE(waited);
  // The one turned away was woken when a slot came free, not left to poll.
  EXPECT_THAT(woken, ElementsAre(kNs + std::string("/c")));
  for (const std::string& name : names) {
    EXPECT_EQ(ConditionOf(name, "Ready"), "True/Running") << name;
  }
  EXPECT_EQ(SimVms().size(), 3u);
}

TEST_F(VmControllerTest, NodesCreateOnTheirOwnLocalStorageAtOnce) {
  const std::vector<std::string> nodes = {"pve1", "pve2", "pve3"};
  for (const std::string& node : nodes) {
    for (const char* suffix : {"-a", "-b"}) {
      api::ProxmoxVm vm = NewVm(node + suffix);
      vm.spec.node = node;
      Apply(vm);
    }
  }
  for (int round = 0; round < 3; ++round) {
    for (const std::string& node : nodes) {
      static_cast<void>(Pass(node + "-a"));
      static_cast<void>(Pass(node + "-b"));
    }
  }
  int creating = 0;
  for (const auto& vm : SimVms()) creating += vm.lock == "create";
  EXPECT_EQ(creating, 6);  // two per node, none waiting on another node's storage
  for (const std::string& node : nodes) {
    EXPECT_EQ(runtime_->storage_slots().InUse(node + "/local-lvm"), 2) << node;
  }
}

TEST_F(VmControllerTest, WaitingForAStorageSlotAsksProxmoxNothing) {
  for (const char* name : {"a", "b", "c"}) {
    api::ProxmoxVm vm = NewVm(name);
    vm.spec.node = "pve1";
    Apply(vm);
  }
  for (int round = 0; round < 3; ++round) {
    for (const char* name : {"a", "b", "c"}) static_cast<void>(Pass(name));
  }
  ASSERT_EQ(ConditionOf("c", "Provisioned"), "False/WaitingForStorage");
  ClearRequests();
  for (int round = 0; round < 5; ++round) ASSERT_TRUE(Pass("c").ok());
  EXPECT_EQ(Requests(), nlohmann::json::object());
  EXPECT_EQ(ConditionOf("c", "Provisioned"), "False/WaitingForStorage");
}

// ---------------------------------------------------------------------------
// Keeping it as the spec says

TEST_F(VmControllerTest, SpecEditUpdatesTheConfigAndReportsWhatWaitsForARestart) {
  Apply(NewVm("web"));
  ASSERT_TRUE(ConvergeReady("web"));
  const int vmid = *Vm("web").status.vmid;
  Edit("web", [](kube::Object& o) {
    o["spec"]["cpu"]["cores"] = 4;
    o["spec"]["memoryMiB"] = 2048;
  });

  ASSERT_TRUE(Converge(
      "web", 10, [&] { return ConditionOf("web", "RestartRequired") == "True/PendingChanges"; }));
  proxmox::VmConfig config = Config(vmid);
  EXPECT_EQ(config.cores(), 4);
  EXPECT_EQ(config.memory_mib(), 2048);
  EXPECT_THAT(Events(), Contains("Normal/ConfigUpdated"));
  // Nothing restarts the VM for it: it keeps running.
  EXPECT_EQ(SimVm(vmid)->status, "running");
  EXPECT_EQ(Vm("web").status.observed_generation, 2);
  EXPECT_EQ(ConditionOf("web", "InSync"), "True/UpToDate");
}

TEST_F(VmControllerTest, DriftMadeInProxmoxIsSetBack) {
  Apply(NewVm("web"));
  ASSERT_TRUE(ConvergeReady("web"));
  const int vmid = *Vm("web").status.vmid;
  const std::string node = Vm("web").status.node;
  std::vector<std::string> tags = Config(vmid).tags();
  proxmox::ConfigUpdate edit;
  edit.set.SetInt("cores", 8).SetTags({tags[0], tags[1], "handmade"});
  ASSERT_TRUE(pve().UpdateVmConfigSync(node, vmid, edit).ok());
  Settle();

  ASSERT_TRUE(Converge("web", 10, [&] {
    proxmox::VmConfig config = Config(vmid);
    return config.cores() == 2 && config.tags() == tags;
  }));
  EXPECT_THAT(Events(), Contains("Normal/ConfigDrift"));
}

TEST_F(VmControllerTest, DriftTheInventoryCannotShowIsFoundAtTheResync) {
  Apply(NewVm("web"));
  ASSERT_TRUE(ConvergeReady("web"));
  const int vmid = *Vm("web").status.vmid;
  auto net0 = Config(vmid).net(0);
  ASSERT_TRUE(net0.ok());
  proxmox::NetConfig moved = *net0;
  moved.bridge = "vmbr9";
  proxmox::ConfigUpdate edit;
  edit.set.SetNet(0, moved);
  ASSERT_TRUE(pve().UpdateVmConfigSync(Vm("web").status.node, vmid, edit).ok());
  Settle();

  ASSERT_TRUE(Converge("web", 20, [&] { return Config(vmid).net(0)->bridge == "vmbr0"; }));
  EXPECT_EQ(Config(vmid).net(0)->macaddr, net0->macaddr);
}

TEST_F(VmControllerTest, VmStoppedByHandIsStartedAgain) {
  Apply(NewVm("web"));
  ASSERT_TRUE(ConvergeReady("web"));
  const int vmid = *Vm("web").status.vmid;
  ASSERT_TRUE(pve().StopVm(Vm("web").status.node, vmid, {}).ok());
  Settle();
  ASSERT_EQ(SimVm(vmid)->status, "stopped");

  ASSERT_TRUE(ConvergeReady("web"));
  EXPECT_EQ(SimVm(vmid)->status, "running");
}

TEST_F(VmControllerTest, PowerStateStoppedShutsTheVmDown) {
  Apply(NewVm("web"));
  ASSERT_TRUE(ConvergeReady("web"));
  const int vmid = *Vm("web").status.vmid;
  Edit("web", [](kube::Object& o) { o["spec"]["powerState"] = "Stopped"; });

  ASSERT_TRUE(Converge("web", 10, [&] { return ConditionOf("web", "Ready") == "True/Stopped"; }));
  EXPECT_EQ(SimVm(vmid)->status, "stopped");
  EXPECT_EQ(Vm("web").status.phase, api::VmPhase::kStopped);
  EXPECT_THAT(Vm("web").status.ip_addresses, IsEmpty());
  EXPECT_THAT(Events(), Contains("Normal/Stopping"));
}

TEST_F(VmControllerTest, VmDeletedByHandIsCreatedAgainWithTheSameVmid) {
  Apply(NewVm("web"));
  ASSERT_TRUE(ConvergeReady("web"));
  const int vmid = *Vm("web").status.vmid;
  const std::string node = Vm("web").status.node;
  ASSERT_TRUE(pve().StopVm(node, vmid, {}).ok());
  Settle();
  ASSERT_TRUE(pve().DeleteVm(node, vmid, {.purge = true}).ok());
  Settle();
  ASSERT_EQ(SimVm(vmid), nullptr);

  ASSERT_TRUE(ConvergeReady("web"));
  EXPECT_EQ(Vm("web").status.vmid, vmid);
  ASSERT_NE(SimVm(vmid), nullptr);
  EXPECT_THAT(SimVm(vmid)->tags, Contains(UidTag(kube::UidOf(Object("web")))));
}

TEST_F(VmControllerTest, VmMovedToAnotherNodeIsFollowed) {
  Apply(NewVm("web"));
  ASSERT_TRUE(ConvergeReady("web"));
  const int vmid = *Vm("web").status.vmid;
  const std::string from = Vm("web").status.node;
  const std::string to = from == "pve1" ? "pve2" : "pve1";
  ASSERT_TRUE(pve().StopVm(from, vmid, {}).ok());
  Settle();
  ASSERT_TRUE(pve().MigrateVm(from, vmid, {.target = to}).ok());
  Settle();
  ASSERT_EQ(SimVm(vmid)->node, to);

  ASSERT_TRUE(ConvergeReady("web"));
  EXPECT_EQ(Vm("web").status.node, to);
  EXPECT_EQ(SimVm(vmid)->status, "running");
  EXPECT_THAT(Events(), Contains("Normal/Moved"));
}

TEST_F(VmControllerTest, ForeignVmHoldingTheVmidIsNeverTouched) {
  proxmox::Params foreign;
  foreign.Set("name", "foreign").SetInt("memory", 512);
  ASSERT_TRUE(pve().CreateVm("pve2", 150, foreign).ok());
  Settle();
  const std::string digest = Config(150, "pve2").digest();
  api::ProxmoxVm vm = NewVm("web");
  vm.spec.vmid = 150;
  Apply(vm);
  ClearRequests();

  Converge("web", 5, [] { return false; });
  EXPECT_EQ(ConditionOf("web", "Provisioned"), "False/VMIDInUse");
  EXPECT_EQ(ConditionOf("web", "Ready"), "False/VMIDInUse");
  EXPECT_EQ(Mutations(Requests()), 0) << Requests().dump();
  EXPECT_EQ(Config(150, "pve2").digest(), digest);
  EXPECT_THAT(Events(), Contains("Warning/VMIDInUse"));
  EXPECT_EQ(SimVms().size(), 1u);
}

TEST_F(VmControllerTest, AllocatedVmidTakenBeforeTheCreatePicksAnother) {
  Apply(NewVm("web"));
  // Someone takes the VMID the allocator will choose after the inventory
  // was listed: the VMID is written, the create refused, another chosen.
  const int picked = 100;
  ASSERT_EQ(runtime_->inventory()->FindVm(picked), nullptr);
  ASSERT_TRUE(pve().CreateVm("pve3", picked, proxmox::Params().Set("name", "fast")).ok());
  world_.Advance(seconds(2));
  ASSERT_TRUE(Pass("web").ok());
  EXPECT_THAT(Events(), Contains("Warning/VMIDInUse"));

  ASSERT_TRUE(ConvergeReady("web"));
  EXPECT_NE(*Vm("web").status.vmid, picked);
  EXPECT_EQ(Config(picked, "pve3").name(), "fast");
  EXPECT_EQ(SimVms().size(), 2u);
}

TEST_F(VmControllerTest, AdoptVmidTakesOverAnExistingVmByItsTagsFirst) {
  proxmox::Params legacy;
  legacy.Set("name", "legacy").SetInt("memory", 512).SetTags({"legacy"});
  legacy.Set("scsi0", "local-lvm:0,import-from=local:import/nixos-web.qcow2");
  legacy.Set("net0", "virtio,bridge=vmbr0").Set("agent", "enabled=1");
  ASSERT_TRUE(pve().CreateVm("pve2", 170, legacy).ok());
  Settle();
  api::ProxmoxVm vm = NewVm("web");
  vm.metadata["annotations"][kAnnotationAdoptVmid] = "170";
  Apply(vm);

  ASSERT_TRUE(Pass("web").ok());
  // That pass changes only the tags, and records the VM.
  proxmox::VmConfig config = Config(170, "pve2");
  EXPECT_THAT(config.tags(), Contains("legacy"));
  EXPECT_THAT(config.tags(), Contains(UidTag(kube::UidOf(Object("web")))));
  EXPECT_THAT(config.tags(), Contains(ImageTag(kStorePath)));
  EXPECT_EQ(config.memory_mib(), 512);
  EXPECT_EQ(Vm("web").status.vmid, 170);
  EXPECT_THAT(Events(), Contains("Normal/Adopted"));

  Wait(last_);
  ASSERT_TRUE(ConvergeReady("web"));
  EXPECT_EQ(Config(170, "pve2").memory_mib(), 1024);
  EXPECT_EQ(Config(170, "pve2").name(), "web");
  EXPECT_EQ(SimVms().size(), 1u);
}

// ---------------------------------------------------------------------------
// Image rollout

TEST_F(VmControllerTest, NewImageRecreatesTheVmWithTheSameVmidAndMacs) {
  Apply(NewVm("web"));
  ASSERT_TRUE(ConvergeReady("web"));
  const int vmid = *Vm("web").status.vmid;
  const std::string mac = Config(vmid).net(0)->macaddr;
  UploadImage("nixos-web2.qcow2");
  kube::Object image = kube_.Get(NixImages(), kNs, "web").value();
  image["status"]["storePath"] = kNewStorePath;
  image["status"]["volumeID"] = "local:import/nixos-web2.qcow2";
  ASSERT_TRUE(kube_.UpdateStatus(NixImages(), image).ok());

  ASSERT_TRUE(Converge("web", 40, [&] {
    return Vm("web").status.image_store_path == kNewStorePath &&
           ConditionOf("web", "Ready") == "True/Running";
  }));
  EXPECT_EQ(Vm("web").status.vmid, vmid);
  proxmox::VmConfig config = Config(vmid);
  EXPECT_EQ(config.net(0)->macaddr, mac);
  EXPECT_THAT(config.tags(), Contains(ImageTag(kNewStorePath)));
  EXPECT_THAT(config.tags(), Not(Contains(ImageTag(kStorePath))));
  EXPECT_EQ(ConditionOf("web", "UpdateAvailable"), "False/UpToDate");
  // The MACs kept on the object for the re-create are gone once it is done.
  EXPECT_FALSE(Object("web")["metadata"]["annotations"].contains("nixmox.io/recreate-macs"));
  EXPECT_THAT(Events(), Contains("Normal/Recreating"));
  EXPECT_EQ(SimVms().size(), 1u);
}

TEST_F(VmControllerTest, NewImageWithManualPolicyIsOnlyReported) {
  api::ProxmoxVm vm = NewVm("web");
  vm.spec.update_policy = api::UpdatePolicy::kManual;
  Apply(vm);
  ASSERT_TRUE(ConvergeReady("web"));
  const int vmid = *Vm("web").status.vmid;
  kube::Object image = kube_.Get(NixImages(), kNs, "web").value();
  image["status"]["storePath"] = kNewStorePath;
  ASSERT_TRUE(kube_.UpdateStatus(NixImages(), image).ok());
  ClearRequests();

  Converge("web", 3, [] { return false; });
  EXPECT_EQ(ConditionOf("web", "UpdateAvailable"), "True/UpdatePending");
  EXPECT_EQ(ConditionOf("web", "Ready"), "True/Running");
  EXPECT_EQ(Mutations(Requests()), 0) << Requests().dump();
  EXPECT_THAT(Config(vmid).tags(), Contains(ImageTag(kStorePath)));
}

TEST_F(VmControllerTest, RolloutReCreatesAtMostMaxUnavailableVmsAtATime) { RollOutThree(); }

TEST_F(VmControllerTest, RolloutCountsBusySiblingsThroughTheIndex) {
  // As in production: siblings come from kIndexRolloutBusy, never decoded.
  int lookups = 0;
  VmControllerOptions options;
  options.clock = &world_.clock;
  options.rollout_busy = [&](const std::string& value) -> Result<std::vector<std::string>> {
    ++lookups;
    std::vector<std::string> keys;
    Result<kube::ObjectList> all = kube_.List(ProxmoxVms(), kNs, {});
    if (!all.ok()) return all.status();
    for (const kube::Object& obj : all->items) {
      for (const std::string& v : RolloutBusyIndex()(obj)) {
        if (v == value) keys.push_back(kube::KeyOf(obj));
      }
    }
    return keys;
  };
  reconciler_ = std::make_unique<VmReconciler>(kube_, kube_, events_, registry_, options);
  RollOutThree();
  EXPECT_GT(lookups, 0);
}

TEST(ImageRunsIndexTest, KeysEachImageUserByImageThenStorePath) {
  kube::Object vm = {{"metadata", {{"name", "a"}, {"namespace", "ns"}}},
                     {"spec", {{"imageRef", {{"name", "web"}}}}},
                     {"status", {{"imageStorePath", "/nix/store/a"}}}};
  EXPECT_THAT(ImageRunsIndex()(vm), ElementsAre(ImagePathValue("ns/web", "/nix/store/a")));
  // A prefix search for one image never matches another whose name extends it.
  EXPECT_EQ(ImagePathValue("ns/web", "").rfind(ImagePathValue("ns/we", ""), 0), std::string::npos);
  vm["status"].erase("imageStorePath");
  EXPECT_THAT(ImageRunsIndex()(vm), ElementsAre(ImagePathValue("ns/web", "")));
  vm["spec"].erase("imageRef");
  EXPECT_THAT(ImageRunsIndex()(vm), IsEmpty());
}

TEST(RolloutBusyIndexTest, NamesReCreatingVmsAndThoseNotReadyOnAPath) {
  auto vm = [](std::string ready, std::string update, std::string path) {
    kube::Object obj = {
        {"metadata", {{"name", "a"}, {"namespace", "ns"}}},
        {"spec", {{"imageRef", {{"name", "web"}}}}},
        {"status",
         {{"imageStorePath", path},
          {"conditions",
           {{{"type", "Ready"}, {"status", ready}},
            {{"type", "UpdateAvailable"}, {"status", "True"}, {"reason", update}}}}}}};
    return obj;
  };
  EXPECT_THAT(RolloutBusyIndex()(vm("False", "Recreating", "/nix/store/a")),
              ElementsAre(ImagePathValue("ns/web", "")));
  EXPECT_THAT(RolloutBusyIndex()(vm("False", "UpToDate", "/nix/store/b")),
              ElementsAre(ImagePathValue("ns/web", "/nix/store/b")));
  EXPECT_THAT(RolloutBusyIndex()(vm("True", "RolloutWaiting", "/nix/store/a")), IsEmpty());
  EXPECT_THAT(RolloutBusyIndex()(kube::Object{{"metadata", {{"name", "x"}}}}), IsEmpty());
}

void VmControllerTest::ThreeVmsThenANewImage() {
  for (const char* name : {"web-a", "web-b", "web-c"}) {
    Apply(NewVm(name));
    ASSERT_TRUE(ConvergeReady(name)) << name;
  }
  UploadImage("nixos-web2.qcow2");
  kube::Object image = kube_.Get(NixImages(), kNs, "web").value();
  image["status"]["storePath"] = kNewStorePath;
  image["status"]["volumeID"] = "local:import/nixos-web2.qcow2";
  ASSERT_TRUE(kube_.UpdateStatus(NixImages(), image).ok());
}

void VmControllerTest::RollOutThree() {
  const std::vector<std::string> names = {"web-a", "web-b", "web-c"};
  ThreeVmsThenANewImage();

  // Round robin, as workers would take them; at no point may two VMs be
  // between their stop and Ready on the new image.
  int max_busy = 0;
  bool waited = false;
  for (int round = 0; round < 120; ++round) {
    for (const std::string& name : names) static_cast<void>(Pass(name));
    int busy = 0, done = 0;
    for (const std::string& name : names) {
      const api::ProxmoxVm vm = Vm(name);
      const bool on_new = vm.status.image_store_path == kNewStorePath;
      const bool ready = ConditionOf(name, "Ready") == "True/Running";
      if (ConditionOf(name, "UpdateAvailable") == "True/Recreating" || (on_new && !ready)) ++busy;
      if (ConditionOf(name, "UpdateAvailable") == "True/RolloutWaiting") waited = true;
      if (on_new && ready) ++done;
    }
    max_busy = std::max(max_busy, busy);
    if (done == static_cast<int>(names.size())) break;
    world_.Advance(seconds(1));
    ASSERT_TRUE(runtime_->RefreshInventory().ok());
  }
  for (const std::string& name : names) {
    EXPECT_EQ(Vm(name).status.image_store_path, kNewStorePath) << name;
    EXPECT_EQ(ConditionOf(name, "Ready"), "True/Running") << name;
  }
  EXPECT_EQ(max_busy, 1);
  EXPECT_TRUE(waited) << "no VM ever waited for a slot";
  EXPECT_EQ(SimVms().size(), names.size());
}

TEST_F(VmControllerTest, ARecreatedVmIsCreatedAgainBeforeTheInventoryShowsItGone) {
  Apply(NewVm("web"));
  ASSERT_TRUE(ConvergeReady("web"));
  UploadImage("nixos-web2.qcow2");
  kube::Object image = kube_.Get(NixImages(), kNs, "web").value();
  image["status"]["storePath"] = kNewStorePath;
  image["status"]["volumeID"] = "local:import/nixos-web2.qcow2";
  ASSERT_TRUE(kube_.UpdateStatus(NixImages(), image).ok());
  // From here on the inventory is never listed again: it keeps showing the
  // old VM, running, with the old image's tag. What the operator's own
  // tasks said must carry it on, and the new VM must not be taken for the
  // old one (and destroyed again).
  std::vector<std::string> tasks;
  for (int i = 0; i < 20 && tasks.size() < 5; ++i) {
    ASSERT_TRUE(Pass("web").ok());
    const std::optional<api::TaskRef>& task = Vm("web").status.last_task;
    if (task && (tasks.empty() || tasks.back() != task->upid)) tasks.push_back(task->upid);
    world_.Advance(seconds(2));
  }
  ASSERT_EQ(tasks.size(), 4u);
  EXPECT_THAT(tasks[0], HasSubstr(":qmstop:"));
  EXPECT_THAT(tasks[1], HasSubstr(":qmdestroy:"));
  EXPECT_THAT(tasks[2], HasSubstr(":qmcreate:"));
  EXPECT_THAT(tasks[3], HasSubstr(":qmstart:"));
  EXPECT_EQ(Vm("web").status.image_store_path, kNewStorePath);
}

TEST_F(VmControllerTest, VmsWaitingForARolloutSlotStandInLine) {
  ThreeVmsThenANewImage();
  const std::string image_key = kNs + std::string("/web");
  EXPECT_EQ(reconciler_->TakeRolloutWaiter(image_key), "");

  ASSERT_TRUE(Pass("web-a").ok());
  EXPECT_EQ(ConditionOf("web-a", "UpdateAvailable"), "True/Recreating");
  ASSERT_TRUE(Pass("web-c").ok());
  ASSERT_TRUE(Pass("web-b").ok());
  ASSERT_TRUE(Pass("web-c").ok());  // asking again keeps its place
  EXPECT_EQ(ConditionOf("web-b", "UpdateAvailable"), "True/RolloutWaiting");
  // The next slot goes to the first in line, then the next; each once.
  EXPECT_EQ(reconciler_->TakeRolloutWaiter(image_key), kNs + std::string("/web-c"));
  EXPECT_EQ(reconciler_->TakeRolloutWaiter(image_key), kNs + std::string("/web-b"));
  EXPECT_EQ(reconciler_->TakeRolloutWaiter(image_key), "");
}

// ---------------------------------------------------------------------------
// Deletion

TEST_F(VmControllerTest, DeletionDestroysTheVmThenRemovesTheFinalizer) {
  Apply(NewVm("web"));
  ASSERT_TRUE(ConvergeReady("web"));
  const int vmid = *Vm("web").status.vmid;
  ASSERT_TRUE(kube_.Delete(ProxmoxVms(), kNs, "web").ok());

  ASSERT_TRUE(Converge("web", 20, [&] { return !Exists("web"); }));
  EXPECT_EQ(SimVm(vmid), nullptr);
  EXPECT_THAT(SimVms(), IsEmpty());
  EXPECT_THAT(Events(), Contains("Normal/Deleting"));
}

TEST_F(VmControllerTest, ProtectedVmIsNeverDestroyed) {
  api::ProxmoxVm vm = NewVm("web");
  vm.spec.protection = true;
  Apply(vm);
  ASSERT_TRUE(ConvergeReady("web"));
  const int vmid = *Vm("web").status.vmid;
  EXPECT_TRUE(Config(vmid).protection());
  ASSERT_TRUE(kube_.Delete(ProxmoxVms(), kNs, "web").ok());

  Converge("web", 5, [] { return false; });
  ASSERT_TRUE(Exists("web"));
  EXPECT_THAT(Object("web")["metadata"]["finalizers"], Contains(kFinalizer));
  EXPECT_EQ(ConditionOf("web", "Ready"), "False/Protected");
  EXPECT_NE(SimVm(vmid), nullptr);
  EXPECT_THAT(Events(), Contains("Warning/Protected"));

  // Unprotected, it goes: Proxmox's protection flag is cleared first.
  Edit("web", [](kube::Object& o) { o["spec"]["protected"] = false; });
  ASSERT_TRUE(Converge("web", 20, [&] { return !Exists("web"); }));
  EXPECT_EQ(SimVm(vmid), nullptr);
}

TEST_F(VmControllerTest, RetainLeavesTheVmTaggedUnmanaged) {
  api::ProxmoxVm vm = NewVm("web");
  vm.spec.deletion_policy = api::DeletionPolicy::kRetain;
  Apply(vm);
  ASSERT_TRUE(ConvergeReady("web"));
  const int vmid = *Vm("web").status.vmid;
  const std::string node = Vm("web").status.node;
  const std::string uid_tag = UidTag(kube::UidOf(Object("web")));
  ASSERT_TRUE(kube_.Delete(ProxmoxVms(), kNs, "web").ok());

  ASSERT_TRUE(Converge("web", 10, [&] { return !Exists("web"); }));
  ASSERT_NE(SimVm(vmid), nullptr);
  EXPECT_EQ(SimVm(vmid)->status, "running");
  proxmox::VmConfig config = Config(vmid, node);
  EXPECT_THAT(config.tags(), Contains(kUnmanagedTag));
  EXPECT_THAT(config.tags(), Not(Contains(uid_tag)));
  EXPECT_THAT(Events(), Contains("Normal/Retained"));
}

TEST_F(VmControllerTest, DeletingAVmNeverCreatedJustRemovesTheFinalizer) {
  api::ProxmoxVm vm = NewVm("web");
  vm.spec.image_ref = api::LocalObjectReference{"missing"};
  Apply(vm);
  ASSERT_TRUE(Pass("web").ok());
  ASSERT_THAT(Object("web")["metadata"]["finalizers"], Contains(kFinalizer));
  ASSERT_TRUE(kube_.Delete(ProxmoxVms(), kNs, "web").ok());
  ClearRequests();

  ASSERT_TRUE(Pass("web").ok());
  EXPECT_FALSE(Exists("web"));
  EXPECT_EQ(Mutations(Requests()), 0);
}

// ---------------------------------------------------------------------------
// The reconcile annotation

TEST_F(VmControllerTest, PausedMakesNoRequestAndNoWrite) {
  api::ProxmoxVm vm = NewVm("web");
  vm.metadata["annotations"][kAnnotationReconcile] = "Paused";
  Apply(vm);
  ClearRequests();
  const std::size_t writes = ObjectWrites().size();

  for (int i = 0; i < 3; ++i) {
    auto result = Pass("web");
    ASSERT_TRUE(result.ok());
    EXPECT_EQ(result->requeue_after, milliseconds(0));
  }
  EXPECT_EQ(Requests(), nlohmann::json::object());
  EXPECT_EQ(ObjectWrites().size(), writes);
}

TEST_F(VmControllerTest, ObserveOnlyReportsButNeverChangesProxmox) {
  Apply(NewVm("web"));
  ASSERT_TRUE(ConvergeReady("web"));
  const int vmid = *Vm("web").status.vmid;
  Edit("web", [](kube::Object& o) {
    o["metadata"]["annotations"][kAnnotationReconcile] = "ObserveOnly";
    o["spec"]["cpu"]["cores"] = 4;
  });
  ASSERT_TRUE(pve().StopVm(Vm("web").status.node, vmid, {}).ok());
  Settle();
  ClearRequests();

  Converge("web", 5, [] { return false; });
  EXPECT_EQ(Mutations(Requests()), 0) << Requests().dump();
  EXPECT_EQ(Vm("web").status.phase, api::VmPhase::kStopped);
  EXPECT_EQ(ConditionOf("web", "InSync"), "False/ConfigDrift");
  EXPECT_EQ(SimVm(vmid)->status, "stopped");
  EXPECT_EQ(Config(vmid).cores(), 2);
}

TEST_F(VmControllerTest, ObserveOnlyCreatesNothing) {
  api::ProxmoxVm vm = NewVm("web");
  vm.metadata["annotations"][kAnnotationReconcile] = "ObserveOnly";
  Apply(vm);
  ClearRequests();

  Converge("web", 3, [] { return false; });
  EXPECT_EQ(Mutations(Requests()), 0) << Requests().dump();
  EXPECT_EQ(ConditionOf("web", "Provisioned"), "False/VMNotFound");
  EXPECT_FALSE(Vm("web").status.vmid.has_value());
}

// ---------------------------------------------------------------------------
// What it waits for

TEST_F(VmControllerTest, MissingClusterIsReported) {
  api::ProxmoxVm vm = NewVm("web");
  vm.spec.cluster_ref.name = "nowhere";
  Apply(vm);
  auto result = Pass("web");
  ASSERT_TRUE(result.ok());
  EXPECT_EQ(result->requeue_after, seconds(30));
  EXPECT_EQ(ConditionOf("web", "ClusterReady"), "False/ClusterNotFound");
  EXPECT_EQ(ConditionOf("web", "Ready"), "False/ClusterNotFound");
}

TEST_F(VmControllerTest, ClusterNotConnectedYetIsReported) {
  CreateCluster("other");
  api::ProxmoxVm vm = NewVm("web");
  vm.spec.cluster_ref.name = "other";
  Apply(vm);
  auto result = Pass("web");
  ASSERT_TRUE(result.ok());
  EXPECT_EQ(result->requeue_after, seconds(10));
  EXPECT_EQ(ConditionOf("web", "ClusterReady"), "False/ClusterNotReady");
}

TEST_F(VmControllerTest, MissingOrUnbuiltImageWaitsWithoutChoosingAVmid) {
  api::ProxmoxVm vm = NewVm("web");
  vm.spec.image_ref = api::LocalObjectReference{"missing"};
  Apply(vm);
  auto result = Pass("web");
  ASSERT_TRUE(result.ok());
  EXPECT_EQ(result->requeue_after, seconds(30));
  EXPECT_EQ(ConditionOf("web", "ImageReady"), "False/ImageNotFound");
  EXPECT_EQ(ConditionOf("web", "Ready"), "False/ImageNotFound");
  EXPECT_FALSE(Vm("web").status.vmid.has_value());

  api::NixImage building;
  building.metadata = {{"name", "missing"}, {"namespace", kNs}};
  building.spec.flake = "github:example/infra";
  building.spec.attribute = "x";
  building.spec.cluster_ref.name = "lab";
  building.status.phase = api::ImagePhase::kBuilding;
  Create(NixImages(), api::ToJson(building));
  ASSERT_TRUE(Pass("web").ok());
  EXPECT_EQ(ConditionOf("web", "ImageReady"), "False/ImageNotReady");
  EXPECT_FALSE(Vm("web").status.vmid.has_value());
}

TEST_F(VmControllerTest, InvalidSpecIsTerminalAndListsEveryError) {
  api::ProxmoxVm vm = NewVm("web");
  vm.spec.memory_mib = 8;
  vm.spec.tags = {"nixmox-mine"};
  Apply(vm);
  auto result = Pass("web");
  ASSERT_FALSE(result.ok());
  EXPECT_TRUE(kube::IsTerminal(result.status()));
  EXPECT_EQ(ConditionOf("web", "Ready"), "False/InvalidSpec");
  const api::Condition* ready = nullptr;
  api::ProxmoxVm seen = Vm("web");
  for (const api::Condition& c : seen.status.conditions) {
    if (c.type == "Ready") ready = &c;
  }
  ASSERT_NE(ready, nullptr);
  EXPECT_THAT(ready->message, ::testing::HasSubstr("spec.memoryMiB"));
  EXPECT_THAT(ready->message, ::testing::HasSubstr("spec.tags[0]"));
  EXPECT_EQ(seen.status.phase, api::VmPhase::kFailed);
  EXPECT_THAT(SimVms(), IsEmpty());
}

// ---------------------------------------------------------------------------
// Failures and quiet passes

TEST_F(VmControllerTest, FailedTaskIsReportedAndRecoveredFrom) {
  Sim("PUT", "/_sim/faults", R"({"task_failure_rate": 1.0})");
  Apply(NewVm("web"));
  ASSERT_TRUE(
      Converge("web", 10, [&] { return ConditionOf("web", "Provisioned") == "False/TaskFailed"; }));
  ASSERT_FALSE(last_.ok());
  EXPECT_EQ(last_.status().code(), Code::kRetryable);
  EXPECT_EQ(ConditionOf("web", "Ready"), "False/TaskFailed");
  EXPECT_EQ(Vm("web").status.phase, api::VmPhase::kFailed);
  EXPECT_THAT(Vm("web").status.last_task->message, ::testing::HasSubstr("simulated task failure"));
  EXPECT_THAT(Events(), Contains("Warning/TaskFailed"));
  EXPECT_THAT(SimVms(), IsEmpty());
  EXPECT_EQ(runtime_->storage_slots().InUse("local-lvm"), 0);

  Sim("PUT", "/_sim/faults", R"({"task_failure_rate": 0.0})");
  ASSERT_TRUE(ConvergeReady("web"));
  EXPECT_EQ(SimVms().size(), 1u);
}

TEST_F(VmControllerTest, PassWithNothingChangedWritesNothingAndAsksNothing) {
  Apply(NewVm("web"));
  ASSERT_TRUE(ConvergeReady("web"));
  const std::size_t writes = ObjectWrites().size();
  ClearRequests();

  auto result = Pass("web");
  ASSERT_TRUE(result.ok());
  EXPECT_GT(result->requeue_after, milliseconds(0));
  EXPECT_EQ(ObjectWrites().size(), writes);
  EXPECT_EQ(Requests(), nlohmann::json::object());
}

TEST_F(VmControllerTest, ConvergingReadsWhatItAlreadyKnowsOnlyOnce) {
  ClearRequests();
  Apply(NewVm("web"));
  ASSERT_TRUE(ConvergeReady("web"));
  const nlohmann::json requests = Requests();
  // The config once, after the create (not again when the inventory shows
  // the VM started); the power state never (the create and the start task
  // tell it); the agent not before the guest had 5 s to boot (this world's
  // guest needs 6 s, so the second question gets the answer).
  EXPECT_EQ(requests.value("GET /nodes/{node}/qemu/{vmid}/config", 0), 1) << requests.dump();
  EXPECT_EQ(requests.value("GET /nodes/{node}/qemu/{vmid}/status/current", 0), 0);
  EXPECT_EQ(requests.value("GET /nodes/{node}/qemu/{vmid}/agent/network-get-interfaces", 0), 2);
  EXPECT_EQ(Vm("web").status.vmid, 100);
  // What lets a pass trust the inventory's first sight of a VM it compared.
  EXPECT_EQ(InventoryView(*runtime_->inventory()->FindVm(100)), InventoryView(Config(100)));
  world_.Advance(seconds(1));
  ASSERT_TRUE(runtime_->RefreshInventory().ok());
  ClearRequests();
  ASSERT_TRUE(Pass("web").ok());
  EXPECT_EQ(Requests(), nlohmann::json::object());
}

TEST_F(VmControllerTest, AgentRechecksTakeAtMostHalfTheRequestBudget) {
  // One request per second for the cluster: asking every running VM's agent
  // once per agent period may use half of it, so one running VM is asked
  // every 2 s at the most, whatever --agent-period says.
  kube::Object cluster = *kube_.Get(ProxmoxClusters(), kNs, "lab");
  cluster["spec"]["maxRequestsPerSecond"] = 1;
  ASSERT_TRUE(kube_.Update(ProxmoxClusters(), cluster).ok());
  VmControllerOptions options;
  options.clock = &world_.clock;
  options.agent_period = seconds(1);
  reconciler_ = std::make_unique<VmReconciler>(kube_, kube_, events_, registry_, options);
  Apply(NewVm("web"));
  ASSERT_TRUE(ConvergeReady("web"));
  ASSERT_TRUE(runtime_->RefreshInventory().ok());
  ASSERT_EQ(runtime_->inventory()->managed_running, 1);
  world_.Advance(seconds(3));
  ASSERT_TRUE(Pass("web").ok());  // asks the agent now
  ASSERT_TRUE(last_.ok());
  EXPECT_EQ(last_->requeue_after, seconds(2));
}

TEST_F(VmControllerTest, GuestAgentNotAnsweringYetIsNoError) {
  Apply(NewVm("web"));
  ASSERT_TRUE(
      Converge("web", 20, [&] { return Vm("web").status.phase == api::VmPhase::kRunning; }));
  ASSERT_TRUE(last_.ok()) << last_.status().ToString();
  EXPECT_LE(last_->requeue_after, seconds(5));
  // The agent is first asked a few seconds after the start (the guest boots).
  ASSERT_TRUE(Converge("web", 3, [&] { return !ConditionOf("web", "AgentConnected").empty(); }));
  EXPECT_EQ(ConditionOf("web", "AgentConnected"), "False/AgentNotRunning");
  EXPECT_EQ(ConditionOf("web", "Ready"), "False/AgentNotRunning");
  EXPECT_TRUE(Vm("web").status.primary_ip.empty());
}

TEST_F(VmControllerTest, ObjectGoneForgetsItsClaims) {
  Apply(NewVm("web"));
  ASSERT_TRUE(Converge("web", 5, [&] { return Vm("web").status.last_task.has_value(); }));
  const std::string slot = Vm("web").status.node + "/local-lvm";
  ASSERT_EQ(runtime_->storage_slots().InUse(slot), 1);
  // Removed behind the finalizer's back (e.g. forced): nothing stays held.
  kube::Object obj = Object("web");
  obj["metadata"].erase("finalizers");
  ASSERT_TRUE(kube_.Update(ProxmoxVms(), obj).ok());
  ASSERT_TRUE(kube_.Delete(ProxmoxVms(), kNs, "web").ok());

  ASSERT_TRUE(Pass("web").ok());
  EXPECT_EQ(runtime_->storage_slots().InUse(slot), 0);
  EXPECT_THAT(runtime_->placements().Pending(), IsEmpty());
}

// ---------------------------------------------------------------------------
// Indexes and the inventory mapping

TEST_F(VmControllerTest, IndexesAndInventoryChangesMapToProxmoxVms) {
  Apply(NewVm("a"));
  Apply(NewVm("b"));
  EditStatus("a", [](kube::Object& o) { o["status"]["vmid"] = 100; });
  kube::Informer informer(kube_, ProxmoxVms(), kNs);
  ASSERT_TRUE(informer.AddIndex(kIndexUidTag, UidTagIndex()).ok());
  ASSERT_TRUE(informer.AddIndex(kIndexClusterVmid, ClusterVmidIndex()).ok());
  ASSERT_TRUE(informer.AddIndex(kIndexImage, ImageIndex()).ok());
  ASSERT_TRUE(informer.AddIndex(kIndexCluster, ClusterIndex()).ok());
  ASSERT_TRUE(informer.AddIndex(kIndexImageRuns, ImageRunsIndex()).ok());
  ASSERT_TRUE(informer.reflector().ListAndWatch(nullptr).ok());
  kube::CacheReader cache;
  cache.Register(informer);

  EXPECT_THAT(ClusterVmidIndex()(Object("a")), ElementsAre("default/lab/100"));
  EXPECT_THAT(ClusterVmidIndex()(Object("b")), IsEmpty());
  EXPECT_THAT(ImageIndex()(Object("a")), ElementsAre("default/web"));
  EXPECT_THAT(ClusterIndex()(Object("a")), ElementsAre("default/lab"));
  EXPECT_EQ(cache.ByIndex(ProxmoxVms(), kIndexImage, "default/web")->size(), 2u);
  // The image's users with what they run, "" before their first image.
  EXPECT_THAT(*cache.IndexEntries(ProxmoxVms(), kIndexImageRuns, ImagePathValue("default/web", "")),
              ElementsAre(std::pair{ImagePathValue("default/web", ""), std::string("default/a")},
                          std::pair{ImagePathValue("default/web", ""), std::string("default/b")}));

  const std::string b_tag = UidTag(kube::UidOf(Object("b")));
  EXPECT_THAT(UidTagIndex()(Object("b")), ElementsAre(b_tag));
  std::vector<InventoryChange> changes = {
      {InventoryChange::Kind::kChanged, 100, {"web"}},
      {InventoryChange::Kind::kAdded, 200, {b_tag, "web"}},
      {InventoryChange::Kind::kRemoved, 100, {b_tag}},
      {InventoryChange::Kind::kAdded, 300, {"nixmox-uid-nobody"}},
  };
  EXPECT_THAT(VmKeysForChanges(cache, "default/lab", changes),
              ElementsAre("default/a", "default/b"));
  EXPECT_THAT(VmKeysForChanges(cache, "default/elsewhere", {changes[0]}), IsEmpty());
}

TEST_F(VmControllerTest, CreateNamingAMissingVolumeIsReportedAndBacksOff) {
  api::ProxmoxVm vm = NewVm("web");
  vm.spec.image_ref.reset();
  vm.spec.source_volume = "local:import/not-uploaded.qcow2";
  Apply(vm);
  ASSERT_TRUE(Converge("web", 10, [&] { return ConditionOf("web", "Ready") == "False/ProxmoxError"; }));
  // A failure the controller's backoff handles, not a quick requeue that
  // would resend the create every second without a word.
  ASSERT_FALSE(last_.ok());
  EXPECT_NE(last_.status().message().find("does not exist"), std::string::npos)
      << last_.status().message();
  EXPECT_THAT(SimVms(), ::testing::IsEmpty());
}

// The value of the sample `name` in the process registry's exposition; -1 when absent.
double MetricValue(const std::string& name) {
  const std::string text = SerializeMetrics(MetricsRegistry());
  const std::string prefix = name + " ";
  for (std::size_t at = 0; at < text.size();) {
    std::size_t end = text.find('\n', at);
    if (end == std::string::npos) end = text.size();
    const std::string line = text.substr(at, end - at);
    if (line.rfind(prefix, 0) == 0) return std::stod(line.substr(prefix.size()));
    at = end + 1;
  }
  return -1;
}

TEST_F(VmControllerTest, MetricsCountVmsByPhaseAndTimeTasks) {
  const std::string running = "nixmox_proxmoxvms{phase=\"Running\"}";
  const std::string creates =
      "nixmox_proxmox_task_duration_seconds_count{result=\"ok\",type=\"qmcreate\"}";
  // A name no other test uses: the gauge is process-wide, keyed by object.
  Apply(NewVm("metrics-probe"));
  const double running_before = std::max(0.0, MetricValue(running));
  const double creates_before = std::max(0.0, MetricValue(creates));
  ASSERT_TRUE(ConvergeReady("metrics-probe"));
  EXPECT_EQ(MetricValue(running), running_before + 1);
  EXPECT_EQ(MetricValue(creates), creates_before + 1);

  ASSERT_TRUE(kube_.Delete(ProxmoxVms(), kNs, "metrics-probe").ok());
  ASSERT_TRUE(Converge("metrics-probe", 20, [&] { return !Exists("metrics-probe"); }));
  static_cast<void>(Pass("metrics-probe"));  // the object is gone: it counts nowhere
  EXPECT_EQ(MetricValue(running), running_before);
}

}  // namespace
}  // namespace nixmox::controllers
