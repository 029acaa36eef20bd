// The ways users install nixmox, checked with the real tools (label deploy):
//   charts/nixmox   helm lint, helm template for several values sets (the
//                   objects checked, applied to kubesim with kubectl, the
//                   operator flags parsed by the real nixmox-operator), and
//                   helm install/upgrade/uninstall against kubesim;
//   deploy/         kubectl kustomize, applied to kubesim, in step with the
//                   chart's defaults;
//   deploy/argocd/  the health checks run by Lua 5.1 against every case of
//                   their health_test.yaml, their sample objects validated by
//                   the CRDs, and the kustomization that installs them.
#include <fcntl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "test/sim/kube/kubesim.h"
#include "test/support/subprocess.h"

extern char** environ;

namespace nixmox {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsSupersetOf;
using ::testing::Not;
using testing::Subprocess;
using testing::TempDir;

const fs::path kRoot = NIXMOX_SOURCE_DIR;
const fs::path kChart = kRoot / "charts/nixmox";
const fs::path kTestdata = kRoot / "test/deploy/testdata";
const fs::path kHealth = kRoot / "deploy/argocd/health/nixmox.io";
const std::string kHelm = std::string(NIXMOX_TOOLS_DIR) + "/helm/helm";
const std::string kKubectl = std::string(NIXMOX_TOOLS_DIR) + "/kubectl/kubectl";
const std::vector<std::string> kValueSets = {"default", "namespaced", "ha", "templated-crds",
                                             "everything"};

std::string ReadFile(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// ---------------------------------------------------------------------------
// YAML, as the API server reads it (quoted scalars stay strings).

json ToJson(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Map: {
      json out = json::object();
      for (const auto& kv : node) out[kv.first.as<std::string>()] = ToJson(kv.second);
      return out;
    }
    case YAML::NodeType::Sequence: {
      json out = json::array();
      for (const auto& item : node) out.push_back(ToJson(item));
      return out;
    }
    case YAML::NodeType::Scalar: {
      const std::string& s = node.Scalar();
      if (node.Tag() == "!") return s;
      if (s == "true") return true;
      if (s == "false") return false;
      if (s == "null" || s == "~") return nullptr;
      static const std::regex kInt("^-?[0-9]+$");
      static const std::regex kFloat("^-?[0-9]+\\.[0-9]+$");
      if (std::regex_match(s, kInt)) return std::stoll(s);
      if (std::regex_match(s, kFloat)) return std::stod(s);
      return s;
    }
    default:
      return nullptr;
  }
}

// Every non-empty document of a YAML stream.
std::vector<json> ParseDocuments(const std::string& text) {
  std::vector<json> out;
  for (const YAML::Node& doc : YAML::LoadAll(text)) {
    json j = ToJson(doc);
    if (!j.is_null()) out.push_back(std::move(j));
  }
  return out;
}

json ParseFile(const fs::path& path) { return ToJson(YAML::LoadFile(path.string())); }

const json* FindObject(const std::vector<json>& objects, const std::string& kind,
                       const std::string& name) {
  for (const json& o : objects) {
    if (o.value("kind", "") == kind && o["metadata"].value("name", "") == name) return &o;
  }
  return nullptr;
}

std::vector<const json*> OfKind(const std::vector<json>& objects, const std::string& kind) {
  std::vector<const json*> out;
  for (const json& o : objects) {
    if (o.value("kind", "") == kind) out.push_back(&o);
  }
  return out;
}

std::vector<std::string> Kinds(const std::vector<json>& objects) {
  std::vector<std::string> out;
  for (const json& o : objects) out.push_back(o.value("kind", ""));
  std::sort(out.begin(), out.end());
  return out;
}

// ---------------------------------------------------------------------------
// Running the tools.

struct Output {
  int code = -1;
  std::string out;
  std::string err;
  std::string Describe() const {
    return "exit " + std::to_string(code) + "\nstdout:\n" + out + "\nstderr:\n" + err;
  }
};

// Runs argv to completion (at most two minutes) with stdout and stderr
// apart: YAML on stdout, warnings on stderr. `env` adds to this process's.
Output RunTool(const std::vector<std::string>& argv, const std::vector<std::string>& env = {}) {
  static std::atomic<int> serial{0};
  const std::string base = (fs::temp_directory_path() / ("deploy-test-" + std::to_string(getpid()) +
                                                         "-" + std::to_string(++serial)))
                               .string();
  std::vector<std::string> envs = env;
  for (char** e = environ; *e != nullptr; ++e) {
    const std::string entry(*e);
    const std::string key = entry.substr(0, entry.find('=') + 1);
    const bool overridden = std::any_of(env.begin(), env.end(),
                                        [&](const std::string& x) { return x.rfind(key, 0) == 0; });
    if (!overridden) envs.push_back(entry);
  }
  std::vector<char*> cargv, cenv;
  for (const std::string& a : argv) cargv.push_back(const_cast<char*>(a.c_str()));
  cargv.push_back(nullptr);
  for (std::string& e : envs) cenv.push_back(e.data());
  cenv.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&actions, 1, (base + ".out").c_str(),
                                   O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_addopen(&actions, 2, (base + ".err").c_str(),
                                   O_WRONLY | O_CREAT | O_TRUNC, 0644);
  pid_t pid = -1;
  const int rc = posix_spawnp(&pid, cargv[0], &actions, nullptr, cargv.data(), cenv.data());
  posix_spawn_file_actions_destroy(&actions);
  Output o;
  if (rc != 0) {
    o.err = "cannot start " + argv[0] + ": " + std::strerror(rc);
    return o;
  }
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::minutes(2);
  int status = 0;
  while (waitpid(pid, &status, WNOHANG) == 0) {
    if (std::chrono::steady_clock::now() > deadline) {
      kill(pid, SIGKILL);
      waitpid(pid, &status, 0);
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  o.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  o.out = ReadFile(base + ".out");
  o.err = ReadFile(base + ".err");
  fs::remove(base + ".out");
  fs::remove(base + ".err");
  return o;
}

Output Helm(std::vector<std::string> args, const std::vector<std::string>& env = {}) {
  args.insert(args.begin(), kHelm);
  return RunTool(args, env);
}

// `helm template` of the chart with a values set; the objects it renders.
std::vector<json> Render(const std::string& values, const std::string& release = "t",
                         const std::string& ns = "nixmox-system",
                         std::vector<std::string> more = {}) {
  std::vector<std::string> args = {"template",
                                   release,
                                   kChart.string(),
                                   "-n",
                                   ns,
                                   "-f",
                                   (kTestdata / "values" / (values + ".yaml")).string()};
  args.insert(args.end(), more.begin(), more.end());
  Output o = Helm(args);
  EXPECT_EQ(o.code, 0) << o.Describe();
  return ParseDocuments(o.out);
}

// The container args of the rendered operator Deployment.
std::vector<std::string> OperatorArgs(const std::vector<json>& objects) {
  std::vector<const json*> deployments = OfKind(objects, "Deployment");
  if (deployments.size() != 1) return {};
  return (*deployments[0])["spec"]["template"]["spec"]["containers"][0]["args"]
      .get<std::vector<std::string>>();
}

bool HasArg(const std::vector<std::string>& args, const std::string& arg) {
  return std::find(args.begin(), args.end(), arg) != args.end();
}

// ---------------------------------------------------------------------------
// What every rendered object must satisfy.

struct KindInfo {
  std::string api_version;
  bool namespaced;
};

const std::map<std::string, KindInfo>& KnownKinds() {
  static const auto* kinds = new std::map<std::string, KindInfo>{
      {"ServiceAccount", {"v1", true}},
      {"Service", {"v1", true}},
      {"Secret", {"v1", true}},
      {"Namespace", {"v1", false}},
      {"Deployment", {"apps/v1", true}},
      {"ClusterRole", {"rbac.authorization.k8s.io/v1", false}},
      {"ClusterRoleBinding", {"rbac.authorization.k8s.io/v1", false}},
      {"Role", {"rbac.authorization.k8s.io/v1", true}},
      {"RoleBinding", {"rbac.authorization.k8s.io/v1", true}},
      {"PodDisruptionBudget", {"policy/v1", true}},
      {"ServiceMonitor", {"monitoring.coreos.com/v1", true}},
      {"ProxmoxCluster", {"nixmox.io/v1alpha1", true}},
      {"CustomResourceDefinition", {"apiextensions.k8s.io/v1", false}},
  };
  return *kinds;
}

// The rules the controllers need (see the README's RBAC section for where
// each comes from), in the order the manifests list them.
json ExpectedRules() {
  return json::parse(R"([
    {"apiGroups":["nixmox.io"],"resources":["proxmoxclusters","niximages","proxmoxvms"],
     "verbs":["get","list","watch","update","patch"]},
    {"apiGroups":["nixmox.io"],
     "resources":["proxmoxclusters/status","niximages/status","proxmoxvms/status"],
     "verbs":["get","update","patch"]},
    {"apiGroups":["nixmox.io"],
     "resources":["proxmoxclusters/finalizers","niximages/finalizers","proxmoxvms/finalizers"],
     "verbs":["update"]},
    {"apiGroups":[""],"resources":["secrets","configmaps"],"verbs":["get","list","watch"]},
    {"apiGroups":[""],"resources":["events"],"verbs":["create","patch"]},
    {"apiGroups":["batch"],"resources":["jobs"],"verbs":["get","list","watch","create","delete"]},
    {"apiGroups":[""],"resources":["pods"],"verbs":["get","list","watch"]},
    {"apiGroups":[""],"resources":["pods/log"],"verbs":["get"]}])");
}

bool LabelsSelect(const json& match_labels, const json& labels) {
  for (const auto& [k, v] : match_labels.items()) {
    if (!labels.contains(k) || labels[k] != v) return false;
  }
  return !match_labels.empty();
}

// Generic checks of one rendered stream; names the object in every failure.
void CheckObjects(const std::vector<json>& objects, bool from_helm) {
  static const std::regex kDnsSubdomain("^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$");
  std::set<std::string> seen;
  for (const json& o : objects) {
    const std::string kind = o.value("kind", "");
    const std::string name = o.value("metadata", json::object()).value("name", "");
    SCOPED_TRACE(kind + "/" + name);
    auto known = KnownKinds().find(kind);
    ASSERT_NE(known, KnownKinds().end()) << "unexpected kind " << kind;
    EXPECT_EQ(o.value("apiVersion", ""), known->second.api_version);
    EXPECT_TRUE(std::regex_match(name, kDnsSubdomain)) << name;
    EXPECT_LE(name.size(), kind == "CustomResourceDefinition" ? 253u : 63u);
    const json& md = o["metadata"];
    EXPECT_EQ(md.contains("namespace"), known->second.namespaced);
    EXPECT_TRUE(seen.insert(kind + "/" + md.value("namespace", "") + "/" + name).second)
        << "rendered twice";
    const json labels = md.value("labels", json::object());
    if (from_helm) {
      EXPECT_EQ(labels.value("app.kubernetes.io/managed-by", ""), "Helm");
      EXPECT_TRUE(labels.contains("app.kubernetes.io/instance"));
    }
    EXPECT_EQ(labels.value("app.kubernetes.io/part-of", ""), "nixmox");
  }

  for (const json* d : OfKind(objects, "Deployment")) {
    const json& spec = (*d)["spec"];
    const json& pod = spec["template"]["spec"];
    EXPECT_TRUE(
        LabelsSelect(spec["selector"]["matchLabels"], spec["template"]["metadata"]["labels"]));
    EXPECT_TRUE(pod["securityContext"].value("runAsNonRoot", false));
    EXPECT_EQ(pod["securityContext"]["seccompProfile"]["type"], "RuntimeDefault");
    ASSERT_EQ(pod["containers"].size(), 1u);
    const json& c = pod["containers"][0];
    EXPECT_TRUE(c["securityContext"].value("runAsNonRoot", false));
    EXPECT_TRUE(c["securityContext"].value("readOnlyRootFilesystem", false));
    EXPECT_FALSE(c["securityContext"].value("allowPrivilegeEscalation", true));
    EXPECT_EQ(c["securityContext"]["capabilities"]["drop"], json::array({"ALL"}));
    EXPECT_EQ(c["securityContext"]["seccompProfile"]["type"], "RuntimeDefault");
    EXPECT_EQ(c["livenessProbe"]["httpGet"]["path"], "/healthz");
    EXPECT_EQ(c["readinessProbe"]["httpGet"]["path"], "/readyz");
    EXPECT_EQ(c["livenessProbe"]["httpGet"]["port"], "health");
    EXPECT_TRUE(c["resources"]["requests"].contains("memory"));
    EXPECT_TRUE(c["resources"]["limits"].contains("memory"));
    std::set<std::string> ports;
    for (const json& p : c["ports"]) ports.insert(p["name"].get<std::string>());
    EXPECT_TRUE(ports.count("health"));
    for (const json& arg : c["args"]) {
      EXPECT_EQ(arg.get<std::string>().rfind("--", 0), 0u) << arg;
    }
    // The Services and the PodDisruptionBudget select these pods.
    const json& pod_labels = spec["template"]["metadata"]["labels"];
    for (const json* s : OfKind(objects, "Service")) {
      EXPECT_TRUE(LabelsSelect((*s)["spec"]["selector"], pod_labels)) << (*s)["metadata"]["name"];
      for (const json& p : (*s)["spec"]["ports"]) {
        EXPECT_TRUE(ports.count(p["targetPort"].get<std::string>())) << p;
      }
    }
    for (const json* pdb : OfKind(objects, "PodDisruptionBudget")) {
      EXPECT_TRUE(LabelsSelect((*pdb)["spec"]["selector"]["matchLabels"], pod_labels));
      EXPECT_NE((*pdb)["spec"].contains("minAvailable"), (*pdb)["spec"].contains("maxUnavailable"));
    }
    // Its service account is rendered (or named on purpose).
    const std::string sa = pod.value("serviceAccountName", "");
    EXPECT_NE(FindObject(objects, "ServiceAccount", sa), nullptr) << sa;
  }

  // Bindings name a role and a service account that are rendered too.
  for (const char* binding_kind : {"RoleBinding", "ClusterRoleBinding"}) {
    for (const json* b : OfKind(objects, binding_kind)) {
      const json& ref = (*b)["roleRef"];
      EXPECT_EQ(ref["apiGroup"], "rbac.authorization.k8s.io");
      const json* role = FindObject(objects, ref["kind"], ref["name"]);
      ASSERT_NE(role, nullptr) << (*b)["metadata"]["name"];
      if (ref["kind"] == "Role") {
        EXPECT_EQ((*role)["metadata"]["namespace"], (*b)["metadata"]["namespace"]);
      }
      for (const json& s : (*b)["subjects"]) {
        EXPECT_EQ(s["kind"], "ServiceAccount");
        const json* sa = FindObject(objects, "ServiceAccount", s["name"]);
        ASSERT_NE(sa, nullptr) << s;
        EXPECT_EQ(s["namespace"], (*sa)["metadata"]["namespace"]);
      }
    }
  }
}

// The rules of the role that holds the controllers' rights (not the Lease's).
json ControllerRules(const std::vector<json>& objects) {
  for (const json& o : objects) {
    const std::string kind = o.value("kind", "");
    if ((kind == "ClusterRole" || kind == "Role") &&
        o["metadata"]["name"].get<std::string>().find("leader-election") == std::string::npos) {
      return o["rules"];
    }
  }
  return nullptr;
}

// ---------------------------------------------------------------------------
// kubesim with real kubectl and helm.

class KubesimTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(fs::exists(kHelm) && fs::exists(kKubectl))
        << "helm and kubectl are missing: run .ci/tools";
    kubeconfig_ = dir_.File("kubeconfig");
    auto sim = Subprocess::Start({KUBESIM_BINARY, "--listen", "127.0.0.1:0", "--tls", "--token",
                                  "deploy-test-token", "--kubeconfig-out", kubeconfig_},
                                 {}, dir_.File("kubesim.log"));
    ASSERT_TRUE(sim.ok()) << sim.status().ToString();
    sim_ = std::make_unique<Subprocess>(std::move(sim).value());
    auto line = sim_->ReadLine(std::chrono::seconds(30));
    ASSERT_TRUE(line.ok()) << "kubesim did not start:\n" << ReadFile(dir_.File("kubesim.log"));
  }

  void TearDown() override {
    if (sim_) sim_->Stop(SIGTERM);
  }

  std::vector<std::string> Env() const {
    return {"KUBECONFIG=" + kubeconfig_, "HOME=" + dir_.path(),
            "HELM_CACHE_HOME=" + dir_.File("helm-cache"),
            "HELM_CONFIG_HOME=" + dir_.File("helm-config"),
            "HELM_DATA_HOME=" + dir_.File("helm-data")};
  }

  Output Kubectl(std::vector<std::string> args) {
    args.insert(args.begin(), kKubectl);
    return RunTool(args, Env());
  }
  Output HelmOnSim(std::vector<std::string> args) {
    args.insert(args.begin(), kHelm);
    return RunTool(args, Env());
  }

  // Applies objects (as a YAML stream written to a file).
  Output Apply(const std::string& yaml, const std::string& name) {
    const std::string file = dir_.File(name + ".yaml");
    std::ofstream(file) << yaml;
    return Kubectl({"apply", "-f", file});
  }

  void CreateNamespace(const std::string& ns) {
    Output o = Kubectl({"create", "namespace", ns});
    ASSERT_EQ(o.code, 0) << o.Describe();
  }

  void ApplyFile(const fs::path& file) {
    Output o = Kubectl({"apply", "-f", file.string()});
    ASSERT_EQ(o.code, 0) << o.Describe();
  }

  std::string Get(const std::string& what, const std::string& ns, const std::string& path) {
    std::vector<std::string> args = {"get", what, "-o", "jsonpath=" + path};
    if (!ns.empty()) args.insert(args.end(), {"-n", ns});
    Output o = Kubectl(args);
    EXPECT_EQ(o.code, 0) << o.Describe();
    return o.out;
  }

  bool Exists(const std::string& what, const std::string& ns = "") {
    std::vector<std::string> args = {"get", what};
    if (!ns.empty()) args.insert(args.end(), {"-n", ns});
    return Kubectl(args).code == 0;
  }

  TempDir dir_;
  std::string kubeconfig_;
  std::unique_ptr<Subprocess> sim_;
};

// ---------------------------------------------------------------------------
// The chart, offline.

TEST(ChartTest, LintsCleanWithEveryValuesSet) {
  for (const std::string& set : kValueSets) {
    Output o = Helm({"lint", "--strict", kChart.string(), "-f",
                     (kTestdata / "values" / (set + ".yaml")).string()});
    EXPECT_EQ(o.code, 0) << set << "\n" << o.Describe();
    EXPECT_THAT(o.out, HasSubstr("1 chart(s) linted, 0 chart(s) failed")) << set;
  }
}

TEST(ChartTest, ShipsTheTopLevelCrdsByteForByte) {
  std::set<std::string> top, shipped, listed;
  for (const auto& e : fs::directory_iterator(kRoot / "crds")) {
    if (e.path().extension() == ".yaml") top.insert(e.path().filename().string());
  }
  for (const auto& e : fs::directory_iterator(kChart / "crds")) {
    shipped.insert(e.path().filename().string());
  }
  ASSERT_FALSE(top.empty());
  EXPECT_EQ(shipped, top) << "charts/nixmox/crds/ must hold exactly crds/*.yaml";
  for (const std::string& name : top) {
    EXPECT_TRUE(ReadFile(kChart / "crds" / name) == ReadFile(kRoot / "crds" / name))
        << "charts/nixmox/crds/" << name << " differs from crds/" << name
        << ": run cp crds/*.yaml charts/nixmox/crds/";
  }
  // crds/Kustomization (what deploy/ uses) lists every CRD file.
  const json resources = ParseFile(kRoot / "crds/Kustomization")["resources"];
  for (const json& r : resources) {
    listed.insert(r.get<std::string>());
  }
  EXPECT_EQ(listed, top) << "crds/Kustomization must list every crds/*.yaml";
}

// Every key in values.yaml has a comment (on the line above, or at its end)
// and a schema entry with a description, and the schema has nothing more.
TEST(ChartTest, EveryValueIsDocumentedAndInTheSchema) {
  std::istringstream in(ReadFile(kChart / "values.yaml"));
  const json schema = json::parse(ReadFile(kChart / "values.schema.json"));
  static const std::regex kKey("^( *)([A-Za-z][A-Za-z0-9]*):(.*)$");
  std::vector<std::pair<size_t, std::string>> path;  // (indent, key)
  std::set<std::string> keys;
  std::string previous;
  std::string line;
  while (std::getline(in, line)) {
    std::smatch m;
    if (std::regex_match(line, m, kKey)) {
      const size_t indent = m[1].length();
      while (!path.empty() && path.back().first >= indent) path.pop_back();
      path.emplace_back(indent, m[2]);
      std::string dotted;
      const json* node = &schema;
      for (const auto& [_, key] : path) {
        dotted += (dotted.empty() ? "" : ".") + key;
        node = node->contains("properties") && (*node)["properties"].contains(key)
                   ? &(*node)["properties"][key]
                   : nullptr;
        if (node == nullptr) break;
      }
      keys.insert(dotted);
      const bool commented = previous.find_first_not_of(' ') != std::string::npos &&
                             previous[previous.find_first_not_of(' ')] == '#';
      EXPECT_TRUE(commented || m[3].str().find(" # ") != std::string::npos)
          << dotted << " has no comment";
      ASSERT_NE(node, nullptr) << dotted << " is not in values.schema.json";
      EXPECT_FALSE(node->value("description", "").empty()) << dotted << " has no description";
    }
    if (line.find_first_not_of(' ') != std::string::npos) previous = line;
  }
  // The schema's entries all exist in values.yaml (Helm's own "global" aside).
  std::vector<std::string> stale;
  std::function<void(const json&, const std::string&)> walk = [&](const json& node,
                                                                  const std::string& prefix) {
    if (!node.contains("properties")) return;
    for (const auto& [key, sub] : node["properties"].items()) {
      const std::string dotted = prefix.empty() ? key : prefix + "." + key;
      if (dotted == "global") continue;
      if (!keys.count(dotted)) stale.push_back(dotted);
      walk(sub, dotted);
    }
  };
  walk(schema, "");
  EXPECT_THAT(stale, ElementsAre()) << "in the schema but not in values.yaml";
}

TEST(ChartTest, SchemaRejectsWrongValues) {
  for (const auto& [set, why] : std::vector<std::pair<std::string, std::string>>{
           {"replicaCount=0", "replicaCount: Must be greater than or equal to 1"},
           {"operator.logLevel=loud", "operator.logLevel must be one of the following"},
           {"operator.agentPeriod=soon", "operator.agentPeriod: Does not match pattern"},
           {"watchNamespace=Not_A_Namespace", "watchNamespace: Does not match pattern"},
           {"replicas=2", "Additional property replicas is not allowed"},
           {"builder.resources.requests.memory=lots", "builder.resources.requests.memory"}}) {
    Output o = Helm({"template", "t", kChart.string(), "--set", set});
    EXPECT_NE(o.code, 0) << set;
    EXPECT_THAT(o.err, HasSubstr(why)) << set;
  }
}

TEST(ChartTest, DefaultsRenderOneClusterWideOperatorWithoutLeaderElection) {
  std::vector<json> objects = Render("default");
  CheckObjects(objects, true);
  EXPECT_THAT(Kinds(objects), ElementsAre("ClusterRole", "ClusterRoleBinding", "Deployment",
                                          "Service", "ServiceAccount"));
  EXPECT_EQ(ControllerRules(objects), ExpectedRules());
  const json* deployment = FindObject(objects, "Deployment", "t-nixmox");
  ASSERT_NE(deployment, nullptr);
  EXPECT_EQ((*deployment)["spec"]["replicas"], 1);
  EXPECT_EQ((*deployment)["spec"]["strategy"]["type"], "Recreate");
  const std::vector<std::string> args = OperatorArgs(objects);
  EXPECT_THAT(args, IsSupersetOf({"--metrics-bind-address=0.0.0.0:8080",
                                  "--health-probe-bind-address=0.0.0.0:8081",
                                  "--builder-image=ghcr.io/nixmox/nixmox-builder:0.1.0"}));
  for (const std::string& arg : args) {
    EXPECT_EQ(arg.rfind("--leader-elect", 0), std::string::npos) << arg;
    EXPECT_EQ(arg.rfind("--namespace", 0), std::string::npos) << arg;
  }
  EXPECT_EQ((*deployment)["spec"]["template"]["spec"]["containers"][0]["image"],
            "ghcr.io/nixmox/nixmox-operator:0.1.0");
}

TEST(ChartTest, MoreReplicasElectALeaderWithARoleForTheLeaseOnly) {
  std::vector<json> objects = Render("ha");
  CheckObjects(objects, true);
  EXPECT_THAT(Kinds(objects),
              ElementsAre("ClusterRole", "ClusterRoleBinding", "Deployment", "PodDisruptionBudget",
                          "Role", "RoleBinding", "Service", "ServiceAccount", "ServiceMonitor"));
  const std::vector<std::string> args = OperatorArgs(objects);
  EXPECT_TRUE(HasArg(args, "--leader-elect"));
  EXPECT_TRUE(HasArg(args, "--leader-election-namespace=leases"));
  const json* deployment = FindObject(objects, "Deployment", "t-nixmox");
  ASSERT_NE(deployment, nullptr);
  EXPECT_EQ((*deployment)["spec"]["replicas"], 3);
  EXPECT_EQ((*deployment)["spec"]["strategy"]["type"], "RollingUpdate");
  const json* lease_role = FindObject(objects, "Role", "t-nixmox-leader-election");
  ASSERT_NE(lease_role, nullptr);
  EXPECT_EQ((*lease_role)["metadata"]["namespace"], "leases");
  EXPECT_EQ((*lease_role)["rules"], json::parse(R"([
      {"apiGroups":["coordination.k8s.io"],"resources":["leases"],"verbs":["create"]},
      {"apiGroups":["coordination.k8s.io"],"resources":["leases"],
       "resourceNames":["nixmox-operator"],"verbs":["get","update"]}])"));
  const json* monitor = FindObject(objects, "ServiceMonitor", "t-nixmox");
  ASSERT_NE(monitor, nullptr);
  EXPECT_EQ((*monitor)["metadata"]["labels"]["release"], "prometheus");
  EXPECT_EQ((*monitor)["spec"]["endpoints"][0]["port"], "metrics");
  const json* pdb = FindObject(objects, "PodDisruptionBudget", "t-nixmox");
  ASSERT_NE(pdb, nullptr);
  EXPECT_EQ((*pdb)["spec"]["maxUnavailable"], 1);
}

TEST(ChartTest, WatchNamespaceGetsARoleThereAndNoClusterWideRights) {
  std::vector<json> objects = Render("namespaced");
  CheckObjects(objects, true);
  EXPECT_THAT(Kinds(objects),
              ElementsAre("Deployment", "Role", "RoleBinding", "Service", "ServiceAccount"));
  const json* role = FindObject(objects, "Role", "t-nixmox");
  ASSERT_NE(role, nullptr);
  EXPECT_EQ((*role)["metadata"]["namespace"], "vms");
  EXPECT_EQ((*role)["rules"], ExpectedRules());
  const json* binding = FindObject(objects, "RoleBinding", "t-nixmox");
  ASSERT_NE(binding, nullptr);
  EXPECT_EQ((*binding)["metadata"]["namespace"], "vms");
  EXPECT_EQ((*binding)["subjects"][0]["namespace"], "nixmox-system");
  EXPECT_TRUE(HasArg(OperatorArgs(objects), "--namespace=vms"));
}

TEST(ChartTest, TemplatedCrdsAreTheCrdFilesMarkedKeep) {
  std::vector<json> objects = Render("templated-crds");
  CheckObjects(objects, true);
  std::vector<const json*> crds = OfKind(objects, "CustomResourceDefinition");
  ASSERT_EQ(crds.size(), 3u);
  for (const json* crd : crds) {
    const std::string name = (*crd)["metadata"]["name"];
    SCOPED_TRACE(name);
    const std::string plural = name.substr(0, name.find('.'));
    const json file = ParseFile(kRoot / "crds" / ("nixmox.io_" + plural + ".yaml"));
    EXPECT_TRUE((*crd)["spec"] == file["spec"]) << json::diff(file["spec"], (*crd)["spec"]);
    EXPECT_EQ((*crd)["metadata"]["annotations"]["helm.sh/resource-policy"], "keep");
  }
  std::vector<json> unkept =
      Render("templated-crds", "t", "nixmox-system", {"--set", "crds.keep=false"});
  for (const json* crd : OfKind(unkept, "CustomResourceDefinition")) {
    EXPECT_FALSE((*crd)["metadata"].contains("annotations")) << (*crd)["metadata"];
  }
  // Not templated: the CRDs stay in crds/, where `helm template` leaves them out.
  EXPECT_TRUE(OfKind(Render("default"), "CustomResourceDefinition").empty());
}

TEST(ChartTest, ProxmoxClusterAndItsSecretComeFromValues) {
  std::vector<json> objects = Render("everything", "e", "ops");
  CheckObjects(objects, true);
  const json* cluster = FindObject(objects, "ProxmoxCluster", "lab");
  ASSERT_NE(cluster, nullptr);
  EXPECT_EQ((*cluster)["metadata"]["namespace"], "ops");
  EXPECT_EQ((*cluster)["spec"]["credentialsRef"]["name"], "lab-credentials");
  EXPECT_EQ((*cluster)["spec"]["endpoint"], "https://pve.example.org:8006");
  EXPECT_EQ((*cluster)["spec"]["maxConcurrentRequests"], 6);
  EXPECT_FALSE((*cluster)["spec"]["tls"].contains("caBundle"));
  const json* secret = FindObject(objects, "Secret", "lab-credentials");
  ASSERT_NE(secret, nullptr);
  EXPECT_EQ((*secret)["stringData"]["tokenID"], "nixmox@pve!operator");
  // Without a token the chart refuses rather than creating a useless Secret.
  Output o = Helm({"template", "t", kChart.string(), "--set", "proxmoxCluster.create=true", "--set",
                   "proxmoxCluster.spec.endpoint=https://pve:8006"});
  EXPECT_NE(o.code, 0);
  EXPECT_THAT(o.err, HasSubstr("proxmoxCluster.credentials.tokenID is required"));
  // An existing Secret instead, in the watched namespace.
  std::vector<json> existing = Render(
      "namespaced", "t", "nixmox-system",
      {"--set", "proxmoxCluster.create=true", "--set", "proxmoxCluster.credentials.create=false",
       "--set", "proxmoxCluster.credentials.existingSecret=mine", "--set",
       "proxmoxCluster.spec.endpoint=https://pve:8006"});
  EXPECT_EQ(FindObject(existing, "Secret", "mine"), nullptr);
  const json* in_vms = FindObject(existing, "ProxmoxCluster", "pve");
  ASSERT_NE(in_vms, nullptr);
  EXPECT_EQ((*in_vms)["metadata"]["namespace"], "vms");
  EXPECT_EQ((*in_vms)["spec"]["credentialsRef"]["name"], "mine");
}

// The flags every values set renders are ones nixmox-operator accepts: it
// parses and checks all of them before it acts on --help.
TEST(ChartTest, RenderedArgsAreFlagsTheOperatorAccepts) {
  for (const std::string& set : kValueSets) {
    std::vector<std::string> args = OperatorArgs(Render(set));
    ASSERT_FALSE(args.empty()) << set;
    args.insert(args.begin(), {NIXMOX_OPERATOR_PATH, "--help"});
    Output o = RunTool(args);
    EXPECT_EQ(o.code, 0) << set << "\n" << o.Describe();
  }
  std::vector<std::string> everything = OperatorArgs(Render("everything"));
  EXPECT_THAT(everything,
              IsSupersetOf({"--metrics-bind-address=0", "--inventory-period=45s",
                            "--probe-networks=10.0.0.0/8,fd00::/8", "--builder-cpu-request=2",
                            "--builder-memory-request=4Gi", "--builder-memory-limit=8Gi",
                            "--builder-kvm-resource=devices.kubevirt.io/kvm",
                            "--builder-service-account=nixmox-builder",
                            "--builder-nix-option=sandbox=false", "--builder-nix-option=max-jobs=4",
                            "--allow-local-flakes",
                            "--builder-image=registry.example.org/nixmox-builder:dev"}));
}

// ---------------------------------------------------------------------------
// The chart against kubesim.

TEST_F(KubesimTest, RenderedChartsApplyWithKubectl) {
  ApplyFile(kTestdata / "servicemonitor-crd.yaml");
  ApplyFile(kRoot / "crds");
  for (const char* ns : {"nixmox-system", "vms", "leases", "ops"}) CreateNamespace(ns);
  for (const std::string& set : kValueSets) {
    const std::string ns = set == "everything" ? "ops" : "nixmox-system";
    Output rendered = Helm({"template", "r-" + set, kChart.string(), "-n", ns, "-f",
                            (kTestdata / "values" / (set + ".yaml")).string()});
    ASSERT_EQ(rendered.code, 0) << rendered.Describe();
    Output applied = Apply(rendered.out, set);
    EXPECT_EQ(applied.code, 0) << set << "\n" << applied.Describe();
  }
  EXPECT_EQ(Get("deployment/r-ha-nixmox", "nixmox-system", "{.spec.replicas}"), "3");
  EXPECT_EQ(Get("rolebinding/r-namespaced-nixmox", "vms", "{.roleRef.kind}"), "Role");
  EXPECT_EQ(Get("proxmoxcluster/lab", "ops", "{.spec.credentialsRef.name}"), "lab-credentials");
  EXPECT_EQ(Get("servicemonitor/r-ha-nixmox", "nixmox-system", "{.spec.endpoints[0].port}"),
            "metrics");
}

TEST_F(KubesimTest, HelmInstallsUpgradesAndUninstallsKeepingTheCrds) {
  CreateNamespace("nixmox-system");
  Output installed = HelmOnSim({"install", "nixmox", kChart.string(), "-n", "nixmox-system"});
  ASSERT_EQ(installed.code, 0) << installed.Describe();
  EXPECT_THAT(installed.out, HasSubstr("It manages nixmox objects in all namespaces"));
  Output established =
      Kubectl({"wait", "--for=condition=Established", "--timeout=20s", "crd/proxmoxvms.nixmox.io",
               "crd/niximages.nixmox.io", "crd/proxmoxclusters.nixmox.io"});
  EXPECT_EQ(established.code, 0) << established.Describe();
  EXPECT_TRUE(Exists("clusterrole/nixmox"));
  EXPECT_EQ(Get("deployment/nixmox", "nixmox-system", "{.spec.strategy.type}"), "Recreate");

  Output upgraded = HelmOnSim({"upgrade", "nixmox", kChart.string(), "-n", "nixmox-system", "--set",
                               "replicaCount=2", "--set", "podDisruptionBudget.enabled=true"});
  ASSERT_EQ(upgraded.code, 0) << upgraded.Describe();
  EXPECT_EQ(Get("deployment/nixmox", "nixmox-system", "{.spec.replicas}"), "2");
  EXPECT_EQ(Get("deployment/nixmox", "nixmox-system", "{.spec.strategy.type}"), "RollingUpdate");
  EXPECT_THAT(Get("deployment/nixmox", "nixmox-system", "{.spec.template.spec.containers[0].args}"),
              HasSubstr("--leader-elect"));
  EXPECT_TRUE(Exists("role/nixmox-leader-election", "nixmox-system"));
  EXPECT_EQ(Get("pdb/nixmox", "nixmox-system", "{.spec.minAvailable}"), "1");

  // The examples, to show what uninstall leaves.
  Output examples = Kubectl({"apply", "-n", "default", "-f", (kRoot / "deploy/examples").string()});
  ASSERT_EQ(examples.code, 0) << examples.Describe();
  const std::string before =
      Get("proxmoxclusters,proxmoxvms", "default", "{.items[*].metadata.uid}");
  ASSERT_FALSE(before.empty());

  Output removed = HelmOnSim({"uninstall", "nixmox", "-n", "nixmox-system"});
  ASSERT_EQ(removed.code, 0) << removed.Describe();
  EXPECT_FALSE(Exists("deployment/nixmox", "nixmox-system"));
  EXPECT_FALSE(Exists("clusterrole/nixmox"));
  EXPECT_FALSE(Exists("role/nixmox-leader-election", "nixmox-system"));
  EXPECT_TRUE(Exists("crd/proxmoxvms.nixmox.io"));
  EXPECT_EQ(Get("proxmoxclusters,proxmoxvms", "default", "{.items[*].metadata.uid}"), before);
}

TEST_F(KubesimTest, TemplatedCrdsBelongToTheReleaseAndFollowKeep) {
  CreateNamespace("nixmox-system");
  Output installed = HelmOnSim({"install", "nixmox", kChart.string(), "-n", "nixmox-system",
                                "--skip-crds", "--set", "crds.templated=true"});
  ASSERT_EQ(installed.code, 0) << installed.Describe();
  EXPECT_EQ(
      Get("crd/proxmoxvms.nixmox.io", "", "{.metadata.annotations.meta\\.helm\\.sh/release-name}"),
      "nixmox");
  Output kept = HelmOnSim({"uninstall", "nixmox", "-n", "nixmox-system"});
  ASSERT_EQ(kept.code, 0) << kept.Describe();
  EXPECT_THAT(kept.out + kept.err, HasSubstr("kept due to the resource policy"));
  EXPECT_TRUE(Exists("crd/proxmoxvms.nixmox.io"));

  // keep=false: the release owns them and takes them along. (The CRDs from
  // the first release are still there, so they are deleted first.)
  ASSERT_EQ(Kubectl({"delete", "-f", (kRoot / "crds").string()}).code, 0);
  Output owned =
      HelmOnSim({"install", "nixmox", kChart.string(), "-n", "nixmox-system", "--skip-crds",
                 "--set", "crds.templated=true", "--set", "crds.keep=false"});
  ASSERT_EQ(owned.code, 0) << owned.Describe();
  EXPECT_TRUE(Exists("crd/niximages.nixmox.io"));
  Output gone = HelmOnSim({"uninstall", "nixmox", "-n", "nixmox-system", "--wait"});
  ASSERT_EQ(gone.code, 0) << gone.Describe();
  EXPECT_FALSE(Exists("crd/niximages.nixmox.io"));
}

// The README's way from crds/ to templated CRDs: Helm refuses objects it does
// not own until they carry its ownership label and annotations.
TEST_F(KubesimTest, SwitchingToTemplatedCrdsAdoptsThemOnceMarked) {
  CreateNamespace("nixmox-system");
  Output installed = HelmOnSim({"install", "nixmox", kChart.string(), "-n", "nixmox-system"});
  ASSERT_EQ(installed.code, 0) << installed.Describe();
  const std::vector<std::string> templated = {"upgrade",       "nixmox", kChart.string(),      "-n",
                                              "nixmox-system", "--set",  "crds.templated=true"};
  Output refused = HelmOnSim(templated);
  EXPECT_NE(refused.code, 0);
  EXPECT_THAT(refused.err, HasSubstr("exists and cannot be imported into the current release"));
  for (const char* crd :
       {"crd/proxmoxvms.nixmox.io", "crd/niximages.nixmox.io", "crd/proxmoxclusters.nixmox.io"}) {
    ASSERT_EQ(Kubectl({"label", crd, "app.kubernetes.io/managed-by=Helm"}).code, 0);
    ASSERT_EQ(Kubectl({"annotate", crd, "meta.helm.sh/release-name=nixmox",
                       "meta.helm.sh/release-namespace=nixmox-system"})
                  .code,
              0);
  }
  Output adopted = HelmOnSim(templated);
  ASSERT_EQ(adopted.code, 0) << adopted.Describe();
  EXPECT_EQ(
      Get("crd/proxmoxvms.nixmox.io", "", "{.metadata.annotations.helm\\.sh/resource-policy}"),
      "keep");
}

TEST_F(KubesimTest, HelmInstallsTheProxmoxClusterAndTheServiceMonitor) {
  ApplyFile(kTestdata / "servicemonitor-crd.yaml");
  CreateNamespace("ops");
  Output installed =
      HelmOnSim({"install", "e", kChart.string(), "-n", "ops", "-f",
                 (kTestdata / "values/everything.yaml").string(), "--set", "metrics.enabled=true",
                 "--set", "metrics.serviceMonitor.enabled=true"});
  ASSERT_EQ(installed.code, 0) << installed.Describe();
  EXPECT_EQ(Get("proxmoxcluster/lab", "ops", "{.spec.inventoryPeriodSeconds}"), "30");
  EXPECT_EQ(Get("secret/lab-credentials", "ops", "{.data.tokenID}"),
            "bml4bW94QHB2ZSFvcGVyYXRvcg==");  // base64 of nixmox@pve!operator
  EXPECT_EQ(Get("servicemonitor/nixmox-everything", "ops", "{.spec.selector.matchLabels}"),
            Get("deployment/nixmox-everything", "ops", "{.spec.selector.matchLabels}"));
  EXPECT_EQ(Get("pdb/nixmox-everything", "ops", "{.spec.minAvailable}"), "50%");
  Output listed = HelmOnSim({"list", "-n", "ops", "-o", "json"});
  EXPECT_THAT(listed.out, HasSubstr("\"status\":\"deployed\"")) << listed.Describe();
}

// ---------------------------------------------------------------------------
// deploy/ (kustomize).

TEST(KustomizeTest, BaseHoldsTheCrdFilesAndTheChartDefaults) {
  Output o = RunTool({kKubectl, "kustomize", (kRoot / "deploy").string()});
  ASSERT_EQ(o.code, 0) << o.Describe();
  std::vector<json> objects = ParseDocuments(o.out);
  CheckObjects(objects, false);
  EXPECT_THAT(Kinds(objects),
              ElementsAre("ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition",
                          "CustomResourceDefinition", "CustomResourceDefinition", "Deployment",
                          "Namespace", "Service", "ServiceAccount"));
  for (const json* crd : OfKind(objects, "CustomResourceDefinition")) {
    const std::string name = (*crd)["metadata"]["name"];
    const json file =
        ParseFile(kRoot / "crds" / ("nixmox.io_" + name.substr(0, name.find('.')) + ".yaml"));
    EXPECT_TRUE((*crd)["spec"] == file["spec"]) << name << json::diff(file["spec"], (*crd)["spec"]);
    EXPECT_EQ((*crd)["metadata"]["annotations"]["argocd.argoproj.io/sync-options"],
              "Delete=false,Prune=false");
  }
  // The same operator as `helm install nixmox charts/nixmox -n nixmox-system`.
  std::vector<json> chart = Render("default", "nixmox", "nixmox-system");
  EXPECT_EQ(ControllerRules(objects), ControllerRules(chart));
  const json* ours = FindObject(objects, "Deployment", "nixmox");
  const json* helms = FindObject(chart, "Deployment", "nixmox");
  ASSERT_TRUE(ours && helms);
  json ours_pod = (*ours)["spec"]["template"]["spec"];
  json helms_pod = (*helms)["spec"]["template"]["spec"];
  EXPECT_EQ(ours_pod, helms_pod) << "deploy/operator.yaml and the chart's Deployment differ:\n"
                                 << json::diff(helms_pod, ours_pod).dump(2);
  EXPECT_EQ((*ours)["spec"]["strategy"], (*helms)["spec"]["strategy"]);
  EXPECT_EQ((*FindObject(objects, "Service", "nixmox-metrics"))["spec"]["ports"],
            (*FindObject(chart, "Service", "nixmox-metrics"))["spec"]["ports"]);
}

// deploy/examples/Kustomization names every example, and they apply as they are.
TEST_F(KubesimTest, ExamplesKustomizationHoldsEveryExample) {
  std::set<std::string> files, listed;
  for (const auto& e : fs::directory_iterator(kRoot / "deploy/examples")) {
    if (e.path().extension() == ".yaml") files.insert(e.path().filename().string());
  }
  const json resources = ParseFile(kRoot / "deploy/examples/Kustomization")["resources"];
  for (const json& r : resources) listed.insert(r.get<std::string>());
  EXPECT_EQ(listed, files) << "deploy/examples/Kustomization must list every example";
  ApplyFile(kRoot / "crds");
  Output established =
      Kubectl({"wait", "--for=condition=Established", "--timeout=20s", "crd/proxmoxvms.nixmox.io",
               "crd/niximages.nixmox.io", "crd/proxmoxclusters.nixmox.io"});
  ASSERT_EQ(established.code, 0) << established.Describe();
  Output applied = Kubectl({"apply", "-n", "default", "-k", (kRoot / "deploy/examples").string()});
  ASSERT_EQ(applied.code, 0) << applied.Describe();
  EXPECT_FALSE(Get("proxmoxvms", "default", "{.items[*].metadata.name}").empty());
}

TEST_F(KubesimTest, KustomizeBaseAppliesAndReappliesUnchanged) {
  Output applied = Kubectl({"apply", "-k", (kRoot / "deploy").string()});
  ASSERT_EQ(applied.code, 0) << applied.Describe();
  EXPECT_EQ(Get("deployment/nixmox", "nixmox-system", "{.spec.template.spec.serviceAccountName}"),
            "nixmox");
  EXPECT_EQ(Get("clusterrolebinding/nixmox", "", "{.subjects[0].namespace}"), "nixmox-system");
  Output again = Kubectl({"apply", "-k", (kRoot / "deploy").string()});
  ASSERT_EQ(again.code, 0) << again.Describe();
  std::istringstream lines(again.out);
  for (std::string line; std::getline(lines, line);) {
    EXPECT_THAT(line, HasSubstr(" unchanged")) << again.out;
  }
  // crds/Kustomization is not a manifest: `kubectl apply -f crds/` still works.
  Output crds = Kubectl({"apply", "-f", (kRoot / "crds").string()});
  EXPECT_EQ(crds.code, 0) << crds.Describe();
  EXPECT_THAT(crds.out, Not(HasSubstr("Kustomization")));
}

// ---------------------------------------------------------------------------
// deploy/argocd: the health checks.

struct HealthCase {
  std::string kind;
  std::string status;
  std::string message;
  fs::path input;
};

std::vector<HealthCase> HealthCases() {
  std::vector<HealthCase> cases;
  for (const char* kind : {"ProxmoxVM", "NixImage", "ProxmoxCluster"}) {
    const json tests = ParseFile(kHealth / kind / "health_test.yaml")["tests"];
    for (const json& t : tests) {
      cases.push_back({kind, t["healthStatus"]["status"], t["healthStatus"].value("message", ""),
                       kHealth / kind / t["inputPath"].get<std::string>()});
    }
  }
  return cases;
}

// A Lua table constructor for a JSON value (null leaves the key out, as
// Argo CD's conversion of the object does).
std::string LuaLiteral(const json& v) {
  if (v.is_object()) {
    std::string out = "{";
    for (const auto& [k, sub] : v.items()) {
      if (!sub.is_null()) out += "[" + LuaLiteral(json(k)) + "]=" + LuaLiteral(sub) + ",";
    }
    return out + "}";
  }
  if (v.is_array()) {
    std::string out = "{";
    for (const json& sub : v) out += LuaLiteral(sub) + ",";
    return out + "}";
  }
  if (v.is_string()) {
    std::string out = "\"";
    for (unsigned char c : v.get<std::string>()) {
      if (c == '"' || c == '\\') {
        out += '\\';
        out += static_cast<char>(c);
      } else if (c < 0x20) {
        out += "\\" + std::to_string(c);
      } else {
        out += static_cast<char>(c);
      }
    }
    return out + "\"";
  }
  return v.dump();  // numbers, booleans
}

TEST(ArgoCdHealthTest, EveryCaseOfHealthTestYamlHoldsUnderLua51) {
  TempDir dir;
  std::vector<HealthCase> cases = HealthCases();
  ASSERT_GT(cases.size(), 20u);
  for (const HealthCase& c : cases) {
    SCOPED_TRACE(c.kind + " " + c.input.filename().string());
    const json object = ParseFile(c.input);
    EXPECT_EQ(object["kind"], c.kind);
    const std::string script = dir.File("case.lua");
    std::ofstream(script) << "obj = " << LuaLiteral(object) << "\n"
                          << "local hs = dofile("
                          << LuaLiteral(json((kHealth / c.kind / "health.lua").string())) << ")\n"
                          << "io.write(tostring(hs.status), \"\\n\", tostring(hs.message))\n";
    Output o = RunTool({NIXMOX_LUA, script});
    ASSERT_EQ(o.code, 0) << o.Describe();
    EXPECT_EQ(o.out, c.status + "\n" + c.message);
  }
}

TEST(ArgoCdHealthTest, CasesCoverEveryHealthAndEverySampleObject) {
  std::map<std::string, std::set<std::string>> statuses;
  std::set<fs::path> referenced;
  for (const HealthCase& c : HealthCases()) {
    statuses[c.kind].insert(c.status);
    referenced.insert(c.input);
  }
  EXPECT_EQ(statuses["ProxmoxVM"],
            (std::set<std::string>{"Healthy", "Progressing", "Degraded", "Suspended"}));
  EXPECT_EQ(statuses["NixImage"], (std::set<std::string>{"Healthy", "Progressing", "Degraded"}));
  EXPECT_EQ(statuses["ProxmoxCluster"],
            (std::set<std::string>{"Healthy", "Progressing", "Degraded"}));
  for (const auto& e : fs::recursive_directory_iterator(kHealth)) {
    if (e.path().parent_path().filename() == "testdata") {
      EXPECT_TRUE(referenced.count(e.path())) << e.path() << " is in no health_test.yaml";
    }
  }
}

// The sample objects are what the operator could write: the CRDs accept
// them, status included, without pruning a field.
TEST(ArgoCdHealthTest, SampleObjectsAreValidByTheCrds) {
  kubesim::KubeSim sim{kubesim::Options{}};
  for (const auto& e : fs::directory_iterator(kRoot / "crds")) {
    if (e.path().extension() != ".yaml") continue;
    auto created =
        sim.Create("customresourcedefinitions.apiextensions.k8s.io", "", ParseFile(e.path()));
    ASSERT_TRUE(created.ok()) << created.error().message;
  }
  for (const HealthCase& c : HealthCases()) {
    SCOPED_TRACE(c.input.string());
    json object = ParseFile(c.input);
    const std::string resource = c.kind == "ProxmoxVM"  ? "proxmoxvms.nixmox.io"
                                 : c.kind == "NixImage" ? "niximages.nixmox.io"
                                                        : "proxmoxclusters.nixmox.io";
    const json status = object.value("status", json());
    json body = object;
    body.erase("status");
    json& md = body["metadata"];
    for (const char* f :
         {"uid", "generation", "creationTimestamp", "deletionTimestamp", "finalizers"}) {
      md.erase(f);
    }
    std::string name = c.input.stem().string();
    std::replace(name.begin(), name.end(), '_', '-');
    md["name"] = name;
    auto created = sim.Create(resource, "default", body);
    ASSERT_TRUE(created.ok()) << created.error().message;
    if (status.is_null()) continue;
    json next = created.value();
    next["status"] = status;
    auto written = sim.Update(resource, "default", next, /*status=*/true);
    ASSERT_TRUE(written.ok()) << written.error().message;
    EXPECT_EQ(written.value()["status"], status) << "the CRD pruned or defaulted a field";
  }
}

// Every reason the checks name is one the operator uses (src/api/reasons.h),
// so a renamed reason cannot leave a check silently wrong.
TEST(ArgoCdHealthTest, ChecksNameOnlyReasonsTheOperatorHas) {
  std::set<std::string> reasons;
  const std::string header = ReadFile(kRoot / "src/api/reasons.h");
  static const std::regex kReason("std::string_view k[A-Za-z]+ = \"([A-Za-z]+)\"");
  for (std::sregex_iterator it(header.begin(), header.end(), kReason), end; it != end; ++it) {
    reasons.insert((*it)[1]);
  }
  ASSERT_GT(reasons.size(), 40u);
  static const std::regex kTable("local needsAttention = \\{([^}]*)\\}");
  static const std::regex kEntry("([A-Za-z]+) = true");
  for (const char* kind : {"ProxmoxVM", "NixImage", "ProxmoxCluster"}) {
    const std::string lua = ReadFile(kHealth / kind / "health.lua");
    std::smatch table;
    ASSERT_TRUE(std::regex_search(lua, table, kTable)) << kind;
    const std::string entries = table[1];
    int count = 0;
    for (std::sregex_iterator it(entries.begin(), entries.end(), kEntry), end; it != end; ++it) {
      EXPECT_TRUE(reasons.count((*it)[1])) << kind << ": " << (*it)[1];
      ++count;
    }
    EXPECT_GT(count, 3) << kind;
  }
  for (const HealthCase& c : HealthCases()) {
    for (const json& cond :
         ParseFile(c.input).value("status", json::object()).value("conditions", json::array())) {
      EXPECT_TRUE(reasons.count(cond["reason"])) << c.input << ": " << cond["reason"];
    }
  }
}

TEST_F(KubesimTest, ArgoCdKustomizationCarriesTheChecksVerbatim) {
  Output o = Kubectl({"kustomize", (kRoot / "deploy/argocd").string()});
  ASSERT_EQ(o.code, 0) << o.Describe();
  std::vector<json> objects = ParseDocuments(o.out);
  const json* cm = FindObject(objects, "ConfigMap", "argocd-cm");
  ASSERT_NE(cm, nullptr);
  EXPECT_EQ((*cm)["metadata"]["namespace"], "argocd");
  for (const char* kind : {"ProxmoxVM", "NixImage", "ProxmoxCluster"}) {
    EXPECT_EQ(
        (*cm)["data"].value(std::string("resource.customizations.health.nixmox.io_") + kind, ""),
        ReadFile(kHealth / kind / "health.lua"))
        << kind;
  }
  const json* app = FindObject(objects, "Application", "nixmox");
  ASSERT_NE(app, nullptr);
  const std::string path = (*app)["spec"]["source"]["path"];
  EXPECT_TRUE(fs::exists(kRoot / path / "kustomization.yaml")) << path;
  // It applies (server-side, as the kustomization's comment advises).
  CreateNamespace("argocd");
  ApplyFile(kTestdata / "application-crd.yaml");
  Output established = Kubectl(
      {"wait", "--for=condition=Established", "--timeout=20s", "crd/applications.argoproj.io"});
  ASSERT_EQ(established.code, 0) << established.Describe();
  Output applied = Kubectl({"apply", "--server-side", "-k", (kRoot / "deploy/argocd").string()});
  EXPECT_EQ(applied.code, 0) << applied.Describe();
  EXPECT_EQ(Get("application/nixmox", "argocd", "{.spec.source.path}"), "deploy");
}

}  // namespace
}  // namespace nixmox
