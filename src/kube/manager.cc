#include "src/kube/manager.h"

#include <pthread.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <csignal>
#include <cstdlib>

namespace nixmox::kube {

Manager::Manager(ManagerOptions options)
    : options_(std::move(options)), clock_(options_.clock ? *options_.clock : RealClock()) {}

Manager::~Manager() = default;

Informer& Manager::AddInformer(const ResourceType& type, std::string ns, InformerOptions options) {
  for (auto& inf : informers_) {
    if (inf->type() == type) return *inf;
  }
  if (!options.clock) options.clock = &clock_;
  if (options.reflector.name == "reflector") options.reflector.name = type.resource;
  informers_.push_back(
      std::make_unique<Informer>(*options_.client, type, std::move(ns), std::move(options)));
  cache_.Register(*informers_.back());
  return *informers_.back();
}

Controller& Manager::AddController(std::string name, Reconciler& reconciler,
                                   ControllerOptions options) {
  if (!options.clock) options.clock = &clock_;
  if (!options.registry) options.registry = options_.registry;
  controllers_.push_back(
      std::make_unique<Controller>(std::move(name), reconciler, std::move(options)));
  return *controllers_.back();
}

void Manager::StartControllers() {
  for (auto& c : controllers_) c->Start();
}

bool Manager::StopControllers() {
  for (auto& c : controllers_) c->queue().ShutDown();
  const auto deadline = std::chrono::steady_clock::now() + options_.graceful_shutdown;
  bool all = true;
  for (auto& c : controllers_) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (!c->Stop(std::max(left, std::chrono::milliseconds(0)))) {
      spdlog::warn("{}: {} reconciles still running after the grace period", c->name(),
                   c->in_flight());
      all = false;
    }
  }
  return all;
}

Status Manager::Run(const Stop& stop) {
  // Informers have their own stop: they outlive the controllers during shutdown.
  Stop informers_stop;
  std::vector<std::thread> threads;
  for (auto& inf : informers_) {
    threads.emplace_back([&, i = inf.get()] { i->Run(informers_stop); });
  }
  auto finish = [&](Status result) {
    informers_stop.Request();
    for (auto& t : threads) t.join();
    return result;
  };

  // Stops the wait below when the outer stop fires.
  Stop any;
  std::thread relay([&] {
    while (!any.requested()) {
      if (stop.WaitFor(std::chrono::milliseconds(100))) any.Request();
    }
  });
  auto finish_relay = [&](Status result) {
    any.Request();
    relay.join();
    return finish(std::move(result));
  };

  for (auto& inf : informers_) {
    if (!inf->WaitForSync(any)) return finish_relay(CancelledError("stopped before caches synced"));
  }
  spdlog::info("caches synced ({} informers)", informers_.size());

  if (!options_.leader_election) {
    leading_ = true;
    StartControllers();
    stop.Wait();
    StopControllers();
    leading_ = false;
    return finish_relay(OkStatus());
  }

  const auto& le = *options_.leader_election;
  Client& lease_client = options_.lease_client ? *options_.lease_client : *options_.client;
  lease_lock_ = NewLeaseLock(lease_client, le.lease_namespace, le.lease_name);
  LeaderElectionConfig config;
  config.lock = lease_lock_.get();
  config.identity = le.identity;
  config.lease_duration = le.lease_duration;
  config.renew_deadline = le.renew_deadline;
  config.retry_period = le.retry_period;
  config.release_on_cancel = false;  // released below, after in-flight work finished
  config.clock = &clock_;
  auto elector = LeaderElector::New(config);
  if (!elector.ok()) return finish_relay(elector.status());
  elector_ = std::move(*elector);

  bool lost = false;
  elector_->Run(
      stop,
      [&] {
        leading_ = true;
        StartControllers();
      },
      [&] {
        if (!stop.requested()) lost = true;
        // Every queue stops at once; nothing new starts after the lease is gone.
        for (auto& c : controllers_) c->queue().ShutDown();
      });
  const bool was_leading = leading_.load();
  const bool finished = StopControllers();
  leading_ = false;
  if (was_leading && !lost && !finished) {
    // Reconciles still running may still write: let the lease expire instead of
    // handing it to a new leader that would work alongside them.
    spdlog::warn("not releasing the leader lease: reconciles still running");
  } else if (was_leading && !lost) {
    if (Status s = elector_->Release(); !s.ok()) {
      spdlog::warn("releasing the leader lease: {}", s.ToString());
    } else {
      spdlog::info("released the leader lease");
    }
  }
  if (lost) return finish_relay(CancelledError("leadership lost"));
  return finish_relay(OkStatus());
}

void StopOnSignals(Stop& stop) {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  // Create spdlog's default logger before the thread that logs from it exists.
  spdlog::default_logger_raw();
  std::thread([set, &stop] {
    int signal = 0;
    int count = 0;
    while (sigwait(&set, &signal) == 0) {
      if (++count > 1) {
        spdlog::warn("second signal {}: exiting now", signal);
        std::_Exit(1);
      }
      spdlog::info("signal {}: shutting down", signal);
      stop.Request();  // last touch of `stop`: main may return and destroy it now
    }
  }).detach();
}

}  // namespace nixmox::kube
