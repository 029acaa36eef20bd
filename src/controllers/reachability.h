// Reachability of a VM's addresses, probed from the operator with a TCP
// connect to the probe port. Probes never run on a reconcile worker: Check
// answers from what is known and schedules a probe in the background; when
// it finishes, the requester is told (its key is enqueued again).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "src/common/clock.h"
#include "src/common/status.h"

namespace nixmox::controllers {

// An IPv4 or IPv6 network, "10.0.0.0/8" or "fd00::/8".
struct Cidr {
  std::vector<std::uint8_t> address;  // 4 or 16 bytes, host bits cleared
  int prefix = 0;
  bool Contains(std::string_view ip) const;  // false for unparseable text
  std::string ToString() const;
};
Result<Cidr> ParseCidr(std::string_view text);
// Comma-separated; empty text = no entries.
Result<std::vector<Cidr>> ParseCidrList(std::string_view text);

class Prober {
 public:
  virtual ~Prober() = default;
  // The last result for address:port when younger than `max_age`; otherwise a
  // probe is scheduled (one at a time per target) and the last result, if
  // any, is returned. Addresses outside the allowed networks are never probed
  // (nullopt, always). When a scheduled probe finishes, `on_done` is called
  // from the prober's thread.
  virtual std::optional<bool> Check(const std::string& address, int port,
                                    std::chrono::milliseconds timeout,
                                    std::chrono::milliseconds max_age,
                                    std::function<void()> on_done) = 0;
  // Whether `address` is in the allowed networks.
  virtual bool Allowed(std::string_view address) const = 0;
};

struct TcpProberOptions {
  std::vector<Cidr> allowed;  // empty: every address
  int threads = 4;
  const Clock* clock = nullptr;  // RealClock() when null
};
std::unique_ptr<Prober> NewTcpProber(TcpProberOptions options);

}  // namespace nixmox::controllers
