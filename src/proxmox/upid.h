// Proxmox task identifiers (UPIDs).
//
// Every asynchronous Proxmox call starts a task on some node and answers with
// its UPID, e.g. "UPID:pve1:000A1B2C:0123ABCD:6650F00D:qmcreate:100:root@pam!ci:".
// The node inside the UPID is where the task runs, and the only node that can
// report its status.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "src/common/status.h"

namespace nixmox::proxmox {

struct Upid {
  std::string node;
  std::uint32_t pid = 0;
  std::uint64_t pstart = 0;    // process start time in clock ticks since boot
  std::int64_t starttime = 0;  // Unix seconds
  std::string type;            // qmcreate, qmstart, imgcopy, ...
  std::string id;              // usually the vmid; may be empty
  std::string user;            // user@realm or user@realm!tokenid
  std::string raw;             // the UPID exactly as the server sent it

  bool operator==(const Upid& other) const { return raw == other.raw; }
};

// Invalid when `text` is not a well-formed UPID.
Result<Upid> ParseUpid(std::string_view text);

}  // namespace nixmox::proxmox
