// A stand-in for the guests' network that never leaves the machine: a
// network namespace behind a veth pair, with a guest IPv4 and IPv6 range
// routed into it (netns.sh does the work). Addresses added to it answer TCP
// on the listening port; every other address of the ranges stays silent.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "src/common/status.h"

namespace nixmox::e2e {

class ProbeNetwork {
 public:
  // Why this machine cannot make one (not root, no `ip netns`, no veth);
  // empty when it can.
  static std::string Unavailable();
  // Creates namespace nixmox-e2e-<pid>-<n> with a free range routed into it.
  static Result<std::unique_ptr<ProbeNetwork>> Create();
  ~ProbeNetwork();  // deletes the namespace, its listeners and its routes
  ProbeNetwork(const ProbeNetwork&) = delete;
  ProbeNetwork& operator=(const ProbeNetwork&) = delete;

  const std::string& ipv4_cidr() const { return ipv4_cidr_; }  // "10.X.0.0/16"
  const std::string& ipv6_cidr() const { return ipv6_cidr_; }  // "fd13:0:0:X::/64"

  Status AddAddresses(const std::vector<std::string>& addresses);
  // A TCP listener on `port` of every address in the namespace.
  Status Listen(int port);

 private:
  explicit ProbeNetwork(std::string name) : name_(std::move(name)) {}
  std::string name_;
  std::string ipv4_cidr_;
  std::string ipv6_cidr_;
};

}  // namespace nixmox::e2e
