#include "src/nix/process.h"

#include <fcntl.h>
#include <poll.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

extern char** environ;

namespace nixmox::nix {
namespace {

// Closes what it holds on every path out of RunProcess.
class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) : fd_(fd) {}
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() { Close(); }
  int get() const { return fd_; }
  void Reset(int fd) {
    Close();
    fd_ = fd;
  }
  void Close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

 private:
  int fd_ = -1;
};

Status MakePipe(Fd& read_end, Fd& write_end) {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) return InternalError(std::string("pipe: ") + strerror(errno));
  read_end.Reset(fds[0]);
  write_end.Reset(fds[1]);
  return OkStatus();
}

class SpawnActions {
 public:
  SpawnActions() { posix_spawn_file_actions_init(&actions_); }
  ~SpawnActions() { posix_spawn_file_actions_destroy(&actions_); }
  SpawnActions(const SpawnActions&) = delete;
  SpawnActions& operator=(const SpawnActions&) = delete;
  posix_spawn_file_actions_t* get() { return &actions_; }

 private:
  posix_spawn_file_actions_t actions_;
};

}  // namespace

std::vector<std::string> CurrentEnvironment() {
  std::vector<std::string> env;
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) env.emplace_back(*e);
  return env;
}

Result<ProcessResult> RunProcess(const ProcessSpec& spec,
                                 const std::function<void(std::string_view)>& on_stderr_line) {
  if (spec.argv.empty()) return InvalidError("no program to run");
  Fd out_read, out_write, err_read, err_write;
  RETURN_IF_ERROR(MakePipe(out_read, out_write));
  RETURN_IF_ERROR(MakePipe(err_read, err_write));

  SpawnActions actions;
  posix_spawn_file_actions_addopen(actions.get(), STDIN_FILENO, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(actions.get(), out_write.get(), STDOUT_FILENO);
  posix_spawn_file_actions_adddup2(actions.get(), err_write.get(), STDERR_FILENO);

  std::vector<char*> argv;
  for (const std::string& a : spec.argv) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  std::vector<char*> envp;
  for (const std::string& e : spec.env) envp.push_back(const_cast<char*>(e.c_str()));
  envp.push_back(nullptr);

  pid_t pid = -1;
  // glibc's posix_spawnp reports a failed exec as its return value.
  const int rc = posix_spawnp(&pid, argv[0], actions.get(), nullptr, argv.data(), envp.data());
  if (rc != 0) {
    return NotFoundError("cannot run " + spec.argv[0] + ": " + strerror(rc));
  }
  out_write.Close();
  err_write.Close();

  ProcessResult result;
  std::string err_line;  // the stderr line still being received
  auto deliver = [&](std::string_view chunk) {
    result.err.append(chunk);
    if (result.err.size() > 2 * kMaxStderrBytes) {
      result.err.erase(0, result.err.size() - kMaxStderrBytes);
    }
    err_line.append(chunk);
    std::size_t start = 0;
    for (std::size_t nl; (nl = err_line.find('\n', start)) != std::string::npos; start = nl + 1) {
      if (on_stderr_line) on_stderr_line(std::string_view(err_line).substr(start, nl - start));
    }
    err_line.erase(0, start);
  };

  pollfd fds[2] = {{out_read.get(), POLLIN, 0}, {err_read.get(), POLLIN, 0}};
  char buf[16384];
  while (fds[0].fd >= 0 || fds[1].fd >= 0) {
    if (::poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      break;
    }
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd < 0 || fds[i].revents == 0) continue;
      const ssize_t n = ::read(fds[i].fd, buf, sizeof buf);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        fds[i].fd = -1;  // EOF (or an error: nothing more will come)
        continue;
      }
      if (i == 0) {
        result.out.append(buf, static_cast<std::size_t>(n));
      } else {
        deliver(std::string_view(buf, static_cast<std::size_t>(n)));
      }
    }
  }
  if (!err_line.empty() && on_stderr_line) on_stderr_line(err_line);
  if (result.err.size() > kMaxStderrBytes) {
    result.err.erase(0, result.err.size() - kMaxStderrBytes);
  }

  int wstatus = 0;
  while (::waitpid(pid, &wstatus, 0) < 0) {
    if (errno != EINTR) return InternalError(std::string("waitpid: ") + strerror(errno));
  }
  if (WIFEXITED(wstatus)) {
    result.exit_code = WEXITSTATUS(wstatus);
  } else if (WIFSIGNALED(wstatus)) {
    result.signal = WTERMSIG(wstatus);
  }
  return result;
}

}  // namespace nixmox::nix
