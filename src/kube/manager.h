// Manager: wires informers, controllers and leader election, and runs them
// until asked to stop. Caches run on every replica; controllers run only on
// the leader. On stop (SIGTERM/SIGINT) it stops taking work, lets in-flight
// reconciles finish within the grace period, then releases the lease (left to
// expire instead when some are still running past the grace period). A lost
// lease stops every controller at once and Run returns an error, so the
// process exits and restarts as a follower.
#pragma once

#include <prometheus/registry.h>

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "src/common/clock.h"
#include "src/common/status.h"
#include "src/kube/cache_reader.h"
#include "src/kube/client.h"
#include "src/kube/controller.h"
#include "src/kube/informer.h"
#include "src/kube/leader_election.h"
#include "src/kube/stop.h"

namespace nixmox::kube {

struct LeaderElectionOptions {
  std::string lease_namespace;
  std::string lease_name;
  std::string identity;
  std::chrono::milliseconds lease_duration{15000};
  std::chrono::milliseconds renew_deadline{10000};
  std::chrono::milliseconds retry_period{2000};
};

struct ManagerOptions {
  Client* client = nullptr;  // must outlive the manager
  // For the Lease; `client` when null. Give it a request timeout below the renew
  // deadline (RestClient::WithTimeout) so a hung renewal cannot outlast it.
  Client* lease_client = nullptr;
  Clock* clock = nullptr;                                // RealClock() when null
  std::optional<LeaderElectionOptions> leader_election;  // none: always lead
  std::chrono::milliseconds graceful_shutdown{30000};
  prometheus::Registry* registry = nullptr;  // controller and queue metrics
};

class Manager {
 public:
  explicit Manager(ManagerOptions options);
  ~Manager();

  // Setup, before Run; not thread-safe. One informer per resource type (a
  // second call returns the first). ns "" caches all namespaces.
  Informer& AddInformer(const ResourceType& type, std::string ns = "",
                        InformerOptions options = {});
  Controller& AddController(std::string name, Reconciler& reconciler,
                            ControllerOptions options = {});

  // Reads from the informer caches; writes go straight to the API server.
  Reader& reader() { return cache_; }
  // The same cache, with its index lookups (ByIndex).
  CacheReader& cache() { return cache_; }
  Writer& writer() { return *options_.client; }

  // Blocks until `stop` is requested (OK) or leadership is lost (Cancelled),
  // after a graceful shutdown either way. Once.
  Status Run(const Stop& stop);

  bool leading() const { return leading_.load(); }

 private:
  void StartControllers();
  // Stops every queue at once, then waits for in-flight reconciles until the deadline.
  bool StopControllers();

  ManagerOptions options_;
  Clock& clock_;
  CacheReader cache_;
  std::vector<std::unique_ptr<Informer>> informers_;
  std::vector<std::unique_ptr<Controller>> controllers_;
  std::unique_ptr<LeaseLock> lease_lock_;
  std::unique_ptr<LeaderElector> elector_;
  std::atomic<bool> leading_{false};
};

// Requests `stop` on the first SIGTERM or SIGINT; a second one exits at once.
// Call from main before any other thread starts (it blocks the signals so that
// only its own thread receives them). `stop` must live until exit.
void StopOnSignals(Stop& stop);

}  // namespace nixmox::kube
