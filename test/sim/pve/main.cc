// pve-sim: serves the Proxmox VE API simulator over HTTP(S).
// Prints its URL on stdout when ready, then runs until SIGINT/SIGTERM.
#include <atomic>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <string>
#include <thread>

#include "src/common/clock.h"
#include "src/http/http.h"
#include "test/sim/pve/pve_sim.h"

namespace {

constexpr const char* kUsage = R"(usage: pve-sim [flags]
  --listen HOST:PORT            address to listen on (default 127.0.0.1:8006; port 0 = any free)
  --nodes pve1,pve2             cluster node names (default pve1)
  --token USER@REALM!ID=SECRET  accepted API token (repeatable)
  --storage NAME:TYPE:C1;C2[:GiB] extra storage on every node (TYPE dir|lvmthin; repeatable)
  --tls-cert FILE --tls-key FILE  serve HTTPS
  --task-ms N                   base task duration (default 1000)
  --boot-ms N                   start -> guest agent answers (default 5000)
  --import-ms-per-gib N         import time per GiB of source (default 2000)
  --storage-lock-timeout-ms N   storage allocation lock timeout (default 10000)
  --time-scale F                divide every simulated duration by F (default 1)
  --resources-lag-ms N          /cluster/resources status lag like pvestatd (PVE: 10000; default 0)
  --auth-fail-delay-ms N        delay of 401 answers (default 3000, not scaled)
  --seed N                      seed for MACs, UUIDs, guest IPs, faults (default 1)
  --fault-rate F                probability of a failed request / failed task (default 0)
  --guest-ipv4-cidr CIDR        private guest IPv4 range (default 10.99.0.0/16)
  --guest-public-ipv4-cidr CIDR public guest IPv4 range (default none)
  --guest-ipv6-cidr CIDR        global guest IPv6 range (default fd99::/64)
  --state-file PATH             load the world from PATH and save it there on change
  --request-log PATH            append one line per API request: time, method, template,
                                path, vmid, status, injected fault (for benchmarks)
  --stringly-numbers            send every number in "data" as a string (client robustness)
  --no-message-field            mimic PVE < 8.3: errors only in the reason phrase
)";

std::vector<std::string> SplitComma(const std::string& s) {
  std::vector<std::string> out;
  size_t pos = 0;
  while (pos <= s.size()) {
    size_t comma = s.find(',', pos);
    if (comma == std::string::npos) comma = s.size();
    if (comma > pos) out.push_back(s.substr(pos, comma - pos));
    pos = comma + 1;
  }
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  using nixmox::pvesim::Options;
  Options opt;
  nixmox::http::ServerOptions server;
  server.listen = "127.0.0.1:8006";
  for (int i = 1; i < argc; ++i) {
    std::string flag = argv[i];
    std::string value;
    const bool boolean = flag == "--no-message-field" || flag == "--stringly-numbers" ||
                         flag == "--help" || flag == "-h";
    if (const size_t eq = flag.find('='); eq != std::string::npos) {
      value = flag.substr(eq + 1);
      flag = flag.substr(0, eq);
    } else if (!boolean) {
      if (i + 1 >= argc) {
        std::cerr << "pve-sim: " << flag << " needs a value\n" << kUsage;
        return 2;
      }
      value = argv[++i];
    }
    try {
      if (flag == "--help" || flag == "-h") {
        std::cout << kUsage;
        return 0;
      } else if (flag == "--listen") {
        server.listen = value;
      } else if (flag == "--nodes") {
        opt.nodes = SplitComma(value);
      } else if (flag == "--token") {
        opt.tokens.push_back(value);
      } else if (flag == "--storage") {
        opt.extra_storages.push_back(value);
      } else if (flag == "--tls-cert") {
        server.tls_cert_file = value;
      } else if (flag == "--tls-key") {
        server.tls_key_file = value;
      } else if (flag == "--task-ms") {
        opt.task_duration = std::chrono::milliseconds(std::stoll(value));
      } else if (flag == "--boot-ms") {
        opt.boot_delay = std::chrono::milliseconds(std::stoll(value));
      } else if (flag == "--import-ms-per-gib") {
        opt.import_per_gib = std::chrono::milliseconds(std::stoll(value));
      } else if (flag == "--storage-lock-timeout-ms") {
        opt.storage_lock_timeout = std::chrono::milliseconds(std::stoll(value));
      } else if (flag == "--time-scale") {
        opt.time_scale = std::stod(value);
      } else if (flag == "--resources-lag-ms") {
        opt.resources_lag = std::chrono::milliseconds(std::stoll(value));
      } else if (flag == "--auth-fail-delay-ms") {
        opt.auth_fail_delay = std::chrono::milliseconds(std::stoll(value));
      } else if (flag == "--seed") {
        opt.seed = std::stoull(value);
      } else if (flag == "--fault-rate") {
        opt.fault_rate = std::stod(value);
      } else if (flag == "--guest-ipv4-cidr") {
        opt.guest_ipv4_cidr = value;
      } else if (flag == "--guest-public-ipv4-cidr") {
        opt.guest_public_ipv4_cidr = value;
      } else if (flag == "--guest-ipv6-cidr") {
        opt.guest_ipv6_cidr = value;
      } else if (flag == "--state-file") {
        opt.state_file = value;
      } else if (flag == "--request-log") {
        opt.request_log = value;
      } else if (flag == "--stringly-numbers") {
        opt.stringly_numbers = true;
      } else if (flag == "--no-message-field") {
        opt.message_in_body = false;
      } else {
        std::cerr << "pve-sim: unknown flag " << flag << "\n" << kUsage;
        return 2;
      }
    } catch (const std::exception&) {
      std::cerr << "pve-sim: bad value for " << flag << "\n";
      return 2;
    }
  }
  if (opt.tokens.empty()) {
    std::cerr << "pve-sim: warning: no --token given, every API request will get 401\n";
  }

  // Block the stop signals before any thread starts, then wait for them here.
  sigset_t stop;
  sigemptyset(&stop);
  sigaddset(&stop, SIGINT);
  sigaddset(&stop, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop, nullptr);

  auto sim = nixmox::pvesim::PveSim::Create(opt, nixmox::RealClock());
  if (!sim.ok()) {
    std::cerr << "pve-sim: " << sim.status().ToString() << "\n";
    return 1;
  }
  nixmox::pvesim::PveSim* core = sim->get();
  auto srv = nixmox::http::StartServer(
      server, [core](const nixmox::http::ServerRequest& r) { return core->Handle(r); });
  if (!srv.ok()) {
    std::cerr << "pve-sim: " << srv.status().ToString() << "\n";
    return 1;
  }

  // Effects happen on time even when nobody asks (and the state file follows).
  std::atomic<bool> running{true};
  std::thread ticker([&] {
    while (running.load()) {
      core->Tick();
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  });

  std::cout << (*srv)->url() << std::endl;  // one line, flushed: the readiness signal

  int sig = 0;
  sigwait(&stop, &sig);
  running = false;
  ticker.join();
  (*srv)->Stop();
  if (nixmox::Status s = core->Save(); !s.ok()) std::cerr << "pve-sim: " << s.ToString() << "\n";
  return 0;
}
