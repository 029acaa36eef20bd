// A test world for the controllers, all in memory: a FakeClock, pve-sim
// in-process behind the real PveClient, and kube::FakeClient. Time moves only
// when a test advances it; pve-sim's tasks finish by that clock.
#pragma once

#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "src/common/clock.h"
#include "src/proxmox/client.h"
#include "test/sim/pve/in_process_client.h"
#include "test/sim/pve/pve_sim.h"

namespace nixmox::controllers::testing {

inline constexpr char kTokenId[] = "nixmox@pve!operator";
inline constexpr char kTokenSecret[] = "5f0a3c1e-8d2b-4c7a-9e61-2b4d8f0c7a13";

struct SimWorldOptions {
  std::vector<std::string> nodes = {"pve1", "pve2", "pve3"};
  std::chrono::milliseconds task_duration{1000};
  std::chrono::milliseconds boot_delay{5000};
};

class SimWorld {
 public:
  explicit SimWorld(SimWorldOptions options = {}) {
    pvesim::Options sim;
    sim.nodes = options.nodes;
    sim.tokens = {std::string(kTokenId) + "=" + kTokenSecret};
    sim.task_duration = options.task_duration;
    sim.boot_delay = options.boot_delay;
    sim.auth_fail_delay = std::chrono::milliseconds(0);
    sim.sleep = [](std::chrono::milliseconds) {};
    auto created = pvesim::PveSim::Create(sim, clock);
    EXPECT_TRUE(created.ok()) << created.status().ToString();
    sim_ = std::move(created).value();
  }

  // A PveClient for the simulator; `secret` other than the real one fails auth.
  std::unique_ptr<proxmox::PveClient> NewClient(std::string secret = kTokenSecret) {
    proxmox::PveClientOptions options;
    options.token = proxmox::ApiToken(kTokenId, std::move(secret));
    options.clock = &clock;
    options.sleeper = [](std::chrono::nanoseconds) {};
    options.retry.max_attempts = 1;
    options.jitter_seed = 1;
    return proxmox::NewPveClient(std::move(options),
                                 std::make_shared<pvesim::InProcessClient>(*sim_));
  }

  // Moves time on and lets pve-sim finish what is due.
  void Advance(std::chrono::milliseconds d) {
    clock.Advance(d);
    sim_->Tick();
  }

  pvesim::PveSim& sim() { return *sim_; }

  FakeClock clock;

 private:
  std::unique_ptr<pvesim::PveSim> sim_;
};

}  // namespace nixmox::controllers::testing
