#include "src/proxmox/client.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>

#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>
#include <thread>

#include "src/common/metrics.h"
#include "test/unit/proxmox/fake_http_client.h"

namespace nixmox::proxmox {
namespace {

using nlohmann::json;
using std::chrono::milliseconds;
using std::chrono::nanoseconds;
using ::testing::HasSubstr;
using ::testing::Not;
using testutil::FakeHttpClient;
using testutil::PveError;
using testutil::PveOk;

constexpr char kSecret[] = "5e2b6c1a-7f3d-4e8a-9b0c-d1e2f3a4b5c6";
constexpr char kUpid[] = "UPID:pve1:000A1B2C:0123ABCD:6650F00D:qmcreate:100:nixmox@pve!ci:";

std::string Q(const std::vector<std::pair<std::string, std::string>>& pairs,
              const std::string& key) {
  for (const auto& [k, v] : pairs) {
    if (k == key) return v;
  }
  return "<absent>";
}

class PveClientTest : public ::testing::Test {
 protected:
  PveClientTest() { Rebuild({}); }

  void Rebuild(LimiterOptions limits, RetryPolicy retry = {}) {
    http_ = std::make_shared<FakeHttpClient>();
    PveClientOptions options;
    options.token = ApiToken("nixmox@pve!ci", kSecret);
    options.limits = limits;
    options.retry = retry;
    options.clock = &clock_;
    options.sleeper = [this](nanoseconds d) {
      sleeps_.push_back(std::chrono::duration_cast<milliseconds>(d));
      clock_.Advance(d);
    };
    options.jitter_seed = 42;
    client_ = NewPveClient(std::move(options), http_);
  }

  void TearDown() override { EXPECT_THAT(http_->mismatches(), ::testing::IsEmpty()); }

  http::Request OnlyRequest() {
    auto reqs = http_->requests();
    EXPECT_EQ(reqs.size(), 1u);
    return reqs.empty() ? http::Request{} : reqs.back();
  }

  FakeClock clock_;
  std::vector<milliseconds> sleeps_;
  std::shared_ptr<FakeHttpClient> http_;
  std::unique_ptr<PveClient> client_;
};

TEST_F(PveClientTest, SendsTokenHeaderUnderApiPrefix) {
  http_->Push("GET", "/api2/json/version",
              PveOk({{"version", "8.4.1"}, {"release", "8.4"}, {"repoid", "2a5fa54a"}}));
  auto v = client_->GetVersion();
  ASSERT_TRUE(v.ok()) << v.status().ToString();
  EXPECT_EQ(v->version, "8.4.1");
  EXPECT_EQ(v->release, "8.4");
  const http::Request req = OnlyRequest();
  EXPECT_EQ(req.method, "GET");
  EXPECT_EQ(req.headers.Get("Authorization"), std::string("PVEAPIToken=nixmox@pve!ci=") + kSecret);
  EXPECT_TRUE(req.body.empty());
}

TEST_F(PveClientTest, NextVmidAcceptsStringOrNumber) {
  http_->Push("GET", "/api2/json/cluster/nextid", PveOk("101"));
  http_->Push("GET", "/api2/json/cluster/nextid", PveOk(102));
  EXPECT_EQ(*client_->NextVmid(std::nullopt), 101);
  EXPECT_EQ(*client_->NextVmid(std::nullopt), 102);
}

TEST_F(PveClientTest, NextVmidOnTakenIdIsAlreadyExistsWithoutRetry) {
  http_->Push(
      "GET", "/api2/json/cluster/nextid",
      PveError(400, "Parameter verification failed.", false, {{"vmid", "VM 100 already exists"}}));
  auto id = client_->NextVmid(100);
  EXPECT_EQ(id.status().code(), Code::kAlreadyExists);
  EXPECT_EQ(Q(FakeHttpClient::QueryOf(OnlyRequest().target), "vmid"), "100");
  EXPECT_TRUE(sleeps_.empty());
}

TEST_F(PveClientTest, CreateVmSendsFormEncodedParamsWithBooleansAsDigits) {
  http_->Push("POST", "/api2/json/nodes/pve1/qemu", PveOk(kUpid));
  Params params;
  params.Set("name", "web-1").SetInt("memory", 2048).SetInt("cores", 2);
  params.SetBool("onboot", true).SetBool("protection", false);
  params.SetTags({"nixmox", "uid-abc"});
  NetConfig net;
  net.bridge = "vmbr0";
  net.firewall = true;
  params.SetNet(0, net);
  DiskConfig disk;
  disk.file = "local-lvm:0";
  disk.import_from = "local:import/nixos-abc.qcow2";
  params.SetDisk("scsi0", disk);

  auto upid = client_->CreateVm("pve1", 100, params);
  ASSERT_TRUE(upid.ok()) << upid.status().ToString();
  EXPECT_EQ(upid->type, "qmcreate");
  EXPECT_EQ(upid->node, "pve1");

  const http::Request req = OnlyRequest();
  EXPECT_EQ(req.headers.Get("Content-Type"), "application/x-www-form-urlencoded");
  const std::string body = FakeHttpClient::BodyOf(req);
  EXPECT_THAT(body, HasSubstr("onboot=1"));
  EXPECT_THAT(body, HasSubstr("protection=0"));
  EXPECT_THAT(body, Not(HasSubstr("true")));
  const auto form = http::DecodeQuery(body);
  EXPECT_EQ(form.front(), (std::pair<std::string, std::string>{"vmid", "100"}));
  EXPECT_EQ(Q(form, "name"), "web-1");
  EXPECT_EQ(Q(form, "memory"), "2048");
  EXPECT_EQ(Q(form, "tags"), "nixmox;uid-abc");
  EXPECT_EQ(Q(form, "net0"), "virtio,bridge=vmbr0,firewall=1");
  EXPECT_EQ(Q(form, "scsi0"), "local-lvm:0,import-from=local:import/nixos-abc.qcow2");
}

TEST_F(PveClientTest, SshKeysAreEncodedTwice) {
  http_->Push("POST", "/api2/json/nodes/pve1/qemu/100/config", PveOk(kUpid));
  const std::string keys = "ssh-ed25519 AAAAC3Nz+a/b= me@host\nssh-rsa BBBB other\n";
  ConfigUpdate update;
  update.set.SetSshKeys(keys);
  ASSERT_TRUE(client_->UpdateVmConfig("pve1", 100, update).ok());

  const std::string body = FakeHttpClient::BodyOf(OnlyRequest());
  // What Proxmox sees after form decoding: its own percent-encoding, which
  // must match ^[-%a-zA-Z0-9_.!~*'()]*$ ...
  const std::string once = Q(http::DecodeQuery(body), "sshkeys");
  EXPECT_TRUE(std::regex_match(once, std::regex("^[-%a-zA-Z0-9_.!~*'()]*$"))) << once;
  EXPECT_THAT(body, HasSubstr("%2520"));  // a space, encoded twice
  // ... and what it stores after URI-unescaping it.
  EXPECT_EQ(http::PercentDecode(once), keys);
}

TEST_F(PveClientTest, ConfigUpdateSendsDeleteAndDigestAndPutIsSync) {
  http_->Push("PUT", "/api2/json/nodes/pve1/qemu/100/config", PveOk(nullptr));
  ConfigUpdate update;
  update.set.SetInt("cores", 4);
  update.delete_keys = {"net1", "scsi2"};
  update.digest = "d1g3st";
  ASSERT_TRUE(client_->UpdateVmConfigSync("pve1", 100, update).ok());
  const auto form = http::DecodeQuery(FakeHttpClient::BodyOf(OnlyRequest()));
  EXPECT_EQ(Q(form, "cores"), "4");
  EXPECT_EQ(Q(form, "delete"), "net1,scsi2");
  EXPECT_EQ(Q(form, "digest"), "d1g3st");
}

TEST_F(PveClientTest, StaleDigestIsConflictAndNotRetried) {
  http_->Push(PveError(500, "checksum mismatch (file change by other user?)"));
  ConfigUpdate update;
  update.set.SetInt("cores", 4);
  update.digest = "old";
  auto r = client_->UpdateVmConfig("pve1", 100, update);
  EXPECT_EQ(r.status().code(), Code::kConflict);
  EXPECT_EQ(http_->requests().size(), 1u);
}

TEST_F(PveClientTest, AsyncConfigUpdateMayFinishWithoutTask) {
  http_->Push(PveOk(nullptr));
  ConfigUpdate update;
  update.set.Set("name", "x");
  auto r = client_->UpdateVmConfig("pve1", 100, update);
  ASSERT_TRUE(r.ok());
  EXPECT_FALSE(r->has_value());
}

TEST_F(PveClientTest, GetVmConfigReturnsDigestAndTypedValues) {
  http_->Push("GET", "/api2/json/nodes/pve1/qemu/100/config",
              PveOk({{"name", "web"},
                     {"memory", "2048"},
                     {"digest", "abc"},
                     {"net0", "virtio=BC:24:11:2A:3B:4C,bridge=vmbr0"}}));
  auto config = client_->GetVmConfig("pve1", 100);
  ASSERT_TRUE(config.ok());
  EXPECT_EQ(config->digest(), "abc");
  EXPECT_EQ(config->memory_mib(), 2048);
  EXPECT_EQ(config->net(0)->macaddr, "BC:24:11:2A:3B:4C");
}

TEST_F(PveClientTest, MissingVmIsNotFound) {
  http_->Push(PveError(500, "Configuration file 'nodes/pve1/qemu-server/100.conf' does not exist",
                       /*old_server=*/true));
  EXPECT_EQ(client_->GetVmStatus("pve1", 100).status().code(), Code::kNotFound);
  EXPECT_TRUE(sleeps_.empty());
}

TEST_F(PveClientTest, GetIsRetriedOnServerErrorsWithBackoff) {
  http_->Push(PveError(500, "got unexpected failure"));
  http_->Push(PveError(596, "Connection timed out"));
  http_->Push(PveOk({{"status", "running"}, {"qmpstatus", "running"}, {"agent", 1}}));
  auto s = client_->GetVmStatus("pve1", 100);
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_TRUE(s->running());
  EXPECT_TRUE(s->agent);
  EXPECT_EQ(http_->requests().size(), 3u);
  ASSERT_EQ(sleeps_.size(), 2u);
  // 500ms then 1s, each within +-20% jitter.
  EXPECT_GE(sleeps_[0], milliseconds(400));
  EXPECT_LE(sleeps_[0], milliseconds(600));
  EXPECT_GE(sleeps_[1], milliseconds(800));
  EXPECT_LE(sleeps_[1], milliseconds(1200));
}

TEST_F(PveClientTest, GetGivesUpAfterMaxAttempts) {
  RetryPolicy retry;
  retry.max_attempts = 3;
  Rebuild({}, retry);
  http_->SetHandler([](const http::Request&) -> Result<http::Response> {
    return PveError(503, "Service Unavailable");
  });
  auto r = client_->ListNodes();
  EXPECT_EQ(r.status().code(), Code::kRetryable);
  EXPECT_EQ(http_->requests().size(), 3u);
  EXPECT_EQ(sleeps_.size(), 2u);
}

TEST_F(PveClientTest, GetIsRetriedWhenTheConnectionDropped) {
  http_->Push(OutcomeUnknownError("GET /api2/json/nodes: connection reset"));
  http_->Push(PveOk(json::array({{{"node", "pve1"}, {"status", "online"}, {"maxcpu", 8}}})));
  auto nodes = client_->ListNodes();
  ASSERT_TRUE(nodes.ok()) << nodes.status().ToString();
  ASSERT_EQ(nodes->size(), 1u);
  EXPECT_TRUE((*nodes)[0].online());
}

TEST_F(PveClientTest, PostIsNeverResentWhenOutcomeUnknown) {
  http_->Push(OutcomeUnknownError("POST /api2/json/nodes/pve1/qemu: timed out"));
  auto r = client_->CreateVm("pve1", 100, Params().Set("name", "x"));
  EXPECT_EQ(r.status().code(), Code::kOutcomeUnknown);
  EXPECT_EQ(http_->requests().size(), 1u);
  EXPECT_TRUE(sleeps_.empty());
}

TEST_F(PveClientTest, PostIsNeverResentAfterProxyTimeout) {
  http_->Push(PveError(596, "Connection timed out", /*old_server=*/true));
  auto r = client_->StartVm("pve1", 100);
  EXPECT_EQ(r.status().code(), Code::kOutcomeUnknown);
  EXPECT_EQ(http_->requests().size(), 1u);
}

TEST_F(PveClientTest, PostIsNotRetriedOnGenericServerError) {
  http_->Push(PveError(500, "unable to create VM 100 - unexpected failure"));
  auto r = client_->CreateVm("pve1", 100, Params());
  EXPECT_EQ(r.status().code(), Code::kRetryable);
  EXPECT_EQ(http_->requests().size(), 1u);
}

TEST_F(PveClientTest, PostIsRetriedWhenLocked) {
  http_->Push(PveError(500, "VM 100 is locked (create)"));
  http_->Push(PveError(500, "can't lock file '/var/lock/qemu-server/lock-100.conf' - got timeout"));
  http_->Push(PveOk(kUpid));
  auto r = client_->StartVm("pve1", 100);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(http_->requests().size(), 3u);
  EXPECT_EQ(sleeps_.size(), 2u);
}

TEST_F(PveClientTest, PostIsRetriedWhenNothingReachedTheServer) {
  http_->Push(
      RetryableError("POST /api2/json/nodes/pve1/qemu/100/status/stop: connection refused"));
  http_->Push(PveOk(kUpid));
  auto r = client_->StopVm("pve1", 100, {});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(http_->requests().size(), 2u);
}

TEST_F(PveClientTest, PostIsRetriedWhenTheProxyCouldNotReachTheDaemon) {
  // 595: pveproxy failed to connect to pvedaemon, so no handler ran.
  http_->Push(PveError(595, "Connection refused", true));
  http_->Push(PveOk(kUpid));
  ASSERT_TRUE(client_->StartVm("pve1", 100).ok());
  EXPECT_EQ(http_->requests().size(), 2u);
}

TEST_F(PveClientTest, AgentCallsAreTriedOnceSinceCallersPoll) {
  http_->SetHandler([](const http::Request&) -> Result<http::Response> {
    return PveError(500, "VM 100 qmp command 'guest-network-get-interfaces' failed - got timeout");
  });
  EXPECT_EQ(client_->AgentNetworkInterfaces("pve1", 100).status().code(), Code::kRetryable);
  EXPECT_EQ(http_->requests().size(), 1u);
  EXPECT_TRUE(sleeps_.empty());
}

TEST_F(PveClientTest, ListsVmsAndNodeStatusLeniently) {
  http_->Push("GET", "/api2/json/nodes/pve1/qemu",
              PveOk(json::array({{{"vmid", 100},
                                  {"name", "web"},
                                  {"status", "running"},
                                  {"template", ""},
                                  {"tags", "a;b"},
                                  {"maxmem", "1024"}},
                                 {{"vmid", "101"}, {"status", "stopped"}, {"template", 1}}})));
  auto vms = client_->ListVms("pve1");
  ASSERT_TRUE(vms.ok()) << vms.status().ToString();
  ASSERT_EQ(vms->size(), 2u);
  EXPECT_EQ((*vms)[0].maxmem, 1024u);
  EXPECT_FALSE((*vms)[0].is_template);
  EXPECT_EQ((*vms)[1].vmid, 101);
  EXPECT_TRUE((*vms)[1].is_template);

  http_->Push("GET", "/api2/json/nodes/pve1/status",
              PveOk(json::parse(R"({"uptime":3600,"loadavg":["0.10","0.20","0.30"],
                "memory":{"total":68719476736,"used":"1073741824","free":0},
                "cpuinfo":{"cpus":16,"cores":8,"sockets":1,"model":"EPYC"},
                "pveversion":"pve-manager/8.4.1/abc"})")));
  auto st = client_->GetNodeStatus("pve1");
  ASSERT_TRUE(st.ok());
  EXPECT_EQ(st->loadavg, (std::vector<double>{0.1, 0.2, 0.3}));
  EXPECT_EQ(st->memory_total, 68719476736ULL);
  EXPECT_EQ(st->memory_used, 1ULL << 30);
  EXPECT_EQ(st->cpus, 16);
}

TEST_F(PveClientTest, UnparseableUpidStatusIsNotRetried) {
  http_->Push(PveError(400, "Parameter verification failed.", false,
                       {{"upid", "unable to parse worker upid"}}));
  EXPECT_EQ(client_->GetTaskStatus(*ParseUpid(kUpid)).status().code(), Code::kInvalid);
  EXPECT_EQ(http_->requests().size(), 1u);
}

TEST_F(PveClientTest, LockedGivesUpAfterMaxAttempts) {
  http_->SetHandler([](const http::Request&) -> Result<http::Response> {
    return PveError(500, "VM 100 is locked (backup)");
  });
  auto r = client_->RebootVm("pve1", 100);
  EXPECT_EQ(r.status().code(), Code::kLocked);
  EXPECT_EQ(http_->requests().size(), 4u);
}

TEST_F(PveClientTest, AuthFailuresAreNotRetried) {
  http_->Push(PveError(401, "Authentication failed!", true));
  EXPECT_EQ(client_->GetVersion().status().code(), Code::kUnauthorized);
  http_->Push(PveError(403, "Permission check failed (/vms/100, VM.Audit)"));
  EXPECT_EQ(client_->GetVmConfig("pve1", 100).status().code(), Code::kForbidden);
  EXPECT_EQ(http_->requests().size(), 2u);
  EXPECT_TRUE(sleeps_.empty());
}

TEST_F(PveClientTest, RetryAfterIsHonoured) {
  http::Response throttled = PveError(429, "Too Many Requests");
  throttled.headers.Set("Retry-After", "7");
  http_->Push(throttled);
  http_->Push(PveOk({{"version", "8.4.1"}}));
  ASSERT_TRUE(client_->GetVersion().ok());
  EXPECT_EQ(sleeps_, std::vector<milliseconds>{milliseconds(7000)});
}

TEST_F(PveClientTest, DeleteVmSendsOptionsInTheQuery) {
  http_->Push("DELETE", "/api2/json/nodes/pve1/qemu/100", PveOk(kUpid));
  auto r = client_->DeleteVm("pve1", 100, {.purge = true, .destroy_unreferenced_disks = true});
  ASSERT_TRUE(r.ok());
  const http::Request req = OnlyRequest();
  const auto query = FakeHttpClient::QueryOf(req.target);
  EXPECT_EQ(Q(query, "purge"), "1");
  EXPECT_EQ(Q(query, "destroy-unreferenced-disks"), "1");
  EXPECT_TRUE(req.body.empty());
}

TEST_F(PveClientTest, PowerActionsEncodeTheirOptions) {
  http_->Push("POST", "/api2/json/nodes/pve1/qemu/100/status/shutdown", PveOk(kUpid));
  http_->Push("POST", "/api2/json/nodes/pve1/qemu/100/status/stop", PveOk(kUpid));
  http_->Push("POST", "/api2/json/nodes/pve1/qemu/100/migrate", PveOk(kUpid));
  ASSERT_TRUE(client_->ShutdownVm("pve1", 100, {.timeout_seconds = 90, .force_stop = true}).ok());
  ASSERT_TRUE(client_->StopVm("pve1", 100, {.overrule_shutdown = true}).ok());
  ASSERT_TRUE(client_->MigrateVm("pve1", 100, {.target = "pve2", .online = true}).ok());
  const auto reqs = http_->requests();
  ASSERT_EQ(reqs.size(), 3u);
  auto form = http::DecodeQuery(FakeHttpClient::BodyOf(reqs[0]));
  EXPECT_EQ(Q(form, "timeout"), "90");
  EXPECT_EQ(Q(form, "forceStop"), "1");
  form = http::DecodeQuery(FakeHttpClient::BodyOf(reqs[1]));
  EXPECT_EQ(Q(form, "overrule-shutdown"), "1");
  form = http::DecodeQuery(FakeHttpClient::BodyOf(reqs[2]));
  EXPECT_EQ(Q(form, "target"), "pve2");
  EXPECT_EQ(Q(form, "online"), "1");
  EXPECT_EQ(Q(form, "with-local-disks"), "<absent>");
}

TEST_F(PveClientTest, ResizeReturnsTaskOrNothing) {
  http_->Push("PUT", "/api2/json/nodes/pve1/qemu/100/resize", PveOk(kUpid));
  http_->Push("PUT", "/api2/json/nodes/pve1/qemu/100/resize", PveOk(nullptr));
  auto a = client_->ResizeDisk("pve1", 100, "scsi0", "20G");
  ASSERT_TRUE(a.ok());
  EXPECT_TRUE(a->has_value());
  auto b = client_->ResizeDisk("pve1", 100, "scsi0", "+5G");
  ASSERT_TRUE(b.ok());
  EXPECT_FALSE(b->has_value());
  const auto form = http::DecodeQuery(FakeHttpClient::BodyOf(http_->requests()[1]));
  EXPECT_EQ(Q(form, "disk"), "scsi0");
  EXPECT_EQ(Q(form, "size"), "+5G");
}

TEST_F(PveClientTest, MutationWithUnreadableAnswerIsOutcomeUnknown) {
  http::Response garbage = PveOk(nullptr);
  garbage.body = "<html>proxy error</html>";
  http_->Push(garbage);
  EXPECT_EQ(client_->StartVm("pve1", 100).status().code(), Code::kOutcomeUnknown);
  http_->Push(PveOk(12345));  // not a UPID string
  EXPECT_EQ(client_->StartVm("pve1", 100).status().code(), Code::kOutcomeUnknown);
}

TEST_F(PveClientTest, ClusterResourcesFilterByType) {
  http_->Push("GET", "/api2/json/cluster/resources",
              PveOk(json::array({{{"id", "qemu/100"},
                                  {"type", "qemu"},
                                  {"vmid", "100"},
                                  {"node", "pve1"},
                                  {"tags", "nixmox;uid-1"}}})));
  auto r = client_->ListClusterResources(ResourceType::kVm);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ((*r)[0].vmid, 100);
  EXPECT_EQ(Q(FakeHttpClient::QueryOf(OnlyRequest().target), "type"), "vm");
}

TEST_F(PveClientTest, AgentCallsReportNotReadyAsConflict) {
  http_->Push("POST", "/api2/json/nodes/pve1/qemu/100/agent/ping",
              PveError(500, "QEMU guest agent is not running"));
  EXPECT_EQ(client_->AgentPing("pve1", 100).code(), Code::kConflict);
  http_->Push(
      "GET", "/api2/json/nodes/pve1/qemu/100/agent/network-get-interfaces",
      PveOk({{"result",
              json::array({{{"name", "ens18"}, {"hardware-address", "bc:24:11:2a:3b:4c"}}})}}));
  auto ifaces = client_->AgentNetworkInterfaces("pve1", 100);
  ASSERT_TRUE(ifaces.ok());
  EXPECT_EQ((*ifaces)[0].name, "ens18");
}

TEST_F(PveClientTest, StorageContentAndVolumeDeleteEncodeVolumeIds) {
  http_->Push("GET", "/api2/json/nodes/pve1/storage/local/content",
              PveOk(json::array({{{"volid", "local:import/nixos-abc.qcow2"},
                                  {"content", "import"},
                                  {"format", "qcow2"},
                                  {"size", "1073741824"}}})));
  auto content = client_->ListStorageContent("pve1", "local", "import");
  ASSERT_TRUE(content.ok());
  EXPECT_EQ((*content)[0].size, 1ULL << 30);
  EXPECT_EQ(Q(FakeHttpClient::QueryOf(http_->requests()[0].target), "content"), "import");

  http_->Push("DELETE", "/api2/json/nodes/pve1/storage/local/content/local:import/nixos-abc.qcow2",
              PveOk(nullptr));
  auto del = client_->DeleteVolume("pve1", "local", "local:import/nixos-abc.qcow2");
  ASSERT_TRUE(del.ok()) << del.status().ToString();
  // The volume id is one path segment on the wire.
  EXPECT_THAT(http_->requests()[1].target, HasSubstr("/content/local%3Aimport%2Fnixos-abc.qcow2"));
}

TEST_F(PveClientTest, TaskStatusAsksTheNodeInsideTheUpid) {
  auto upid = ParseUpid("UPID:pve2:000A1B2C:0123ABCD:6650F00D:qmigrate:100:nixmox@pve!ci:");
  ASSERT_TRUE(upid.ok());
  http_->Push("GET", "/api2/json/nodes/pve2/tasks/" + upid->raw + "/status",
              PveOk({{"status", "stopped"}, {"exitstatus", "OK"}, {"node", "pve2"}}));
  auto st = client_->GetTaskStatus(*upid);
  ASSERT_TRUE(st.ok()) << st.status().ToString();
  EXPECT_TRUE(st->succeeded());
  // '!' and ':' travel encoded inside the one path segment.
  EXPECT_THAT(OnlyRequest().target, HasSubstr("nixmox%40pve%21ci%3A/status"));
}

TEST_F(PveClientTest, TaskStatusRetriesWhileTheTaskIsNotVisibleYet) {
  const auto upid = *ParseUpid(kUpid);
  http_->Push(PveError(400, "Parameter verification failed.", false, {{"upid", "no such task"}}));
  http_->Push(PveError(400, "Parameter verification failed.", false, {{"upid", "no such task"}}));
  http_->Push(PveOk({{"status", "running"}}));
  auto st = client_->GetTaskStatus(upid);
  ASSERT_TRUE(st.ok()) << st.status().ToString();
  EXPECT_TRUE(st->running());
  EXPECT_EQ(sleeps_.size(), 2u);
}

TEST_F(PveClientTest, TaskThatNeverAppearsIsNotFound) {
  http_->SetHandler([](const http::Request&) -> Result<http::Response> {
    return PveError(400, "Parameter verification failed.", false, {{"upid", "no such task"}});
  });
  auto st = client_->GetTaskStatus(*ParseUpid(kUpid));
  EXPECT_EQ(st.status().code(), Code::kNotFound);
  EXPECT_EQ(http_->requests().size(), 6u);  // 1 + task_not_visible_attempts
}

TEST_F(PveClientTest, TaskLogIsPaged) {
  http_->Push(PveOk(json::array({{{"n", 1}, {"t", "starting"}}, {{"n", 2}, {"t", "TASK OK"}}})));
  auto log = client_->GetTaskLog(*ParseUpid(kUpid), 0, 50);
  ASSERT_TRUE(log.ok());
  ASSERT_EQ(log->size(), 2u);
  EXPECT_EQ((*log)[1].text, "TASK OK");
  const auto query = FakeHttpClient::QueryOf(OnlyRequest().target);
  EXPECT_EQ(Q(query, "start"), "0");
  EXPECT_EQ(Q(query, "limit"), "50");
}

TEST_F(PveClientTest, WaitForTaskPollsUntilStoppedAndReportsTheTaskError) {
  const auto upid = *ParseUpid(kUpid);
  http_->Push(PveOk({{"status", "running"}}));
  http_->Push(PveOk({{"status", "running"}}));
  http_->Push(PveOk({{"status", "stopped"},
                     {"exitstatus", "unable to create VM 100 - no space left on device"}}));
  auto sleeper = [this](nanoseconds d) { clock_.Advance(d); };
  auto r = WaitForTask(*client_, upid, {}, clock_, sleeper);
  EXPECT_EQ(r.status().code(), Code::kInternal);
  EXPECT_THAT(r.status().message(), HasSubstr("no space left on device"));
  EXPECT_THAT(r.status().message(), HasSubstr(upid.raw));
}

TEST_F(PveClientTest, WaitForTaskTreatsWarningsAsSuccess) {
  http_->Push(PveOk({{"status", "stopped"}, {"exitstatus", "WARNINGS: 2"}}));
  auto r = WaitForTask(*client_, *ParseUpid(kUpid), {}, clock_, [](nanoseconds) {});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->exitstatus, "WARNINGS: 2");
}

TEST_F(PveClientTest, WaitForTaskGivesUpAtTheDeadlineAndBacksOff) {
  http_->SetHandler([](const http::Request&) -> Result<http::Response> {
    return PveOk({{"status", "running"}});
  });
  std::vector<milliseconds> waits;
  auto sleeper = [&](nanoseconds d) {
    waits.push_back(std::chrono::duration_cast<milliseconds>(d));
    clock_.Advance(d);
  };
  WaitOptions options;
  options.timeout = std::chrono::seconds(60);
  auto r = WaitForTask(*client_, *ParseUpid(kUpid), options, clock_, sleeper);
  EXPECT_EQ(r.status().code(), Code::kRetryable);
  ASSERT_GE(waits.size(), 12u);
  EXPECT_EQ(waits.front(), milliseconds(1000));
  EXPECT_EQ(*std::max_element(waits.begin(), waits.end()), milliseconds(5000));
}

TEST_F(PveClientTest, UploadStreamsTheFileBetweenMultipartHeaders) {
  const auto path = std::filesystem::temp_directory_path() /
                    ("nixmox-upload-test-" + std::to_string(::getpid()) + ".qcow2");
  {
    std::ofstream out(path, std::ios::binary);
    out << "QFI\xfb image bytes";
  }
  http_->Push("POST", "/api2/json/nodes/pve1/storage/local/upload",
              PveOk("UPID:pve1:000A1B2C:0123ABCD:6650F00D:imgcopy::nixmox@pve!ci:"));
  UploadRequest upload;
  upload.content = "import";
  upload.file = path;
  upload.filename = "nixos-abc.qcow2";
  upload.checksum = "deadbeef";
  upload.checksum_algorithm = "sha256";
  auto r = client_->UploadToStorage("pve1", "local", upload);
  std::filesystem::remove(path);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->type, "imgcopy");

  const http::Request req = OnlyRequest();
  const std::string ct = req.headers.Get("Content-Type").value_or("");
  ASSERT_THAT(ct, HasSubstr("multipart/form-data; boundary="));
  const std::string boundary = ct.substr(ct.find('=') + 1);
  ASSERT_EQ(req.body.size(), 3u);
  EXPECT_EQ(req.body[1].file, path);  // streamed from disk, not copied into memory
  const std::string& prefix = req.body[0].data;
  EXPECT_EQ(prefix.find("--" + boundary +
                        "\r\nContent-Disposition: form-data; name=\"content\""
                        "\r\n\r\nimport\r\n"),
            0u);
  EXPECT_THAT(prefix, HasSubstr("name=\"checksum-algorithm\"\r\n\r\nsha256\r\n"));
  EXPECT_THAT(prefix, HasSubstr("name=\"checksum\"\r\n\r\ndeadbeef\r\n"));
  // The file part comes last, after the fields.
  EXPECT_GT(prefix.find("name=\"filename\"; filename=\"nixos-abc.qcow2\""),
            prefix.find("name=\"checksum\""));
  EXPECT_TRUE(prefix.ends_with("\r\n\r\n"));
  EXPECT_EQ(req.body[2].data, "\r\n--" + boundary + "--\r\n");
  EXPECT_EQ(req.timeout, std::chrono::milliseconds(std::chrono::hours(2)));
}

TEST_F(PveClientTest, UploadRefusesMissingFilesWithoutSending) {
  UploadRequest upload;
  upload.content = "import";
  upload.file = "/nonexistent/nixmox/image.qcow2";
  EXPECT_EQ(client_->UploadToStorage("pve1", "local", upload).status().code(), Code::kInvalid);
  EXPECT_TRUE(http_->requests().empty());
}

TEST_F(PveClientTest, LimiterSpacesRequestsOut) {
  Rebuild({.max_in_flight = 1, .qps = 1.0, .burst = 1});
  http_->SetHandler([](const http::Request&) -> Result<http::Response> {
    return PveOk({{"version", "8.4.1"}});
  });
  ASSERT_TRUE(client_->GetVersion().ok());
  ASSERT_TRUE(client_->GetVersion().ok());
  ASSERT_TRUE(client_->GetVersion().ok());
  EXPECT_EQ(sleeps_, (std::vector<milliseconds>{milliseconds(1000), milliseconds(1000)}));
}

TEST_F(PveClientTest, NoMoreThanMaxInFlightRequestsAtOnce) {
  Rebuild({.max_in_flight = 2, .qps = 0, .burst = 1});
  std::mutex mu;
  std::condition_variable cv;
  int inside = 0;
  int most_inside = 0;
  bool release = false;
  http_->SetHandler([&](const http::Request&) -> Result<http::Response> {
    std::unique_lock lock(mu);
    most_inside = std::max(most_inside, ++inside);
    cv.notify_all();
    cv.wait(lock, [&] { return release; });
    --inside;
    return PveOk({{"version", "8.4.1"}});
  });
  std::vector<std::thread> callers;
  for (int i = 0; i < 5; ++i) {
    callers.emplace_back([&] { EXPECT_TRUE(client_->GetVersion().ok()); });
  }
  {
    std::unique_lock lock(mu);
    cv.wait(lock, [&] { return inside == 2; });
    // Give the other callers every chance to (wrongly) get in.
    for (int i = 0; i < 1000; ++i) {
      lock.unlock();
      std::this_thread::yield();
      lock.lock();
    }
    EXPECT_EQ(inside, 2);
    release = true;
  }
  cv.notify_all();
  for (auto& t : callers) t.join();
  EXPECT_EQ(most_inside, 2);
  EXPECT_EQ(http_->requests().size(), 5u);
}

// The value of one series in the registry's text exposition; -1 when absent.
double SeriesValue(const std::string& series) {
  std::istringstream text(SerializeMetrics(MetricsRegistry()));
  std::string line;
  while (std::getline(text, line)) {
    if (line.starts_with(series + " ")) return std::stod(line.substr(series.size() + 1));
  }
  return -1;
}

TEST_F(PveClientTest, CountsRequestsAndRetriesByMethodAndCode) {
  const std::string locked = R"(nixmox_proxmox_requests_total{code="Locked",method="POST"})";
  const std::string ok = R"(nixmox_proxmox_requests_total{code="OK",method="POST"})";
  const std::string retried = R"(nixmox_proxmox_retries_total{code="Locked",method="POST"})";
  // Every series exists from the start, at zero or more.
  EXPECT_GE(SeriesValue(R"(nixmox_proxmox_requests_total{code="Gone",method="DELETE"})"), 0);
  const double locked_before = SeriesValue(locked);
  const double ok_before = SeriesValue(ok);
  const double retried_before = SeriesValue(retried);
  ASSERT_GE(locked_before, 0);

  http_->Push(PveError(500, "VM 100 is locked (clone)"));
  http_->Push(PveOk(kUpid));
  ASSERT_TRUE(client_->StartVm("pve1", 100).ok());
  EXPECT_EQ(SeriesValue(locked), locked_before + 1);
  EXPECT_EQ(SeriesValue(ok), ok_before + 1);
  EXPECT_EQ(SeriesValue(retried), retried_before + 1);
}

TEST(PveApiTokenTest, ParsesAtTheLastEqualsSign) {
  auto t = ApiToken::Parse(std::string("nixmox@pve!ci=") + kSecret);
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(t->id(), "nixmox@pve!ci");
  EXPECT_EQ(t->AuthorizationHeader(), std::string("PVEAPIToken=nixmox@pve!ci=") + kSecret);
}

TEST(PveApiTokenTest, NeverPrintsTheSecret) {
  ApiToken t("nixmox@pve!ci", kSecret);
  std::ostringstream os;
  os << t;
  EXPECT_EQ(os.str(), "nixmox@pve!ci=<redacted>");
  EXPECT_THAT(t.ToString(), Not(HasSubstr(kSecret)));
  EXPECT_EQ(t.Redact(std::string("echo ") + kSecret + " twice " + kSecret),
            "echo <redacted> twice <redacted>");
  // A malformed token's error does not echo it either.
  auto bad = ApiToken::Parse(std::string("no-realm=") + kSecret);
  EXPECT_EQ(bad.status().code(), Code::kInvalid);
  EXPECT_THAT(bad.status().ToString(), Not(HasSubstr(kSecret)));
}

// Every failing call, with a server that echoes the Authorization header into
// every place an error can come from: no status and no log line carries the secret.
TEST_F(PveClientTest, SecretNeverReachesErrorsOrLogs) {
  std::ostringstream log;
  auto sink = std::make_shared<spdlog::sinks::ostream_sink_mt>(log);
  auto logger = std::make_shared<spdlog::logger>("capture", sink);
  logger->set_level(spdlog::level::trace);
  auto previous = spdlog::default_logger();
  spdlog::set_default_logger(logger);

  int call = 0;
  http_->SetHandler([&](const http::Request& req) -> Result<http::Response> {
    const std::string auth = req.headers.Get("Authorization").value_or("");
    switch (call++ % 6) {
      case 0:
        return PveError(500, "VM 100 is locked by " + auth);
      case 1:
        return PveError(401, "bad token " + auth, true);
      case 2:
        return PveError(400, "Parameter verification failed.", false, {{"x", auth}});
      case 3:
        return OutcomeUnknownError(req.method + " reset, header was " + auth);
      case 4:
        return RetryableError("refused " + auth);
      default:
        return PveError(596, auth);
    }
  });
  std::vector<Status> errors;
  for (int round = 0; round < 3; ++round) {
    errors.push_back(client_->GetVersion().status());
    errors.push_back(client_->StartVm("pve1", 100).status());
    errors.push_back(client_->CreateVm("pve1", 100, Params()).status());
    errors.push_back(client_->GetVmConfig("pve1", 100).status());
    errors.push_back(client_->UpdateVmConfigSync("pve1", 100, ConfigUpdate{}));
    errors.push_back(client_->GetTaskStatus(*ParseUpid(kUpid)).status());
    errors.push_back(client_->DeleteVm("pve1", 100, {}).status());
    errors.push_back(client_->AgentPing("pve1", 100));
  }
  spdlog::set_default_logger(previous);

  int failures = 0;
  for (const Status& s : errors) {
    if (s.ok()) continue;
    ++failures;
    EXPECT_THAT(s.ToString(), Not(HasSubstr(kSecret)));
    EXPECT_THAT(s.ToString(), Not(HasSubstr(kSecret + 8)));  // nor a tail of it
  }
  EXPECT_EQ(failures, static_cast<int>(errors.size()));
  EXPECT_THAT(log.str(), Not(HasSubstr(kSecret)));
  EXPECT_THAT(log.str(), HasSubstr("retrying"));  // the log did capture the failures
}

}  // namespace
}  // namespace nixmox::proxmox
