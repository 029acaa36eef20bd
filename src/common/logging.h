// Process-wide logging setup over spdlog.
#pragma once

#include <string>

#include "src/common/status.h"

namespace nixmox {

struct LogOptions {
  std::string level = "info";  // trace, debug, info, warn, error, critical, off
  std::string format = "text";  // text or json (one object per line)
};

// Configures spdlog's default logger to write to stderr. Returns Invalid for an
// unknown level or format.
Status SetupLogging(const LogOptions& options);

// Escapes a string for use inside a JSON string literal.
std::string JsonEscape(std::string_view s);

}  // namespace nixmox
