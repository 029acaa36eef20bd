// Real kubectl (from .ci/tools) driving the real kubesim binary: the CRD and
// custom-resource workflows the project relies on. With NIXMOX_TEST_KUBECONFIG
// set, the same tests drive that cluster instead (kubesim-only parts skip).
#include <fcntl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <regex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

extern char** environ;

namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

struct Output {
  int code = -1;
  std::string out;
  std::string err;
  std::string Describe() const {
    return "exit " + std::to_string(code) + "\nstdout:\n" + out + "\nstderr:\n" + err;
  }
};

std::string ReadFile(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// ECMAScript regex search (gtest's own regexes are POSIX and line-bound).
bool Matches(const std::string& text, const std::string& pattern) {
  return std::regex_search(text, std::regex(pattern));
}

std::string Testdata(const std::string& name) { return std::string(KUBECTL_TESTDATA) + "/" + name; }

// A child process whose stdout and stderr go to files.
class Process {
 public:
  Process(const std::vector<std::string>& argv, const std::vector<std::string>& extra_env,
          const fs::path& out, const fs::path& err)
      : out_(out), err_(err) {
    std::vector<std::string> env;
    for (char** e = environ; *e; ++e) env.push_back(*e);
    for (const auto& e : extra_env) env.push_back(e);
    std::vector<char*> args, envp;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    for (auto& e : env) envp.push_back(e.data());
    envp.push_back(nullptr);
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&actions, 1, out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_addopen(&actions, 2, err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (posix_spawn(&pid_, args[0], &actions, nullptr, args.data(), envp.data()) != 0) pid_ = -1;
    posix_spawn_file_actions_destroy(&actions);
  }
  ~Process() { Stop(); }

  bool running() const { return pid_ > 0; }
  Output Wait() {
    Output o;
    if (pid_ > 0) {
      int st = 0;
      waitpid(pid_, &st, 0);
      o.code = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
      pid_ = -1;
    }
    o.out = ReadFile(out_);
    o.err = ReadFile(err_);
    return o;
  }
  void Stop() {
    if (pid_ <= 0) return;
    kill(pid_, SIGTERM);
    Wait();
  }
  std::string out() const { return ReadFile(out_); }
  std::string err() const { return ReadFile(err_); }

 private:
  pid_t pid_ = -1;
  fs::path out_, err_;
};

// Polls `f` until it returns true or `timeout` passes.
template <typename F>
bool Eventually(F f, std::chrono::milliseconds timeout = std::chrono::seconds(20)) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (f()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return f();
}

class KubectlTest : public ::testing::Test {
 protected:
  void SetUp() override {
    kubectl_ = std::string(NIXMOX_TOOLS_DIR) + "/kubectl/kubectl";
    ASSERT_TRUE(fs::exists(kubectl_)) << kubectl_ << " is missing: run .ci/tools";
    std::random_device rd;
    dir_ = fs::temp_directory_path() / ("kubectl-test-" + std::to_string(rd()));
    fs::create_directories(dir_);
    if (const char* external = std::getenv("NIXMOX_TEST_KUBECONFIG"); external && *external) {
      kubeconfig_ = external;
      external_ = true;
    } else {
      kubeconfig_ = dir_ / "kubeconfig";
      // kubectl sends bearer tokens only over TLS, so kubesim serves HTTPS here.
      sim_ = std::make_unique<Process>(
          std::vector<std::string>{KUBESIM_BINARY, "--listen", "127.0.0.1:0", "--tls", "--token",
                                   "kubectl-test-token", "--kubeconfig-out", kubeconfig_.string(),
                                   "--run-jobs", "--work-dir", (dir_ / "pods").string()},
          std::vector<std::string>{}, dir_ / "kubesim.out", dir_ / "kubesim.err");
      ASSERT_TRUE(Eventually([&] { return sim_->out().find("serving on") != std::string::npos; }))
          << "kubesim did not start:\n"
          << sim_->err();
    }
    ns_ = "kt-" + std::to_string(rd() % 1000000);
    Output created = Kubectl({"create", "namespace", ns_});
    ASSERT_EQ(created.code, 0) << created.Describe();
  }

  void TearDown() override {
    if (external_) Kubectl({"delete", "namespace", ns_, "--wait=false"});
    sim_.reset();
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }

  Output Helm(std::vector<std::string> args) {
    args.insert(args.begin(), std::string(NIXMOX_TOOLS_DIR) + "/helm/helm");
    return Kubectl(args, /*prepend=*/false);
  }

  Output Kubectl(std::vector<std::string> args, bool prepend = true) {
    if (prepend) args.insert(args.begin(), kubectl_.string());
    static int n = 0;
    ++n;
    Process p(args, {"KUBECONFIG=" + kubeconfig_.string(), "HOME=" + dir_.string()},
              dir_ / ("kubectl" + std::to_string(n) + ".out"),
              dir_ / ("kubectl" + std::to_string(n) + ".err"));
    return p.Wait();
  }

  std::unique_ptr<Process> KubectlInBackground(std::vector<std::string> args,
                                               const std::string& tag) {
    args.insert(args.begin(), kubectl_);
    return std::make_unique<Process>(
        args,
        std::vector<std::string>{"KUBECONFIG=" + kubeconfig_.string(), "HOME=" + dir_.string()},
        dir_ / (tag + ".out"), dir_ / (tag + ".err"));
  }

  void ApplyCrd() {
    Output o = Kubectl({"apply", "-f", Testdata("crd.yaml")});
    ASSERT_EQ(o.code, 0) << o.Describe();
    Output w = Kubectl(
        {"wait", "--for=condition=Established", "--timeout=30s", "crd/widgets.test.nixmox.io"});
    ASSERT_EQ(w.code, 0) << w.Describe();
  }

  void ApplyWidget() {
    Output o = Kubectl({"apply", "-n", ns_, "-f", Testdata("widget.yaml")});
    ASSERT_EQ(o.code, 0) << o.Describe();
  }

  std::string JsonPath(const std::string& what, const std::string& path) {
    Output o = Kubectl({"get", "-n", ns_, what, "-o", "jsonpath=" + path});
    EXPECT_EQ(o.code, 0) << o.Describe();
    return o.out;
  }

  fs::path dir_;
  fs::path kubectl_;
  fs::path kubeconfig_;
  bool external_ = false;
  std::string ns_;
  std::unique_ptr<Process> sim_;
};

TEST_F(KubectlTest, WrongTokenIsUnauthorized) {
  if (external_) GTEST_SKIP() << "kubesim-only: relies on kubesim's token";
  Output o = Kubectl({"--token=wrong", "get", "namespaces"});
  EXPECT_NE(o.code, 0);
  EXPECT_THAT(o.err, HasSubstr("You must be logged in to the server"));
}

TEST_F(KubectlTest, AppliedCrdServesCustomResourcesWithPrinterColumns) {
  ApplyCrd();
  ApplyWidget();
  Output o = Kubectl({"get", "widgets", "-n", ns_});
  ASSERT_EQ(o.code, 0) << o.Describe();
  EXPECT_TRUE(Matches(o.out, "^NAME +SIZE +COLOR +PHASE +AGE\nsmall +3 +green +[0-9]+s\n$"))
      << o.out;
  // Short name and category from the CRD work too.
  Output short_name = Kubectl({"get", "wd", "small", "-n", ns_, "-o", "name"});
  EXPECT_EQ(short_name.out, "widget.test.nixmox.io/small\n") << short_name.Describe();
  Output category = Kubectl({"get", "nixmox", "-n", ns_, "-o", "name"});
  EXPECT_EQ(category.out, "widget.test.nixmox.io/small\n") << category.Describe();
  // The schema's default was applied.
  EXPECT_EQ(JsonPath("widget/small", "{.spec.color}"), "green");
}

TEST_F(KubectlTest, ApplyTwiceIsIdempotent) {
  ApplyCrd();
  ApplyWidget();
  std::string rv = JsonPath("widget/small", "{.metadata.resourceVersion}");
  Output again = Kubectl({"apply", "-n", ns_, "-f", Testdata("widget.yaml")});
  ASSERT_EQ(again.code, 0) << again.Describe();
  EXPECT_EQ(again.out, "widget.test.nixmox.io/small unchanged\n");
  EXPECT_EQ(JsonPath("widget/small", "{.metadata.resourceVersion}"), rv);
  Output crd_again = Kubectl({"apply", "-f", Testdata("crd.yaml")});
  EXPECT_EQ(crd_again.out,
            "customresourcedefinition.apiextensions.k8s.io/widgets.test.nixmox.io unchanged\n")
      << crd_again.Describe();
}

TEST_F(KubectlTest, GetWatchSeesAChange) {
  ApplyCrd();
  ApplyWidget();
  auto watch = KubectlInBackground({"get", "widgets", "-n", ns_, "-w"}, "watch");
  ASSERT_TRUE(Eventually([&] { return watch->out().find("small") != std::string::npos; }))
      << watch->err();
  Output patched = Kubectl(
      {"patch", "widget", "small", "-n", ns_, "--type=merge", "-p", R"({"spec":{"size":7}})"});
  ASSERT_EQ(patched.code, 0) << patched.Describe();
  EXPECT_TRUE(Eventually([&] { return Matches(watch->out(), "\nsmall +7 +green"); }))
      << watch->out() << watch->err();
}

TEST_F(KubectlTest, StatusIsWrittenOnlyThroughTheStatusSubresource) {
  ApplyCrd();
  ApplyWidget();
  Output status = Kubectl({"patch", "widget", "small", "-n", ns_, "--subresource=status",
                           "--type=merge", "-p", R"({"status":{"phase":"Ready"}})"});
  ASSERT_EQ(status.code, 0) << status.Describe();
  EXPECT_EQ(JsonPath("widget/small", "{.status.phase}"), "Ready");
  Output ignored = Kubectl({"patch", "widget", "small", "-n", ns_, "--type=merge", "-p",
                            R"({"status":{"phase":"Hacked"}})"});
  EXPECT_EQ(ignored.code, 0) << ignored.Describe();
  EXPECT_EQ(JsonPath("widget/small", "{.status.phase}"), "Ready");
  Output table = Kubectl({"get", "widget", "small", "-n", ns_});
  EXPECT_TRUE(Matches(table.out, "\nsmall +3 +green +Ready +[0-9]+s\n")) << table.out;
}

TEST_F(KubectlTest, DeleteWaitsForTheFinalizer) {
  ApplyCrd();
  ApplyWidget();
  Output held = Kubectl({"patch", "widget", "small", "-n", ns_, "--type=merge", "-p",
                         R"({"metadata":{"finalizers":["test.nixmox.io/hold"]}})"});
  ASSERT_EQ(held.code, 0) << held.Describe();
  Output del = Kubectl({"delete", "widget", "small", "-n", ns_, "--wait=false"});
  ASSERT_EQ(del.code, 0) << del.Describe();
  EXPECT_NE(JsonPath("widget/small", "{.metadata.deletionTimestamp}"), "");
  Output released = Kubectl({"patch", "widget", "small", "-n", ns_, "--type=json", "-p",
                             R"([{"op":"remove","path":"/metadata/finalizers"}])"});
  ASSERT_EQ(released.code, 0) << released.Describe();
  EXPECT_TRUE(Eventually([&] {
    Output gone = Kubectl({"get", "widget", "small", "-n", ns_});
    return gone.code != 0 && gone.err.find("NotFound") != std::string::npos;
  }));
}

TEST_F(KubectlTest, ManifestThatBreaksTheSchemaIsRejectedNamingTheField) {
  ApplyCrd();
  Output o = Kubectl({"apply", "-n", ns_, "-f", Testdata("widget-bad.yaml")});
  EXPECT_NE(o.code, 0);
  EXPECT_THAT(o.err, HasSubstr("The Widget \"broken\" is invalid"));
  EXPECT_THAT(o.err, HasSubstr("spec.size: Invalid value: 500: spec.size in body should be less "
                               "than or equal to 100"));
  EXPECT_THAT(o.err, HasSubstr("spec.color: Unsupported value: \"purple\""));
  Output unknown = Kubectl({"apply", "-n", ns_, "-f", Testdata("widget-unknown.yaml")});
  EXPECT_NE(unknown.code, 0);
  EXPECT_THAT(unknown.err, HasSubstr("unknown field \"spec.bogus\""));
}

TEST_F(KubectlTest, DeleteAndLabelSelectorsWorkOnBuiltins) {
  for (const char* name : {"a", "b"}) {
    Output o = Kubectl({"create", "configmap", name, "-n", ns_, "--from-literal=k=v"});
    ASSERT_EQ(o.code, 0) << o.Describe();
  }
  ASSERT_EQ(Kubectl({"label", "configmap", "a", "-n", ns_, "app=web"}).code, 0);
  Output selected = Kubectl({"get", "configmaps", "-n", ns_, "-l", "app=web", "-o", "name"});
  EXPECT_EQ(selected.out, "configmap/a\n") << selected.Describe();
  Output del = Kubectl({"delete", "configmap", "b", "-n", ns_});
  EXPECT_EQ(del.out, "configmap \"b\" deleted\n") << del.Describe();
  Output rest = Kubectl({"get", "configmaps", "-n", ns_, "-o", "name"});
  EXPECT_THAT(rest.out, ::testing::Not(HasSubstr("configmap/b")));
}

TEST_F(KubectlTest, HelmInstallsUpgradesAndUninstallsAChartWithACrd) {
  const std::string chart = Testdata("chart");
  Output installed = Helm({"install", "demo", chart, "-n", ns_, "--wait", "--timeout", "30s"});
  ASSERT_EQ(installed.code, 0) << installed.Describe();
  EXPECT_EQ(JsonPath("widget/demo-widget", "{.spec.size}"), "2");
  Output upgraded = Helm({"upgrade", "demo", chart, "-n", ns_, "--set", "size=5"});
  ASSERT_EQ(upgraded.code, 0) << upgraded.Describe();
  EXPECT_EQ(JsonPath("widget/demo-widget", "{.spec.size}"), "5");
  EXPECT_EQ(JsonPath("configmap/demo-settings", "{.data.size}"), "5");
  Output list = Helm({"list", "-n", ns_, "-o", "json"});
  EXPECT_THAT(list.out, HasSubstr("\"revision\":\"2\"")) << list.Describe();
  Output bad = Helm({"upgrade", "demo", chart, "-n", ns_, "--set", "size=500"});
  EXPECT_NE(bad.code, 0);
  EXPECT_THAT(bad.err, HasSubstr("spec.size")) << bad.Describe();
  Output removed = Helm({"uninstall", "demo", "-n", ns_, "--wait"});
  ASSERT_EQ(removed.code, 0) << removed.Describe();
  Output gone = Kubectl({"get", "widgets,configmaps", "-n", ns_, "-o", "name"});
  EXPECT_THAT(gone.out, ::testing::Not(HasSubstr("demo"))) << gone.Describe();
}

TEST_F(KubectlTest, JobRunnerRunsTheCommandAndRecordsTheResult) {
  if (external_) GTEST_SKIP() << "kubesim-only: the Job runner runs commands as local processes";
  Output applied = Kubectl({"apply", "-n", ns_, "-f", Testdata("job.yaml")});
  ASSERT_EQ(applied.code, 0) << applied.Describe();
  Output waited =
      Kubectl({"wait", "-n", ns_, "--for=condition=complete", "--timeout=30s", "job/hello"});
  ASSERT_EQ(waited.code, 0) << waited.Describe();
  Output logs = Kubectl({"logs", "-n", ns_, "job/hello"});
  EXPECT_EQ(logs.out, "hello world\n") << logs.Describe();
  EXPECT_EQ(JsonPath("pods", "{.items[0].status.containerStatuses[0].state.terminated.message}"),
            R"({"greeted":"world"})");
  EXPECT_EQ(JsonPath("pods", "{.items[0].status.phase}"), "Succeeded");
  EXPECT_EQ(JsonPath("job/hello", "{.status.succeeded}"), "1");
  Output jobs = Kubectl({"get", "jobs", "-n", ns_});
  EXPECT_TRUE(Matches(jobs.out, "\nhello +Complete +1/1 ")) << jobs.out;
}

TEST_F(KubectlTest, JobRunnerHonoursBackoffLimit) {
  if (external_) GTEST_SKIP() << "kubesim-only: the Job runner runs commands as local processes";
  Output applied = Kubectl({"apply", "-n", ns_, "-f", Testdata("job-failing.yaml")});
  ASSERT_EQ(applied.code, 0) << applied.Describe();
  Output waited =
      Kubectl({"wait", "-n", ns_, "--for=condition=failed", "--timeout=30s", "job/failing"});
  ASSERT_EQ(waited.code, 0) << waited.Describe();
  EXPECT_EQ(JsonPath("job/failing", "{.status.failed}"), "2");
  EXPECT_EQ(JsonPath("job/failing", "{.status.conditions[?(@.type==\"Failed\")].reason}"),
            "BackoffLimitExceeded");
  EXPECT_EQ(JsonPath("pods", "{.items[0].status.containerStatuses[0].state.terminated.exitCode}"),
            "3");
  // No termination message file was written: the log tail stands in for it.
  EXPECT_EQ(JsonPath("pods", "{.items[0].status.containerStatuses[0].state.terminated.message}"),
            "boom on attempt\n");
}

TEST_F(KubectlTest, JobRunnerStopsAJobPastItsActiveDeadline) {
  if (external_) GTEST_SKIP() << "kubesim-only: the Job runner runs commands as local processes";
  Output applied = Kubectl({"apply", "-n", ns_, "-f", Testdata("job-deadline.yaml")});
  ASSERT_EQ(applied.code, 0) << applied.Describe();
  Output waited =
      Kubectl({"wait", "-n", ns_, "--for=condition=failed", "--timeout=30s", "job/slow"});
  ASSERT_EQ(waited.code, 0) << waited.Describe();
  EXPECT_EQ(JsonPath("job/slow", "{.status.conditions[?(@.type==\"Failed\")].reason}"),
            "DeadlineExceeded");
  // The process was killed; what it wrote to its termination-message file is kept.
  EXPECT_TRUE(Eventually([&] { return JsonPath("pods", "{.items[0].status.phase}") == "Failed"; }));
  EXPECT_EQ(JsonPath("pods", "{.items[0].status.containerStatuses[0].state.terminated.message}"),
            "started\n");
}

}  // namespace
