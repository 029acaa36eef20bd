#include "src/controllers/reachability.h"

#include <arpa/inet.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <condition_variable>
#include <mutex>

namespace nixmox::controllers {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

// ---------------------------------------------------------------------------
// Cidr

struct CidrCase {
  std::string text;
  std::string printed;  // empty: invalid
};

class ParseCidrTableTest : public ::testing::TestWithParam<CidrCase> {};

TEST_P(ParseCidrTableTest, ParsesAndClearsHostBits) {
  Result<Cidr> cidr = ParseCidr(GetParam().text);
  if (GetParam().printed.empty()) {
    EXPECT_EQ(cidr.status().code(), Code::kInvalid) << GetParam().text;
    EXPECT_NE(cidr.status().message().find(GetParam().text), std::string::npos)
        << cidr.status().message();
  } else {
    ASSERT_TRUE(cidr.ok()) << cidr.status().ToString();
    EXPECT_EQ(cidr->ToString(), GetParam().printed);
  }
}

INSTANTIATE_TEST_SUITE_P(
    Table, ParseCidrTableTest,
    ::testing::Values(CidrCase{"10.0.0.0/8", "10.0.0.0/8"}, CidrCase{"10.1.2.3/8", "10.0.0.0/8"},
                      CidrCase{"192.168.77.200/26", "192.168.77.192/26"},
                      CidrCase{" 100.64.0.0/10 ", "100.64.0.0/10"},
                      CidrCase{"0.0.0.0/0", "0.0.0.0/0"}, CidrCase{"10.0.0.7/32", "10.0.0.7/32"},
                      CidrCase{"fd00::1/8", "fd00::/8"},
                      CidrCase{"2001:DB8:1:2::FF/33", "2001:db8::/33"},
                      CidrCase{"::1/128", "::1/128"}, CidrCase{"10.0.0.0", ""},
                      CidrCase{"10.0.0.0/33", ""}, CidrCase{"::/129", ""}, CidrCase{"10.0.0/8", ""},
                      CidrCase{"10.0.0.0/-1", ""}, CidrCase{"10.0.0.0/x", ""},
                      CidrCase{"10.0.0.0/", ""}, CidrCase{"/8", ""}, CidrCase{"fd00::/8/9", ""},
                      CidrCase{"", ""}));

TEST(CidrTest, ContainsAddressesOfItsFamilyUnderItsPrefix) {
  const Cidr net = ParseCidr("10.0.0.0/8").value();
  EXPECT_TRUE(net.Contains("10.0.0.0"));
  EXPECT_TRUE(net.Contains("10.255.1.1"));
  EXPECT_FALSE(net.Contains("11.0.0.1"));
  EXPECT_FALSE(net.Contains("::ffff:10.0.0.1"));
  EXPECT_FALSE(net.Contains("10.0.0.1/32"));
  EXPECT_FALSE(net.Contains("garbage"));

  const Cidr odd = ParseCidr("172.16.0.0/12").value();
  EXPECT_TRUE(odd.Contains("172.31.255.255"));
  EXPECT_FALSE(odd.Contains("172.32.0.0"));

  const Cidr ula = ParseCidr("fc00::/7").value();
  EXPECT_TRUE(ula.Contains("fd99::1"));
  EXPECT_FALSE(ula.Contains("fe00::1"));
  EXPECT_FALSE(ula.Contains("10.0.0.1"));

  EXPECT_TRUE(ParseCidr("0.0.0.0/0")->Contains("203.0.113.9"));
  EXPECT_FALSE(ParseCidr("0.0.0.0/0")->Contains("2001:db8::1"));
  EXPECT_TRUE(ParseCidr("::1/128")->Contains("0:0:0:0:0:0:0:1"));
  EXPECT_FALSE(ParseCidr("::1/128")->Contains("::2"));
}

TEST(CidrTest, ListIsCommaSeparatedAndEmptyTextIsNoEntries) {
  EXPECT_TRUE(ParseCidrList("")->empty());
  EXPECT_TRUE(ParseCidrList("  ")->empty());
  Result<std::vector<Cidr>> list = ParseCidrList("10.0.0.0/8, fd00::/8 ");
  ASSERT_TRUE(list.ok()) << list.status().ToString();
  ASSERT_EQ(list->size(), 2u);
  EXPECT_EQ((*list)[0].ToString(), "10.0.0.0/8");
  EXPECT_EQ((*list)[1].ToString(), "fd00::/8");

  Result<std::vector<Cidr>> bad = ParseCidrList("10.0.0.0/8,bad");
  EXPECT_EQ(bad.status().code(), Code::kInvalid);
  EXPECT_NE(bad.status().message().find("\"bad\""), std::string::npos) << bad.status().message();
  EXPECT_EQ(ParseCidrList("10.0.0.0/8,").status().code(), Code::kInvalid);
}

// ---------------------------------------------------------------------------
// TcpProber, for real on the loopback interface.

// A TCP socket bound to an ephemeral port of `address`, listening or not.
class TestSocket {
 public:
  TestSocket(const std::string& address, bool listen_on_it) {
    sockaddr_storage storage{};
    socklen_t length = 0;
    auto* v4 = reinterpret_cast<sockaddr_in*>(&storage);
    auto* v6 = reinterpret_cast<sockaddr_in6*>(&storage);
    if (inet_pton(AF_INET, address.c_str(), &v4->sin_addr) == 1) {
      v4->sin_family = AF_INET;
      length = sizeof(sockaddr_in);
    } else if (inet_pton(AF_INET6, address.c_str(), &v6->sin6_addr) == 1) {
      v6->sin6_family = AF_INET6;
      length = sizeof(sockaddr_in6);
    }
    fd_ = socket(storage.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd_ < 0 || bind(fd_, reinterpret_cast<sockaddr*>(&storage), length) != 0 ||
        (listen_on_it && listen(fd_, 16) != 0) ||
        getsockname(fd_, reinterpret_cast<sockaddr*>(&storage), &length) != 0) {
      return;
    }
    port_ = ntohs(storage.ss_family == AF_INET ? v4->sin_port : v6->sin6_port);
  }
  ~TestSocket() {
    if (fd_ >= 0) close(fd_);
  }
  TestSocket(const TestSocket&) = delete;
  TestSocket& operator=(const TestSocket&) = delete;

  bool ok() const { return port_ != 0; }
  int port() const { return port_; }

  // How many connections are waiting to be accepted; accepts (and closes) them.
  int AcceptAll() {
    int accepted = 0;
    while (true) {
      const int conn = accept(fd_, nullptr, nullptr);
      if (conn < 0) return accepted;
      close(conn);
      ++accepted;
    }
  }

 private:
  int fd_ = -1;
  int port_ = 0;
};

// Counts on_done calls; waits for them with a generous bound (never a sleep).
class DoneCounter {
 public:
  std::function<void()> Callback() {
    return [this] {
      std::lock_guard<std::mutex> lock(mu_);
      ++count_;
      cv_.notify_all();
    };
  }
  bool WaitFor(int count) {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, seconds(30), [&] { return count_ >= count; });
  }
  int count() {
    std::lock_guard<std::mutex> lock(mu_);
    return count_;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  int count_ = 0;
};

constexpr milliseconds kTimeout{5000};
constexpr milliseconds kMaxAge{60000};

std::unique_ptr<Prober> NewProber(const Clock& clock, std::string allowed = "", int threads = 1) {
  return NewTcpProber(
      {.allowed = ParseCidrList(allowed).value(), .threads = threads, .clock = &clock});
}

TEST(TcpProberTest, ListeningPortIsReachableAndTheResultIsKept) {
  TestSocket listener("127.0.0.1", /*listen_on_it=*/true);
  ASSERT_TRUE(listener.ok());
  FakeClock clock;
  DoneCounter done;
  auto prober = NewProber(clock);

  EXPECT_EQ(prober->Check("127.0.0.1", listener.port(), kTimeout, kMaxAge, done.Callback()),
            std::nullopt);
  ASSERT_TRUE(done.WaitFor(1));
  EXPECT_EQ(prober->Check("127.0.0.1", listener.port(), kTimeout, kMaxAge, done.Callback()), true);
  EXPECT_EQ(listener.AcceptAll(), 1);
}

TEST(TcpProberTest, ClosedPortIsUnreachable) {
  TestSocket closed("127.0.0.1", /*listen_on_it=*/false);  // bound, so nobody else takes the port
  ASSERT_TRUE(closed.ok());
  FakeClock clock;
  DoneCounter done;
  auto prober = NewProber(clock);

  EXPECT_EQ(prober->Check("127.0.0.1", closed.port(), kTimeout, kMaxAge, done.Callback()),
            std::nullopt);
  ASSERT_TRUE(done.WaitFor(1));
  EXPECT_EQ(prober->Check("127.0.0.1", closed.port(), kTimeout, kMaxAge, nullptr), false);
}

TEST(TcpProberTest, Ipv6Loopback) {
  TestSocket listener("::1", /*listen_on_it=*/true);
  if (!listener.ok()) GTEST_SKIP() << "no IPv6 loopback here";
  FakeClock clock;
  DoneCounter done;
  auto prober = NewProber(clock, "::1/128");

  EXPECT_EQ(prober->Check("::1", listener.port(), kTimeout, kMaxAge, done.Callback()),
            std::nullopt);
  ASSERT_TRUE(done.WaitFor(1));
  EXPECT_EQ(prober->Check("::1", listener.port(), kTimeout, kMaxAge, nullptr), true);
  EXPECT_EQ(listener.AcceptAll(), 1);
}

TEST(TcpProberTest, AddressesOutsideTheAllowedNetworksAreNeverProbed) {
  // Linux answers on all of 127.0.0.0/8: 127.0.0.2 is reachable but not allowed.
  TestSocket forbidden("127.0.0.2", /*listen_on_it=*/true);
  TestSocket allowed("127.0.0.1", /*listen_on_it=*/true);
  ASSERT_TRUE(forbidden.ok() && allowed.ok());
  FakeClock clock;
  DoneCounter done;
  auto prober = NewProber(clock, "127.0.0.1/32", /*threads=*/1);

  EXPECT_FALSE(prober->Allowed("127.0.0.2"));
  EXPECT_TRUE(prober->Allowed("127.0.0.1"));
  EXPECT_EQ(prober->Check("127.0.0.2", forbidden.port(), kTimeout, kMaxAge, done.Callback()),
            std::nullopt);
  // One worker takes probes in order: once this one is done, an earlier one would be too.
  EXPECT_EQ(prober->Check("127.0.0.1", allowed.port(), kTimeout, kMaxAge, done.Callback()),
            std::nullopt);
  ASSERT_TRUE(done.WaitFor(1));
  EXPECT_EQ(done.count(), 1);
  EXPECT_EQ(forbidden.AcceptAll(), 0);
  EXPECT_EQ(allowed.AcceptAll(), 1);
  EXPECT_EQ(prober->Check("127.0.0.2", forbidden.port(), kTimeout, kMaxAge, nullptr), std::nullopt);
}

TEST(TcpProberTest, AllowedWithoutNetworksMeansAnyAddress) {
  FakeClock clock;
  auto prober = NewProber(clock);
  EXPECT_TRUE(prober->Allowed("203.0.113.9"));
  EXPECT_TRUE(prober->Allowed("2001:db8::1"));
  EXPECT_FALSE(prober->Allowed("not-an-address"));
}

TEST(TcpProberTest, FreshResultIsServedAndAStaleOneProbedAgain) {
  TestSocket listener("127.0.0.1", /*listen_on_it=*/true);
  TestSocket other("127.0.0.1", /*listen_on_it=*/true);
  ASSERT_TRUE(listener.ok() && other.ok());
  FakeClock clock;
  DoneCounter done;
  auto prober = NewProber(clock, "", /*threads=*/1);

  prober->Check("127.0.0.1", listener.port(), kTimeout, kMaxAge, done.Callback());
  ASSERT_TRUE(done.WaitFor(1));
  EXPECT_EQ(listener.AcceptAll(), 1);

  clock.Advance(kMaxAge - milliseconds(1));
  EXPECT_EQ(prober->Check("127.0.0.1", listener.port(), kTimeout, kMaxAge, done.Callback()), true);
  prober->Check("127.0.0.1", other.port(), kTimeout, kMaxAge, done.Callback());
  ASSERT_TRUE(done.WaitFor(2));
  EXPECT_EQ(done.count(), 2);  // only `other` was probed
  EXPECT_EQ(listener.AcceptAll(), 0);

  clock.Advance(milliseconds(1));
  EXPECT_EQ(prober->Check("127.0.0.1", listener.port(), kTimeout, kMaxAge, done.Callback()),
            true);  // the last result while the new probe runs
  ASSERT_TRUE(done.WaitFor(3));
  EXPECT_EQ(listener.AcceptAll(), 1);
}

TEST(TcpProberTest, OneProbeAtATimePerTargetAndEveryRequesterIsTold) {
  TestSocket first("127.0.0.1", /*listen_on_it=*/true);
  TestSocket target("127.0.0.1", /*listen_on_it=*/true);
  TestSocket last("127.0.0.1", /*listen_on_it=*/true);
  ASSERT_TRUE(first.ok() && target.ok() && last.ok());
  FakeClock clock;
  DoneCounter done;
  std::mutex mu;
  std::condition_variable cv;
  bool blocked = false;
  bool release = false;
  auto prober = NewProber(clock, "", /*threads=*/1);

  // The only worker stays in this on_done until released, so what is
  // scheduled meanwhile waits in the queue.
  prober->Check("127.0.0.1", first.port(), kTimeout, kMaxAge, [&] {
    std::unique_lock<std::mutex> lock(mu);
    blocked = true;
    cv.notify_all();
    cv.wait_for(lock, seconds(30), [&] { return release; });
  });
  {
    std::unique_lock<std::mutex> lock(mu);
    ASSERT_TRUE(cv.wait_for(lock, seconds(30), [&] { return blocked; }));
  }
  EXPECT_EQ(prober->Check("127.0.0.1", target.port(), kTimeout, kMaxAge, done.Callback()),
            std::nullopt);
  EXPECT_EQ(prober->Check("127.0.0.1", target.port(), kTimeout, kMaxAge, done.Callback()),
            std::nullopt);
  {
    std::lock_guard<std::mutex> lock(mu);
    release = true;
    cv.notify_all();
  }
  ASSERT_TRUE(done.WaitFor(2));
  // With one worker in order, a duplicate probe of `target` would be done before this one.
  prober->Check("127.0.0.1", last.port(), kTimeout, kMaxAge, done.Callback());
  ASSERT_TRUE(done.WaitFor(3));
  EXPECT_EQ(done.count(), 3);
  EXPECT_EQ(target.AcceptAll(), 1);
}

}  // namespace
}  // namespace nixmox::controllers
