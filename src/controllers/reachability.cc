#include "src/controllers/reachability.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <condition_variable>
#include <deque>
#include <limits>
#include <map>
#include <mutex>
#include <thread>
#include <utility>

namespace nixmox::controllers {
namespace {

// The bytes of an IPv4 (4) or IPv6 (16) literal; empty when `text` is neither.
std::vector<std::uint8_t> ParseIp(std::string_view text) {
  const std::string s(text);
  std::uint8_t buf[16];
  if (inet_pton(AF_INET, s.c_str(), buf) == 1) return {buf, buf + 4};
  if (inet_pton(AF_INET6, s.c_str(), buf) == 1) return {buf, buf + 16};
  return {};
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// Whether the first `prefix` bits of `a` and `b` (same length) agree.
bool SamePrefix(const std::vector<std::uint8_t>& a, const std::vector<std::uint8_t>& b,
                int prefix) {
  for (std::size_t i = 0; prefix > 0; ++i, prefix -= 8) {
    const int bits = prefix < 8 ? prefix : 8;
    const auto mask = static_cast<std::uint8_t>(0xFF << (8 - bits));
    if ((a[i] & mask) != (b[i] & mask)) return false;
  }
  return true;
}

}  // namespace

bool Cidr::Contains(std::string_view ip) const {
  const std::vector<std::uint8_t> bytes = ParseIp(ip);
  return bytes.size() == address.size() && SamePrefix(bytes, address, prefix);
}

std::string Cidr::ToString() const {
  char buf[INET6_ADDRSTRLEN];
  const int family = address.size() == 4 ? AF_INET : AF_INET6;
  if (inet_ntop(family, address.data(), buf, sizeof(buf)) == nullptr) return "";
  return std::string(buf) + "/" + std::to_string(prefix);
}

Result<Cidr> ParseCidr(std::string_view text) {
  const std::string_view trimmed = Trim(text);
  const auto invalid = [&](std::string_view why) {
    return InvalidError("invalid network \"" + std::string(text) + "\": " + std::string(why));
  };
  const std::size_t slash = trimmed.find('/');
  if (slash == std::string_view::npos) return invalid("no /prefix (like 10.0.0.0/8)");
  Cidr cidr;
  cidr.address = ParseIp(trimmed.substr(0, slash));
  if (cidr.address.empty()) return invalid("not an IPv4 or IPv6 address");
  const std::string_view prefix = trimmed.substr(slash + 1);
  const auto [end, ec] = std::from_chars(prefix.data(), prefix.data() + prefix.size(), cidr.prefix);
  const int max_prefix = static_cast<int>(cidr.address.size()) * 8;
  if (prefix.empty() || ec != std::errc() || end != prefix.data() + prefix.size() ||
      cidr.prefix < 0 || cidr.prefix > max_prefix) {
    return invalid("the prefix must be a number from 0 to " + std::to_string(max_prefix));
  }
  for (int bit = cidr.prefix; bit < max_prefix; ++bit) {
    cidr.address[static_cast<std::size_t>(bit / 8)] &=
        static_cast<std::uint8_t>(~(0x80 >> (bit % 8)));
  }
  return cidr;
}

Result<std::vector<Cidr>> ParseCidrList(std::string_view text) {
  std::vector<Cidr> out;
  if (Trim(text).empty()) return out;
  while (true) {
    const std::size_t comma = text.find(',');
    ASSIGN_OR_RETURN(Cidr cidr, ParseCidr(text.substr(0, comma)));
    out.push_back(std::move(cidr));
    if (comma == std::string_view::npos) break;
    text.remove_prefix(comma + 1);
  }
  return out;
}

namespace {

// A file descriptor closed when it goes out of scope.
class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

// Connects to address:port without blocking beyond `timeout`; true when the
// connection was accepted. `stop_fd` becoming readable abandons the attempt.
bool TcpConnect(const std::string& address, int port, std::chrono::milliseconds timeout,
                int stop_fd) {
  sockaddr_storage storage{};
  socklen_t length = 0;
  auto* v4 = reinterpret_cast<sockaddr_in*>(&storage);
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&storage);
  if (inet_pton(AF_INET, address.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(static_cast<std::uint16_t>(port));
    length = sizeof(sockaddr_in);
  } else if (inet_pton(AF_INET6, address.c_str(), &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(static_cast<std::uint16_t>(port));
    length = sizeof(sockaddr_in6);
  } else {
    return false;
  }
  Fd sock(socket(storage.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (sock.get() < 0) return false;
  if (connect(sock.get(), reinterpret_cast<sockaddr*>(&storage), length) == 0) return true;
  if (errno != EINPROGRESS) return false;
  pollfd fds[2] = {{sock.get(), POLLOUT, 0}, {stop_fd, POLLIN, 0}};
  const auto timeout_ms = static_cast<int>(std::clamp<std::chrono::milliseconds::rep>(
      timeout.count(), 0, std::numeric_limits<int>::max()));
  int ready = 0;
  do {
    ready = poll(fds, 2, timeout_ms);
  } while (ready < 0 && errno == EINTR);
  if (ready <= 0 || (fds[0].revents & (POLLOUT | POLLERR | POLLHUP)) == 0) return false;
  int error = 0;
  socklen_t error_length = sizeof(error);
  if (getsockopt(sock.get(), SOL_SOCKET, SO_ERROR, &error, &error_length) != 0) return false;
  return error == 0;
}

class TcpProber final : public Prober {
 public:
  explicit TcpProber(TcpProberOptions options)
      : allowed_(std::move(options.allowed)),
        clock_(options.clock != nullptr ? *options.clock : RealClock()),
        stop_fd_(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) {
    const int threads = options.threads > 0 ? options.threads : 1;
    for (int i = 0; i < threads; ++i) workers_.emplace_back([this] { Work(); });
  }

  // Probes still queued are dropped and their requesters not told: whoever
  // destroys the prober is shutting down.
  ~TcpProber() override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stopping_ = true;
    }
    wake_.notify_all();
    // Wakes probes waiting in poll: the eventfd stays readable from now on.
    const std::uint64_t one = 1;
    [[maybe_unused]] const ssize_t written = write(stop_fd_.get(), &one, sizeof(one));
    for (std::thread& worker : workers_) worker.join();
  }

  std::optional<bool> Check(const std::string& address, int port, std::chrono::milliseconds timeout,
                            std::chrono::milliseconds max_age,
                            std::function<void()> on_done) override {
    if (!Allowed(address)) return std::nullopt;
    std::string key = address + ":" + std::to_string(port);
    std::lock_guard<std::mutex> lock(mu_);
    Target& target = targets_[key];
    if (target.reachable && clock_.Now() - target.probed_at < max_age) return target.reachable;
    if (on_done) target.waiters.push_back(std::move(on_done));
    if (!target.in_flight) {
      target.in_flight = true;
      queue_.push_back(Job{std::move(key), address, port, timeout});
      wake_.notify_one();
    }
    return target.reachable;
  }

  bool Allowed(std::string_view address) const override {
    if (ParseIp(address).empty()) return false;
    if (allowed_.empty()) return true;
    return std::any_of(allowed_.begin(), allowed_.end(),
                       [&](const Cidr& cidr) { return cidr.Contains(address); });
  }

 private:
  struct Job {
    std::string key;
    std::string address;
    int port = 0;
    std::chrono::milliseconds timeout{};
  };
  struct Target {
    std::optional<bool> reachable;
    Clock::SteadyTime probed_at{};
    bool in_flight = false;
    std::vector<std::function<void()>> waiters;  // told when the probe in flight ends
  };

  void Work() {
    while (true) {
      Job job;
      {
        std::unique_lock<std::mutex> lock(mu_);
        wake_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
        if (stopping_) return;
        job = std::move(queue_.front());
        queue_.pop_front();
      }
      const bool reachable = TcpConnect(job.address, job.port, job.timeout, stop_fd_.get());
      std::vector<std::function<void()>> waiters;
      {
        std::lock_guard<std::mutex> lock(mu_);
        if (stopping_) return;  // an abandoned probe proves nothing
        Target& target = targets_[job.key];
        target.reachable = reachable;
        target.probed_at = clock_.Now();
        target.in_flight = false;
        waiters.swap(target.waiters);
      }
      for (const std::function<void()>& done : waiters) done();
    }
  }

  const std::vector<Cidr> allowed_;
  const Clock& clock_;
  const Fd stop_fd_;

  std::mutex mu_;
  std::condition_variable wake_;
  bool stopping_ = false;
  std::deque<Job> queue_;
  std::map<std::string, Target> targets_;  // by "address:port"
  std::vector<std::thread> workers_;       // last: started after everything they use
};

}  // namespace

std::unique_ptr<Prober> NewTcpProber(TcpProberOptions options) {
  return std::make_unique<TcpProber>(std::move(options));
}

}  // namespace nixmox::controllers
