// The real client against the real server, in one process, over loopback.
// Timing: every wait is bounded generously and no assertion depends on how
// fast a loaded machine is.
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <future>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "src/http/http.h"
#include "src/http/tls_util.h"

namespace nixmox::http {
namespace {

using namespace std::chrono_literals;

// A one-shot flag a test sets and a handler waits on, with a bound.
class Latch {
 public:
  void Open() {
    std::lock_guard lock(mu_);
    open_ = true;
    cv_.notify_all();
  }
  bool WaitFor(std::chrono::milliseconds d) {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, d, [&] { return open_; });
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool open_ = false;
};

// A checksum both ends compute in this process (libstdc++'s optimized hash,
// so a 200 MB body costs little even in a debug build).
uint64_t Checksum(std::string_view data) { return std::hash<std::string_view>{}(data); }

std::filesystem::path TempPath(const std::string& name) {
  static std::atomic<int> counter{0};
  auto dir = std::filesystem::temp_directory_path() /
             ("nixmox-http-it-" + std::to_string(getpid()) + "-" + std::to_string(counter++));
  std::filesystem::create_directories(dir);
  return dir / name;
}

std::unique_ptr<Server> Start(Handler handler, ServerOptions options = {}) {
  auto server = StartServer(std::move(options), std::move(handler));
  EXPECT_TRUE(server.ok()) << server.status().ToString();
  return server.ok() ? std::move(server).value() : nullptr;
}

std::unique_ptr<Client> Connect(const std::string& url, ClientOptions options = {}) {
  options.base_url = url;
  auto client = NewClient(std::move(options));
  EXPECT_TRUE(client.ok()) << client.status().ToString();
  return client.ok() ? std::move(client).value() : nullptr;
}

Request Get(std::string target) {
  Request r;
  r.target = std::move(target);
  return r;
}

TEST(HttpClientServerTest, StatusAndCustomReasonPhraseRoundTrip) {
  auto server = Start([](const ServerRequest& req) {
    if (req.path == "/locked") {
      ServerResponse r = ServerResponse::Text(500, "");
      r.reason = "VM 100 is locked (create)";
      return r;
    }
    return ServerResponse::Text(404, "nope");
  });
  ASSERT_NE(server, nullptr);
  auto client = Connect(server->url());
  ASSERT_NE(client, nullptr);

  auto locked = client->Send(Get("/locked"));
  ASSERT_TRUE(locked.ok()) << locked.status().ToString();
  EXPECT_EQ(locked->status, 500);
  EXPECT_EQ(locked->reason, "VM 100 is locked (create)");

  auto missing = client->Send(Get("/missing"));
  ASSERT_TRUE(missing.ok());
  EXPECT_EQ(missing->status, 404);
  EXPECT_EQ(missing->reason, "Not Found");
  EXPECT_EQ(missing->body, "nope");
}

TEST(HttpClientServerTest, ServerSeesMethodDecodedPathQueryHeadersAndPeer) {
  std::mutex mu;
  ServerRequest seen;
  auto server = Start([&](const ServerRequest& req) {
    std::lock_guard lock(mu);
    seen = req;
    ServerResponse r = ServerResponse::Text(200, "ok");
    r.headers.Set("X-Reply", "from-server");
    return r;
  });
  ASSERT_NE(server, nullptr);
  ClientOptions options;
  options.default_headers.Set("Authorization", "PVEAPIToken=root@pam!t=secret");
  options.default_headers.Set("User-Agent", "nixmox-test");
  auto client = Connect(server->url(), options);
  ASSERT_NE(client, nullptr);

  Request req;
  req.method = "DELETE";
  req.target = "/api2/json/nodes/pve%2F1/qemu?purge=1&name=a%20b&x=p+q";
  req.headers.Set("user-agent", "override");  // a request header beats the default
  req.headers.Set("X-Custom", "v");
  auto resp = client->Send(req);
  ASSERT_TRUE(resp.ok()) << resp.status().ToString();
  EXPECT_EQ(resp->status, 200);
  EXPECT_EQ(resp->headers.Get("x-reply"), "from-server");

  std::lock_guard lock(mu);
  EXPECT_EQ(seen.method, "DELETE");
  EXPECT_EQ(seen.path, "/api2/json/nodes/pve/1/qemu");
  EXPECT_EQ(seen.raw_query, "purge=1&name=a%20b&x=p+q");
  EXPECT_EQ(seen.QueryValue("name"), "a b");
  EXPECT_EQ(seen.QueryValue("x"), "p q");
  EXPECT_EQ(seen.headers.Get("authorization"), "PVEAPIToken=root@pam!t=secret");
  EXPECT_EQ(seen.headers.Get("User-Agent"), "override");
  EXPECT_EQ(seen.headers.Get("x-custom"), "v");
  EXPECT_EQ(seen.remote_address, "127.0.0.1");
}

TEST(HttpClientServerTest, BodyFromMemoryAndFileArrivesIntact) {
  const auto file = TempPath("image.qcow2");
  std::string file_content(3 * 1024 * 1024 + 17, '\0');
  std::mt19937 rng(42);
  for (auto& c : file_content) c = static_cast<char>(rng());
  std::ofstream(file, std::ios::binary).write(file_content.data(), file_content.size());

  auto server = Start([](const ServerRequest& req) {
    return ServerResponse::Text(200, std::to_string(req.body.size()) + " " +
                                         std::to_string(Checksum(req.body)) + " " +
                                         req.headers.Get("Content-Length").value_or("none") + " " +
                                         req.headers.Get("Content-Type").value_or("none"));
  });
  ASSERT_NE(server, nullptr);
  auto client = Connect(server->url());
  ASSERT_NE(client, nullptr);

  Request req;
  req.method = "POST";
  req.target = "/upload";
  req.headers.Set("Content-Type", "multipart/form-data; boundary=xyz");
  req.body = {BodyPart::Bytes("--xyz\r\npreamble\r\n"), BodyPart::File(file),
              BodyPart::Bytes("\r\n--xyz--\r\n")};
  const std::string expected = "--xyz\r\npreamble\r\n" + file_content + "\r\n--xyz--\r\n";
  auto resp = client->Send(req);
  ASSERT_TRUE(resp.ok()) << resp.status().ToString();
  EXPECT_EQ(resp->body, std::to_string(expected.size()) + " " + std::to_string(Checksum(expected)) +
                            " " + std::to_string(expected.size()) +
                            " multipart/form-data; boundary=xyz");

  Request small;
  small.method = "PUT";
  small.target = "/small";
  small.SetBody("application/json", R"({"a":1})");
  auto small_resp = client->Send(small);
  ASSERT_TRUE(small_resp.ok());
  EXPECT_EQ(small_resp->body,
            "7 " + std::to_string(Checksum(R"({"a":1})")) + " 7 application/json");
  std::filesystem::remove_all(file.parent_path());
}

TEST(HttpClientServerTest, LargeUploadFromFileIsReceivedWhole) {
  const auto file = TempPath("big.raw");
  {
    std::ofstream out(file, std::ios::binary);
    std::string block(1 << 20, 'x');
    for (int i = 0; i < 200; ++i) {
      block[0] = static_cast<char>(i);
      out.write(block.data(), block.size());
    }
  }
  std::string expected(std::filesystem::file_size(file), '\0');
  std::ifstream(file, std::ios::binary)
      .read(expected.data(), static_cast<std::streamsize>(expected.size()));
  auto server = Start([](const ServerRequest& req) {
    return ServerResponse::Text(
        200, std::to_string(req.body.size()) + " " + std::to_string(Checksum(req.body)));
  });
  ASSERT_NE(server, nullptr);
  ClientOptions options;
  options.timeout = 120s;
  auto client = Connect(server->url(), options);
  ASSERT_NE(client, nullptr);
  Request req;
  req.method = "POST";
  req.target = "/upload";
  req.body = {BodyPart::File(file)};
  auto resp = client->Send(req);
  ASSERT_TRUE(resp.ok()) << resp.status().ToString();
  EXPECT_EQ(resp->body, std::to_string(expected.size()) + " " + std::to_string(Checksum(expected)));
  std::filesystem::remove_all(file.parent_path());
}

TEST(HttpClientServerTest, UnreadableBodyFileIsInvalid) {
  auto server = Start([](const ServerRequest&) { return ServerResponse::Text(200, "ok"); });
  ASSERT_NE(server, nullptr);
  auto client = Connect(server->url());
  ASSERT_NE(client, nullptr);
  Request req;
  req.method = "POST";
  req.target = "/upload";
  req.body = {BodyPart::File("/nonexistent/nixmox/image.raw")};
  EXPECT_EQ(client->Send(req).status().code(), Code::kInvalid);
}

TEST(HttpClientServerTest, ServerErrorIsAResponseNotAnError) {
  auto server = Start([](const ServerRequest&) {
    return ServerResponse::Text(503, "{\"data\":null}", "application/json");
  });
  ASSERT_NE(server, nullptr);
  auto client = Connect(server->url());
  ASSERT_NE(client, nullptr);
  auto resp = client->Send(Get("/"));
  ASSERT_TRUE(resp.ok()) << resp.status().ToString();
  EXPECT_EQ(resp->status, 503);
  EXPECT_EQ(resp->body, "{\"data\":null}");
  EXPECT_EQ(resp->headers.Get("content-type"), "application/json");
}

TEST(HttpClientServerTest, ConnectionRefusedIsRetryable) {
  std::string url;
  {
    auto server = Start([](const ServerRequest&) { return ServerResponse::Text(200, ""); });
    ASSERT_NE(server, nullptr);
    url = server->url();
  }  // stopped: nothing listens there any more
  auto client = Connect(url);
  ASSERT_NE(client, nullptr);
  Request req;
  req.method = "POST";
  req.target = "/api2/json/nodes/pve/qemu";
  auto resp = client->Send(req);
  EXPECT_EQ(resp.status().code(), Code::kRetryable) << resp.status().ToString();
  EXPECT_NE(resp.status().message().find("POST /api2/json/nodes/pve/qemu"), std::string::npos);
}

TEST(HttpClientServerTest, ErrorMessagesNeverCarryHeaderValues) {
  std::string url;
  {
    auto server = Start([](const ServerRequest&) { return ServerResponse::Text(200, ""); });
    ASSERT_NE(server, nullptr);
    url = server->url();
  }
  ClientOptions options;
  options.default_headers.Set("Authorization", "PVEAPIToken=root@pam!t=topsecret");
  auto client = Connect(url, options);
  ASSERT_NE(client, nullptr);
  Request req = Get("/x?ticket=also-secret");
  req.headers.Set("Cookie", "PVEAuthCookie=cookiesecret");
  auto resp = client->Send(req);
  ASSERT_FALSE(resp.ok());
  const std::string text = resp.status().ToString();
  EXPECT_EQ(text.find("topsecret"), std::string::npos) << text;
  EXPECT_EQ(text.find("cookiesecret"), std::string::npos) << text;
  EXPECT_EQ(text.find("also-secret"), std::string::npos) << text;
}

TEST(HttpClientServerTest, HandlerSlowerThanTimeoutIsOutcomeUnknownForPost) {
  Latch release;
  auto server = Start([&](const ServerRequest&) {
    release.WaitFor(30s);
    return ServerResponse::Text(200, "late");
  });
  ASSERT_NE(server, nullptr);
  auto client = Connect(server->url());
  ASSERT_NE(client, nullptr);
  Request req;
  req.method = "POST";
  req.target = "/slow";
  req.timeout = 300ms;
  auto resp = client->Send(req);
  release.Open();
  EXPECT_EQ(resp.status().code(), Code::kOutcomeUnknown) << resp.status().ToString();
}

TEST(HttpClientServerTest, CancelTokenAbortsAPendingRequest) {
  Latch release;
  auto server = Start([&](const ServerRequest&) {
    release.WaitFor(30s);
    return ServerResponse::Text(200, "late");
  });
  ASSERT_NE(server, nullptr);
  auto client = Connect(server->url());
  ASSERT_NE(client, nullptr);
  Request req = Get("/slow");
  req.cancel = std::make_shared<CancelToken>();
  std::thread canceller([token = req.cancel] {
    std::this_thread::sleep_for(200ms);
    token->Cancel();
  });
  auto resp = client->Send(req);
  canceller.join();
  release.Open();
  EXPECT_EQ(resp.status().code(), Code::kCancelled) << resp.status().ToString();
}

TEST(HttpClientServerTest, StreamDeliversLinesBeforeTheBodyEnds) {
  Latch first_line_seen;
  std::atomic<bool> server_saw_signal{false};
  auto server = Start([&](const ServerRequest&) {
    ServerResponse r;
    r.headers.Set("Content-Type", "application/json");
    r.stream = [&](StreamWriter& w) {
      w.Write("{\"type\":\"ADDED\"}\n");
      // Only continue once the client has seen the first line: proves the
      // line was delivered while the body was still open.
      server_saw_signal = first_line_seen.WaitFor(20s);
      w.Write("{\"type\":\"MOD");  // a line split across chunks
      w.Write("IFIED\"}\n");
    };
    return r;
  });
  ASSERT_NE(server, nullptr);
  auto client = Connect(server->url());
  ASSERT_NE(client, nullptr);
  std::vector<std::string> lines;
  auto resp = client->Stream(Get("/api/v1/pods?watch=1"), [&](std::string_view line) {
    lines.emplace_back(line);
    if (lines.size() == 1) first_line_seen.Open();
    return true;
  });
  ASSERT_TRUE(resp.ok()) << resp.status().ToString();
  EXPECT_EQ(resp->status, 200);
  EXPECT_EQ(resp->headers.Get("content-type"), "application/json");
  EXPECT_TRUE(server_saw_signal.load());
  EXPECT_EQ(lines, (std::vector<std::string>{"{\"type\":\"ADDED\"}", "{\"type\":\"MODIFIED\"}"}));
}

TEST(HttpClientServerTest, StreamOfErrorStatusReturnsTheBody) {
  auto server = Start([](const ServerRequest&) {
    return ServerResponse::Text(410, "{\"reason\":\"Expired\"}\n", "application/json");
  });
  ASSERT_NE(server, nullptr);
  auto client = Connect(server->url());
  ASSERT_NE(client, nullptr);
  int calls = 0;
  auto resp = client->Stream(Get("/watch"), [&](std::string_view) {
    ++calls;
    return true;
  });
  ASSERT_TRUE(resp.ok()) << resp.status().ToString();
  EXPECT_EQ(resp->status, 410);
  EXPECT_EQ(resp->body, "{\"reason\":\"Expired\"}\n");
  EXPECT_EQ(calls, 0);
}

TEST(HttpClientServerTest, OnLineReturningFalseStopsAndServerSeesTheClientGo) {
  std::promise<int> writes_until_closed;
  auto server = Start([&](const ServerRequest&) {
    ServerResponse r;
    r.stream = [&](StreamWriter& w) {
      int n = 0;
      // Writes until the client is gone (bounded so a bug cannot hang the test).
      while (n < 200000 && w.Write("line " + std::to_string(n) + "\n")) {
        ++n;
        std::this_thread::sleep_for(1ms);
      }
      writes_until_closed.set_value(n);
    };
    return r;
  });
  ASSERT_NE(server, nullptr);
  auto client = Connect(server->url());
  ASSERT_NE(client, nullptr);
  std::vector<std::string> lines;
  auto resp = client->Stream(Get("/watch"), [&](std::string_view line) {
    lines.emplace_back(line);
    return lines.size() < 3;
  });
  ASSERT_TRUE(resp.ok()) << resp.status().ToString();
  EXPECT_EQ(lines, (std::vector<std::string>{"line 0", "line 1", "line 2"}));
  auto done = writes_until_closed.get_future();
  ASSERT_EQ(done.wait_for(30s), std::future_status::ready);
  EXPECT_LT(done.get(), 200000);  // Write returned false: the server noticed
}

TEST(HttpClientServerTest, CancelTokenEndsASilentStreamPromptly) {
  Latch server_may_finish;
  auto server = Start([&](const ServerRequest&) {
    ServerResponse r;
    r.stream = [&](StreamWriter& w) {
      w.Write("hello\n");
      server_may_finish.WaitFor(30s);  // then silence
    };
    return r;
  });
  ASSERT_NE(server, nullptr);
  auto client = Connect(server->url());
  ASSERT_NE(client, nullptr);
  Request req = Get("/watch");
  req.cancel = std::make_shared<CancelToken>();
  req.timeout = 60s;
  std::thread canceller;
  auto start = std::chrono::steady_clock::now();
  std::chrono::steady_clock::time_point cancelled_at;
  auto resp = client->Stream(req, [&](std::string_view) {
    canceller = std::thread([&, token = req.cancel] {
      std::this_thread::sleep_for(100ms);
      cancelled_at = std::chrono::steady_clock::now();
      token->Cancel();
    });
    return true;
  });
  const auto returned_at = std::chrono::steady_clock::now();
  canceller.join();
  server_may_finish.Open();
  EXPECT_EQ(resp.status().code(), Code::kCancelled) << resp.status().ToString();
  // "Promptly": long before the server would have ended the body (30 s).
  EXPECT_LT(returned_at - cancelled_at, 10s);
  EXPECT_LT(returned_at - start, 20s);
}

TEST(HttpClientServerTest, TimeoutDoesNotLimitAStreamsLifetime) {
  auto server = Start([&](const ServerRequest&) {
    ServerResponse r;
    r.stream = [&](StreamWriter& w) {
      w.Write("a\n");
      std::this_thread::sleep_for(800ms);  // longer than the request timeout
      w.Write("b\n");
    };
    return r;
  });
  ASSERT_NE(server, nullptr);
  auto client = Connect(server->url());
  ASSERT_NE(client, nullptr);
  Request req = Get("/watch");
  req.timeout = 300ms;
  std::vector<std::string> lines;
  auto resp = client->Stream(req, [&](std::string_view line) {
    lines.emplace_back(line);
    return true;
  });
  ASSERT_TRUE(resp.ok()) << resp.status().ToString();
  EXPECT_EQ(lines, (std::vector<std::string>{"a", "b"}));
}

TEST(HttpClientServerTest, StopEndsOpenStreams) {
  Latch first_line;
  std::atomic<int> stream_functions_done{0};
  auto server = Start([&](const ServerRequest&) {
    ServerResponse r;
    r.stream = [&](StreamWriter& w) {
      w.Write("first\n");
      // A well-behaved watch: idle until the server says stop.
      while (!w.closed()) std::this_thread::sleep_for(5ms);
      ++stream_functions_done;
    };
    return r;
  });
  ASSERT_NE(server, nullptr);
  auto client = Connect(server->url());
  ASSERT_NE(client, nullptr);
  constexpr int kStreams = 3;
  std::atomic<int> first_lines{0};
  std::vector<std::future<Result<Response>>> watchers;
  for (int i = 0; i < kStreams; ++i) {
    watchers.push_back(std::async(std::launch::async, [&] {
      return client->Stream(Get("/watch"), [&](std::string_view) {
        if (++first_lines == kStreams) first_line.Open();
        return true;
      });
    }));
  }
  ASSERT_TRUE(first_line.WaitFor(30s));
  server->Stop();
  EXPECT_EQ(stream_functions_done.load(), kStreams);  // Stop returned after they ended
  for (auto& w : watchers) {
    ASSERT_EQ(w.wait_for(30s), std::future_status::ready);
    // The server ends the chunked body cleanly, or the connection drops.
    auto r = w.get();
    EXPECT_TRUE(r.ok() ? r->status == 200 : r.status().code() == Code::kOutcomeUnknown)
        << r.status().ToString();
  }
}

TEST(HttpClientServerTest, ManyOpenStreamsDoNotStarveOrdinaryRequests) {
  constexpr int kStreams = 60;  // more than cpprest's default pool of 40 threads
  std::atomic<int> open_streams{0};
  Latch all_open;
  auto server = Start([&](const ServerRequest& req) {
    if (req.path != "/watch") return ServerResponse::Text(200, "still serving");
    ServerResponse r;
    r.stream = [&](StreamWriter& w) {
      w.Write("open\n");
      while (!w.closed()) std::this_thread::sleep_for(10ms);
    };
    return r;
  });
  ASSERT_NE(server, nullptr);
  auto client = Connect(server->url());
  ASSERT_NE(client, nullptr);
  std::vector<std::future<Result<Response>>> watchers;
  for (int i = 0; i < kStreams; ++i) {
    watchers.push_back(std::async(std::launch::async, [&] {
      return client->Stream(Get("/watch"), [&](std::string_view) {
        if (++open_streams == kStreams) all_open.Open();
        return true;
      });
    }));
  }
  ASSERT_TRUE(all_open.WaitFor(60s)) << open_streams.load() << " streams opened";
  auto r = client->Send(Get("/plain"));
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->body, "still serving");
  server->Stop();
  for (auto& w : watchers) {
    ASSERT_EQ(w.wait_for(30s), std::future_status::ready);
    auto result = w.get();
    EXPECT_TRUE(result.ok() || result.status().code() == Code::kOutcomeUnknown);
  }
}

TEST(HttpClientServerTest, SlowHandlersRunConcurrently) {
  std::atomic<int> running{0};
  std::atomic<int> max_running{0};
  auto server = Start([&](const ServerRequest&) {
    const int now = ++running;
    int prev = max_running.load();
    while (now > prev && !max_running.compare_exchange_weak(prev, now)) {
    }
    std::this_thread::sleep_for(200ms);
    --running;
    return ServerResponse::Text(200, "ok");
  });
  ASSERT_NE(server, nullptr);
  auto client = Connect(server->url());
  ASSERT_NE(client, nullptr);
  std::vector<std::future<Result<Response>>> calls;
  for (int i = 0; i < 20; ++i) {
    calls.push_back(std::async(std::launch::async, [&] { return client->Send(Get("/slow")); }));
  }
  for (auto& c : calls) {
    auto r = c.get();
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    EXPECT_EQ(r->status, 200);
  }
  EXPECT_GT(max_running.load(), 1);
}

TEST(HttpClientServerTest, HandlerMayCallAClientInTheSameProcess) {
  auto backend = Start([](const ServerRequest&) { return ServerResponse::Text(200, "backend"); });
  ASSERT_NE(backend, nullptr);
  auto backend_client = Connect(backend->url());
  ASSERT_NE(backend_client, nullptr);
  auto front = Start([&](const ServerRequest&) {
    auto r = backend_client->Send(Get("/"));
    return ServerResponse::Text(200, r.ok() ? "front+" + r->body : "failed");
  });
  ASSERT_NE(front, nullptr);
  auto client = Connect(front->url());
  ASSERT_NE(client, nullptr);
  std::vector<std::future<Result<Response>>> calls;
  for (int i = 0; i < 10; ++i) {
    calls.push_back(std::async(std::launch::async, [&] { return client->Send(Get("/")); }));
  }
  for (auto& c : calls) {
    auto r = c.get();
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    EXPECT_EQ(r->body, "front+backend");
  }
}

TEST(HttpClientServerTest, ManyRequestsReuseTheClient) {
  std::atomic<int> served{0};
  auto server = Start([&](const ServerRequest&) {
    ++served;
    return ServerResponse::Text(200, "ok");
  });
  ASSERT_NE(server, nullptr);
  auto client = Connect(server->url());
  ASSERT_NE(client, nullptr);
  for (int i = 0; i < 50; ++i) {
    auto r = client->Send(Get("/ping"));
    ASSERT_TRUE(r.ok()) << r.status().ToString();
  }
  EXPECT_EQ(served.load(), 50);
}

TEST(HttpClientServerTest, ClientDefaultTimeoutAppliesWithoutAPerRequestOne) {
  Latch release;
  auto server = Start([&](const ServerRequest&) {
    release.WaitFor(30s);
    return ServerResponse::Text(200, "late");
  });
  ASSERT_NE(server, nullptr);
  ClientOptions options;
  options.timeout = 300ms;
  auto client = Connect(server->url(), options);
  ASSERT_NE(client, nullptr);
  auto resp = client->Send(Get("/slow"));
  release.Open();
  EXPECT_EQ(resp.status().code(), Code::kOutcomeUnknown) << resp.status().ToString();
}

TEST(HttpClientServerTest, StreamCutOffMidwayIsAnError) {
  auto server = Start([](const ServerRequest&) {
    ServerResponse r;
    r.stream = [](StreamWriter& w) {
      w.Write("complete line\n");
      throw std::runtime_error("simulated crash");  // the body never ends properly
    };
    return r;
  });
  ASSERT_NE(server, nullptr);
  auto client = Connect(server->url());
  ASSERT_NE(client, nullptr);
  std::vector<std::string> lines;
  auto resp = client->Stream(Get("/watch"), [&](std::string_view l) {
    lines.emplace_back(l);
    return true;
  });
  EXPECT_EQ(resp.status().code(), Code::kOutcomeUnknown) << resp.status().ToString();
  EXPECT_EQ(lines, std::vector<std::string>{"complete line"});
}

TEST(HttpClientServerTest, StopWaitsForRunningHandlers) {
  Latch handler_started;
  std::atomic<bool> handler_finished{false};
  auto server = Start([&](const ServerRequest&) {
    handler_started.Open();
    std::this_thread::sleep_for(300ms);
    handler_finished = true;
    return ServerResponse::Text(200, "done");
  });
  ASSERT_NE(server, nullptr);
  auto client = Connect(server->url());
  ASSERT_NE(client, nullptr);
  auto call = std::async(std::launch::async, [&] { return client->Send(Get("/")); });
  ASSERT_TRUE(handler_started.WaitFor(30s));
  server->Stop();
  EXPECT_TRUE(handler_finished.load());
  // The request itself was cut off by the stop: some answer or a transport error.
  auto r = call.get();
  EXPECT_TRUE(r.ok() || r.status().code() == Code::kOutcomeUnknown) << r.status().ToString();
  server->Stop();  // idempotent
}

TEST(HttpClientServerTest, HandlerExceptionBecomes500) {
  auto server =
      Start([](const ServerRequest&) -> ServerResponse { throw std::runtime_error("boom"); });
  ASSERT_NE(server, nullptr);
  auto client = Connect(server->url());
  ASSERT_NE(client, nullptr);
  auto r = client->Send(Get("/"));
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->status, 500);
}

TEST(HttpClientServerTest, HeadGetsHeadersWithoutBody) {
  auto server = Start([](const ServerRequest& req) {
    ServerResponse r = ServerResponse::Text(200, "body that must not be sent for HEAD");
    r.headers.Set("X-Method", req.method);
    return r;
  });
  ASSERT_NE(server, nullptr);
  auto client = Connect(server->url());
  ASSERT_NE(client, nullptr);
  Request head = Get("/");
  head.method = "HEAD";
  for (int i = 0; i < 2; ++i) {  // the connection stays usable afterwards
    auto r = client->Send(head);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    EXPECT_EQ(r->headers.Get("X-Method"), "HEAD");
    EXPECT_EQ(r->body, "");
    auto g = client->Send(Get("/"));
    ASSERT_TRUE(g.ok()) << g.status().ToString();
    EXPECT_EQ(g->body, "body that must not be sent for HEAD");
  }
}

TEST(HttpClientServerTest, StreamTimeoutBoundsTheWaitForHeaders) {
  Latch release;
  auto server = Start([&](const ServerRequest&) {
    release.WaitFor(30s);
    return ServerResponse::Text(200, "late\n");
  });
  ASSERT_NE(server, nullptr);
  auto client = Connect(server->url());
  ASSERT_NE(client, nullptr);
  Request req = Get("/watch");
  req.timeout = 300ms;
  int lines = 0;
  auto r = client->Stream(req, [&](std::string_view) {
    ++lines;
    return true;
  });
  release.Open();
  EXPECT_EQ(r.status().code(), Code::kOutcomeUnknown) << r.status().ToString();
  EXPECT_EQ(lines, 0);
}

TEST(HttpClientServerTest, StreamDeliversManyLinesInOrder) {
  constexpr int kLines = 20000;
  auto server = Start([](const ServerRequest&) {
    ServerResponse r;
    r.stream = [](StreamWriter& w) {
      std::string batch;
      for (int i = 0; i < kLines; ++i) {
        batch += "{\"n\":" + std::to_string(i) + "}\r\n";  // CRLF is tolerated too
        if (batch.size() > 3000) {
          if (!w.Write(batch)) return;
          batch.clear();
        }
      }
      w.Write(batch);
    };
    return r;
  });
  ASSERT_NE(server, nullptr);
  auto client = Connect(server->url());
  ASSERT_NE(client, nullptr);
  int next = 0;
  bool in_order = true;
  auto r = client->Stream(Get("/watch"), [&](std::string_view line) {
    in_order = in_order && line == "{\"n\":" + std::to_string(next) + "}";
    ++next;
    return true;
  });
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(next, kLines);
  EXPECT_TRUE(in_order);
}

TEST(HttpClientServerTest, StoppingOneServerLeavesAnotherServing) {
  auto a = Start([](const ServerRequest&) { return ServerResponse::Text(200, "a"); });
  auto b = Start([](const ServerRequest&) { return ServerResponse::Text(200, "b"); });
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  ASSERT_NE(a->port(), b->port());
  auto client_a = Connect(a->url());
  auto client_b = Connect(b->url());
  ASSERT_TRUE(client_a->Send(Get("/")).ok());
  a->Stop();
  auto after = client_a->Send(Get("/"));
  EXPECT_EQ(after.status().code(), Code::kRetryable)
      << (after.ok() ? std::to_string(after->status) : after.status().ToString());
  auto fresh = Connect(a->url());
  auto after2 = fresh->Send(Get("/"));
  EXPECT_EQ(after2.status().code(), Code::kRetryable)
      << (after2.ok() ? std::to_string(after2->status) : after2.status().ToString());
  auto rb = client_b->Send(Get("/"));
  ASSERT_TRUE(rb.ok()) << rb.status().ToString();
  EXPECT_EQ(rb->body, "b");
}

TEST(HttpClientServerTest, ListensOnANamedHost) {
  ServerOptions options;
  options.listen = "localhost:0";
  auto server =
      Start([](const ServerRequest&) { return ServerResponse::Text(200, "named"); }, options);
  ASSERT_NE(server, nullptr);
  EXPECT_EQ(server->url(), "http://localhost:" + std::to_string(server->port()));
  auto client = Connect(server->url());
  ASSERT_NE(client, nullptr);
  auto r = client->Send(Get("/"));
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->body, "named");
}

TEST(HttpClientServerTest, ServerListensOnIpv6Loopback) {
  ServerOptions options;
  options.listen = "[::1]:0";
  auto server = StartServer(options, [](const ServerRequest& req) {
    return ServerResponse::Text(200, "from " + req.remote_address);
  });
  if (!server.ok()) GTEST_SKIP() << "no IPv6 loopback here: " << server.status().ToString();
  EXPECT_EQ((*server)->url(), "http://[::1]:" + std::to_string((*server)->port()));
  // cpprest's client cannot resolve bracketed IPv6 literals (a known gap, see
  // src/http/README.md), so speak HTTP by hand.
  const int fd = socket(AF_INET6, SOCK_STREAM, 0);
  sockaddr_in6 addr{};
  addr.sin6_family = AF_INET6;
  addr.sin6_addr = in6addr_loopback;
  addr.sin6_port = htons(static_cast<uint16_t>((*server)->port()));
  ASSERT_EQ(connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  const std::string request = "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
  ASSERT_EQ(send(fd, request.data(), request.size(), 0), static_cast<ssize_t>(request.size()));
  std::string reply;
  char buf[1024];
  for (ssize_t n; (n = recv(fd, buf, sizeof(buf), 0)) > 0;)
    reply.append(buf, static_cast<size_t>(n));
  close(fd);
  EXPECT_EQ(reply.rfind("HTTP/1.1 200 OK\r\n", 0), 0u) << reply;
  EXPECT_NE(reply.find("from ::1"), std::string::npos) << reply;
}

TEST(HttpClientTest, BadBaseUrlIsInvalid) {
  ClientOptions options;
  options.base_url = "not a url";
  EXPECT_EQ(NewClient(options).status().code(), Code::kInvalid);
  options.base_url = "ftp://example.test/";
  EXPECT_EQ(NewClient(options).status().code(), Code::kInvalid);
}

TEST(HttpServerTest, BadListenAddressIsInvalid) {
  ServerOptions options;
  options.listen = "127.0.0.1";
  EXPECT_EQ(
      StartServer(options, [](const ServerRequest&) { return ServerResponse{}; }).status().code(),
      Code::kInvalid);
}

// ---------------------------------------------------------------------------
// TLS

class HttpTlsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto cert = GenerateSelfSignedCert("nixmox-test", {"localhost", "127.0.0.1"});
    ASSERT_TRUE(cert.ok()) << cert.status().ToString();
    cert_ = *cert;
    cert_file_ = TempPath("server.crt");
    key_file_ = TempPath("server.key");
    ASSERT_TRUE(WritePemFile(cert_file_, cert_.cert_pem).ok());
    ASSERT_TRUE(WritePemFile(key_file_, cert_.key_pem).ok());
    ServerOptions options;
    options.tls_cert_file = cert_file_.string();
    options.tls_key_file = key_file_.string();
    server_ = Start(
        [](const ServerRequest& req) { return ServerResponse::Text(200, "secure " + req.path); },
        options);
    ASSERT_NE(server_, nullptr);
  }
  void TearDown() override {
    server_.reset();
    std::filesystem::remove_all(cert_file_.parent_path());
    std::filesystem::remove_all(key_file_.parent_path());
  }

  CertAndKey cert_;
  std::filesystem::path cert_file_, key_file_;
  std::unique_ptr<Server> server_;
};

TEST_F(HttpTlsTest, ServesHttps) {
  EXPECT_EQ(server_->url().rfind("https://127.0.0.1:", 0), 0u) << server_->url();
}

TEST_F(HttpTlsTest, DefaultClientRefusesAnUntrustedCertificate) {
  auto client = Connect(server_->url());
  ASSERT_NE(client, nullptr);
  auto resp = client->Send(Get("/x"));
  EXPECT_EQ(resp.status().code(), Code::kRetryable) << resp.status().ToString();
}

TEST_F(HttpTlsTest, ClientTrustingTheCaPemConnects) {
  ClientOptions options;
  options.tls.ca_pem = cert_.cert_pem;
  auto client = Connect(server_->url(), options);
  ASSERT_NE(client, nullptr);
  auto resp = client->Send(Get("/x"));
  ASSERT_TRUE(resp.ok()) << resp.status().ToString();
  EXPECT_EQ(resp->body, "secure /x");
}

TEST_F(HttpTlsTest, ClientTrustingTheCaFileConnectsByHostName) {
  ClientOptions options;
  options.tls.ca_file = cert_file_.string();
  auto client = Connect("https://localhost:" + std::to_string(server_->port()), options);
  ASSERT_NE(client, nullptr);
  auto resp = client->Send(Get("/y"));
  ASSERT_TRUE(resp.ok()) << resp.status().ToString();
  EXPECT_EQ(resp->body, "secure /y");
}

TEST_F(HttpTlsTest, TrustedCaStillRequiresAMatchingHostName) {
  // Same server, trusted CA, but reached under a name the certificate lacks.
  auto other = GenerateSelfSignedCert("other", {"only-this-name.test"});
  ASSERT_TRUE(other.ok());
  const auto cert_file = TempPath("other.crt");
  const auto key_file = TempPath("other.key");
  ASSERT_TRUE(WritePemFile(cert_file, other->cert_pem).ok());
  ASSERT_TRUE(WritePemFile(key_file, other->key_pem).ok());
  ServerOptions server_options;
  server_options.tls_cert_file = cert_file.string();
  server_options.tls_key_file = key_file.string();
  auto server =
      Start([](const ServerRequest&) { return ServerResponse::Text(200, ""); }, server_options);
  ASSERT_NE(server, nullptr);
  ClientOptions options;
  options.tls.ca_pem = other->cert_pem;
  auto client = Connect(server->url(), options);
  ASSERT_NE(client, nullptr);
  EXPECT_EQ(client->Send(Get("/")).status().code(), Code::kRetryable);
  server.reset();
  std::filesystem::remove_all(cert_file.parent_path());
  std::filesystem::remove_all(key_file.parent_path());
}

TEST_F(HttpTlsTest, InsecureClientConnectsToAnything) {
  ClientOptions options;
  options.tls.insecure_skip_verify = true;
  auto client = Connect(server_->url(), options);
  ASSERT_NE(client, nullptr);
  auto resp = client->Send(Get("/z"));
  ASSERT_TRUE(resp.ok()) << resp.status().ToString();
  EXPECT_EQ(resp->body, "secure /z");
}

TEST_F(HttpTlsTest, ClientCertificateIsAcceptedWhenPresented) {
  auto identity = GenerateSelfSignedCert("system:admin", {});
  ASSERT_TRUE(identity.ok());
  ClientOptions options;
  options.tls.ca_pem = cert_.cert_pem;
  options.tls.client_cert_pem = identity->cert_pem;
  options.tls.client_key_pem = identity->key_pem;
  auto client = Connect(server_->url(), options);
  ASSERT_NE(client, nullptr);
  auto resp = client->Send(Get("/me"));
  ASSERT_TRUE(resp.ok()) << resp.status().ToString();
  EXPECT_EQ(resp->status, 200);

  // The same identity from files, as a kubeconfig's client-certificate/-key.
  const auto cert_file = TempPath("client.crt");
  const auto key_file = TempPath("client.key");
  ASSERT_TRUE(WritePemFile(cert_file, identity->cert_pem).ok());
  ASSERT_TRUE(WritePemFile(key_file, identity->key_pem).ok());
  ClientOptions from_files;
  from_files.tls.ca_file = cert_file_.string();
  from_files.tls.client_cert_file = cert_file.string();
  from_files.tls.client_key_file = key_file.string();
  auto file_client = Connect(server_->url(), from_files);
  ASSERT_NE(file_client, nullptr);
  auto file_resp = file_client->Send(Get("/me"));
  ASSERT_TRUE(file_resp.ok()) << file_resp.status().ToString();
  EXPECT_EQ(file_resp->status, 200);
  std::filesystem::remove_all(cert_file.parent_path());
  std::filesystem::remove_all(key_file.parent_path());
}

TEST_F(HttpTlsTest, MutationAfterTheServerRestartedGoesOutOnceOnANewConnection) {
  ClientOptions options;
  options.tls.ca_pem = cert_.cert_pem;
  auto client = Connect(server_->url(), options);
  ASSERT_NE(client, nullptr);
  Request post;
  post.method = "POST";
  post.target = "/create";
  ASSERT_TRUE(client->Send(post).ok());

  // Restarted on the same port: the client's kept-alive connection is dead.
  const int port = server_->port();
  server_.reset();
  std::atomic<int> seen{0};
  ServerOptions again;
  again.listen = "127.0.0.1:" + std::to_string(port);
  again.tls_cert_file = cert_file_.string();
  again.tls_key_file = key_file_.string();
  server_ = Start(
      [&seen](const ServerRequest& req) {
        ++seen;
        return ServerResponse::Text(200, "again " + req.path);
      },
      again);
  ASSERT_NE(server_, nullptr);
  auto resp = client->Send(post);
  ASSERT_TRUE(resp.ok()) << resp.status().ToString();
  EXPECT_EQ(resp->body, "again /create");
  EXPECT_EQ(seen.load(), 1);
}

TEST_F(HttpTlsTest, MismatchedClientKeyIsInvalid) {
  auto a = GenerateSelfSignedCert("a", {});
  auto b = GenerateSelfSignedCert("b", {});
  ASSERT_TRUE(a.ok() && b.ok());
  ClientOptions options;
  options.base_url = server_->url();
  options.tls.client_cert_pem = a->cert_pem;
  options.tls.client_key_pem = b->key_pem;
  EXPECT_EQ(NewClient(options).status().code(), Code::kInvalid);
  options.tls.client_key_pem = "";
  EXPECT_EQ(NewClient(options).status().code(), Code::kInvalid);
  options.tls = {};
  options.tls.ca_pem = "not a certificate";
  EXPECT_EQ(NewClient(options).status().code(), Code::kInvalid);
}

TEST_F(HttpTlsTest, StreamsOverTls) {
  ServerOptions options;
  options.tls_cert_file = cert_file_.string();
  options.tls_key_file = key_file_.string();
  auto server = Start(
      [](const ServerRequest&) {
        ServerResponse r;
        r.stream = [](StreamWriter& w) {
          w.Write("one\ntwo\n");
          w.Write("three\n");
        };
        return r;
      },
      options);
  ASSERT_NE(server, nullptr);
  ClientOptions client_options;
  client_options.tls.ca_pem = cert_.cert_pem;
  auto client = Connect(server->url(), client_options);
  ASSERT_NE(client, nullptr);
  std::vector<std::string> lines;
  auto resp = client->Stream(Get("/watch"), [&](std::string_view l) {
    lines.emplace_back(l);
    return true;
  });
  ASSERT_TRUE(resp.ok()) << resp.status().ToString();
  EXPECT_EQ(lines, (std::vector<std::string>{"one", "two", "three"}));
}

}  // namespace
}  // namespace nixmox::http
