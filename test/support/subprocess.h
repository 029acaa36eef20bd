// Real processes for integration and end-to-end tests: start a binary, read the
// first line it prints (simulators print their URL when ready), stop it.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <string>
#include <utility>
#include <vector>

#include "src/common/status.h"

namespace nixmox::testing {

class Subprocess {
 public:
  // Starts argv[0] with the rest as arguments; `env` entries ("K=V") are added
  // to this process's environment. stdout is a pipe read by ReadLine; stderr
  // goes to `stderr_path` (or is inherited when empty).
  static Result<Subprocess> Start(std::vector<std::string> argv,
                                  std::vector<std::string> env = {},
                                  std::string stderr_path = "");

  Subprocess(Subprocess&& other) noexcept;
  Subprocess& operator=(Subprocess&& other) noexcept;
  Subprocess(const Subprocess&) = delete;
  Subprocess& operator=(const Subprocess&) = delete;
  ~Subprocess();  // SIGKILLs and reaps a process still running

  // The next line of stdout, without '\n'. kRetryable on timeout, kNotFound at EOF.
  Result<std::string> ReadLine(std::chrono::milliseconds timeout);
  // Sends `signal` and waits up to `timeout` for the exit; then SIGKILL. Returns the
  // wait status (as waitpid gives it), or -1 when the process was already reaped.
  int Stop(int signal, std::chrono::milliseconds timeout = std::chrono::seconds(10));
  pid_t pid() const { return pid_; }
  bool running();

 private:
  Subprocess(pid_t pid, int out_fd) : pid_(pid), out_fd_(out_fd) {}
  pid_t pid_ = -1;
  int out_fd_ = -1;
  std::string buffer_;
};

// Runs a command to completion, capturing stdout and stderr together.
struct CommandResult {
  int exit_code = -1;  // -1 when it was killed by a signal or could not start
  std::string output;
};
CommandResult RunCommand(const std::vector<std::string>& argv,
                         std::chrono::milliseconds timeout = std::chrono::seconds(120));

// A fresh directory under $TMPDIR, removed by the destructor.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }
  std::string File(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

}  // namespace nixmox::testing
