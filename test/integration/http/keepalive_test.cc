// The client against a scripted raw HTTP/1.1 server on loopback, to reproduce
// what our own server never does: dropping keep-alive connections.
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "src/http/http.h"

namespace nixmox::http {
namespace {

using namespace std::chrono_literals;

enum class Action {
  kRespond,               // 200 "ok", connection kept open
  kRespondThenIdleClose,  // 200 "ok", then close the idle connection shortly after
  kCloseWithoutAnswer,    // read the request, then close: the client sees EOF
};

// Serves each connection on its own thread. `script(connection, request_on_connection,
// method)` decides what happens; every request read is logged.
class ScriptedServer {
 public:
  using Script = std::function<Action(int conn, int req, const std::string& method)>;

  explicit ScriptedServer(Script script) : script_(std::move(script)) {
    fd_ = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = 0;
    EXPECT_EQ(bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
    EXPECT_EQ(listen(fd_, 16), 0);
    socklen_t len = sizeof(addr);
    getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
    acceptor_ = std::thread([this] { AcceptLoop(); });
  }

  ~ScriptedServer() {
    shutdown(fd_, SHUT_RDWR);
    close(fd_);
    acceptor_.join();
    for (auto& t : connections_) t.join();
  }

  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }

  std::vector<std::string> log() {
    std::lock_guard lock(mu_);
    return log_;
  }

 private:
  void AcceptLoop() {
    for (int conn = 0;; ++conn) {
      const int c = accept(fd_, nullptr, nullptr);
      if (c < 0) return;
      connections_.emplace_back([this, c, conn] { Serve(c, conn); });
    }
  }

  void Serve(int c, int conn) {
    std::string buf;
    for (int req = 0;; ++req) {
      size_t head_end;
      while ((head_end = buf.find("\r\n\r\n")) == std::string::npos) {
        if (!ReadMore(c, buf)) return Close(c);
      }
      const std::string head = buf.substr(0, head_end);
      size_t body_len = 0;
      if (auto p = head.find("Content-Length: "); p != std::string::npos) {
        body_len = std::stoul(head.substr(p + 16));
      }
      while (buf.size() < head_end + 4 + body_len) {
        if (!ReadMore(c, buf)) return Close(c);
      }
      buf.erase(0, head_end + 4 + body_len);
      const std::string method = head.substr(0, head.find(' '));
      {
        std::lock_guard lock(mu_);
        log_.push_back(std::to_string(conn) + ":" + method);
      }
      const Action action = script_(conn, req, method);
      if (action == Action::kCloseWithoutAnswer) return Close(c);
      const std::string reply = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
      if (write(c, reply.data(), reply.size()) != static_cast<ssize_t>(reply.size()))
        return Close(c);
      if (action == Action::kRespondThenIdleClose) {
        std::this_thread::sleep_for(50ms);
        return Close(c);
      }
    }
  }

  static bool ReadMore(int c, std::string& buf) {
    char tmp[4096];
    const ssize_t n = read(c, tmp, sizeof(tmp));
    if (n <= 0) return false;
    buf.append(tmp, static_cast<size_t>(n));
    return true;
  }
  static void Close(int c) { close(c); }

  Script script_;
  int fd_ = -1;
  int port_ = 0;
  std::thread acceptor_;
  std::vector<std::thread> connections_;  // only touched by the acceptor, joined after it
  std::mutex mu_;
  std::vector<std::string> log_;
};

std::unique_ptr<Client> Connect(const std::string& url,
                                std::chrono::milliseconds mutation_reuse_window = 4000ms) {
  ClientOptions options;
  options.base_url = url;
  options.timeout = 20s;
  options.mutation_reuse_window = mutation_reuse_window;
  auto client = NewClient(options);
  EXPECT_TRUE(client.ok());
  return client.ok() ? std::move(client).value() : nullptr;
}

Request Make(std::string method) {
  Request r;
  r.method = std::move(method);
  r.target = "/api2/json/x";
  return r;
}

TEST(HttpKeepAliveTest, ReusesOneConnectionForSequentialRequests) {
  ScriptedServer server([](int, int, const std::string&) { return Action::kRespond; });
  auto client = Connect(server.url());
  ASSERT_NE(client, nullptr);
  for (int i = 0; i < 20; ++i) {
    auto r = client->Send(Make("GET"));
    ASSERT_TRUE(r.ok()) << r.status().ToString();
  }
  // cpprest returns a connection to its pool just after the response completes,
  // so a request may occasionally open a new one; most must share.
  const auto log = server.log();
  ASSERT_EQ(log.size(), 20u);
  std::map<std::string, int> per_connection;
  for (const auto& entry : log) ++per_connection[entry];
  EXPECT_LT(per_connection.size(), 10u);
}

TEST(HttpKeepAliveTest, GetOnAConnectionTheServerDroppedIsRetriedOnAFreshOne) {
  // The second request on connection 0 meets a closed connection, as with a
  // Proxmox that dropped it after 5 s idle.
  ScriptedServer server([](int conn, int req, const std::string&) {
    return conn == 0 && req == 1 ? Action::kCloseWithoutAnswer : Action::kRespond;
  });
  auto client = Connect(server.url());
  ASSERT_NE(client, nullptr);
  ASSERT_TRUE(client->Send(Make("GET")).ok());
  std::this_thread::sleep_for(200ms);  // let the connection settle back into the pool
  auto second = client->Send(Make("GET"));
  ASSERT_TRUE(second.ok()) << second.status().ToString();
  EXPECT_EQ(second->body, "ok");
  EXPECT_EQ(server.log(), (std::vector<std::string>{"0:GET", "0:GET", "1:GET"}));
}

TEST(HttpKeepAliveTest, PostOnAConnectionTheServerDroppedIsNeverResent) {
  ScriptedServer server([](int conn, int req, const std::string&) {
    return conn == 0 && req == 1 ? Action::kCloseWithoutAnswer : Action::kRespond;
  });
  auto client = Connect(server.url());
  ASSERT_NE(client, nullptr);
  ASSERT_TRUE(client->Send(Make("POST")).ok());
  std::this_thread::sleep_for(200ms);  // let the connection settle back into the pool
  auto second = client->Send(Make("POST"));
  EXPECT_EQ(second.status().code(), Code::kOutcomeUnknown) << second.status().ToString();
  std::this_thread::sleep_for(200ms);  // a resend, if any, would show up in the log
  EXPECT_EQ(server.log(), (std::vector<std::string>{"0:POST", "0:POST"}));
}

TEST(HttpKeepAliveTest, MutationsWithinTheReuseWindowShareAConnection) {
  ScriptedServer server([](int, int, const std::string&) { return Action::kRespond; });
  auto client = Connect(server.url());
  ASSERT_NE(client, nullptr);
  for (const char* method : {"POST", "PUT", "DELETE"}) {
    ASSERT_TRUE(client->Send(Make(method)).ok());
    std::this_thread::sleep_for(100ms);  // cpprest pools the connection just after the response
  }
  EXPECT_EQ(server.log(), (std::vector<std::string>{"0:POST", "0:PUT", "0:DELETE"}));
}

TEST(HttpKeepAliveTest, MutationAfterTheReuseWindowUsesAFreshConnection) {
  // The server keeps the connection; the client still does not trust it.
  ScriptedServer server([](int, int, const std::string&) { return Action::kRespond; });
  auto client = Connect(server.url(), 300ms);
  ASSERT_NE(client, nullptr);
  ASSERT_TRUE(client->Send(Make("PUT")).ok());
  std::this_thread::sleep_for(500ms);
  auto second = client->Send(Make("PUT"));
  ASSERT_TRUE(second.ok()) << second.status().ToString();
  EXPECT_EQ(server.log(), (std::vector<std::string>{"0:PUT", "1:PUT"}));
}

TEST(HttpKeepAliveTest, MutationOnAConnectionTheServerClosedWhileIdleGoesOutOnceOnAFreshOne) {
  // The server closes each connection 50 ms after answering, well within the
  // client's reuse window: the client must notice before sending.
  ScriptedServer server([](int, int, const std::string&) { return Action::kRespondThenIdleClose; });
  auto client = Connect(server.url());
  ASSERT_NE(client, nullptr);
  ASSERT_TRUE(client->Send(Make("PUT")).ok());
  std::this_thread::sleep_for(300ms);
  auto second = client->Send(Make("POST"));
  ASSERT_TRUE(second.ok()) << second.status().ToString();
  EXPECT_EQ(second->body, "ok");
  std::this_thread::sleep_for(200ms);  // a resend, if any, would show up in the log
  EXPECT_EQ(server.log(), (std::vector<std::string>{"0:PUT", "1:POST"}));
}

TEST(HttpKeepAliveTest, GetAfterTheServerClosedAnIdleConnectionSucceeds) {
  ScriptedServer server([](int, int, const std::string&) { return Action::kRespondThenIdleClose; });
  auto client = Connect(server.url());
  ASSERT_NE(client, nullptr);
  ASSERT_TRUE(client->Send(Make("GET")).ok());
  std::this_thread::sleep_for(300ms);
  auto second = client->Send(Make("GET"));
  ASSERT_TRUE(second.ok()) << second.status().ToString();
  EXPECT_EQ(second->body, "ok");
}

}  // namespace
}  // namespace nixmox::http
