// The real Proxmox client against a real pve-sim process over HTTP, or, when
// NIXMOX_TEST_PVE_URL and NIXMOX_TEST_PVE_TOKEN are set, against that Proxmox
// VE instead (then NIXMOX_TEST_PVE_NODE, _STORAGE and _IMPORT_STORAGE name the
// node, the VM disk storage and the import-capable storage; defaults pve1,
// local-lvm, local). Tests that need the simulator's fault injection or its
// fast clock are skipped against a real cluster, with a message.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cstdlib>
#include <future>
#include <set>
#include <thread>

#include "src/http/http.h"
#include "src/proxmox/client.h"
#include "test/support/subprocess.h"

namespace nixmox::proxmox {
namespace {

using namespace std::chrono_literals;
using nixmox::testing::RunCommand;
using nixmox::testing::Subprocess;
using nixmox::testing::TempDir;

std::string Env(const char* name, std::string fallback) {
  const char* v = std::getenv(name);
  return v != nullptr && *v != '\0' ? std::string(v) : fallback;
}

// One world for the whole suite: a pve-sim process (or a real cluster).
class World {
 public:
  static World& Get() {
    static World world;
    return world;
  }

  bool simulated() const { return simulated_; }
  const std::string& url() const { return url_; }
  const std::string& token() const { return token_; }
  const std::string& node() const { return node_; }
  const std::string& storage() const { return storage_; }
  const std::string& import_storage() const { return import_storage_; }
  const std::string& error() const { return error_; }
  const TempDir& dir() const { return dir_; }

  std::unique_ptr<PveClient> Client(int max_attempts = 4) const {
    PveClientOptions o;
    o.base_url = url_;
    o.token = ApiToken::Parse(token_).value();
    o.retry.max_attempts = max_attempts;
    o.retry.backoff = {50ms, 500ms, 2.0, 0.2};
    auto c = ConnectPveClient(o);
    EXPECT_TRUE(c.ok()) << c.status().ToString();
    return std::move(c).value();
  }

  // The simulator's admin endpoint (outside /api2/json).
  http::Response Admin(const std::string& method, const std::string& path,
                       const std::string& json_body = "") const {
    http::ClientOptions o;
    o.base_url = url_;
    auto client = http::NewClient(o);
    http::Request r;
    r.method = method;
    r.target = path;
    if (!json_body.empty()) r.SetBody("application/json", json_body);
    auto resp = (*client)->Send(r);
    EXPECT_TRUE(resp.ok()) << resp.status().ToString();
    return resp.ok() ? *resp : http::Response{};
  }

  // A real qcow2 of the given virtual size, uploaded once per node.
  std::string ImportVolume(PveClient& pve, const std::string& node) {
    std::lock_guard lock(mu_);
    const std::string name = "nixmox-itest.qcow2";
    if (!uploaded_.contains(node)) {
      const std::string file = dir_.File(name);
      if (!std::filesystem::exists(file)) {
        auto made = RunCommand({"qemu-img", "create", "-q", "-f", "qcow2", file, "2G"});
        EXPECT_EQ(made.exit_code, 0) << made.output;
      }
      auto upid = pve.UploadToStorage(node, import_storage_, {"import", file, name, "", ""});
      EXPECT_TRUE(upid.ok()) << upid.status().ToString();
      if (upid.ok()) {
        auto done = WaitForTask(pve, *upid, FastWait(), RealClock(), RealSleeper());
        EXPECT_TRUE(done.ok()) << done.status().ToString();
      }
      uploaded_.insert(node);
    }
    return import_storage_ + ":import/" + name;
  }

  static WaitOptions FastWait() {
    WaitOptions w;
    w.timeout = 120s;
    w.initial_interval = 20ms;
    w.fast_period = 2s;
    w.max_interval = 200ms;
    return w;
  }

 private:
  World() {
    if (const char* url = std::getenv("NIXMOX_TEST_PVE_URL"); url != nullptr && *url != '\0') {
      simulated_ = false;
      url_ = url;
      token_ = Env("NIXMOX_TEST_PVE_TOKEN", "");
      node_ = Env("NIXMOX_TEST_PVE_NODE", "pve1");
      storage_ = Env("NIXMOX_TEST_PVE_STORAGE", "local-lvm");
      import_storage_ = Env("NIXMOX_TEST_PVE_IMPORT_STORAGE", "local");
      return;
    }
    token_ = "root@pam!itest=4f1c2e7a-9b3d-4c5e-8f60-0a1b2c3d4e5f";
    auto sim = Subprocess::Start(
        {NIXMOX_PVE_SIM_PATH, "--listen", "127.0.0.1:0", "--nodes", "pve1,pve2",
         "--token", token_, "--task-ms", "40", "--boot-ms", "300", "--import-ms-per-gib", "100",
         "--storage-lock-timeout-ms", "10000", "--auth-fail-delay-ms", "50", "--seed", "7"},
        {}, dir_.File("pve-sim.log"));
    if (!sim.ok()) {
      error_ = sim.status().ToString();
      return;
    }
    sim_ = std::make_unique<Subprocess>(std::move(sim).value());
    auto line = sim_->ReadLine(30s);
    if (!line.ok()) {
      error_ = "pve-sim printed no URL: " + line.status().ToString();
      return;
    }
    url_ = *line;
  }

  bool simulated_ = true;
  std::string url_, token_, node_ = "pve1", storage_ = "local-lvm", import_storage_ = "local";
  std::string error_;
  TempDir dir_;
  std::unique_ptr<Subprocess> sim_;
  std::mutex mu_;
  std::set<std::string> uploaded_;
};

class PveClientTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(world().error().empty()) << world().error();
    pve_ = world().Client();
  }
  void TearDown() override {
    // Remove every VM a test made, protected ones included.
    for (int vmid : made_) {
      auto config = pve_->GetVmConfig(world().node(), vmid);
      if (!config.ok()) continue;
      if (config->protection()) {
        ConfigUpdate u;
        u.delete_keys = {"protection"};
        (void)pve_->UpdateVmConfigSync(world().node(), vmid, u);
      }
      auto stop = pve_->StopVm(world().node(), vmid, {});
      if (stop.ok()) (void)Wait(*stop);
      auto del = pve_->DeleteVm(world().node(), vmid, {true, true});
      if (del.ok()) (void)Wait(*del);
    }
    if (world().simulated()) world().Admin("PUT", "/_sim/faults",
                                           R"({"error_rate":0,"timeout_rate":0,"drop_rate":0,)"
                                           R"("task_failure_rate":0,"latency_ms":0,"match":""})");
  }

  static World& world() { return World::Get(); }

  Result<TaskStatus> Wait(const Upid& upid) {
    return WaitForTask(*pve_, upid, World::FastWait(), RealClock(), RealSleeper());
  }

  int NewVmid() {
    auto id = pve_->NextVmid(std::nullopt);
    EXPECT_TRUE(id.ok()) << id.status().ToString();
    return id.value_or(0);
  }

  Params BaseParams(const std::string& name) {
    Params p;
    p.Set("name", name).SetInt("cores", 1).SetInt("memory", 512).Set("agent", "1");
    p.Set("scsihw", "virtio-scsi-single");
    NetConfig net;
    net.bridge = "vmbr0";
    p.SetNet(0, net);
    return p;
  }

  // Creates a VM whose root disk is imported from the uploaded qcow2; returns its id.
  int CreateImported(const std::string& name, Params extra = {}) {
    const int vmid = NewVmid();
    Params p = BaseParams(name);
    DiskConfig root;
    root.file = world().storage() + ":0";
    root.import_from = world().ImportVolume(*pve_, world().node());
    p.SetDisk("scsi0", root);
    for (const auto& [k, v] : extra.entries()) p.Set(k, v);
    auto upid = pve_->CreateVm(world().node(), vmid, p);
    EXPECT_TRUE(upid.ok()) << upid.status().ToString();
    made_.push_back(vmid);
    if (upid.ok()) {
      auto done = Wait(*upid);
      EXPECT_TRUE(done.ok()) << done.status().ToString();
    }
    return vmid;
  }

  std::unique_ptr<PveClient> pve_;
  std::vector<int> made_;
};

TEST_F(PveClientTest, VmWholeLifeFromUploadedImageToDestroy) {
  const std::string& node = world().node();
  const int vmid = CreateImported("itest-life");

  // Proxmox does not echo import-from: the disk is now a volume of the VM.
  auto config = pve_->GetVmConfig(node, vmid);
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  EXPECT_EQ(config->name(), "itest-life");
  EXPECT_TRUE(config->lock().empty());
  auto disk = config->disk("scsi0");
  ASSERT_TRUE(disk.ok()) << disk.status().ToString();
  EXPECT_TRUE(disk->import_from.empty());
  EXPECT_EQ(disk->storage(), world().storage());
  EXPECT_EQ(disk->size_bytes, 2ull << 30);
  auto net = config->net(0);
  ASSERT_TRUE(net.ok());
  EXPECT_EQ(net->macaddr.size(), 17u) << "Proxmox generates a MAC";

  // Configure with the digest, then grow the disk.
  ConfigUpdate update;
  update.set.SetInt("cores", 2).SetTags({"web", "nixmox"});
  update.digest = config->digest();
  auto cfg_task = pve_->UpdateVmConfig(node, vmid, update);
  ASSERT_TRUE(cfg_task.ok()) << cfg_task.status().ToString();
  if (*cfg_task) {
    ASSERT_TRUE(Wait(**cfg_task).ok());
  }
  auto resize = pve_->ResizeDisk(node, vmid, "scsi0", "+1G");
  ASSERT_TRUE(resize.ok()) << resize.status().ToString();
  if (*resize) {
    ASSERT_TRUE(Wait(**resize).ok());
  }
  config = pve_->GetVmConfig(node, vmid);
  ASSERT_TRUE(config.ok());
  EXPECT_EQ(config->cores(), 2);
  EXPECT_EQ(config->tags(), (std::vector<std::string>{"nixmox", "web"}));
  EXPECT_EQ(config->disk("scsi0")->size_bytes, 3ull << 30);

  // Start; the guest agent answers once the guest has booted.
  auto start = pve_->StartVm(node, vmid);
  ASSERT_TRUE(start.ok()) << start.status().ToString();
  ASSERT_TRUE(Wait(*start).ok());
  auto status = pve_->GetVmStatus(node, vmid);
  ASSERT_TRUE(status.ok());
  EXPECT_TRUE(status->running());
  std::vector<GuestInterface> ifaces;
  for (int i = 0; i < 600 && ifaces.empty(); ++i) {
    auto got = pve_->AgentNetworkInterfaces(node, vmid);
    if (got.ok()) {
      ifaces = *got;
    } else {
      EXPECT_NE(got.status().code(), Code::kUnauthorized);
      std::this_thread::sleep_for(50ms);
    }
  }
  ASSERT_FALSE(ifaces.empty()) << "the guest agent never answered";
  bool has_ipv4 = false;
  for (const auto& iface : ifaces) {
    if (iface.name == "lo") continue;
    EXPECT_EQ(iface.hardware_address.size(), 17u);
    for (const auto& ip : iface.ip_addresses) has_ipv4 |= ip.type == "ipv4";
  }
  EXPECT_TRUE(has_ipv4);

  // Shut down, destroy, gone.
  auto shutdown = pve_->ShutdownVm(node, vmid, {std::nullopt, true});
  ASSERT_TRUE(shutdown.ok());
  ASSERT_TRUE(Wait(*shutdown).ok());
  EXPECT_FALSE(pve_->GetVmStatus(node, vmid)->running());
  auto del = pve_->DeleteVm(node, vmid, {true, true});
  ASSERT_TRUE(del.ok()) << del.status().ToString();
  ASSERT_TRUE(Wait(*del).ok());
  EXPECT_EQ(pve_->GetVmConfig(node, vmid).status().code(), Code::kNotFound);
}

TEST_F(PveClientTest, ConfigChangeWhileCreatingIsLocked) {
  if (!world().simulated()) GTEST_SKIP() << "needs the simulator's slow import";
  auto once = world().Client(/*max_attempts=*/1);
  const int vmid = NewVmid();
  Params p = BaseParams("itest-locked");
  DiskConfig root;
  root.file = world().storage() + ":0";
  root.import_from = world().ImportVolume(*pve_, world().node());
  p.SetDisk("scsi0", root);
  // 2 GiB at 100 ms/GiB plus the base task time: the create holds `lock: create` a while.
  auto upid = once->CreateVm(world().node(), vmid, p);
  ASSERT_TRUE(upid.ok()) << upid.status().ToString();
  made_.push_back(vmid);
  ConfigUpdate update;
  update.set.SetInt("cores", 4);
  const Status locked = once->UpdateVmConfigSync(world().node(), vmid, update);
  EXPECT_EQ(locked.code(), Code::kLocked) << locked.ToString();
  EXPECT_NE(locked.message().find("locked (create)"), std::string::npos) << locked.ToString();
  ASSERT_TRUE(Wait(*upid).ok());
  // Once the create is done, the same change goes through.
  EXPECT_TRUE(once->UpdateVmConfigSync(world().node(), vmid, update).ok());
}

TEST_F(PveClientTest, CreatingOnATakenVmidIsAlreadyExists) {
  const int vmid = CreateImported("itest-taken");
  auto again = pve_->CreateVm(world().node(), vmid, BaseParams("itest-taken-2"));
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(again.status().code(), Code::kAlreadyExists) << again.status().ToString();
  EXPECT_EQ(pve_->NextVmid(vmid).status().code(), Code::kAlreadyExists);
}

TEST_F(PveClientTest, ParallelImportsOnOneStorageTimeOutOnItsLock) {
  if (!world().simulated()) GTEST_SKIP() << "storage-lock timing is the simulator's";
  // A world of its own whose storage lock gives up quickly and imports are slow.
  TempDir dir;
  const std::string token = "root@pam!lock=0b6d9a2c-1e3f-4a5b-9c8d-7e6f5a4b3c2d";
  auto sim = Subprocess::Start(
      {NIXMOX_PVE_SIM_PATH, "--listen", "127.0.0.1:0", "--nodes", "pve1", "--token", token,
       "--task-ms", "40", "--import-ms-per-gib", "400", "--storage-lock-timeout-ms", "1000",
       "--auth-fail-delay-ms", "50"},
      {}, dir.File("pve-sim.log"));
  ASSERT_TRUE(sim.ok()) << sim.status().ToString();
  auto url = sim->ReadLine(30s);
  ASSERT_TRUE(url.ok());
  PveClientOptions o;
  o.base_url = *url;
  o.token = ApiToken::Parse(token).value();
  auto pve = ConnectPveClient(o);
  ASSERT_TRUE(pve.ok());
  const std::string file = dir.File("big.qcow2");
  ASSERT_EQ(RunCommand({"qemu-img", "create", "-q", "-f", "qcow2", file, "2G"}).exit_code, 0);
  auto up = (*pve)->UploadToStorage("pve1", "local", {"import", file, "big.qcow2", "", ""});
  ASSERT_TRUE(up.ok()) << up.status().ToString();
  ASSERT_TRUE(WaitForTask(**pve, *up, World::FastWait(), RealClock(), RealSleeper()).ok());

  // Six imports of ~0.8 s each on one storage: those still queued after 1 s fail.
  std::vector<std::pair<int, Upid>> creates;
  for (int i = 0; i < 6; ++i) {
    const int vmid = 200 + i;
    Params p = BaseParams("lock-" + std::to_string(i));
    DiskConfig root;
    root.file = "local-lvm:0";
    root.import_from = "local:import/big.qcow2";
    p.SetDisk("scsi0", root);
    auto upid = (*pve)->CreateVm("pve1", vmid, p);
    ASSERT_TRUE(upid.ok()) << upid.status().ToString();
    creates.emplace_back(vmid, *upid);
  }
  int ok = 0, lock_timeouts = 0;
  for (const auto& [vmid, upid] : creates) {
    auto done = WaitForTask(**pve, upid, World::FastWait(), RealClock(), RealSleeper());
    if (done.ok()) {
      ++ok;
      EXPECT_TRUE((*pve)->GetVmConfig("pve1", vmid).ok());
      continue;
    }
    EXPECT_EQ(done.status().code(), Code::kLocked) << done.status().ToString();
    EXPECT_NE(done.status().message().find("cfs-lock 'storage-local-lvm' error: got lock request "
                                           "timeout"),
              std::string::npos)
        << done.status().ToString();
    ++lock_timeouts;
    // A failed create leaves nothing behind.
    EXPECT_EQ((*pve)->GetVmConfig("pve1", vmid).status().code(), Code::kNotFound);
  }
  EXPECT_GE(ok, 1);
  EXPECT_GE(lock_timeouts, 1);
}

TEST_F(PveClientTest, GetsAreRetriedThroughInjected5xx) {
  if (!world().simulated()) GTEST_SKIP() << "needs the simulator's fault injection";
  world().Admin("DELETE", "/_sim/requests");
  world().Admin("PUT", "/_sim/faults", R"({"error_rate":1.0,"match":"GET /version","remaining":2})");
  auto version = pve_->GetVersion();
  ASSERT_TRUE(version.ok()) << version.status().ToString();
  EXPECT_FALSE(version->version.empty());
  auto counters = nlohmann::json::parse(world().Admin("GET", "/_sim/requests").body, nullptr,
                                        false);
  ASSERT_TRUE(counters.is_object());
  EXPECT_EQ(counters.value("GET /version", 0), 3) << counters.dump();
}

TEST_F(PveClientTest, MutationWithUnknownOutcomeIsNotResent) {
  if (!world().simulated()) GTEST_SKIP() << "needs the simulator's fault injection";
  const int vmid = NewVmid();
  world().Admin("DELETE", "/_sim/requests");
  // The create is carried out, but the answer is lost on the way back (596).
  world().Admin("PUT", "/_sim/faults",
                R"({"timeout_rate":1.0,"match":"POST /nodes/{node}/qemu","remaining":1})");
  Params p = BaseParams("itest-unknown");
  auto upid = pve_->CreateVm(world().node(), vmid, p);
  made_.push_back(vmid);
  ASSERT_FALSE(upid.ok());
  EXPECT_EQ(upid.status().code(), Code::kOutcomeUnknown) << upid.status().ToString();
  auto counters = nlohmann::json::parse(world().Admin("GET", "/_sim/requests").body, nullptr,
                                        false);
  EXPECT_EQ(counters.value("POST /nodes/{node}/qemu", 0), 1) << counters.dump();
  // Re-observing shows the VM was made: exactly one, never a duplicate.
  bool found = false;
  for (int i = 0; i < 200 && !found; ++i) {
    auto resources = pve_->ListClusterResources(ResourceType::kVm);
    ASSERT_TRUE(resources.ok());
    for (const auto& r : *resources) found |= r.vmid == vmid;
    if (!found) std::this_thread::sleep_for(20ms);
  }
  EXPECT_TRUE(found);
}

TEST_F(PveClientTest, BadTokenIsUnauthorizedAndNeverEchoesTheSecret) {
  const std::string secret = "11111111-2222-3333-4444-555555555555";
  PveClientOptions o;
  o.base_url = world().url();
  o.token = ApiToken::Parse("root@pam!itest=" + secret).value();
  o.retry.max_attempts = 1;
  auto bad = ConnectPveClient(o);
  ASSERT_TRUE(bad.ok());
  auto version = (*bad)->GetVersion();
  ASSERT_FALSE(version.ok());
  EXPECT_EQ(version.status().code(), Code::kUnauthorized);
  EXPECT_EQ(version.status().ToString().find(secret), std::string::npos);
  auto nodes = (*bad)->ListNodes();
  EXPECT_EQ(nodes.status().code(), Code::kUnauthorized);
  EXPECT_EQ(nodes.status().ToString().find(secret), std::string::npos);
}

TEST_F(PveClientTest, InvalidParametersNameTheField) {
  const int vmid = NewVmid();
  Params p = BaseParams("itest-invalid");
  p.SetInt("memory", 1);        // below the minimum of 16 MiB
  p.Set("cores", "many");       // not an integer
  auto upid = pve_->CreateVm(world().node(), vmid, p);
  ASSERT_FALSE(upid.ok());
  EXPECT_EQ(upid.status().code(), Code::kInvalid) << upid.status().ToString();
  std::set<std::string> fields;
  for (const auto& fe : upid.status().field_errors()) fields.insert(fe.field);
  EXPECT_TRUE(fields.contains("cores")) << upid.status().ToString();
  EXPECT_EQ(pve_->GetVmConfig(world().node(), vmid).status().code(), Code::kNotFound);
}

TEST_F(PveClientTest, ProtectedVmCannotBeDestroyed) {
  Params extra;
  extra.SetBool("protection", true);
  const int vmid = CreateImported("itest-protected", extra);
  auto del = pve_->DeleteVm(world().node(), vmid, {true, true});
  ASSERT_FALSE(del.ok());
  EXPECT_NE(del.status().message().find("protection mode enabled"), std::string::npos)
      << del.status().ToString();
  EXPECT_TRUE(pve_->GetVmConfig(world().node(), vmid).ok()) << "the VM must still be there";
}

}  // namespace
}  // namespace nixmox::proxmox
