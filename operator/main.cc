// nixmox-operator: runs the ProxmoxCluster and ProxmoxVM controllers in a
// kube::Manager, with leader election when asked, and serves /healthz,
// /readyz and /metrics. `nixmox-operator --help` lists the flags.
//
// Exit codes: 0 after a graceful shutdown on SIGTERM/SIGINT; 1 when the
// leader lease was lost or start-up failed; 2 for bad flags.
#include <malloc.h>
#include <prometheus/gauge.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <climits>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "operator/health.h"
#include "operator/options.h"
#include "src/common/logging.h"
#include "src/common/metrics.h"
#include "src/controllers/reachability.h"
#include "src/controllers/resources.h"
#include "src/controllers/setup.h"
#include "src/kube/config.h"
#include "src/kube/events.h"
#include "src/kube/manager.h"
#include "src/kube/rest_client.h"
#include "src/kube/stop.h"

namespace nixmox::cmd {
namespace {

constexpr int kExitFailure = 1;
constexpr int kExitUsage = 2;

// The pod name when the Deployment passes it down ($POD_NAME), else the host name.
std::string InstanceName() {
  if (const char* pod = std::getenv("POD_NAME"); pod != nullptr && *pod != '\0') return pod;
  char host[HOST_NAME_MAX + 1] = {};
  if (gethostname(host, sizeof host) != 0 || host[0] == '\0') return "nixmox-operator";
  return host;
}

// Unique per process, as client-go does it: two replicas on one host (or a
// restarted pod that kept its name) never take each other for the holder.
std::string LeaderIdentity(const std::string& instance) {
  std::random_device device;
  char suffix[9];
  std::snprintf(suffix, sizeof suffix, "%08x", device());
  return instance + "_" + suffix;
}

// The informers Controllers registers, for readiness. The Manager hands back
// the existing informer for a type it already has.
std::vector<kube::Informer*> WatchedInformers(kube::Manager& manager) {
  std::vector<kube::Informer*> informers;
  for (const kube::ResourceType& type :
       {controllers::ProxmoxClusters(), controllers::ProxmoxVms(), controllers::NixImages(),
        kube::resources::Secrets(), kube::resources::ConfigMaps()}) {
    informers.push_back(&manager.AddInformer(type));
  }
  return informers;
}

controllers::ControllersConfig ControllersConfigFrom(const OperatorOptions& options,
                                                     controllers::Prober& prober,
                                                     kube::LogReader& logs) {
  controllers::ControllersConfig config;
  config.watch_namespace = options.watch_namespace;
  config.max_concurrent_reconciles = options.max_concurrent_reconciles;
  config.cluster.max_inflight = options.proxmox_max_inflight;
  config.cluster.inventory_period = options.inventory_period;
  config.vm.prober = &prober;
  config.vm.agent_period = options.agent_period;
  config.vm.agent_retry = options.agent_retry;
  config.vm.task_poll = options.task_poll;
  config.image.builder = options.builder;
  config.image.allow_local_flakes = options.allow_local_flakes;
  config.image.logs = &logs;
  return config;
}

// glibc gives each thread that allocates under contention an arena of its
// own, up to 8 per core, and memory freed in one arena serves no other: with
// ~75 threads (HTTP pool, informers, workers) that spread cost ~5 MB of the
// operator's peak RSS. Two arenas are plenty for its allocation rate. Before
// any thread starts; MALLOC_ARENA_MAX in the environment still wins.
void LimitMallocArenas() {
  if (std::getenv("MALLOC_ARENA_MAX") == nullptr) mallopt(M_ARENA_MAX, 2);
}

// Builds everything, runs the manager until stop or a lost lease, and tears down.
Status Run(const OperatorOptions& options, const kube::Stop& stop) {
  ASSIGN_OR_RETURN(kube::Config kube_config, kube::DefaultConfig(options.kubeconfig));
  ASSIGN_OR_RETURN(std::unique_ptr<kube::RestClient> client,
                   kube::RestClient::FromConfig(kube_config));
  const std::string instance = InstanceName();

  kube::ManagerOptions manager_options;
  manager_options.client = client.get();
  manager_options.graceful_shutdown = options.graceful_shutdown;
  manager_options.registry = &MetricsRegistry();
  std::unique_ptr<kube::RestClient> lease_client;
  if (options.leader_elect) {
    kube::LeaderElectionOptions election;
    election.lease_namespace = options.leader_election_namespace;
    election.lease_name = options.leader_election_id;
    election.identity = LeaderIdentity(instance);
    // Half the renew deadline: a hung renewal leaves time for another try.
    lease_client = client->WithTimeout(election.renew_deadline / 2);
    manager_options.lease_client = lease_client.get();
    spdlog::info("leader election on lease {}/{} as {}", election.lease_namespace,
                 election.lease_name, election.identity);
    manager_options.leader_election = std::move(election);
  }
  kube::Manager manager(std::move(manager_options));

  kube::EventRecorderOptions event_options;
  event_options.instance = instance;
  kube::EventRecorder events(*client, event_options);

  controllers::TcpProberOptions prober_options;
  prober_options.allowed = options.probe_networks;
  std::unique_ptr<controllers::Prober> prober = controllers::NewTcpProber(prober_options);

  controllers::Controllers controllers(manager, events, ControllersConfigFrom(options, *prober, *client));

  prometheus::Gauge& leading = prometheus::BuildGauge()
                                   .Name("nixmox_leader_election_leading")
                                   .Help("1 while this replica runs the controllers")
                                   .Register(MetricsRegistry())
                                   .Add({});
  EndpointOptions endpoint_options;
  endpoint_options.health_address = options.health_probe_bind_address;
  endpoint_options.metrics_address = options.metrics_bind_address;
  endpoint_options.ready = [informers = WatchedInformers(manager)] {
    for (const kube::Informer* informer : informers) {
      if (!informer->HasSynced()) return false;
    }
    return true;
  };
  endpoint_options.registry = &MetricsRegistry();
  endpoint_options.before_scrape = [&] { leading.Set(manager.leading() ? 1 : 0); };
  ASSIGN_OR_RETURN(std::unique_ptr<Endpoints> endpoints, Endpoints::Start(endpoint_options));
  if (endpoints->health_url()) spdlog::info("health probes on {}", *endpoints->health_url());
  if (endpoints->metrics_url()) spdlog::info("metrics on {}/metrics", *endpoints->metrics_url());

  Status result = manager.Run(stop);
  endpoints->Stop();
  return result;
}

}  // namespace

int Main(int argc, char** argv) {
  LimitMallocArenas();
  auto command_line = ParseCommandLine(std::vector<std::string>(argv + 1, argv + argc));
  if (!command_line.ok()) {
    std::cerr << "nixmox-operator: " << command_line.status().message()
              << "\nRun 'nixmox-operator --help' for the flags.\n";
    return kExitUsage;
  }
  if (command_line->help) {
    std::cout << Usage();
    return 0;
  }
  OperatorOptions& options = command_line->options;
  if (Status s = SetupLogging(options.log); !s.ok()) {
    std::cerr << "nixmox-operator: " << s.message() << "\n";
    return kExitUsage;
  }
  if (options.leader_election_namespace.empty()) {
    options.leader_election_namespace = PodNamespace();
  }

  // Signal handling starts before any other thread; the signal thread may
  // touch `stop` until the process ends, hence static.
  static kube::Stop stop;
  kube::StopOnSignals(stop);

  spdlog::info("nixmox-operator {} starting: {}", NIXMOX_VERSION, DescribeOptions(options));
  const Status result = Run(options, stop);
  if (!result.ok()) {
    spdlog::error("nixmox-operator exiting: {}", result.ToString());
    spdlog::default_logger()->flush();
    return kExitFailure;
  }
  spdlog::info("nixmox-operator exiting after a graceful shutdown");
  spdlog::default_logger()->flush();
  return 0;
}

}  // namespace nixmox::cmd

int main(int argc, char** argv) { return nixmox::cmd::Main(argc, argv); }
