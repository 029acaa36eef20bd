// Where a new VM goes: among the cluster's allowed online nodes, the one with
// the most free memory once the placements not yet visible in the inventory
// are counted. Pure functions; any thread.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "src/common/status.h"
#include "src/proxmox/types.h"

namespace nixmox::controllers {

// `nodes`: the inventory's node entries (status "online", mem, maxmem).
// `allowed`: empty = every node. `pending`: node -> bytes promised to VMs
// placed but not yet running. Ties go to the name that sorts first.
// kRetryable (reason PlacementFailed) when no allowed node is online. A node
// short of memory is still chosen when it is the best one: Proxmox
// overcommits, and refusing would only stall.
Result<std::string> PlaceVm(const std::vector<proxmox::ClusterResource>& nodes,
                            const std::vector<std::string>& allowed,
                            const std::map<std::string, std::uint64_t>& pending);

// A node the spec names: kInvalid (NodeNotAllowed) when the cluster's
// allowedNodes exclude it or the cluster has no such node; kRetryable when it
// exists but is offline.
Status CheckNode(const std::string& node, const std::vector<proxmox::ClusterResource>& nodes,
                 const std::vector<std::string>& allowed);

}  // namespace nixmox::controllers
