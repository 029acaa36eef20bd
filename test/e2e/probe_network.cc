#include "test/e2e/probe_network.h"

#include <unistd.h>

#include <atomic>
#include <regex>

#include "test/support/subprocess.h"

namespace nixmox::e2e {
namespace {

using testing::CommandResult;
using testing::RunCommand;

CommandResult NetNs(std::vector<std::string> args) {
  args.insert(args.begin(), {"bash", NIXMOX_NETNS_SCRIPT});
  return RunCommand(args, std::chrono::seconds(30));
}

Status Check(const CommandResult& r, const std::string& what) {
  if (r.exit_code == 0) return Status();
  return InternalError("netns.sh " + what + " failed (exit " + std::to_string(r.exit_code) +
                       "): " + r.output);
}

}  // namespace

std::string ProbeNetwork::Unavailable() {
  const CommandResult r = NetNs({"check"});
  return r.exit_code == 0 ? "" : r.output;
}

Result<std::unique_ptr<ProbeNetwork>> ProbeNetwork::Create() {
  static std::atomic<int> count{0};
  std::unique_ptr<ProbeNetwork> net(
      new ProbeNetwork("nixmox-e2e-" + std::to_string(getpid()) + "-" + std::to_string(++count)));
  const CommandResult up = NetNs({"up", net->name_});
  RETURN_IF_ERROR(Check(up, "up"));
  std::smatch m;
  if (!std::regex_search(up.output, m, std::regex(R"(ipv4=(\S+) ipv6=(\S+))"))) {
    return InternalError("netns.sh up printed no ranges: " + up.output);
  }
  net->ipv4_cidr_ = m[1];
  net->ipv6_cidr_ = m[2];
  return net;
}

ProbeNetwork::~ProbeNetwork() { NetNs({"down", name_}); }

Status ProbeNetwork::AddAddresses(const std::vector<std::string>& addresses) {
  std::vector<std::string> args = {"add", name_};
  args.insert(args.end(), addresses.begin(), addresses.end());
  return Check(NetNs(args), "add");
}

Status ProbeNetwork::Listen(int port) {
  return Check(NetNs({"listen", name_, std::to_string(port)}), "listen");
}

}  // namespace nixmox::e2e
