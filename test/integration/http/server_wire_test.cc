// Our server as seen on the wire by a raw socket client: framing details that
// other HTTP clients (kubectl, curl, Proxmox tooling) rely on.
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <mutex>
#include <string>
#include <thread>

#include "src/http/http.h"

namespace nixmox::http {
namespace {

using namespace std::chrono_literals;

class RawClient {
 public:
  explicit RawClient(int port) {
    fd_ = socket(AF_INET, SOCK_STREAM, 0);
    timeval tv{20, 0};  // no read in these tests may hang the suite
    setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(static_cast<uint16_t>(port));
    connected_ = connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
  }
  ~RawClient() { close(fd_); }

  bool connected() const { return connected_; }
  void Send(std::string_view data) {
    ASSERT_EQ(send(fd_, data.data(), data.size(), MSG_NOSIGNAL), static_cast<ssize_t>(data.size()));
  }

  // Reads until `marker` has arrived (or EOF/timeout) and returns everything read.
  std::string ReadUntil(std::string_view marker) {
    while (buf_.find(marker) == std::string::npos) {
      char tmp[4096];
      const ssize_t n = recv(fd_, tmp, sizeof(tmp), 0);
      if (n <= 0) break;
      buf_.append(tmp, static_cast<size_t>(n));
    }
    std::string out;
    const size_t at = buf_.find(marker);
    const size_t end = at == std::string::npos ? buf_.size() : at + marker.size();
    out = buf_.substr(0, end);
    buf_.erase(0, end);
    return out;
  }

  // Reads until the server closes the connection.
  std::string ReadToEof() { return ReadUntil(std::string_view("\x01\x02never\x03", 9)); }

 private:
  int fd_;
  bool connected_ = false;
  std::string buf_;
};

std::unique_ptr<Server> Echo() {
  auto server = StartServer({}, [](const ServerRequest& req) {
    ServerResponse r =
        ServerResponse::Text(200, req.method + " " + req.path + " [" + req.body + "]");
    int n = 0;
    for (const auto& [name, value] : req.headers.entries()) {
      if (EqualsIgnoreCase(name, "X-Multi")) r.headers.Add("X-Seen-" + std::to_string(n++), value);
    }
    return r;
  });
  EXPECT_TRUE(server.ok());
  return server.ok() ? std::move(server).value() : nullptr;
}

TEST(HttpServerWireTest, DecodesAChunkedRequestBody) {
  auto server = Echo();
  ASSERT_NE(server, nullptr);
  RawClient c(server->port());
  ASSERT_TRUE(c.connected());
  c.Send(
      "POST /chunked HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
      "5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nTrailer: t\r\n\r\n");
  const std::string resp = c.ReadUntil("]");
  EXPECT_EQ(resp.rfind("HTTP/1.1 200 OK\r\n", 0), 0u) << resp;
  EXPECT_NE(resp.find("POST /chunked [hello world]"), std::string::npos) << resp;
}

TEST(HttpServerWireTest, AnswersPipelinedRequestsInOrderOnOneConnection) {
  auto server = Echo();
  ASSERT_NE(server, nullptr);
  RawClient c(server->port());
  ASSERT_TRUE(c.connected());
  c.Send(
      "GET /one HTTP/1.1\r\nHost: x\r\n\r\nPUT /two HTTP/1.1\r\nHost: x\r\nContent-Length: "
      "3\r\n\r\nabc");
  EXPECT_NE(c.ReadUntil("]").find("GET /one []"), std::string::npos);
  EXPECT_NE(c.ReadUntil("]").find("PUT /two [abc]"), std::string::npos);
}

TEST(HttpServerWireTest, KeepsRepeatedHeadersApart) {
  auto server = Echo();
  ASSERT_NE(server, nullptr);
  RawClient c(server->port());
  ASSERT_TRUE(c.connected());
  c.Send("GET / HTTP/1.1\r\nHost: x\r\nX-Multi: a\r\nx-multi: b, c\r\n\r\n");
  const std::string resp = c.ReadUntil("]");
  EXPECT_NE(resp.find("X-Seen-0: a\r\n"), std::string::npos) << resp;
  EXPECT_NE(resp.find("X-Seen-1: b, c\r\n"), std::string::npos) << resp;
}

TEST(HttpServerWireTest, SendsContinueBeforeReadingAnExpectedBody) {
  auto server = Echo();
  ASSERT_NE(server, nullptr);
  RawClient c(server->port());
  ASSERT_TRUE(c.connected());
  c.Send("PUT /up HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n");
  EXPECT_EQ(c.ReadUntil("\r\n\r\n"), "HTTP/1.1 100 Continue\r\n\r\n");
  c.Send("data");
  EXPECT_NE(c.ReadUntil("]").find("PUT /up [data]"), std::string::npos);
}

TEST(HttpServerWireTest, MalformedRequestGets400AndClose) {
  auto server = Echo();
  ASSERT_NE(server, nullptr);
  RawClient c(server->port());
  ASSERT_TRUE(c.connected());
  c.Send("this is not http\r\n\r\n");
  const std::string resp = c.ReadToEof();
  EXPECT_EQ(resp.rfind("HTTP/1.1 400 Bad Request\r\n", 0), 0u) << resp;
}

TEST(HttpServerWireTest, Http10ClientGetsTheConnectionClosed) {
  auto server = Echo();
  ASSERT_NE(server, nullptr);
  RawClient c(server->port());
  ASSERT_TRUE(c.connected());
  c.Send("GET /old HTTP/1.0\r\n\r\n");
  const std::string resp = c.ReadToEof();  // returns only because the server closed
  EXPECT_NE(resp.find("Connection: close\r\n"), std::string::npos) << resp;
  EXPECT_NE(resp.find("GET /old []"), std::string::npos) << resp;
}

TEST(HttpServerWireTest, ReasonPhraseAndHeadersCannotInjectLines) {
  auto server = StartServer({}, [](const ServerRequest&) {
    ServerResponse r = ServerResponse::Text(400, "");
    r.reason = "bad\r\nX-Injected: 1";
    r.headers.Set("X-Value", "v\r\nX-Injected: 2");
    return r;
  });
  ASSERT_TRUE(server.ok());
  RawClient c((*server)->port());
  ASSERT_TRUE(c.connected());
  c.Send("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
  const std::string resp = c.ReadUntil("\r\n\r\n");
  EXPECT_EQ(resp.rfind("HTTP/1.1 400 bad  X-Injected: 1\r\n", 0), 0u) << resp;
  EXPECT_EQ(resp.find("\r\nX-Injected"), std::string::npos) << resp;
}

TEST(HttpServerWireTest, StreamIsChunkedAndEndsWithTheLastChunk) {
  auto server = StartServer({}, [](const ServerRequest&) {
    ServerResponse r;
    r.headers.Set("Content-Type", "application/json");
    r.stream = [](StreamWriter& w) {
      w.Write("{\"a\":1}\n");
      w.Write("");  // empty writes send nothing (a zero chunk would end the body)
      w.Write("{\"b\":2}\n");
    };
    return r;
  });
  ASSERT_TRUE(server.ok());
  RawClient c((*server)->port());
  ASSERT_TRUE(c.connected());
  c.Send("GET /watch HTTP/1.1\r\nHost: x\r\n\r\n");
  const std::string resp = c.ReadUntil("0\r\n\r\n");
  EXPECT_NE(resp.find("Transfer-Encoding: chunked\r\n"), std::string::npos) << resp;
  EXPECT_NE(resp.find("\r\n\r\n8\r\n{\"a\":1}\n\r\n8\r\n{\"b\":2}\n\r\n0\r\n\r\n"),
            std::string::npos)
      << resp;
}

TEST(HttpServerWireTest, StreamToAnHttp10ClientIsRawAndEndsWithClose) {
  auto server = StartServer({}, [](const ServerRequest&) {
    ServerResponse r;
    r.stream = [](StreamWriter& w) {
      w.Write("one\n");
      w.Write("two\n");
    };
    return r;
  });
  ASSERT_TRUE(server.ok());
  RawClient c((*server)->port());
  ASSERT_TRUE(c.connected());
  c.Send("GET /watch HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
  const std::string resp = c.ReadToEof();
  EXPECT_EQ(resp.find("Transfer-Encoding"), std::string::npos) << resp;
  EXPECT_NE(resp.find("Connection: close\r\n"), std::string::npos) << resp;
  EXPECT_NE(resp.find("\r\n\r\none\ntwo\n"), std::string::npos) << resp;
}

TEST(HttpServerWireTest, SilentStreamNoticesTheClientHangingUp) {
  std::atomic<bool> noticed{false};
  std::atomic<bool> started{false};
  auto server = StartServer({}, [&](const ServerRequest&) {
    ServerResponse r;
    r.stream = [&](StreamWriter& w) {
      w.Write("hello\n");
      started = true;
      const auto give_up = std::chrono::steady_clock::now() + 20s;
      while (!w.closed() && std::chrono::steady_clock::now() < give_up) {
        std::this_thread::sleep_for(5ms);
      }
      noticed = w.closed();
    };
    return r;
  });
  ASSERT_TRUE(server.ok());
  {
    RawClient c((*server)->port());
    ASSERT_TRUE(c.connected());
    c.Send("GET /watch HTTP/1.1\r\nHost: x\r\n\r\n");
    c.ReadUntil("hello\n");
  }                   // hang up without a word
  (*server)->Stop();  // waits for the stream function to return
  EXPECT_TRUE(started.load());
  EXPECT_TRUE(noticed.load());
}

TEST(HttpServerWireTest, StopClosesIdleKeepAliveConnections) {
  auto server = Echo();
  ASSERT_NE(server, nullptr);
  RawClient c(server->port());
  ASSERT_TRUE(c.connected());
  c.Send("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
  c.ReadUntil("]");
  server->Stop();
  EXPECT_EQ(c.ReadToEof(), "");  // EOF, promptly
  RawClient late(server->port());
  EXPECT_FALSE(late.connected());
}

}  // namespace
}  // namespace nixmox::http
