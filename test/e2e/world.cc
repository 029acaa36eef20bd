#include "test/e2e/world.h"

#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <csignal>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <random>
#include <sstream>
#include <thread>

#include "src/http/http.h"
#include "src/http/tls_util.h"

namespace nixmox::e2e {
namespace {

using namespace std::chrono_literals;
using testing::CommandResult;
using testing::RunCommand;
using testing::Subprocess;

constexpr char kNodes[] = "pve1,pve2,pve3";
constexpr char kImageFile[] = "e2e.qcow2";

std::string RandomHex(int digits) {
  std::random_device rd;
  std::ostringstream out;
  for (int i = 0; i < digits; ++i) out << "0123456789abcdef"[rd() % 16];
  return out.str();
}

std::string RandomUuid() {
  return RandomHex(8) + "-" + RandomHex(4) + "-4" + RandomHex(3) + "-8" + RandomHex(3) + "-" +
         RandomHex(12);
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// The last `lines` lines of `text`.
std::string Tail(const std::string& text, int lines) {
  size_t start = text.size();
  for (int i = 0; i <= lines; ++i) {
    if (start == 0) return text;
    start = text.rfind('\n', start - 1);
    if (start == std::string::npos) return text;
  }
  return text.substr(start + 1);
}

// A TCP port on loopback nobody listens on right now.
Result<int> FreePort() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return InternalError("socket failed");
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  const bool ok = bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0 &&
                  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0;
  close(fd);
  if (!ok) return InternalError("cannot bind a loopback port");
  return static_cast<int>(ntohs(addr.sin_port));
}

// argv for `binary` with "--flag value" pairs.
using Flags = std::vector<std::pair<std::string, std::string>>;

std::vector<std::string> WithFlags(const std::string& binary, const Flags& flags,
                                   const Flags& more = {}) {
  std::vector<std::string> argv = {binary};
  for (const Flags* list : {&flags, &more}) {
    for (const auto& [flag, value] : *list) {
      argv.push_back(flag);
      if (!value.empty()) argv.push_back(value);  // {"--switch", ""}: a flag alone
    }
  }
  return argv;
}

Status CommandStatus(const CommandResult& r, const std::string& what) {
  if (r.exit_code == 0) return Status();
  return InternalError(what + " failed (exit " + std::to_string(r.exit_code) + "):\n" + r.output);
}

}  // namespace

void WorldTest::StartWorld(WorldOptions options) {
  auto started = World::Start(std::move(options));
  if (started.ok()) {
    world_ = std::move(started).value().release();
  } else {
    error_ = started.status().ToString();
  }
}

void WorldTest::TearDownTestSuite() {
  delete world_;
  world_ = nullptr;
  error_.clear();
}

void WorldTest::SetUp() { ASSERT_NE(world_, nullptr) << "the world did not start: " << error_; }

void WorldTest::TearDown() {
  if (HasFailure() && world_ != nullptr) std::cerr << world_->Logs();
}

bool Eventually(const std::function<bool()>& done, std::chrono::seconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (done()) return true;
    std::this_thread::sleep_for(200ms);
  }
  return done();
}

World::World(WorldOptions options)
    : options_(std::move(options)), kubectl_(std::string(NIXMOX_TOOLS_DIR) + "/kubectl/kubectl") {}

Result<std::unique_ptr<World>> World::Start(WorldOptions options) {
  std::unique_ptr<World> world(new World(std::move(options)));
  RETURN_IF_ERROR(world->StartKube());
  RETURN_IF_ERROR(world->StartPve());
  RETURN_IF_ERROR(world->UploadBootImage());
  RETURN_IF_ERROR(world->ApplyCluster());
  RETURN_IF_ERROR(world->StartOperator());
  const Json cluster = world->WaitFor("proxmoxcluster", kClusterName,
                                      [](const Json& c) { return At(c, "/status/ready") == true; });
  if (At(cluster, "/status/ready") != true) {
    return InternalError("the ProxmoxCluster never became Ready:\n" + cluster.dump(2) + "\n" +
                         world->Logs());
  }
  return world;
}

World::~World() {
  if (external_kube_) DeleteExternalNamespace();
  if (operator_) operator_->Stop(SIGTERM);
  if (pve_sim_) pve_sim_->Stop(SIGTERM);
  if (kubesim_) kubesim_->Stop(SIGTERM);
}

Status World::StartKube() {
  if (access(kubectl_.c_str(), X_OK) != 0) {
    return NotFoundError(kubectl_ + " is missing: run .ci/tools");
  }
  if (const char* external = std::getenv("NIXMOX_TEST_KUBECONFIG"); external && *external) {
    kubeconfig_ = external;
    external_kube_ = true;
  } else {
    kubeconfig_ = dir_.File("kubeconfig");
    // kubectl sends its bearer token only over TLS.
    ASSIGN_OR_RETURN(Subprocess sim,
                     Subprocess::Start(KubesimArgv(), {}, dir_.File("kubesim.log")));
    kubesim_ = std::make_unique<Subprocess>(std::move(sim));
    if (auto line = kubesim_->ReadLine(30s); !line.ok()) {
      return InternalError("kubesim did not start:\n" + ReadFile(dir_.File("kubesim.log")));
    }
  }
  RETURN_IF_ERROR(CommandStatus(Kubectl({"apply", "-f", NIXMOX_CRDS_DIR}), "applying crds/"));
  RETURN_IF_ERROR(CommandStatus(Kubectl({"wait", "--for=condition=Established", "--timeout=30s",
                                         "crd/proxmoxclusters.nixmox.io",
                                         "crd/proxmoxvms.nixmox.io", "crd/niximages.nixmox.io"}),
                                "waiting for the CRDs"));
  ns_ = "e2e-" + options_.name + "-" + RandomHex(6);
  return CommandStatus(
      RunCommand({kubectl_, "--kubeconfig", kubeconfig_, "create", "namespace", ns_}),
      "creating namespace " + ns_);
}

Status World::StartPve() {
  ASSIGN_OR_RETURN(http::CertAndKey cert, http::GenerateSelfSignedCert("pve-sim", {"127.0.0.1"}));
  RETURN_IF_ERROR(http::WritePemFile(dir_.File("pve.crt"), cert.cert_pem));
  RETURN_IF_ERROR(http::WritePemFile(dir_.File("pve.key"), cert.key_pem));
  pve_ca_pem_ = cert.cert_pem;
  pve_token_ = "root@pam!e2e=" + RandomUuid();
  ASSIGN_OR_RETURN(
      Subprocess sim,
      Subprocess::Start(
          WithFlags(NIXMOX_PVE_SIM_PATH,
                    {{"--listen", "127.0.0.1:0"},
                     {"--nodes", kNodes},
                     {"--token", pve_token_},
                     {"--tls-cert", dir_.File("pve.crt")},
                     {"--tls-key", dir_.File("pve.key")},
                     {"--task-ms", "200"},
                     {"--boot-ms", "1500"},
                     {"--import-ms-per-gib", std::to_string(options_.import_ms_per_gib)},
                     {"--auth-fail-delay-ms", "100"},
                     {"--guest-ipv4-cidr", options_.guest_ipv4_cidr},
                     {"--guest-ipv6-cidr", options_.guest_ipv6_cidr}}),
          {}, dir_.File("pve-sim.log")));
  pve_sim_ = std::make_unique<Subprocess>(std::move(sim));
  auto url = pve_sim_->ReadLine(30s);
  if (!url.ok())
    return InternalError("pve-sim did not start:\n" + ReadFile(dir_.File("pve-sim.log")));
  pve_url_ = *url;

  proxmox::PveClientOptions o;
  o.base_url = pve_url_;
  o.tls.ca_pem = pve_ca_pem_;
  ASSIGN_OR_RETURN(o.token, proxmox::ApiToken::Parse(pve_token_));
  ASSIGN_OR_RETURN(pve_, proxmox::ConnectPveClient(std::move(o)));
  return Status();
}

Status World::UploadBootImage() {
  const std::string file = dir_.File(kImageFile);
  RETURN_IF_ERROR(CommandStatus(RunCommand({"qemu-img", "create", "-q", "-f", "qcow2", file, "1G"}),
                                "qemu-img"));
  proxmox::WaitOptions wait;
  wait.timeout = 60s;
  wait.initial_interval = 50ms;
  wait.max_interval = 200ms;
  std::istringstream nodes(kNodes);
  for (std::string node; std::getline(nodes, node, ',');) {
    ASSIGN_OR_RETURN(proxmox::Upid upid,
                     pve_->UploadToStorage(node, "local", {"import", file, kImageFile, "", ""}));
    RETURN_IF_ERROR(
        proxmox::WaitForTask(*pve_, upid, wait, RealClock(), proxmox::RealSleeper()).status());
  }
  return Status();
}

Status World::ApplyCluster() {
  const std::string token_id = pve_token_.substr(0, pve_token_.rfind('='));
  const std::string token_secret = pve_token_.substr(pve_token_.rfind('=') + 1);
  const Json secret = {{"apiVersion", "v1"},
                       {"kind", "Secret"},
                       {"metadata", {{"name", "pve-credentials"}}},
                       {"stringData", {{"tokenID", token_id}, {"tokenSecret", token_secret}}}};
  RETURN_IF_ERROR(CommandStatus(Apply(secret.dump()), "applying the Secret"));
  const Json cluster = {{"apiVersion", "nixmox.io/v1alpha1"},
                        {"kind", "ProxmoxCluster"},
                        {"metadata", {{"name", kClusterName}}},
                        {"spec",
                         {{"endpoint", pve_url_},
                          {"credentialsRef", {{"name", "pve-credentials"}}},
                          {"tls", {{"caBundle", pve_ca_pem_}}}}}};
  return CommandStatus(Apply(cluster.dump()), "applying the ProxmoxCluster");
}

std::vector<std::string> World::KubesimArgv() const {
  std::vector<std::string> argv = {KUBESIM_PATH, "--listen",         "127.0.0.1:0", "--tls",
                                   "--token",    RandomUuid(),       "--kubeconfig-out",
                                   kubeconfig_};
  if (options_.run_jobs) argv.insert(argv.end(), {"--run-jobs", "--work-dir", dir_.File("jobs")});
  return argv;
}

Status World::StartOperator() {
  ASSIGN_OR_RETURN(int port, FreePort());
  // Health probes and metrics share one server on this port.
  const std::string address = "127.0.0.1:" + std::to_string(port);
  ++operator_runs_;
  const std::string log = dir_.File("operator-" + std::to_string(operator_runs_) + ".log");
  ASSIGN_OR_RETURN(Subprocess op,
                   Subprocess::Start(WithFlags(NIXMOX_OPERATOR_PATH,
                                               {{"--kubeconfig", kubeconfig_},
                                                {"--namespace", ns_},
                                                {"--health-probe-bind-address", address},
                                                {"--metrics-bind-address", address},
                                                {"--inventory-period", "2s"},
                                                {"--agent-period", "2s"},
                                                {"--probe-networks", options_.probe_networks},
                                                {"--log-level", "debug"}},
                                               options_.operator_flags),
                                     {}, log));
  operator_ = std::make_unique<Subprocess>(std::move(op));

  http::ClientOptions health;
  health.base_url = "http://" + address;
  health.timeout = 2s;
  ASSIGN_OR_RETURN(std::unique_ptr<http::Client> client, http::NewClient(health));
  const bool ready = Eventually(
      [&] {
        if (!operator_->running()) return true;
        auto r = client->Send(http::Request{.method = "GET", .target = "/readyz"});
        return r.ok() && r->status == 200;
      },
      30s);
  if (!ready || !operator_->running()) {
    return InternalError("nixmox-operator did not become ready:\n" + Tail(ReadFile(log), 40));
  }
  return Status();
}

void World::KillOperator() {
  if (operator_) operator_->Stop(SIGKILL);
}

bool World::OperatorRunning() { return operator_ && operator_->running(); }

std::string World::Logs() const {
  std::string out;
  for (int run = 1; run <= operator_runs_; ++run) {
    const std::string name = "operator-" + std::to_string(run) + ".log";
    out += "--- " + name + " (tail) ---\n" + Tail(ReadFile(dir_.File(name)), 60);
  }
  for (const char* name : {"pve-sim.log", "kubesim.log"}) {
    out += std::string("--- ") + name + " (tail) ---\n" + Tail(ReadFile(dir_.File(name)), 20);
  }
  return out;
}

std::string World::source_volume() const { return std::string("local:import/") + kImageFile; }

CommandResult World::Kubectl(std::vector<std::string> args) const {
  std::vector<std::string> argv = {kubectl_, "--kubeconfig", kubeconfig_};
  if (!ns_.empty()) argv.insert(argv.end(), {"-n", ns_});
  argv.insert(argv.end(), args.begin(), args.end());
  return RunCommand(argv, 60s);
}

Result<Subprocess> World::KubectlInBackground(std::vector<std::string> args) const {
  std::vector<std::string> argv = {kubectl_, "--kubeconfig", kubeconfig_, "-n", ns_};
  argv.insert(argv.end(), args.begin(), args.end());
  return Subprocess::Start(argv, {}, dir_.File("kubectl-background.log"));
}

CommandResult World::Apply(const std::string& manifest) const {
  const std::string file = dir_.File("manifest-" + std::to_string(++manifests_) + ".yaml");
  std::ofstream(file) << manifest;
  return Kubectl({"apply", "-f", file});
}

Json World::VmManifest(const std::string& name, const Json& spec) const {
  Json vm = {{"apiVersion", "nixmox.io/v1alpha1"},
             {"kind", "ProxmoxVM"},
             {"metadata", {{"name", name}}},
             {"spec",
              {{"clusterRef", {{"name", kClusterName}}},
               {"sourceVolume", source_volume()},
               {"cpu", {{"cores", 1}}},
               {"memoryMiB", 256}}}};
  vm["spec"].merge_patch(spec);
  return vm;
}

std::optional<Json> World::Get(const std::string& resource, const std::string& name) const {
  const CommandResult r = Kubectl({"get", resource, name, "-o", "json", "--ignore-not-found"});
  EXPECT_EQ(r.exit_code, 0) << r.output;
  if (r.exit_code != 0 || r.output.empty()) return std::nullopt;
  Json object = Json::parse(r.output, nullptr, /*allow_exceptions=*/false);
  EXPECT_FALSE(object.is_discarded()) << "kubectl printed no JSON:\n" << r.output;
  if (object.is_discarded()) return std::nullopt;
  return object;
}

Json World::WaitFor(const std::string& resource, const std::string& name,
                    const std::function<bool(const Json&)>& done,
                    std::chrono::seconds timeout) const {
  Json last;
  Eventually(
      [&] {
        std::optional<Json> object = Get(resource, name);
        if (!object) return false;
        last = std::move(*object);
        return done(last);
      },
      timeout);
  return last;
}

std::vector<proxmox::ClusterResource> World::Vms() {
  auto vms = pve_->ListClusterResources(proxmox::ResourceType::kVm);
  EXPECT_TRUE(vms.ok()) << vms.status().ToString();
  return vms.ok() ? *vms : std::vector<proxmox::ClusterResource>{};
}

std::vector<proxmox::ClusterResource> World::VmsOwnedBy(const std::string& uid) {
  std::vector<proxmox::ClusterResource> owned;
  for (auto& vm : Vms()) {
    for (const auto& tag : vm.tags) {
      if (tag == "nixmox-uid-" + uid) owned.push_back(vm);
    }
  }
  return owned;
}

void World::DeleteExternalNamespace() {
  // Let the operator clean up the VMs first, so that no finalizer outlives it.
  Kubectl({"delete", "proxmoxvms", "--all", "--timeout=60s"});
  RunCommand({kubectl_, "--kubeconfig", kubeconfig_, "delete", "namespace", ns_, "--wait=false"});
}

Json At(const Json& object, const std::string& pointer) {
  const Json::json_pointer p(pointer);
  return object.is_object() && object.contains(p) ? object[p] : Json();
}

Json ConditionOf(const Json& object, const std::string& type) {
  for (const Json& c : At(object, "/status/conditions")) {
    if (c.value("type", "") == type) return c;
  }
  return nullptr;
}

bool HasReason(const Json& object, const std::string& reason) {
  for (const Json& c : At(object, "/status/conditions")) {
    if (c.value("reason", "") == reason) return true;
  }
  return false;
}

std::string StringAt(const Json& object, const std::string& pointer) {
  const Json value = At(object, pointer);
  return value.is_string() ? value.get<std::string>() : "";
}

std::string Phase(const Json& vm) { return StringAt(vm, "/status/phase"); }

std::string PrimaryIp(const Json& vm) { return StringAt(vm, "/status/primaryIP"); }

std::optional<int> StatusVmid(const Json& vm) {
  const Json vmid = At(vm, "/status/vmid");
  if (!vmid.is_number_integer()) return std::nullopt;
  return vmid.get<int>();
}

}  // namespace nixmox::e2e
