#include "src/controllers/placement.h"

#include <algorithm>

namespace nixmox::controllers {
namespace {

bool IsAllowed(const std::string& node, const std::vector<std::string>& allowed) {
  return allowed.empty() || std::find(allowed.begin(), allowed.end(), node) != allowed.end();
}

bool IsOnline(const proxmox::ClusterResource& node) { return node.status == "online"; }

// Signed: promises can exceed what a node has (Proxmox overcommits).
std::int64_t FreeMemory(const proxmox::ClusterResource& node,
                        const std::map<std::string, std::uint64_t>& pending) {
  auto promised = pending.find(node.node);
  return static_cast<std::int64_t>(node.maxmem) - static_cast<std::int64_t>(node.mem) -
         static_cast<std::int64_t>(promised == pending.end() ? 0 : promised->second);
}

std::string AllowedList(const std::vector<std::string>& allowed) {
  std::string out;
  for (const std::string& node : allowed) out += (out.empty() ? "" : ", ") + node;
  return out;
}

}  // namespace

// The VM's own size does not change the choice: the node with the most free
// memory is also the one it fits best on, or fits on at all.
Result<std::string> PlaceVm(const std::vector<proxmox::ClusterResource>& nodes,
                            const std::vector<std::string>& allowed,
                            const std::map<std::string, std::uint64_t>& pending) {
  const proxmox::ClusterResource* best = nullptr;
  std::int64_t best_free = 0;
  for (const proxmox::ClusterResource& node : nodes) {
    if (!IsOnline(node) || !IsAllowed(node.node, allowed)) continue;
    const std::int64_t free = FreeMemory(node, pending);
    if (best == nullptr || free > best_free || (free == best_free && node.node < best->node)) {
      best = &node;
      best_free = free;
    }
  }
  if (best == nullptr) {
    return RetryableError(allowed.empty() ? "no node of the cluster is online"
                                          : "none of the allowed nodes (" + AllowedList(allowed) +
                                                ") is online");
  }
  return best->node;
}

Status CheckNode(const std::string& node, const std::vector<proxmox::ClusterResource>& nodes,
                 const std::vector<std::string>& allowed) {
  if (!IsAllowed(node, allowed)) {
    return InvalidError("node " + node + " is not among the cluster's allowed nodes (" +
                        AllowedList(allowed) + ")");
  }
  auto it = std::find_if(nodes.begin(), nodes.end(),
                         [&](const proxmox::ClusterResource& n) { return n.node == node; });
  if (it == nodes.end()) return InvalidError("the cluster has no node " + node);
  if (!IsOnline(*it)) {
    return RetryableError("node " + node + " is not online (status \"" + it->status + "\")");
  }
  return OkStatus();
}

}  // namespace nixmox::controllers
