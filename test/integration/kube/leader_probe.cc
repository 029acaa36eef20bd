// kube-leader-probe: runs one LeaderElector against a real API server and
// prints what it does, one line each, prefixed with the wall-clock time in
// microseconds so a test can order the lines of several processes:
//   <us> LEADING <id>     it acquired the lease
//   <us> STOPPED <id>     it stopped leading (printed before the lease is released)
//   <us> RELEASED <id>    it released the lease (after SIGTERM/SIGINT)
//   <us> LOST <id>        the renew deadline passed without a renewal
// Usage: kube-leader-probe KUBECONFIG NAMESPACE LEASE IDENTITY LEASE_MS RENEW_MS RETRY_MS
#include <chrono>
#include <cstdio>
#include <string>

#include "src/kube/config.h"
#include "src/kube/leader_election.h"
#include "src/kube/manager.h"
#include "src/kube/rest_client.h"
#include "src/kube/stop.h"

namespace {

void Say(const char* what, const std::string& id) {
  const auto us = std::chrono::duration_cast<std::chrono::microseconds>(
                      std::chrono::system_clock::now().time_since_epoch())
                      .count();
  std::printf("%lld %s %s\n", static_cast<long long>(us), what, id.c_str());
  std::fflush(stdout);
}

}  // namespace

int main(int argc, char** argv) {
  using namespace nixmox::kube;
  if (argc != 8) {
    std::fprintf(stderr,
                 "usage: kube-leader-probe KUBECONFIG NAMESPACE LEASE IDENTITY LEASE_MS RENEW_MS "
                 "RETRY_MS\n");
    return 2;
  }
  Stop stop;
  StopOnSignals(stop);
  auto config = LoadKubeconfig(argv[1]);
  if (!config.ok()) {
    std::fprintf(stderr, "%s\n", config.status().ToString().c_str());
    return 1;
  }
  auto client = RestClient::FromConfig(*config);
  if (!client.ok()) {
    std::fprintf(stderr, "%s\n", client.status().ToString().c_str());
    return 1;
  }
  const std::string id = argv[4];
  LeaderElectionConfig c;
  c.lease_duration = std::chrono::milliseconds(std::stoll(argv[5]));
  c.renew_deadline = std::chrono::milliseconds(std::stoll(argv[6]));
  // A renewal must give up before the renew deadline does.
  auto lease_client = (*client)->WithTimeout(c.renew_deadline / 2);
  auto lock = NewLeaseLock(*lease_client, argv[2], argv[3]);
  c.lock = lock.get();
  c.identity = id;
  c.retry_period = std::chrono::milliseconds(std::stoll(argv[7]));
  c.release_on_cancel = false;  // released below, after STOPPED is printed
  auto elector = LeaderElector::New(c);
  if (!elector.ok()) {
    std::fprintf(stderr, "%s\n", elector.status().ToString().c_str());
    return 1;
  }
  bool led = false;
  (*elector)->Run(
      stop,
      [&] {
        led = true;
        Say("LEADING", id);
      },
      [&] {
        Say("STOPPED", id);
        if (!stop.requested()) Say("LOST", id);
      });
  if (led && stop.requested()) {
    if ((*elector)->Release().ok()) Say("RELEASED", id);
  }
  return 0;
}
