// Kubernetes timestamps. `Time` fields (conditions, events) are RFC 3339 in UTC
// with whole seconds; `MicroTime` fields (Lease acquireTime/renewTime) carry
// exactly six fractional digits, and a real API server rejects any other form.
#pragma once

#include <string>
#include <string_view>

#include "src/common/clock.h"
#include "src/common/status.h"

namespace nixmox::kube {

// "2026-11-22T13:10:53Z" (the fraction is truncated).
std::string FormatTime(Clock::WallTime t);
// "2026-11-22T13:10:53.191000Z".
std::string FormatMicroTime(Clock::WallTime t);
// Accepts RFC 3339 with or without a fraction, with "Z" or a numeric offset.
Result<Clock::WallTime> ParseTime(std::string_view s);

}  // namespace nixmox::kube
