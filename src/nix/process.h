// Running a program (nix) as a child process: no shell, an explicit
// environment, stdout collected whole, stderr handed over line by line as it
// comes (so a long build logs while it runs) and its end kept for errors.
#pragma once

#include <cstddef>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "src/common/status.h"

namespace nixmox::nix {

struct ProcessSpec {
  // argv[0] is looked up on this process's PATH when it holds no '/'.
  std::vector<std::string> argv;
  // The child's whole environment, "NAME=VALUE" each.
  std::vector<std::string> env;
};

struct ProcessResult {
  int exit_code = -1;  // -1 when a signal ended it (`signal` says which)
  int signal = 0;
  std::string out;  // all of stdout
  std::string err;  // the last kMaxStderrBytes of stderr
};

inline constexpr std::size_t kMaxStderrBytes = 64 * 1024;

// Runs to completion; `on_stderr_line` (may be empty) sees each stderr line
// without its newline, on the calling thread. kNotFound when the program
// cannot be started (missing, not executable); a non-zero exit is not an error
// here, the caller reads exit_code.
Result<ProcessResult> RunProcess(const ProcessSpec& spec,
                                 const std::function<void(std::string_view)>& on_stderr_line);

// This process's environment as "NAME=VALUE" entries.
std::vector<std::string> CurrentEnvironment();

}  // namespace nixmox::nix
