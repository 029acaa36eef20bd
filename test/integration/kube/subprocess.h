// A child process for integration tests: its stdout is collected line by line
// so a test can wait for "serving on ..." or "LEADING a" with a timeout.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace nixmox::kube::testing {

class Subprocess {
 public:
  // Starts argv[0] with the arguments; stderr is inherited (shows in test logs).
  explicit Subprocess(std::vector<std::string> argv);
  ~Subprocess();  // SIGKILLs and reaps a child still running
  Subprocess(const Subprocess&) = delete;
  Subprocess& operator=(const Subprocess&) = delete;

  bool started() const { return pid_ > 0; }
  pid_t pid() const { return pid_; }

  // The first stdout line (from the start) for which `match` holds, waiting up to `timeout`.
  std::optional<std::string> WaitForLine(const std::function<bool(const std::string&)>& match,
                                         std::chrono::milliseconds timeout);
  std::vector<std::string> lines();

  void Signal(int sig);
  // Waits for exit up to `timeout`; the exit status as waitpid reports it, or nullopt.
  std::optional<int> Wait(std::chrono::milliseconds timeout);

 private:
  pid_t pid_ = -1;
  int out_fd_ = -1;
  std::thread reader_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::string> lines_;
  bool eof_ = false;
  std::optional<int> exit_status_;
};

}  // namespace nixmox::kube::testing
