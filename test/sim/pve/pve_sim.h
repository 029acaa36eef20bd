// pve-sim: an in-process model of a Proxmox VE 8.4 cluster behind its HTTP API.
//
// PveSim::Handle takes one HTTP request (as http::StartServer delivers it) and
// returns the response Proxmox VE would give: /api2/json paths, the {"data":...}
// envelope, 400/401/500/501 with the real texts, UPID tasks with durations, VM
// locks, storage, guest agent. Paths under /_sim/ are the simulator's own admin
// endpoints (faults, request counters, reset). See README.md for what is and
// is not modelled.
//
// Time comes from the Clock: before each request (and on Tick()) the world is
// advanced, finishing tasks whose end time has passed. Thread-safe: Handle and
// Tick may be called from many threads; state sits behind one mutex, and the
// only sleeps (401 delay, injected latency) happen outside it through
// Options::sleep.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "src/common/clock.h"
#include "src/common/status.h"
#include "src/http/http.h"

namespace nixmox::pvesim {

struct Options {
  std::vector<std::string> nodes = {"pve1"};
  // API tokens accepted, each "USER@REALM!TOKENID=SECRET".
  std::vector<std::string> tokens;
  // Storages on every node besides `local` (dir: iso,import,vztmpl) and
  // `local-lvm` (lvmthin: images,rootdir), each "NAME:TYPE:CONTENT1;CONTENT2[:GiB]"
  // with TYPE dir or lvmthin.
  std::vector<std::string> extra_storages;
  // Base task duration and the delay from VM start until the guest agent answers.
  std::chrono::milliseconds task_duration{1000};
  std::chrono::milliseconds boot_delay{5000};
  // Extra import time per GiB of source virtual size.
  std::chrono::milliseconds import_per_gib{2000};
  // How long an allocation may queue for a storage's lock before its task fails.
  std::chrono::milliseconds storage_lock_timeout{10000};
  // Every simulated duration above is divided by this (10 = ten times faster).
  double time_scale = 1.0;
  // pvestatd's broadcast period: /cluster/resources shows a guest's status this
  // long after it changed ("unknown" for new guests). PVE: 10 s. 0 = live.
  std::chrono::milliseconds resources_lag{0};
  // Real (unscaled) delay before a 401 answer, as pveproxy does.
  std::chrono::milliseconds auth_fail_delay{3000};
  std::uint64_t seed = 1;
  // Probability that an API request fails (500, 596 or dropped) and that a task fails.
  double fault_rate = 0.0;
  std::string guest_ipv4_cidr = "10.99.0.0/16";
  std::string guest_public_ipv4_cidr;  // empty: guests get no public IPv4
  std::string guest_ipv6_cidr = "fd99::/64";
  // When set, the world is loaded from here at start; Tick() and Save() write it
  // (atomically, via rename) when it changed.
  std::string state_file;
  // When set, one line per API request is appended here (flushed by Tick()):
  // wall time in seconds with microseconds, method, path template, path, the
  // request's vmid parameter (from the path, query or body; "-" when none),
  // the answer's status and the injected fault ("error", "timeout", "drop" or
  // "-"), tab-separated. Never a header or another parameter.
  std::string request_log;
  // PVE >= 8.3 (libpve-http-server-perl 5.2.0) also puts errors in a "message" body field.
  bool message_in_body = true;
  // Every number in "data" is sent as a JSON string (Perl's typing is not
  // reliable: vmid, disk, memory... are seen as strings in the wild).
  bool stringly_numbers = false;
  // How the simulator waits (401 delay, injected latency). Tests replace it.
  std::function<void(std::chrono::milliseconds)> sleep;
};

class PveSim {
 public:
  // Invalid for bad options (no nodes, malformed token or CIDR, unreadable state file).
  // `clock` must outlive the simulator.
  static Result<std::unique_ptr<PveSim>> Create(Options options, Clock& clock);
  ~PveSim();

  http::ServerResponse Handle(const http::ServerRequest& request);

  // Advances the world to the clock's now and saves state if it changed.
  void Tick();

  // Writes the state file now (no-op without one).
  Status Save();

  class Impl;

 private:
  explicit PveSim(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace nixmox::pvesim
