#include "operator/options.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>

namespace nixmox::cmd {
namespace {

namespace fs = std::filesystem;
using std::chrono::milliseconds;
using ::testing::HasSubstr;

OperatorOptions Parse(const std::vector<std::string>& args) {
  auto parsed = ParseCommandLine(args);
  EXPECT_TRUE(parsed.ok()) << parsed.status().ToString();
  return parsed.ok() ? parsed->options : OperatorOptions{};
}

// The error for `args`, which must not parse.
Status ParseError(const std::vector<std::string>& args) {
  auto parsed = ParseCommandLine(args);
  EXPECT_FALSE(parsed.ok()) << "parsed without error";
  return parsed.status();
}

TEST(ParseCommandLineTest, NoFlagsGiveTheDocumentedDefaults) {
  const OperatorOptions o = Parse({});
  EXPECT_EQ(o.kubeconfig, "");
  EXPECT_EQ(o.watch_namespace, "");
  EXPECT_FALSE(o.leader_elect);
  EXPECT_EQ(o.leader_election_namespace, "");
  EXPECT_EQ(o.leader_election_id, "nixmox-operator");
  EXPECT_EQ(o.metrics_bind_address, "127.0.0.1:8080");
  EXPECT_EQ(o.health_probe_bind_address, "0.0.0.0:8081");
  EXPECT_EQ(o.max_concurrent_reconciles, 4);
  EXPECT_EQ(o.proxmox_max_inflight, 8);
  EXPECT_FALSE(o.inventory_period.has_value());
  EXPECT_EQ(o.agent_period, milliseconds(60000));
  EXPECT_EQ(o.task_poll, milliseconds(2000));
  EXPECT_EQ(o.agent_retry, milliseconds(5000));
  EXPECT_TRUE(o.probe_networks.empty());
  EXPECT_EQ(o.log.level, "info");
  EXPECT_EQ(o.log.format, "text");
  EXPECT_EQ(o.graceful_shutdown, milliseconds(30000));
}

TEST(ParseCommandLineTest, EveryFlagWithSeparateValues) {
  // clang-format off
  const OperatorOptions o = Parse({"--kubeconfig", "/tmp/kc",
                                   "--namespace", "infra",
                                   "--leader-elect",
                                   "--leader-election-namespace", "ops",
                                   "--leader-election-id", "nixmox-lock",
                                   "--metrics-bind-address", "0.0.0.0:9090",
                                   "--health-probe-bind-address", "127.0.0.1:9091",
                                   "--max-concurrent-reconciles", "16",
                                   "--proxmox-max-inflight", "3",
                                   "--inventory-period", "45s",
                                   "--agent-period", "2m",
                                   "--task-poll", "250ms",
                                   "--agent-retry", "1s",
                                   "--probe-networks", "10.0.0.0/8,fd00::/8",
                                   "--log-level", "debug",
                                   "--log-format", "json",
                                   "--graceful-shutdown", "500ms"});
  // clang-format on
  EXPECT_EQ(o.kubeconfig, "/tmp/kc");
  EXPECT_EQ(o.watch_namespace, "infra");
  EXPECT_TRUE(o.leader_elect);
  EXPECT_EQ(o.leader_election_namespace, "ops");
  EXPECT_EQ(o.leader_election_id, "nixmox-lock");
  EXPECT_EQ(o.metrics_bind_address, "0.0.0.0:9090");
  EXPECT_EQ(o.health_probe_bind_address, "127.0.0.1:9091");
  EXPECT_EQ(o.max_concurrent_reconciles, 16);
  EXPECT_EQ(o.proxmox_max_inflight, 3);
  EXPECT_EQ(o.inventory_period, milliseconds(45000));
  EXPECT_EQ(o.agent_period, milliseconds(120000));
  EXPECT_EQ(o.task_poll, milliseconds(250));
  EXPECT_EQ(o.agent_retry, milliseconds(1000));
  ASSERT_EQ(o.probe_networks.size(), 2u);
  EXPECT_EQ(o.probe_networks[0].ToString(), "10.0.0.0/8");
  EXPECT_EQ(o.probe_networks[1].ToString(), "fd00::/8");
  EXPECT_EQ(o.log.level, "debug");
  EXPECT_EQ(o.log.format, "json");
  EXPECT_EQ(o.graceful_shutdown, milliseconds(500));
}

TEST(ParseCommandLineTest, EqualsFormAndLastOneWins) {
  const OperatorOptions o =
      Parse({"--namespace=a", "--namespace=b", "--max-concurrent-reconciles=2",
             "--inventory-period=1m30s", "--log-level=warn", "--kubeconfig=/x=y"});
  EXPECT_EQ(o.watch_namespace, "b");
  EXPECT_EQ(o.max_concurrent_reconciles, 2);
  EXPECT_EQ(o.inventory_period, milliseconds(90000));
  EXPECT_EQ(o.log.level, "warn");
  EXPECT_EQ(o.kubeconfig, "/x=y");  // only the first '=' separates
}

TEST(ParseCommandLineTest, EmptyNamespaceMeansAllNamespaces) {
  EXPECT_EQ(Parse({"--namespace=infra", "--namespace="}).watch_namespace, "");
}

TEST(ParseCommandLineTest, LeaderElectTakesAnOptionalBooleanAfterEquals) {
  EXPECT_TRUE(Parse({"--leader-elect"}).leader_elect);
  EXPECT_TRUE(Parse({"--leader-elect=true"}).leader_elect);
  EXPECT_FALSE(Parse({"--leader-elect", "--leader-elect=false"}).leader_elect);
  EXPECT_EQ(ParseError({"--leader-elect=maybe"}).code(), Code::kInvalid);
  // A bare boolean never swallows the next argument.
  EXPECT_THAT(ParseError({"--leader-elect", "false"}).message(), HasSubstr("'false'"));
}

TEST(ParseCommandLineTest, BindAddressZeroDisablesAndBareColonMeansAllInterfaces) {
  const OperatorOptions o =
      Parse({"--metrics-bind-address", "0", "--health-probe-bind-address", ":8081"});
  EXPECT_EQ(o.metrics_bind_address, kDisabled);
  EXPECT_EQ(o.health_probe_bind_address, "0.0.0.0:8081");
  EXPECT_EQ(Parse({"--metrics-bind-address=[::1]:8080"}).metrics_bind_address, "[::1]:8080");
}

TEST(ParseCommandLineTest, ProxmoxMaxInflightZeroMeansNoCap) {
  EXPECT_EQ(Parse({"--proxmox-max-inflight=0"}).proxmox_max_inflight, 0);
}

TEST(ParseCommandLineTest, HelpIsReportedNotAnError) {
  auto parsed = ParseCommandLine({"--namespace", "x", "--help"});
  ASSERT_TRUE(parsed.ok());
  EXPECT_TRUE(parsed->help);
  EXPECT_TRUE(ParseCommandLine({"-h"})->help);
  EXPECT_FALSE(ParseCommandLine({})->help);
}

TEST(ParseCommandLineTest, UsageListsEveryFlag) {
  const std::string usage = Usage();
  for (const char* flag :
       {"--kubeconfig", "--namespace", "--leader-elect", "--leader-election-namespace",
        "--leader-election-id", "--metrics-bind-address", "--health-probe-bind-address",
        "--max-concurrent-reconciles", "--proxmox-max-inflight", "--inventory-period",
        "--agent-period", "--agent-retry", "--task-poll", "--probe-networks", "--log-level",
        "--log-format", "--graceful-shutdown", "--help"}) {
    EXPECT_THAT(usage, HasSubstr(flag));
  }
}

struct BadFlag {
  std::vector<std::string> args;
  std::string names;  // what the message must mention
};

// How a case reads in test names and failures: its arguments.
void PrintTo(const BadFlag& flag, std::ostream* out) {
  for (std::size_t i = 0; i < flag.args.size(); ++i) *out << (i ? " " : "") << flag.args[i];
}

class BadFlagTest : public ::testing::TestWithParam<BadFlag> {};

TEST_P(BadFlagTest, IsInvalidAndNamesTheCulprit) {
  const Status s = ParseError(GetParam().args);
  EXPECT_EQ(s.code(), Code::kInvalid);
  EXPECT_THAT(s.message(), HasSubstr(GetParam().names));
}

INSTANTIATE_TEST_SUITE_P(
    Errors, BadFlagTest,
    ::testing::Values(
        BadFlag{{"--no-such-flag"}, "--no-such-flag"},
        BadFlag{{"--no-such-flag=1"}, "--no-such-flag"}, BadFlag{{"stray"}, "'stray'"},
        BadFlag{{"-namespace", "x"}, "'-namespace'"}, BadFlag{{"--"}, "'--'"},
        BadFlag{{"--namespace"}, "--namespace"},
        BadFlag{{"--max-concurrent-reconciles", "0"}, "--max-concurrent-reconciles"},
        BadFlag{{"--max-concurrent-reconciles", "four"}, "--max-concurrent-reconciles"},
        BadFlag{{"--max-concurrent-reconciles", "4x"}, "--max-concurrent-reconciles"},
        BadFlag{{"--proxmox-max-inflight", "-1"}, "--proxmox-max-inflight"},
        BadFlag{{"--inventory-period", "30"}, "--inventory-period"},
        BadFlag{{"--inventory-period", "0s"}, "--inventory-period"},
        BadFlag{{"--agent-period", "soon"}, "--agent-period"},
        BadFlag{{"--graceful-shutdown", "-5s"}, "--graceful-shutdown"},
        BadFlag{{"--metrics-bind-address", "localhost"}, "--metrics-bind-address"},
        BadFlag{{"--metrics-bind-address", "localhost:http"}, "--metrics-bind-address"},
        BadFlag{{"--health-probe-bind-address", "0.0.0.0:70000"}, "--health-probe-bind-address"},
        BadFlag{{"--probe-networks", "10.0.0.0/33"}, "--probe-networks"},
        BadFlag{{"--probe-networks", "not-a-cidr"}, "--probe-networks"},
        BadFlag{{"--log-level", "verbose"}, "--log-level"},
        BadFlag{{"--log-format", "xml"}, "--log-format"},
        BadFlag{{"--leader-election-id="}, "--leader-election-id"},
        BadFlag{{"--builder-image="}, "--builder-image"},
        BadFlag{{"--builder-cpu-request", "lots"}, "--builder-cpu-request"},
        BadFlag{{"--builder-memory-limit", "4GB"}, "--builder-memory-limit"},
        BadFlag{{"--builder-nix-option", "sandbox"}, "--builder-nix-option"},
        BadFlag{{"--builder-nix-option", "=x"}, "--builder-nix-option"}));

TEST(BuilderFlagsTest, FillTheJobDefaults) {
  auto parsed = ParseCommandLine({"--builder-image", "reg.example/b:1", "--builder-command",
                                  "/opt/nixmox-builder", "--builder-cpu-request", "500m",
                                  "--builder-memory-request", "2Gi", "--builder-memory-limit",
                                  "8Gi", "--builder-kvm-resource", "devices.kubevirt.io/kvm",
                                  "--builder-nix-option", "sandbox=false", "--builder-nix-option",
                                  "substituters=", "--allow-local-flakes"});
  ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
  const nix::BuilderDefaults& b = parsed->options.builder;
  EXPECT_EQ(b.image, "reg.example/b:1");
  EXPECT_EQ(b.command, "/opt/nixmox-builder");
  EXPECT_EQ(b.resources.requests.at("cpu").value, "500m");
  EXPECT_EQ(b.resources.requests.at("memory").value, "2Gi");
  EXPECT_EQ(b.resources.limits.at("memory").value, "8Gi");
  EXPECT_EQ(b.kvm_resource, "devices.kubevirt.io/kvm");
  EXPECT_THAT(b.nix_options, ::testing::ElementsAre("sandbox=false", "substituters="));
  EXPECT_TRUE(parsed->options.allow_local_flakes);
  EXPECT_FALSE(ParseCommandLine({})->options.allow_local_flakes);
}

TEST(ParseDurationTest, AcceptsTheUsualForms) {
  EXPECT_EQ(*ParseDuration("500ms"), milliseconds(500));
  EXPECT_EQ(*ParseDuration("30s"), milliseconds(30000));
  EXPECT_EQ(*ParseDuration("2m"), milliseconds(120000));
  EXPECT_EQ(*ParseDuration("1h"), milliseconds(3600000));
  EXPECT_EQ(*ParseDuration("1m30s"), milliseconds(90000));
  EXPECT_EQ(*ParseDuration("1h2m3s4ms"), milliseconds(3723004));
  EXPECT_EQ(*ParseDuration("1.5s"), milliseconds(1500));
  EXPECT_EQ(*ParseDuration("0"), milliseconds(0));
  EXPECT_EQ(*ParseDuration("0s"), milliseconds(0));
}

TEST(ParseDurationTest, RejectsWhatIsNotADuration) {
  for (const char* text : {"", "30", "s", "30x", "30 s", "-1s", "+1s", "1..5s", "1s30", "1e3ms",
                           "ms500", "9999999h"}) {
    EXPECT_EQ(ParseDuration(text).status().code(), Code::kInvalid) << text;
  }
}

TEST(FormatDurationTest, PrintsWhatParseDurationReadsBack) {
  EXPECT_EQ(FormatDuration(milliseconds(500)), "500ms");
  EXPECT_EQ(FormatDuration(milliseconds(30000)), "30s");
  EXPECT_EQ(FormatDuration(milliseconds(120000)), "2m");
  EXPECT_EQ(FormatDuration(milliseconds(5400000)), "1h30m");
  EXPECT_EQ(FormatDuration(milliseconds(0)), "0s");
  for (long long ms : {1LL, 999LL, 1001LL, 61001LL, 3723004LL}) {
    EXPECT_EQ(*ParseDuration(FormatDuration(milliseconds(ms))), milliseconds(ms)) << ms;
  }
}

TEST(DescribeOptionsTest, NamesTheSettingsThatShapeTheRun) {
  OperatorOptions o =
      Parse({"--namespace=infra", "--leader-elect", "--leader-election-namespace=ops",
             "--probe-networks=10.0.0.0/8", "--inventory-period=45s"});
  const std::string line = DescribeOptions(o);
  EXPECT_THAT(line, HasSubstr("namespace=infra"));
  EXPECT_THAT(line, HasSubstr("lease=ops/nixmox-operator"));
  EXPECT_THAT(line, HasSubstr("probe-networks=10.0.0.0/8"));
  EXPECT_THAT(line, HasSubstr("inventory-period=45s"));
  EXPECT_THAT(DescribeOptions(Parse({})), HasSubstr("namespace=<all>"));
}

class PodNamespaceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = (fs::temp_directory_path() / "nixmox-operator-XXXXXX").string();
    ASSERT_NE(mkdtemp(pattern.data()), nullptr);
    dir_ = pattern;
  }
  void TearDown() override { fs::remove_all(dir_); }
  fs::path dir_;
};

TEST_F(PodNamespaceTest, ReadsTheServiceAccountNamespace) {
  std::ofstream(dir_ / "namespace") << "nixmox-system\n";
  EXPECT_EQ(PodNamespace(dir_ / "namespace"), "nixmox-system");
}

TEST_F(PodNamespaceTest, FallsBackToDefaultOutsideACluster) {
  EXPECT_EQ(PodNamespace(dir_ / "absent"), "default");
  std::ofstream(dir_ / "empty") << "";
  EXPECT_EQ(PodNamespace(dir_ / "empty"), "default");
}

}  // namespace
}  // namespace nixmox::cmd
