// The nixmox-operator command line: every flag, its default and its checks.
// Parsing is pure (no environment, no files) so that tests cover it whole;
// main resolves the defaults that depend on where the process runs.
#pragma once

#include <chrono>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "src/common/logging.h"
#include "src/common/status.h"
#include "src/controllers/reachability.h"
#include "src/nix/job.h"

namespace nixmox::cmd {

struct OperatorOptions {
  std::string kubeconfig;       // "": in-cluster config, else $KUBECONFIG, else ~/.kube/config
  std::string watch_namespace;  // "": all namespaces
  bool leader_elect = false;
  std::string leader_election_namespace;  // "": the pod's namespace (PodNamespace)
  std::string leader_election_id = "nixmox-operator";
  std::string metrics_bind_address = "127.0.0.1:8080";  // kDisabled: no server
  std::string health_probe_bind_address = "0.0.0.0:8081";
  int max_concurrent_reconciles = 4;
  int proxmox_max_inflight = 8;  // 0: no cap on spec.maxConcurrentRequests
  // Unset: each ProxmoxCluster's spec.inventoryPeriodSeconds.
  std::optional<std::chrono::milliseconds> inventory_period;
  std::chrono::milliseconds agent_period{std::chrono::seconds(60)};
  std::chrono::milliseconds agent_retry{std::chrono::seconds(5)};
  std::chrono::milliseconds task_poll{std::chrono::seconds(2)};
  std::vector<controllers::Cidr> probe_networks;  // empty: every address may be probed
  LogOptions log;
  // NixImage builder Jobs (--builder-*): image, command, resources, KVM, and
  // nix.conf options every build gets; --allow-local-flakes.
  nix::BuilderDefaults builder;
  bool allow_local_flakes = false;
  std::chrono::milliseconds graceful_shutdown{std::chrono::seconds(30)};
};

// A bind address of "0" turns that server off.
inline constexpr std::string_view kDisabled = "0";

struct CommandLine {
  bool help = false;  // --help: print Usage() and exit 0
  OperatorOptions options;
};

// `args` without the program name. Accepts "--flag value" and "--flag=value";
// a boolean flag takes no separate value ("--leader-elect", "--leader-elect=false").
// Invalid, naming the flag, for an unknown flag, a missing value or a bad one.
Result<CommandLine> ParseCommandLine(const std::vector<std::string>& args);

std::string Usage();

// Go's duration syntax restricted to what operators write: one or more
// <number><unit> terms with units h, m, s, ms ("500ms", "30s", "2m", "1m30s",
// "1.5s"), or a bare "0".
Result<std::chrono::milliseconds> ParseDuration(std::string_view text);
// The shortest form ParseDuration reads back: "500ms", "30s", "2m", "1h30m".
std::string FormatDuration(std::chrono::milliseconds d);

// The settings in one line for the start-up log (nothing secret is in them).
std::string DescribeOptions(const OperatorOptions& options);

// The namespace the pod runs in, read from the service account mount;
// "default" when the file is absent or empty (running outside a cluster).
std::string PodNamespace(
    const std::filesystem::path& file = "/var/run/secrets/kubernetes.io/serviceaccount/namespace");

}  // namespace nixmox::cmd
