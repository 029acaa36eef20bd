// A VM's addresses from the guest agent, classified for status.ipAddresses,
// and the choice of status.primaryIP. Pure functions; any thread.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "src/api/types.h"
#include "src/proxmox/types.h"

namespace nixmox::controllers {

// Every address of every interface, in the agent's order, except loopback
// (the "lo" interface, 127.0.0.0/8, ::1), link-local (169.254.0.0/16,
// fe80::/10), unspecified and unparseable ones. Family from the address
// itself; scope Private for RFC 1918, 100.64.0.0/10 (CGNAT) and fc00::/7
// (ULA), Public otherwise. reachable is false: probing is the caller's.
std::vector<api::VmAddress> ClassifyAddresses(const std::vector<proxmox::GuestInterface>& ifaces);

// Whether `address` is an IPv4 or IPv6 literal, and which.
std::optional<api::AddressFamily> FamilyOf(std::string_view address);

// How a probe of one address went.
// kUnknown: never probed (outside --probe-networks, or probing off);
// kPending: its first probe has not answered yet, so it cannot be chosen.
enum class Probe { kReachable, kUnreachable, kUnknown, kPending };

// The primary IP: the first reachable address of the preferred family, else
// the first reachable one of the other; when none is reachable, the first
// address never probed (outside --probe-networks, or probing off), in the
// same preference order; "" when nothing qualifies. An address that was
// probed and failed, or whose first probe is under way, is never chosen.
// `probes[i]` is about `addresses[i]`.
std::string SelectPrimary(const std::vector<api::VmAddress>& addresses,
                          const std::vector<Probe>& probes, api::AddressFamily preferred);

}  // namespace nixmox::controllers
