// Drives the Proxmox VE simulator in-process through PveSim::Handle, with a
// FakeClock for task durations and boot delays (no sleeps, no sockets).
#include "test/sim/pve/pve_sim.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "src/common/clock.h"
#include "src/http/http.h"

namespace nixmox::pvesim {
namespace {

using json = nlohmann::json;
using std::chrono::milliseconds;
using Pairs = std::vector<std::pair<std::string, std::string>>;

constexpr const char* kAuth = "PVEAPIToken=root@pam!ci=9f1c2d3e-secret";

std::string Qcow2Header(uint64_t virtual_size) {
  std::string h(512, '\0');
  h[0] = 'Q';
  h[1] = 'F';
  h[2] = 'I';
  h[3] = static_cast<char>(0xfb);
  h[7] = 3;  // version
  for (int i = 0; i < 8; ++i) h[24 + i] = static_cast<char>(virtual_size >> (56 - 8 * i));
  return h;
}

class PveSimTest : public ::testing::Test {
 protected:
  void SetUp() override { Make(Defaults()); }

  Options Defaults() {
    Options o;
    o.nodes = {"pve1", "pve2"};
    o.tokens = {"root@pam!ci=9f1c2d3e-secret"};
    o.task_duration = milliseconds(1000);
    o.boot_delay = milliseconds(5000);
    o.import_per_gib = milliseconds(2000);
    o.storage_lock_timeout = milliseconds(10000);
    o.sleep = [this](milliseconds d) { slept_.push_back(d); };
    return o;
  }

  void Make(Options o) {
    auto r = PveSim::Create(std::move(o), clock_);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    sim_ = std::move(r).value();
  }

  http::ServerResponse Raw(http::ServerRequest req) { return sim_->Handle(req); }

  http::ServerResponse Call(const std::string& method, const std::string& path,
                            const Pairs& params = {}, const char* auth = kAuth) {
    http::ServerRequest req;
    req.method = method;
    req.path = "/api2/json" + path;
    if (auth) req.headers.Set("Authorization", auth);
    if (method == "GET" || method == "DELETE") {
      req.query = params;
      req.raw_query = http::EncodeQuery(params);
    } else if (!params.empty()) {
      req.body = http::EncodeQuery(params);
      req.headers.Set("Content-Type", "application/x-www-form-urlencoded");
    }
    return sim_->Handle(req);
  }

  static json Body(const http::ServerResponse& r) { return json::parse(r.body); }
  static json Data(const http::ServerResponse& r) { return json::parse(r.body)["data"]; }

  // Polls the task like a client would, moving the fake clock between polls.
  // The server hands Handle a percent-decoded path, so the raw UPID goes in it.
  std::string Wait(const std::string& upid) { return WaitRaw(json(upid)); }
  std::string TaskPath(const std::string& node, const std::string& upid) {
    return "/nodes/" + node + "/tasks/" + upid;
  }

  std::string Upload(const std::string& node, const std::string& storage,
                     const std::string& content, const std::string& filename,
                     const std::string& bytes, http::ServerResponse* out = nullptr) {
    const std::string b = "----pvesimboundary42";
    std::string body = "--" + b + "\r\nContent-Disposition: form-data; name=\"content\"\r\n\r\n" +
                       content + "\r\n--" + b +
                       "\r\nContent-Disposition: form-data; name=\"filename\"; filename=\"" +
                       filename + "\"\r\nContent-Type: application/octet-stream\r\n\r\n" + bytes +
                       "\r\n--" + b + "--\r\n";
    http::ServerRequest req;
    req.method = "POST";
    req.path = "/api2/json/nodes/" + node + "/storage/" + storage + "/upload";
    req.headers.Set("Authorization", kAuth);
    req.headers.Set("Content-Type", "multipart/form-data; boundary=" + b);
    req.body = body;
    http::ServerResponse r = sim_->Handle(req);
    if (out) *out = r;
    return r.status == 200 ? Data(r).get<std::string>() : "";
  }

  // Creates VM `vmid` on pve1 with one empty 8 GiB disk and one NIC and waits for it.
  void CreateVm(int vmid, Pairs extra = {}) {
    Pairs p = {{"vmid", std::to_string(vmid)},
               {"name", "vm" + std::to_string(vmid)},
               {"memory", "2048"},
               {"cores", "2"},
               {"scsi0", "local-lvm:8"},
               {"net0", "virtio,bridge=vmbr0"},
               {"agent", "1"}};
    p.insert(p.end(), extra.begin(), extra.end());
    http::ServerResponse r = Call("POST", "/nodes/pve1/qemu", p);
    ASSERT_EQ(r.status, 200) << r.body;
    ASSERT_EQ(WaitRaw(Data(r)), "OK");
  }
  std::string WaitRaw(const json& upid) {
    const std::string u = upid.get<std::string>();
    const std::string node = u.substr(5, u.find(':', 5) - 5);
    for (int i = 0; i < 100000; ++i) {
      json s = Data(Call("GET", TaskPath(node, u) + "/status"));
      if (s["status"] == "stopped") return s["exitstatus"];
      clock_.Advance(milliseconds(100));
    }
    return "never finished";
  }
  json Config(int vmid, const std::string& node = "pve1") {
    return Data(Call("GET", "/nodes/" + node + "/qemu/" + std::to_string(vmid) + "/config"));
  }
  json Status(int vmid, const std::string& node = "pve1") {
    return Data(
        Call("GET", "/nodes/" + node + "/qemu/" + std::to_string(vmid) + "/status/current"));
  }
  std::string Power(int vmid, const std::string& action) {
    http::ServerResponse r =
        Call("POST", "/nodes/pve1/qemu/" + std::to_string(vmid) + "/status/" + action);
    EXPECT_EQ(r.status, 200) << r.reason;
    return WaitRaw(Data(r));
  }

  FakeClock clock_;
  std::vector<milliseconds> slept_;
  std::unique_ptr<PveSim> sim_;
};

// --- auth and envelope -------------------------------------------------------

TEST_F(PveSimTest, ValidTokenGetsVersionInDataEnvelope) {
  http::ServerResponse r = Call("GET", "/version");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.headers.Get("Content-Type"), "application/json;charset=UTF-8");
  json d = Data(r);
  EXPECT_EQ(d["release"], "8.4");
  EXPECT_EQ(d["version"].get<std::string>().rfind("8.4.", 0), 0u);
}

TEST_F(PveSimTest, MissingTokenIs401NoTicketWithEmptyBodyAfterDelay) {
  http::ServerResponse r = Call("GET", "/version", {}, nullptr);
  EXPECT_EQ(r.status, 401);
  EXPECT_EQ(r.reason, "No ticket");
  EXPECT_TRUE(r.body.empty());
  ASSERT_EQ(slept_.size(), 1u);
  EXPECT_EQ(slept_[0], milliseconds(3000));
}

TEST_F(PveSimTest, WrongSecretIs401) {
  http::ServerResponse r = Call("GET", "/version", {}, "PVEAPIToken=root@pam!ci=wrong");
  EXPECT_EQ(r.status, 401);
  EXPECT_TRUE(r.body.empty());
  r = Call("GET", "/version", {}, "PVEAPIToken=root@pam!other=9f1c2d3e-secret");
  EXPECT_EQ(r.status, 401);
}

TEST_F(PveSimTest, TokenWithSpaceSeparatorIsAccepted) {
  EXPECT_EQ(Call("GET", "/version", {}, "PVEAPIToken root@pam!ci=9f1c2d3e-secret").status, 200);
}

TEST_F(PveSimTest, TokenValueIsUriUnescapedAndSplitAtTheLastEquals) {
  EXPECT_EQ(Call("GET", "/version", {}, "PVEAPIToken=root%40pam!ci=9f1c2d3e-secret").status, 200);
  // Like PVE's /^(.*)=(.*)$/: the token id becomes "root@pam!ci=x", which does not exist.
  EXPECT_EQ(Call("GET", "/version", {}, "PVEAPIToken=root@pam!ci=x=9f1c2d3e-secret").status, 401);
}

TEST_F(PveSimTest, UnknownPathIs501AndNeverA404) {
  http::ServerResponse r = Call("GET", "/nodes/pve1/frobnicate");
  EXPECT_EQ(r.status, 501);
  EXPECT_EQ(r.reason, "Method 'GET /nodes/pve1/frobnicate' not implemented");
  EXPECT_EQ(Body(r)["message"], "Method 'GET /nodes/pve1/frobnicate' not implemented\n");
  EXPECT_EQ(Call("DELETE", "/version").status, 501);
}

TEST_F(PveSimTest, ErrorsCarryReasonPhraseAndMessageField) {
  http::ServerResponse r = Call("GET", "/nodes/pve1/qemu/123/config");
  EXPECT_EQ(r.status, 500);
  EXPECT_EQ(r.reason, "Configuration file 'nodes/pve1/qemu-server/123.conf' does not exist");
  EXPECT_TRUE(Body(r)["data"].is_null());
  EXPECT_EQ(Body(r)["message"],
            "Configuration file 'nodes/pve1/qemu-server/123.conf' does not exist\n");
}

TEST_F(PveSimTest, OldServerModeOmitsMessageField) {
  Options o = Defaults();
  o.message_in_body = false;
  Make(o);
  http::ServerResponse r = Call("GET", "/nodes/pve1/qemu/123/config");
  EXPECT_EQ(r.status, 500);
  EXPECT_FALSE(Body(r).contains("message"));
}

TEST_F(PveSimTest, StringlyModeSendsNumbersAsStrings) {
  Options o = Defaults();
  o.stringly_numbers = true;
  Make(o);
  CreateVm(100);
  json vm = Data(Call("GET", "/cluster/resources", {{"type", "vm"}}))[0];
  EXPECT_EQ(vm["vmid"], "100");
  EXPECT_EQ(vm["maxmem"], "2147483648");
  EXPECT_EQ(Config(100)["cores"], "2");
}

TEST_F(PveSimTest, UnknownNodeIsHostnameLookupError) {
  http::ServerResponse r = Call("GET", "/nodes/nope/qemu");
  EXPECT_EQ(r.status, 500);
  EXPECT_EQ(r.reason,
            "hostname lookup 'nope' failed - failed to get address info for: nope: Name or "
            "service not known");
}

TEST_F(PveSimTest, ParameterErrorsAre400WithErrorsObject) {
  http::ServerResponse r = Call("POST", "/nodes/pve1/qemu",
                                {{"vmid", "100"},
                                 {"cores", "0"},
                                 {"bogus", "1"},
                                 {"protection", "true"},
                                 {"ostype", "beos"}});
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(r.reason, "Parameter verification failed.");
  json e = Body(r)["errors"];
  EXPECT_EQ(e["cores"], "value must have a minimum value of 1");
  EXPECT_EQ(e["bogus"],
            "property is not defined in schema and the schema does not allow additional "
            "properties");
  EXPECT_EQ(e["protection"], "type check ('boolean') failed - got 'true'");
  EXPECT_NE(e["ostype"].get<std::string>().find("enumeration"), std::string::npos);
  r = Call("POST", "/nodes/pve1/qemu", {{"vmid", "99"}});
  EXPECT_EQ(Body(r)["errors"]["vmid"], "value must have a minimum value of 100");
  r = Call("POST", "/nodes/pve1/qemu", {{"name", "x"}});
  EXPECT_EQ(Body(r)["errors"]["vmid"], "property is missing and it is not optional");
}

TEST_F(PveSimTest, HugeNumbersAreTypeErrorsNotCrashes) {
  http::ServerResponse r =
      Call("POST", "/nodes/pve1/qemu", {{"vmid", "100"}, {"cores", "99999999999999999999999"}});
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(Body(r)["errors"]["cores"],
            "type check ('integer') failed - got '99999999999999999999999'");
  r = Call("POST", "/nodes/pve1/qemu", {{"vmid", "100"}, {"memory", "99999999999999999999999"}});
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(Data(Call("GET", "/cluster/nextid")), "100");
}

TEST_F(PveSimTest, JsonBodiesMayUseJsonBooleans) {
  http::ServerRequest req;
  req.method = "POST";
  req.path = "/api2/json/nodes/pve1/qemu";
  req.headers.Set("Authorization", kAuth);
  req.headers.Set("Content-Type", "application/json");
  req.body = R"({"vmid": 150, "protection": true, "cores": 2})";
  http::ServerResponse r = Raw(req);
  ASSERT_EQ(r.status, 200) << r.body;
  ASSERT_EQ(WaitRaw(Data(r)), "OK");
  EXPECT_EQ(Config(150)["protection"], 1);
  EXPECT_EQ(Config(150)["cores"], 2);
}

TEST_F(PveSimTest, UriParameterConflictIs400) {
  http::ServerResponse r =
      Call("PUT", "/nodes/pve1/qemu/100/config", {{"vmid", "101"}, {"name", "x"}});
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(Body(r)["errors"]["vmid"],
            "duplicate parameter (already defined in URI) with conflicting values!");
}

// --- create, lock, tasks -----------------------------------------------------

TEST_F(PveSimTest, CreateHoldsLockCreateUntilTaskEndsThenConfigIsComplete) {
  http::ServerResponse r = Call("POST", "/nodes/pve1/qemu",
                                {{"vmid", "100"},
                                 {"name", "web-1"},
                                 {"memory", "2048"},
                                 {"cores", "2"},
                                 {"scsi0", "local-lvm:32,iothread=1"},
                                 {"net0", "virtio,bridge=vmbr0,firewall=1"},
                                 {"scsihw", "virtio-scsi-single"}});
  ASSERT_EQ(r.status, 200) << r.body;
  const std::string upid = Data(r);
  EXPECT_TRUE(upid.rfind("UPID:pve1:", 0) == 0);
  EXPECT_NE(upid.find(":qmcreate:100:root@pam!ci:"), std::string::npos);

  json during = Config(100);
  EXPECT_EQ(during["lock"], "create");
  EXPECT_EQ(during.size(), 2u);  // lock and digest only
  http::ServerResponse locked = Call("PUT", "/nodes/pve1/qemu/100/config", {{"cores", "4"}});
  EXPECT_EQ(locked.status, 500);
  EXPECT_EQ(locked.reason, "VM 100 is locked (create)");
  json st = Data(Call("GET", TaskPath("pve1", upid) + "/status"));
  EXPECT_EQ(st["status"], "running");
  EXPECT_EQ(st["user"], "root@pam");
  EXPECT_EQ(st["tokenid"], "ci");
  EXPECT_EQ(st["type"], "qmcreate");

  EXPECT_EQ(Wait(upid), "OK");
  json c = Config(100);
  EXPECT_FALSE(c.contains("lock"));
  EXPECT_EQ(c["name"], "web-1");
  EXPECT_EQ(c["memory"], "2048");
  EXPECT_EQ(c["cores"], 2);
  EXPECT_EQ(c["scsi0"], "local-lvm:vm-100-disk-0,iothread=1,size=32G");
  EXPECT_EQ(c["boot"], "order=scsi0;net0");
  const std::string net = c["net0"];
  EXPECT_TRUE(net.rfind("virtio=BC:24:11:", 0) == 0) << net;
  EXPECT_EQ(net.substr(24), ",bridge=vmbr0,firewall=1");
  EXPECT_EQ(c["digest"].get<std::string>().size(), 40u);

  json log = Body(Call("GET", TaskPath("pve1", upid) + "/log"));
  EXPECT_EQ(log["data"].back()["t"], "TASK OK");
}

TEST_F(PveSimTest, CreateOnUsedVmidFailsWithNodeName) {
  CreateVm(100);
  http::ServerResponse r = Call("POST", "/nodes/pve2/qemu", {{"vmid", "100"}});
  EXPECT_EQ(r.status, 500);
  EXPECT_EQ(r.reason, "unable to create VM 100 - VM 100 already exists on node 'pve1'");
}

TEST_F(PveSimTest, NextIdIsAStringAndChecksAGivenId) {
  EXPECT_EQ(Data(Call("GET", "/cluster/nextid")), "100");
  http::ServerResponse r = Call("POST", "/nodes/pve1/qemu", {{"vmid", "100"}});
  ASSERT_EQ(r.status, 200);
  // Taken from the moment create returns, before the task ends.
  EXPECT_EQ(Data(Call("GET", "/cluster/nextid")), "101");
  http::ServerResponse used = Call("GET", "/cluster/nextid", {{"vmid", "100"}});
  EXPECT_EQ(used.status, 400);
  EXPECT_EQ(Body(used)["errors"]["vmid"], "VM 100 already exists");
  EXPECT_EQ(Data(Call("GET", "/cluster/nextid", {{"vmid", "555"}})), "555");
}

TEST_F(PveSimTest, TaskEndpointsRejectBadAndForeignUpids) {
  http::ServerResponse r = Call("GET", "/nodes/pve1/tasks/garbage/status");
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(Body(r)["errors"]["upid"], "unable to parse worker upid");
  const std::string upid = Data(Call("POST", "/nodes/pve1/qemu", {{"vmid", "100"}}));
  r = Call("GET", TaskPath("pve2", upid) + "/status");
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(Body(r)["errors"]["upid"], "no such task");
}

TEST_F(PveSimTest, TaskListFiltersByVmidAndReportsTotal) {
  CreateVm(100);
  CreateVm(101);
  json all = Body(Call("GET", "/nodes/pve1/tasks"));
  EXPECT_EQ(all["total"], 2);
  json one = Body(Call("GET", "/nodes/pve1/tasks", {{"vmid", "101"}}));
  ASSERT_EQ(one["data"].size(), 1u);
  EXPECT_EQ(one["data"][0]["status"], "OK");
  EXPECT_EQ(one["data"][0]["id"], "101");
}

// --- config --------------------------------------------------------------------

TEST_F(PveSimTest, DigestChangesWithConfigAndMismatchIsRejected) {
  CreateVm(100);
  const std::string d1 = Config(100)["digest"];
  ASSERT_EQ(Call("PUT", "/nodes/pve1/qemu/100/config", {{"cores", "4"}, {"digest", d1}}).status,
            200);
  const std::string d2 = Config(100)["digest"];
  EXPECT_NE(d1, d2);
  http::ServerResponse r =
      Call("PUT", "/nodes/pve1/qemu/100/config", {{"cores", "8"}, {"digest", d1}});
  EXPECT_EQ(r.status, 500);
  EXPECT_EQ(r.reason, "checksum mismatch (file change by other user?)");
  EXPECT_EQ(Config(100)["cores"], 4);
}

TEST_F(PveSimTest, TagsAreNormalisedOnUpdateButStoredAsGivenOnCreate) {
  CreateVm(100, {{"tags", "Web,prod"}});
  EXPECT_EQ(Config(100)["tags"], "Web,prod");
  ASSERT_EQ(Call("PUT", "/nodes/pve1/qemu/100/config", {{"tags", "web;Prod prod,a"}}).status, 200);
  EXPECT_EQ(Config(100)["tags"], "a;prod;web");
}

TEST_F(PveSimTest, PostConfigIsATaskAndPutIsSynchronous) {
  CreateVm(100);
  http::ServerResponse post = Call("POST", "/nodes/pve1/qemu/100/config", {{"cores", "3"}});
  ASSERT_EQ(post.status, 200);
  const std::string upid = Data(post);
  EXPECT_NE(upid.find(":qmconfig:100:"), std::string::npos);
  EXPECT_EQ(Wait(upid), "OK");
  EXPECT_EQ(Config(100)["cores"], 3);
  http::ServerResponse put = Call("PUT", "/nodes/pve1/qemu/100/config", {{"cores", "5"}});
  EXPECT_EQ(put.status, 200);
  EXPECT_TRUE(Data(put).is_null());
  EXPECT_EQ(Config(100)["cores"], 5);
}

TEST_F(PveSimTest, BackgroundDelayWaitsForTheConfigTask) {
  Options o = Defaults();
  o.sleep = [this](milliseconds d) { clock_.Advance(d); };  // waiting moves fake time
  Make(o);
  CreateVm(100);
  http::ServerResponse r =
      Call("POST", "/nodes/pve1/qemu/100/config", {{"cores", "6"}, {"background_delay", "5"}});
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_TRUE(Data(r).is_null());
  EXPECT_EQ(Config(100)["cores"], 6);
}

TEST_F(PveSimTest, NicUpdateWithoutMacGetsANewMacLikePve) {
  CreateVm(100);
  const std::string before = Config(100)["net0"];
  const std::string mac = before.substr(7, 17);
  ASSERT_EQ(
      Call("PUT", "/nodes/pve1/qemu/100/config", {{"net0", "virtio=" + mac + ",bridge=vmbr1"}})
          .status,
      200);
  EXPECT_EQ(Config(100)["net0"], "virtio=" + mac + ",bridge=vmbr1");
  ASSERT_EQ(Call("PUT", "/nodes/pve1/qemu/100/config", {{"net0", "virtio,bridge=vmbr1"}}).status,
            200);
  EXPECT_NE(Config(100)["net0"].get<std::string>().substr(7, 17), mac);
}

TEST_F(PveSimTest, DeletedDiskBecomesUnusedAndBadBootOrderIsRejected) {
  CreateVm(100, {{"scsi1", "local-lvm:4"}});
  ASSERT_EQ(Call("PUT", "/nodes/pve1/qemu/100/config", {{"delete", "scsi1"}}).status, 200);
  json c = Config(100);
  EXPECT_FALSE(c.contains("scsi1"));
  EXPECT_EQ(c["unused0"], "local-lvm:vm-100-disk-1");
  http::ServerResponse r =
      Call("PUT", "/nodes/pve1/qemu/100/config", {{"boot", "order=scsi1;net0"}});
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(Body(r)["errors"]["boot"], "invalid bootorder: device 'scsi1' does not exist'");
}

// --- power ---------------------------------------------------------------------

TEST_F(PveSimTest, StartStopShutdownRebootMoveStatusAndQmpStatus) {
  CreateVm(100);
  EXPECT_EQ(Status(100)["status"], "stopped");
  EXPECT_EQ(Status(100)["qmpstatus"], "stopped");
  EXPECT_EQ(Power(100, "start"), "OK");
  EXPECT_EQ(Status(100)["status"], "running");
  EXPECT_EQ(Status(100)["qmpstatus"], "running");
  EXPECT_EQ(Power(100, "start"), "VM 100 already running");
  EXPECT_EQ(Power(100, "reboot"), "OK");
  EXPECT_EQ(Status(100)["status"], "running");
  EXPECT_EQ(Power(100, "shutdown"), "OK");
  EXPECT_EQ(Status(100)["status"], "stopped");
  EXPECT_EQ(Power(100, "stop"), "OK");  // stopping a stopped VM is fine
  http::ServerResponse r = Call("POST", "/nodes/pve1/qemu/100/status/reboot");
  EXPECT_EQ(r.status, 500);
  EXPECT_EQ(r.reason, "VM 100 not running");
  EXPECT_EQ(Power(100, "start"), "OK");
  EXPECT_EQ(Power(100, "stop"), "OK");
  EXPECT_EQ(Status(100)["qmpstatus"], "stopped");
}

TEST_F(PveSimTest, MemoryHotplugAppliesMemoryToARunningVm) {
  CreateVm(100, {{"hotplug", "network,disk,memory"}});
  ASSERT_EQ(Power(100, "start"), "OK");
  ASSERT_EQ(Call("PUT", "/nodes/pve1/qemu/100/config", {{"memory", "4096"}, {"cores", "4"}}).status,
            200);
  json current = Data(Call("GET", "/nodes/pve1/qemu/100/config", {{"current", "1"}}));
  EXPECT_EQ(current["memory"], "4096");
  EXPECT_EQ(current["cores"], 2);  // cores never hot-plug
}

TEST_F(PveSimTest, ConfigUpdateWaitsForTheTaskHoldingTheConfigLock) {
  Options o = Defaults();
  o.sleep = [this](milliseconds d) { clock_.Advance(d); };  // waiting moves fake time
  Make(o);
  CreateVm(100);
  const std::string start = Data(Call("POST", "/nodes/pve1/qemu/100/status/start"));
  // The start holds the flock for 1 s; the update waits, then sees a running VM.
  ASSERT_EQ(Call("PUT", "/nodes/pve1/qemu/100/config", {{"cores", "4"}}).status, 200);
  EXPECT_EQ(Wait(start), "OK");
  json current = Data(Call("GET", "/nodes/pve1/qemu/100/config", {{"current", "1"}}));
  EXPECT_EQ(current["cores"], 2);  // pending: it arrived after the start
}

TEST_F(PveSimTest, ConfigUpdateTimesOutOnALongFlockHolder) {
  Options o = Defaults();
  o.task_duration = milliseconds(8000);  // a 16 s shutdown
  o.sleep = [this](milliseconds d) { clock_.Advance(d); };
  Make(o);
  CreateVm(100);
  ASSERT_EQ(Power(100, "start"), "OK");
  ASSERT_EQ(Call("POST", "/nodes/pve1/qemu/100/status/shutdown").status, 200);
  http::ServerResponse r = Call("PUT", "/nodes/pve1/qemu/100/config", {{"name", "late"}});
  EXPECT_EQ(r.status, 500);
  EXPECT_EQ(r.reason, "can't lock file '/var/lock/qemu-server/lock-100.conf' - got timeout");
}

TEST_F(PveSimTest, ShutdownTimeoutFailsUnlessForceStop) {
  CreateVm(100);
  ASSERT_EQ(Power(100, "start"), "OK");
  // The guest takes 2 s to power off; a 1 s timeout gives up.
  http::ServerResponse r = Call("POST", "/nodes/pve1/qemu/100/status/shutdown", {{"timeout", "1"}});
  EXPECT_EQ(WaitRaw(Data(r)), "VM quit/powerdown failed - got timeout");
  EXPECT_EQ(Status(100)["status"], "running");
  r = Call("POST", "/nodes/pve1/qemu/100/status/shutdown", {{"timeout", "1"}, {"forceStop", "1"}});
  EXPECT_EQ(WaitRaw(Data(r)), "OK");
  EXPECT_EQ(Status(100)["status"], "stopped");
}

TEST_F(PveSimTest, OversizedFormBodyIs501) {
  http::ServerResponse r =
      Call("PUT", "/nodes/pve1/qemu/100/config", {{"description", std::string(600 * 1024, 'x')}});
  EXPECT_EQ(r.status, 501);
  EXPECT_EQ(r.reason, "for data too large");
}

TEST_F(PveSimTest, RunningVmKeepsNonHotplugChangesPendingUntilReboot) {
  CreateVm(100);
  ASSERT_EQ(Power(100, "start"), "OK");
  ASSERT_EQ(
      Call("PUT", "/nodes/pve1/qemu/100/config", {{"memory", "4096"}, {"name", "renamed"}}).status,
      200);
  json current = Data(Call("GET", "/nodes/pve1/qemu/100/config", {{"current", "1"}}));
  EXPECT_EQ(current["memory"], "2048");
  EXPECT_EQ(current["name"], "renamed");     // hot-pluggable: applied at once
  EXPECT_EQ(Config(100)["memory"], "4096");  // GET config shows pending values
  json pending = Data(Call("GET", "/nodes/pve1/qemu/100/pending"));
  bool found = false;
  for (const json& e : pending) {
    if (e["key"] == "memory") {
      found = true;
      EXPECT_EQ(e["value"], "2048");
      EXPECT_EQ(e["pending"], "4096");
    }
  }
  EXPECT_TRUE(found);
  ASSERT_EQ(Power(100, "reboot"), "OK");
  current = Data(Call("GET", "/nodes/pve1/qemu/100/config", {{"current", "1"}}));
  EXPECT_EQ(current["memory"], "4096");
  for (const json& e : Data(Call("GET", "/nodes/pve1/qemu/100/pending")))
    EXPECT_FALSE(e.contains("pending")) << e.dump();
}

// --- guest agent ------------------------------------------------------------------

TEST_F(PveSimTest, AgentAnswersOnlyWhenConfiguredRunningAndBooted) {
  CreateVm(100, {{"agent", "0"}});
  CreateVm(101, {{"net1", "e1000,bridge=vmbr1"}});
  http::ServerResponse r = Call("POST", "/nodes/pve1/qemu/100/agent/ping");
  EXPECT_EQ(r.status, 500);
  EXPECT_EQ(r.reason, "No QEMU guest agent configured");
  r = Call("POST", "/nodes/pve1/qemu/101/agent/ping");
  EXPECT_EQ(r.reason, "VM 101 is not running");
  ASSERT_EQ(Power(101, "start"), "OK");
  r = Call("GET", "/nodes/pve1/qemu/101/agent/network-get-interfaces");
  EXPECT_EQ(r.status, 500);
  EXPECT_EQ(r.reason, "QEMU guest agent is not running");
  clock_.Advance(milliseconds(5000));
  r = Call("POST", "/nodes/pve1/qemu/101/agent/ping");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(Data(r), json({{"result", json::object()}}));

  json ifs = Data(Call("GET", "/nodes/pve1/qemu/101/agent/network-get-interfaces"))["result"];
  ASSERT_EQ(ifs.size(), 3u);
  EXPECT_EQ(ifs[0]["name"], "lo");
  const std::string net0 = Config(101)["net0"];
  std::string mac = net0.substr(7, 17);
  std::transform(mac.begin(), mac.end(), mac.begin(), ::tolower);
  EXPECT_EQ(ifs[1]["hardware-address"], mac);
  json ips = ifs[1]["ip-addresses"];
  ASSERT_EQ(ips.size(), 3u);
  EXPECT_EQ(ips[0]["ip-address-type"], "ipv4");
  EXPECT_EQ(ips[0]["ip-address"].get<std::string>().rfind("10.99.", 0), 0u);
  EXPECT_EQ(ips[0]["prefix"], 16);
  EXPECT_EQ(ips[1]["ip-address"].get<std::string>().rfind("fd99:", 0), 0u);
  EXPECT_EQ(ips[2]["ip-address"].get<std::string>().rfind("fe80::", 0), 0u);
  EXPECT_NE(ifs[1]["ip-addresses"][0], ifs[2]["ip-addresses"][0]);
  // Deterministic: asking again gives the same addresses.
  EXPECT_EQ(Data(Call("GET", "/nodes/pve1/qemu/101/agent/network-get-interfaces"))["result"], ifs);
}

TEST_F(PveSimTest, PublicIpv4RangeAddsAnAddressOnTheFirstNic) {
  Options o = Defaults();
  o.guest_public_ipv4_cidr = "203.0.113.0/24";
  Make(o);
  CreateVm(100);
  ASSERT_EQ(Power(100, "start"), "OK");
  clock_.Advance(milliseconds(5000));
  json ips = Data(Call(
      "GET", "/nodes/pve1/qemu/100/agent/network-get-interfaces"))["result"][1]["ip-addresses"];
  ASSERT_EQ(ips.size(), 4u);
  EXPECT_EQ(ips[1]["ip-address"].get<std::string>().rfind("203.0.113.", 0), 0u);
}

// --- destroy ------------------------------------------------------------------------

TEST_F(PveSimTest, DestroyIsBlockedByProtectionAndByRunning) {
  CreateVm(100, {{"protection", "1"}});
  http::ServerResponse r = Call("DELETE", "/nodes/pve1/qemu/100");
  EXPECT_EQ(r.status, 500);
  EXPECT_EQ(r.reason, "can't remove VM 100 - protection mode enabled");
  ASSERT_EQ(Call("PUT", "/nodes/pve1/qemu/100/config", {{"protection", "0"}}).status, 200);
  ASSERT_EQ(Power(100, "start"), "OK");
  r = Call("DELETE", "/nodes/pve1/qemu/100");
  EXPECT_EQ(r.reason, "VM 100 is running - destroy failed");
  ASSERT_EQ(Power(100, "stop"), "OK");
  r = Call("DELETE", "/nodes/pve1/qemu/100");
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(Config(100)["lock"], "destroyed");
  EXPECT_EQ(WaitRaw(Data(r)), "OK");
  EXPECT_EQ(Call("GET", "/nodes/pve1/qemu/100/config").status, 500);
  EXPECT_TRUE(Data(Call("GET", "/nodes/pve1/storage/local-lvm/content")).empty());
}

TEST_F(PveSimTest, DestroyDuringCreateFailsInsideTheTask) {
  const std::string create = Data(Call("POST", "/nodes/pve1/qemu", {{"vmid", "100"}}));
  http::ServerResponse r = Call("DELETE", "/nodes/pve1/qemu/100");
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(WaitRaw(Data(r)), "VM 100 is locked (create)");
  EXPECT_EQ(Wait(create), "OK");
  EXPECT_EQ(Call("GET", "/nodes/pve1/qemu/100/config").status, 200);
}

// --- storage, upload, import -----------------------------------------------------------

TEST_F(PveSimTest, UploadedQcow2ImportsWithItsVirtualSize) {
  const std::string img = Qcow2Header(3 * 1024ull * 1024 * 1024) + std::string(1000, 'x');
  const std::string upid = Upload("pve1", "local", "import", "noble.qcow2", img);
  ASSERT_FALSE(upid.empty());
  EXPECT_NE(upid.find(":imgcopy::root@pam!ci:"), std::string::npos);
  EXPECT_EQ(Wait(upid), "OK");
  json content = Data(Call("GET", "/nodes/pve1/storage/local/content", {{"content", "import"}}));
  ASSERT_EQ(content.size(), 1u);
  EXPECT_EQ(content[0]["volid"], "local:import/noble.qcow2");
  EXPECT_EQ(content[0]["format"], "qcow2");

  http::ServerResponse r =
      Call("POST", "/nodes/pve1/qemu",
           {{"vmid", "200"}, {"scsi0", "local-lvm:0,import-from=local:import/noble.qcow2"}});
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(WaitRaw(Data(r)), "OK");
  EXPECT_EQ(Config(200)["scsi0"], "local-lvm:vm-200-disk-0,size=3G");
  json disks = Data(Call("GET", "/nodes/pve1/storage/local-lvm/content", {{"vmid", "200"}}));
  ASSERT_EQ(disks.size(), 1u);
  EXPECT_EQ(disks[0]["size"], 3ull * 1024 * 1024 * 1024);
}

TEST_F(PveSimTest, RawUploadImportsWithFileSize) {
  const std::string upid = Upload("pve1", "local", "import", "disk.raw", std::string(1 << 20, 'r'));
  ASSERT_EQ(Wait(upid), "OK");
  http::ServerResponse r = Call(
      "POST", "/nodes/pve1/qemu",
      {{"vmid", "201"}, {"virtio0", "local-lvm:0,import-from=local:import/disk.raw,discard=on"}});
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(WaitRaw(Data(r)), "OK");
  EXPECT_EQ(Config(201)["virtio0"], "local-lvm:vm-201-disk-0,discard=on,size=1M");
}

TEST_F(PveSimTest, ImportFromNeedsSpecialSyntaxAndAnImportableSource) {
  ASSERT_EQ(Wait(Upload("pve1", "local", "iso", "boot.iso", "ISO")), "OK");
  http::ServerResponse r =
      Call("POST", "/nodes/pve1/qemu",
           {{"vmid", "300"}, {"scsi0", "local-lvm:8,import-from=local:iso/boot.iso"}});
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(Body(r)["errors"]["scsi0"],
            "'import-from' requires special syntax - use <storage ID>:0,import-from=<source>");
  r = Call("POST", "/nodes/pve1/qemu",
           {{"vmid", "300"}, {"scsi0", "local-lvm:0,import-from=local:iso/boot.iso"}});
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(Body(r)["errors"]["scsi0"],
            "'local:iso/boot.iso' has wrong type 'iso' - needs to be 'images' or 'import'");
  r = Call("POST", "/nodes/pve1/qemu", {{"vmid", "300"}, {"ide2", "local:iso/boot.iso"}});
  EXPECT_EQ(Body(r)["errors"]["ide2"], "explicit 'media=cdrom' is required for iso images");
  r = Call("POST", "/nodes/pve1/qemu", {{"vmid", "300"}, {"scsi0", "local:8"}});
  EXPECT_EQ(Body(r)["errors"]["scsi0"], "storage 'local' does not support vm images");
  EXPECT_EQ(Call("GET", "/nodes/pve1/qemu/300/config").status, 500);  // nothing was created
}

TEST_F(PveSimTest, UploadIsRefusedForBlockStorageDisabledContentAndWrongExtension) {
  Options o = Defaults();
  o.extra_storages = {"isos:dir:iso"};
  Make(o);
  http::ServerResponse r;
  Upload("pve1", "local-lvm", "import", "x.qcow2", "data", &r);
  EXPECT_EQ(r.status, 500);
  EXPECT_EQ(r.reason, "can't upload to storage type 'lvmthin'");
  Upload("pve1", "isos", "import", "x.qcow2", "data", &r);
  EXPECT_EQ(r.status, 500);
  EXPECT_EQ(r.reason, "storage 'isos' does not support 'import' content");
  Upload("pve1", "local", "import", "x.iso", "data", &r);
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(Body(r)["errors"]["filename"], "invalid filename or wrong extension");
  Upload("pve1", "local", "iso", "x.qcow2", "data", &r);
  EXPECT_EQ(Body(r)["errors"]["filename"], "wrong file extension");
  Upload("pve1", "local", "backup", "x.vma", "data", &r);
  EXPECT_EQ(r.status, 400);
  EXPECT_TRUE(Body(r)["errors"].contains("content"));
  EXPECT_TRUE(Data(Call("GET", "/nodes/pve1/storage/local/content")).empty());
}

TEST_F(PveSimTest, VolumeDeleteIsATask) {
  ASSERT_EQ(Wait(Upload("pve1", "local", "import", "a.raw", "abc")), "OK");
  http::ServerResponse r = Call("DELETE", "/nodes/pve1/storage/local/content/local:import/a.raw");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(WaitRaw(Data(r)), "OK");
  EXPECT_TRUE(Data(Call("GET", "/nodes/pve1/storage/local/content")).empty());
  r = Call("DELETE", "/nodes/pve1/storage/local/content/local:import/a.raw");
  EXPECT_EQ(r.status, 500);
}

TEST_F(PveSimTest, ParallelImportsQueueForTheStorageLockAndTimeOut) {
  // Each import of 4 GiB holds local-lvm for 0.5 s + 8 s; the third waits > 10 s.
  ASSERT_EQ(
      Wait(Upload("pve1", "local", "import", "big.qcow2", Qcow2Header(4 * 1024ull * 1024 * 1024))),
      "OK");
  std::vector<std::string> upids;
  for (int id = 100; id < 103; ++id) {
    http::ServerResponse r = Call("POST", "/nodes/pve1/qemu",
                                  {{"vmid", std::to_string(id)},
                                   {"scsi0", "local-lvm:0,import-from=local:import/big.qcow2"}});
    ASSERT_EQ(r.status, 200) << r.body;
    upids.push_back(Data(r));
  }
  EXPECT_EQ(Wait(upids[0]), "OK");
  EXPECT_EQ(Wait(upids[1]), "OK");
  EXPECT_EQ(
      Wait(upids[2]),
      "unable to create VM 102 - cfs-lock 'storage-local-lvm' error: got lock request timeout");
  EXPECT_EQ(Call("GET", "/nodes/pve1/qemu/102/config").status, 500);  // failed create removes it
  EXPECT_EQ(Data(Call("GET", "/cluster/nextid")), "102");
}

TEST_F(PveSimTest, StorageCapacityIsAccounted) {
  CreateVm(100);
  json st = Data(Call("GET", "/nodes/pve1/storage/local-lvm/status"));
  EXPECT_EQ(st["used"], 8ull * 1024 * 1024 * 1024);
  EXPECT_EQ(st["total"], 500ull * 1024 * 1024 * 1024);
}

// --- resize, migrate ------------------------------------------------------------------

TEST_F(PveSimTest, ResizeGrowsAndShrinkIsATaskError) {
  CreateVm(100);
  http::ServerResponse r =
      Call("PUT", "/nodes/pve1/qemu/100/resize", {{"disk", "scsi0"}, {"size", "+2G"}});
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_NE(Data(r).get<std::string>().find(":resize:100:"), std::string::npos);
  EXPECT_EQ(WaitRaw(Data(r)), "OK");
  EXPECT_EQ(Config(100)["scsi0"], "local-lvm:vm-100-disk-0,size=10G");
  r = Call("PUT", "/nodes/pve1/qemu/100/resize", {{"disk", "scsi0"}, {"size", "12G"}});
  EXPECT_EQ(WaitRaw(Data(r)), "OK");
  EXPECT_EQ(Config(100)["scsi0"], "local-lvm:vm-100-disk-0,size=12G");
  r = Call("PUT", "/nodes/pve1/qemu/100/resize", {{"disk", "scsi0"}, {"size", "4G"}});
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(WaitRaw(Data(r)), "shrinking disks is not supported");
  r = Call("PUT", "/nodes/pve1/qemu/100/resize", {{"disk", "scsi5"}, {"size", "+1G"}});
  EXPECT_EQ(WaitRaw(Data(r)), "disk 'scsi5' does not exist");
  r = Call("PUT", "/nodes/pve1/qemu/100/resize", {{"disk", "scsi0"}, {"size", "big"}});
  EXPECT_EQ(r.status, 400);
}

TEST_F(PveSimTest, MigrateMovesTheVmAndItsDisksToTheTarget) {
  CreateVm(100);
  http::ServerResponse r = Call("POST", "/nodes/pve1/qemu/100/migrate", {{"target", "pve1"}});
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(Body(r)["errors"]["target"], "target is local node.");
  r = Call("POST", "/nodes/pve1/qemu/100/migrate", {{"target", "pve9"}});
  EXPECT_EQ(r.reason, "no such cluster node 'pve9'");
  ASSERT_EQ(Power(100, "start"), "OK");
  r = Call("POST", "/nodes/pve1/qemu/100/migrate", {{"target", "pve2"}});
  EXPECT_EQ(r.reason, "can't migrate running VM without --online");
  ASSERT_EQ(Power(100, "stop"), "OK");

  r = Call("POST", "/nodes/pve1/qemu/100/migrate", {{"target", "pve2"}});
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(Config(100)["lock"], "migrate");
  EXPECT_EQ(Call("POST", "/nodes/pve1/qemu/100/status/start").status, 200);
  EXPECT_EQ(WaitRaw(Data(r)), "OK");
  EXPECT_EQ(Call("GET", "/nodes/pve1/qemu/100/config").status, 500);
  EXPECT_EQ(Config(100, "pve2")["scsi0"], "local-lvm:vm-100-disk-0,size=8G");
  EXPECT_EQ(Data(Call("GET", "/nodes/pve2/storage/local-lvm/content")).size(), 1u);
  EXPECT_TRUE(Data(Call("GET", "/nodes/pve1/storage/local-lvm/content")).empty());
}

TEST_F(PveSimTest, OnlineMigrationKeepsTheVmRunning) {
  CreateVm(100);
  ASSERT_EQ(Power(100, "start"), "OK");
  http::ServerResponse r =
      Call("POST", "/nodes/pve1/qemu/100/migrate", {{"target", "pve2"}, {"online", "1"}});
  EXPECT_EQ(r.reason, "can't live migrate attached local disks without with-local-disks option");
  r = Call("POST", "/nodes/pve1/qemu/100/migrate",
           {{"target", "pve2"}, {"online", "1"}, {"with-local-disks", "1"}});
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(WaitRaw(Data(r)), "OK");
  EXPECT_EQ(Status(100, "pve2")["status"], "running");
}

// --- cluster views ------------------------------------------------------------------------

TEST_F(PveSimTest, ClusterResourcesReflectVmsNodesAndStorage) {
  CreateVm(100, {{"tags", "a;b"}});
  ASSERT_EQ(Power(100, "start"), "OK");
  json vms = Data(Call("GET", "/cluster/resources", {{"type", "vm"}}));
  ASSERT_EQ(vms.size(), 1u);
  EXPECT_EQ(vms[0]["id"], "qemu/100");
  EXPECT_EQ(vms[0]["type"], "qemu");
  EXPECT_EQ(vms[0]["node"], "pve1");
  EXPECT_EQ(vms[0]["status"], "running");
  EXPECT_EQ(vms[0]["tags"], "a;b");
  EXPECT_EQ(vms[0]["maxmem"], 2048ull * 1024 * 1024);
  EXPECT_EQ(vms[0]["maxdisk"], 8ull * 1024 * 1024 * 1024);
  json nodes = Data(Call("GET", "/cluster/resources", {{"type", "node"}}));
  ASSERT_EQ(nodes.size(), 2u);
  EXPECT_GT(nodes[0]["mem"].get<uint64_t>(), nodes[1]["mem"].get<uint64_t>());
  json storages = Data(Call("GET", "/cluster/resources", {{"type", "storage"}}));
  EXPECT_EQ(storages.size(), 4u);
  EXPECT_EQ(Data(Call("GET", "/cluster/resources")).size(), 7u);
  EXPECT_EQ(Call("GET", "/cluster/resources", {{"type", "lxc"}}).status, 400);
}

TEST_F(PveSimTest, ResourcesLagShowsUnknownThenThePreviousStatus) {
  Options o = Defaults();
  o.resources_lag = milliseconds(10000);
  Make(o);
  const std::string upid = Data(Call("POST", "/nodes/pve1/qemu", {{"vmid", "100"}}));
  ASSERT_EQ(Wait(upid), "OK");
  EXPECT_EQ(Data(Call("GET", "/cluster/resources", {{"type", "vm"}}))[0]["status"], "unknown");
  clock_.Advance(milliseconds(10000));
  EXPECT_EQ(Data(Call("GET", "/cluster/resources", {{"type", "vm"}}))[0]["status"], "stopped");
  ASSERT_EQ(Power(100, "start"), "OK");
  EXPECT_EQ(Status(100)["status"], "running");  // status/current is live
  EXPECT_EQ(Data(Call("GET", "/cluster/resources", {{"type", "vm"}}))[0]["status"], "stopped");
  clock_.Advance(milliseconds(10000));
  EXPECT_EQ(Data(Call("GET", "/cluster/resources", {{"type", "vm"}}))[0]["status"], "running");
}

TEST_F(PveSimTest, ClusterStatusListsTheClusterAndItsNodes) {
  json st = Data(Call("GET", "/cluster/status"));
  ASSERT_EQ(st.size(), 3u);
  EXPECT_EQ(st[0]["type"], "cluster");
  EXPECT_EQ(st[0]["nodes"], 2);
  EXPECT_EQ(st[1]["name"], "pve1");
  EXPECT_EQ(st[2]["online"], 1);
}

TEST_F(PveSimTest, RunningVmsConsumeNodeMemory) {
  const uint64_t before = Data(Call("GET", "/nodes/pve1/status"))["memory"]["used"];
  CreateVm(100);
  ASSERT_EQ(Power(100, "start"), "OK");
  const uint64_t after = Data(Call("GET", "/nodes/pve1/status"))["memory"]["used"];
  EXPECT_EQ(after - before, 2048ull * 1024 * 1024);
  json list = Data(Call("GET", "/nodes"));
  ASSERT_EQ(list.size(), 2u);
  EXPECT_EQ(list[0]["maxcpu"], 16);
}

// --- faults, counters -----------------------------------------------------------------------

http::ServerRequest Admin(const std::string& method, const std::string& path,
                          const std::string& body = "") {
  http::ServerRequest r;
  r.method = method;
  r.path = path;
  r.body = body;
  return r;
}

TEST_F(PveSimTest, AdminEndpointInjectsOneServerError) {
  http::ServerResponse a = Raw(Admin(
      "PUT", "/_sim/faults", R"({"error_rate": 1.0, "remaining": 1, "match": "GET /version"})"));
  ASSERT_EQ(a.status, 200);
  http::ServerResponse r = Call("GET", "/version");
  EXPECT_EQ(r.status, 500);
  EXPECT_EQ(Call("GET", "/version").status, 200);  // only one was asked for
  EXPECT_EQ(json::parse(Raw(Admin("GET", "/_sim/faults")).body)["remaining"], 0);
}

TEST_F(PveSimTest, TimeoutFaultLosesTheAnswerButKeepsTheEffect) {
  Raw(Admin("PUT", "/_sim/faults", R"({"timeout_rate": 1.0, "remaining": 1})"));
  http::ServerResponse r = Call("POST", "/nodes/pve1/qemu", {{"vmid", "100"}});
  EXPECT_EQ(r.status, 596);
  EXPECT_EQ(r.reason, "Connection timed out");
  EXPECT_EQ(Config(100)["lock"], "create");  // the create did happen
}

TEST_F(PveSimTest, TaskFailureFaultFailsTasks) {
  Raw(Admin("PUT", "/_sim/faults", R"({"task_failure_rate": 1.0})"));
  const std::string upid = Data(Call("POST", "/nodes/pve1/qemu", {{"vmid", "100"}}));
  EXPECT_EQ(Wait(upid), "unable to create VM 100 - simulated task failure");
  EXPECT_EQ(Call("GET", "/nodes/pve1/qemu/100/config").status, 500);
}

TEST_F(PveSimTest, RequestCountersUsePathTemplates) {
  Call("GET", "/nodes/pve1/qemu/100/config");
  Call("GET", "/nodes/pve2/qemu/7777/config");
  Call("GET", "/version");
  json c = json::parse(Raw(Admin("GET", "/_sim/requests")).body);
  EXPECT_EQ(c["GET /nodes/{node}/qemu/{vmid}/config"], 2);
  EXPECT_EQ(c["GET /version"], 1);
  Raw(Admin("POST", "/_sim/reset"));
  EXPECT_TRUE(json::parse(Raw(Admin("GET", "/_sim/requests")).body).empty());
}

TEST_F(PveSimTest, RequestLogHasALinePerRequestWithItsVmid) {
  const std::string path = (std::filesystem::temp_directory_path() /
                            ("pve-sim-requests-" + std::to_string(::getpid()) + ".log"))
                               .string();
  std::filesystem::remove(path);
  Options o = Defaults();
  o.request_log = path;
  Make(o);
  Call("POST", "/nodes/pve1/qemu", {{"vmid", "100"}, {"name", "web"}});
  Call("GET", "/nodes/pve1/qemu/100/config");
  Call("GET", "/cluster/resources", {{"type", "vm"}});
  Call("GET", "/version", {}, "PVEAPIToken=root@pam!ci=wrong");
  Raw(Admin("PUT", "/_sim/faults", R"({"error_rate": 1.0, "remaining": 1})"));
  Call("GET", "/nodes/pve1/qemu/100/status/current");
  sim_->Tick();  // flushes

  std::ifstream in(path);
  std::vector<std::vector<std::string>> lines;
  for (std::string line; std::getline(in, line);) {
    std::vector<std::string> fields;
    std::stringstream ss(line);
    for (std::string f; std::getline(ss, f, '\t');) fields.push_back(f);
    lines.push_back(fields);
  }
  ASSERT_EQ(lines.size(), 5u);
  const auto now = std::chrono::duration<double>(clock_.WallNow().time_since_epoch()).count();
  EXPECT_NEAR(std::stod(lines[0][0]), now, 1.0);
  EXPECT_EQ(lines[0], (std::vector<std::string>{lines[0][0], "POST", "/nodes/{node}/qemu",
                                                "/api2/json/nodes/pve1/qemu", "100", "200", "-"}));
  EXPECT_EQ(lines[1][2], "/nodes/{node}/qemu/{vmid}/config");
  EXPECT_EQ(lines[1][4], "100");
  EXPECT_EQ(lines[2][2], "/cluster/resources");
  EXPECT_EQ(lines[2][4], "-");
  EXPECT_EQ(lines[3][2], "(unauthorized)");
  EXPECT_EQ(lines[3][5], "401");
  // An injected fault says so; the vmid comes from the path even then.
  EXPECT_EQ(lines[4][4], "100");
  EXPECT_EQ(lines[4][5], "500");
  EXPECT_EQ(lines[4][6], "error");
  std::filesystem::remove(path);
}

TEST_F(PveSimTest, ResetEmptiesTheWorld) {
  CreateVm(100);
  ASSERT_EQ(Raw(Admin("POST", "/_sim/reset")).status, 200);
  EXPECT_EQ(Call("GET", "/nodes/pve1/qemu/100/config").status, 500);
}

// --- persistence ------------------------------------------------------------------------------

TEST_F(PveSimTest, StateFileRoundTripKeepsVmsVolumesAndTasks) {
  const std::string path = (std::filesystem::temp_directory_path() /
                            ("pve-sim-state-" + std::to_string(::getpid()) + ".json"))
                               .string();
  std::filesystem::remove(path);
  Options o = Defaults();
  o.state_file = path;
  Make(o);
  CreateVm(100, {{"tags", "keep"}});
  ASSERT_EQ(Power(100, "start"), "OK");
  const std::string running = Data(Call("POST", "/nodes/pve1/qemu/100/status/shutdown"));
  sim_->Tick();
  ASSERT_TRUE(std::filesystem::exists(path));
  const json before = Config(100);

  sim_.reset();
  Make(o);  // a restart
  EXPECT_EQ(Config(100), before);
  EXPECT_EQ(Status(100)["status"], "running");
  EXPECT_EQ(Data(Call("GET", TaskPath("pve1", running) + "/status"))["status"], "running");
  EXPECT_EQ(Wait(running), "OK");  // a task in flight finishes after the restart
  EXPECT_EQ(Status(100)["status"], "stopped");
  EXPECT_EQ(Data(Call("GET", "/nodes/pve1/storage/local-lvm/content")).size(), 1u);
  EXPECT_EQ(Data(Call("GET", "/cluster/nextid")), "101");
  CreateVm(101);  // the MAC generator continues rather than repeating itself
  EXPECT_NE(Config(101)["net0"], Config(100)["net0"]);
  std::filesystem::remove(path);
}

TEST_F(PveSimTest, CorruptStateFileIsRejected) {
  const std::string path = (std::filesystem::temp_directory_path() /
                            ("pve-sim-bad-" + std::to_string(::getpid()) + ".json"))
                               .string();
  {
    std::ofstream out(path);
    out << "{not json";
  }
  Options o = Defaults();
  o.state_file = path;
  auto r = PveSim::Create(o, clock_);
  EXPECT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kInvalid);
  std::filesystem::remove(path);
}

TEST_F(PveSimTest, MalformedOptionsAreInvalidWithoutEchoingTheSecret) {
  Options o = Defaults();
  o.tokens = {"no-realm-token=topsecret"};
  auto r = PveSim::Create(o, clock_);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().message().find("topsecret"), std::string::npos);
  o = Defaults();
  o.guest_ipv4_cidr = "10.0.0.0/99";
  EXPECT_FALSE(PveSim::Create(o, clock_).ok());
}

TEST_F(PveSimTest, TimeScaleShortensTasks) {
  Options o = Defaults();
  o.time_scale = 10;
  Make(o);
  const std::string upid = Data(Call("POST", "/nodes/pve1/qemu", {{"vmid", "100"}}));
  clock_.Advance(milliseconds(150));  // 1000 ms / 10 = 100 ms
  EXPECT_EQ(Data(Call("GET", TaskPath("pve1", upid) + "/status"))["status"], "stopped");
}

}  // namespace
}  // namespace nixmox::pvesim
