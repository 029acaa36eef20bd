// An http::Client that hands each request straight to a PveSim in the same
// process: no socket, no thread, time from the simulator's clock. Unit tests
// of code above src/proxmox (the controllers) put the real PveClient on top
// of it, so they run against pve-sim's semantics with a FakeClock.
#pragma once

#include "src/http/http.h"
#include "test/sim/pve/pve_sim.h"

namespace nixmox::pvesim {

class InProcessClient final : public http::Client {
 public:
  // `sim` must outlive the client.
  explicit InProcessClient(PveSim& sim) : sim_(sim) {}

  Result<http::Response> Send(const http::Request& request) override;
  // pve-sim never streams: the whole body is split into lines.
  Result<http::Response> Stream(const http::Request& request,
                                const std::function<bool(std::string_view)>& on_line) override;

 private:
  PveSim& sim_;
};

}  // namespace nixmox::pvesim
