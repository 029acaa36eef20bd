#include "src/controllers/addresses.h"

#include <arpa/inet.h>

#include <algorithm>

#include "src/controllers/reachability.h"

namespace nixmox::controllers {
namespace {

std::vector<Cidr> Networks(std::initializer_list<std::string_view> texts) {
  std::vector<Cidr> out;
  for (std::string_view text : texts) out.push_back(ParseCidr(text).value());
  return out;
}

// Addresses that say nothing about where the VM can be reached.
const std::vector<Cidr>& Unusable() {
  static const std::vector<Cidr> kNetworks = Networks({
      "0.0.0.0/32", "::/128",         // unspecified
      "127.0.0.0/8", "::1/128",       // loopback
      "169.254.0.0/16", "fe80::/10",  // link-local
  });
  return kNetworks;
}

const std::vector<Cidr>& Private() {
  static const std::vector<Cidr> kNetworks = Networks({
      "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16",  // RFC 1918
      "100.64.0.0/10",                                  // carrier-grade NAT (RFC 6598)
      "fc00::/7",                                       // unique local (RFC 4193)
  });
  return kNetworks;
}

bool InAny(const std::vector<Cidr>& networks, std::string_view address) {
  return std::any_of(networks.begin(), networks.end(),
                     [&](const Cidr& cidr) { return cidr.Contains(address); });
}

// The address as inet_ntop prints it (IPv6 lower case and shortened), or
// nullopt when it does not parse.
std::optional<std::string> Canonical(std::string_view address) {
  const std::string text(address);
  unsigned char bytes[16];
  char printed[INET6_ADDRSTRLEN];
  for (int af : {AF_INET, AF_INET6}) {
    if (inet_pton(af, text.c_str(), bytes) == 1 &&
        inet_ntop(af, bytes, printed, sizeof(printed)) != nullptr) {
      return std::string(printed);
    }
  }
  return std::nullopt;
}

}  // namespace

std::optional<api::AddressFamily> FamilyOf(std::string_view address) {
  const std::string text(address);
  unsigned char bytes[16];
  if (inet_pton(AF_INET, text.c_str(), bytes) == 1) return api::AddressFamily::kIPv4;
  if (inet_pton(AF_INET6, text.c_str(), bytes) == 1) return api::AddressFamily::kIPv6;
  return std::nullopt;
}

std::vector<api::VmAddress> ClassifyAddresses(const std::vector<proxmox::GuestInterface>& ifaces) {
  std::vector<api::VmAddress> out;
  for (const proxmox::GuestInterface& iface : ifaces) {
    if (iface.name == "lo") continue;
    for (const proxmox::GuestIpAddress& ip : iface.ip_addresses) {
      const std::optional<std::string> address = Canonical(ip.address);
      if (!address || InAny(Unusable(), *address)) continue;
      api::VmAddress entry;
      entry.address = *address;
      entry.family = *FamilyOf(*address);
      entry.scope =
          InAny(Private(), *address) ? api::AddressScope::kPrivate : api::AddressScope::kPublic;
      entry.interface_name = iface.name;
      out.push_back(std::move(entry));
    }
  }
  return out;
}

std::string SelectPrimary(const std::vector<api::VmAddress>& addresses,
                          const std::vector<Probe>& probes, api::AddressFamily preferred) {
  const auto probe_of = [&](std::size_t i) {
    return i < probes.size() ? probes[i] : Probe::kUnknown;
  };
  // The first address with the given probe result, preferred family first.
  const auto first = [&](Probe wanted) -> const api::VmAddress* {
    const api::VmAddress* other = nullptr;
    for (std::size_t i = 0; i < addresses.size(); ++i) {
      if (probe_of(i) != wanted) continue;
      if (addresses[i].family == preferred) return &addresses[i];
      if (other == nullptr) other = &addresses[i];
    }
    return other;
  };
  for (Probe wanted : {Probe::kReachable, Probe::kUnknown}) {
    if (const api::VmAddress* chosen = first(wanted)) return chosen->address;
  }
  return "";
}

}  // namespace nixmox::controllers
