// The ProxmoxVM controller's metrics, in the process registry
// (src/common/metrics.h): how many ProxmoxVMs are in each phase, and how long
// the Proxmox tasks it started took, by task type and outcome. Thread-safe.
#pragma once

#include <chrono>
#include <string>
#include <string_view>

#include "src/api/types.h"

namespace nixmox::controllers {

// nixmox_proxmoxvms{phase}: the phase this key was last written with.
void RecordVmPhase(const std::string& key, api::VmPhase phase);
// The key's object is gone: it no longer counts in any phase.
void ForgetVmPhase(const std::string& key);
// nixmox_proxmox_task_duration_seconds{type, result="ok"|"failed"}.
void RecordTaskDuration(std::string_view type, bool succeeded, std::chrono::seconds took);

}  // namespace nixmox::controllers
