// http::Server over plain sockets (and OpenSSL for HTTPS): HTTP/1.1 with
// keep-alive, Content-Length and chunked bodies, one thread per connection.
//
// Why not cpprest's http_listener: it keeps a port accepting (answering 404)
// after close() for as long as any other listener in the process is open, so a
// stopped simulator would not look stopped and its port would leak. It also
// merges repeated headers and reads uploads 4 KiB at a time. This server is
// small because it is blocking: each connection has its own thread, which runs
// the handler and, for a streaming response, the stream function, writing
// chunks straight to the socket (so a slow reader slows only its own stream).
//
// Stop(): closes the listening socket, shuts down every connection socket
// (which wakes any read or write blocked on it), marks every stream writer
// closed, then joins all connection threads.
#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <charconv>
#include <condition_variable>
#include <cstring>
#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "src/http/http.h"

namespace nixmox::http {
namespace {

constexpr size_t kMaxHeadBytes = 64 * 1024;
// A peer silent this long in the middle of anything is gone.
constexpr int kSocketTimeoutSeconds = 300;

struct SslCtxFree {
  void operator()(SSL_CTX* c) const { SSL_CTX_free(c); }
};

// One accepted connection: plain or TLS, blocking I/O.
class Connection {
 public:
  Connection(int fd, SSL* ssl) : fd_(fd), ssl_(ssl) {}
  ~Connection() {
    if (ssl_ != nullptr) SSL_free(ssl_);
    close(fd_);
  }
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  int fd() const { return fd_; }

  // Reads some bytes; 0 on EOF, error or timeout.
  size_t Read(char* buf, size_t n) {
    if (ssl_ != nullptr) {
      const int r = SSL_read(ssl_, buf, static_cast<int>(std::min<size_t>(n, 1 << 30)));
      if (r <= 0) {
        ERR_clear_error();
        return 0;
      }
      return static_cast<size_t>(r);
    }
    while (true) {
      const ssize_t r = recv(fd_, buf, n, 0);
      if (r < 0 && errno == EINTR) continue;
      return r > 0 ? static_cast<size_t>(r) : 0;
    }
  }

  bool WriteAll(std::string_view data) {
    std::lock_guard lock(write_mu_);
    while (!data.empty()) {
      if (ssl_ != nullptr) {
        const int r =
            SSL_write(ssl_, data.data(), static_cast<int>(std::min<size_t>(data.size(), 1 << 30)));
        if (r <= 0) {
          ERR_clear_error();
          return false;
        }
        data.remove_prefix(static_cast<size_t>(r));
      } else {
        const ssize_t r = send(fd_, data.data(), data.size(), MSG_NOSIGNAL);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return false;
        data.remove_prefix(static_cast<size_t>(r));
      }
    }
    return true;
  }

  // True once the peer has hung up, without reading anything.
  bool PeerGone() const {
    pollfd p{fd_, POLLRDHUP, 0};
    return poll(&p, 1, 0) > 0 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL)) != 0;
  }

 private:
  const int fd_;
  SSL* const ssl_;
  std::mutex write_mu_;
};

// Buffered reading of a request off a connection.
class Reader {
 public:
  explicit Reader(Connection& conn) : conn_(conn) {}

  bool Fill() {
    char tmp[64 * 1024];
    const size_t n = conn_.Read(tmp, sizeof(tmp));
    if (n == 0) return false;
    buf_.append(tmp, n);
    return true;
  }

  // The request head without its final blank line; false on EOF or oversize.
  bool ReadHead(std::string& head) {
    size_t end;
    while ((end = buf_.find("\r\n\r\n")) == std::string::npos) {
      if (buf_.size() > kMaxHeadBytes || !Fill()) return false;
    }
    head = buf_.substr(0, end);
    buf_.erase(0, end + 4);
    return true;
  }

  bool ReadLine(std::string& line) {
    size_t end;
    while ((end = buf_.find("\r\n")) == std::string::npos) {
      if (buf_.size() > kMaxHeadBytes || !Fill()) return false;
    }
    line = buf_.substr(0, end);
    buf_.erase(0, end + 2);
    return true;
  }

  bool ReadExactly(size_t n, std::string& out) {
    const size_t take = std::min(n, buf_.size());
    out.append(buf_, 0, take);
    buf_.erase(0, take);
    n -= take;
    char tmp[64 * 1024];
    while (n > 0) {
      const size_t got = conn_.Read(tmp, std::min(n, sizeof(tmp)));
      if (got == 0) return false;
      out.append(tmp, got);
      n -= got;
    }
    return true;
  }

 private:
  Connection& conn_;
  std::string buf_;
};

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r'))
    s.remove_suffix(1);
  return s;
}

bool ParseSize(std::string_view s, int base, size_t& out) {
  s = Trim(s);
  if (s.empty()) return false;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out, base);
  return ec == std::errc() && p == s.data() + s.size();
}

// No CR/LF may reach the wire from a handler's reason or header.
std::string Sanitize(std::string_view s) {
  std::string out(s);
  std::replace_if(
      out.begin(), out.end(), [](char c) { return c == '\r' || c == '\n'; }, ' ');
  return out;
}

// Writes a streaming body: chunked, or (for an HTTP/1.0 client, which knows no
// chunks) raw bytes ended by closing the connection.
class ChunkWriter final : public StreamWriter {
 public:
  ChunkWriter(Connection& conn, bool chunked) : conn_(conn), chunked_(chunked) {}

  bool Write(std::string_view chunk) override {
    if (closed_) return false;
    if (chunk.empty()) return !closed();
    if (!chunked_) {
      if (!conn_.WriteAll(chunk)) closed_ = true;
      return !closed_;
    }
    char size[32];
    const int n = std::snprintf(size, sizeof(size), "%zx\r\n", chunk.size());
    std::string frame;
    frame.reserve(chunk.size() + static_cast<size_t>(n) + 2);
    frame.append(size, static_cast<size_t>(n)).append(chunk).append("\r\n");
    if (!conn_.WriteAll(frame)) closed_ = true;
    return !closed_;
  }

  bool closed() const override {
    if (!closed_ && conn_.PeerGone()) closed_ = true;
    return closed_;
  }

  void Close() { closed_ = true; }

  // The terminating chunk; false if the stream did not end cleanly.
  bool Finish() {
    if (closed_) return false;
    return chunked_ && conn_.WriteAll("0\r\n\r\n");
  }

 private:
  Connection& conn_;
  const bool chunked_;
  mutable std::atomic<bool> closed_{false};
};

struct ServerState {
  Handler handler;
  std::shared_ptr<SSL_CTX> ssl_ctx;  // null: plain HTTP

  std::mutex mu;
  bool stopping = false;
  struct Live {
    int fd;
    ChunkWriter* writer = nullptr;  // while a stream runs on this connection
    bool done = false;
    std::thread thread;
  };
  std::list<Live> live;  // one per connection thread
};

std::string PeerAddress(int fd) {
  sockaddr_storage addr{};
  socklen_t len = sizeof(addr);
  if (getpeername(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) return "";
  char text[INET6_ADDRSTRLEN] = {};
  if (addr.ss_family == AF_INET) {
    inet_ntop(AF_INET, &reinterpret_cast<sockaddr_in*>(&addr)->sin_addr, text, sizeof(text));
  } else if (addr.ss_family == AF_INET6) {
    inet_ntop(AF_INET6, &reinterpret_cast<sockaddr_in6*>(&addr)->sin6_addr, text, sizeof(text));
  }
  return text;
}

// Parses a request head. False: malformed (answer 400 and close).
bool ParseHead(const std::string& head, ServerRequest& req, std::string& version) {
  const size_t line_end = head.find("\r\n");
  const std::string_view line = std::string_view(head).substr(0, line_end);
  const size_t sp1 = line.find(' ');
  const size_t sp2 = line.rfind(' ');
  if (sp1 == std::string_view::npos || sp2 == sp1) return false;
  req.method = std::string(line.substr(0, sp1));
  std::string_view target = line.substr(sp1 + 1, sp2 - sp1 - 1);
  version = std::string(line.substr(sp2 + 1));
  if (version.rfind("HTTP/1.", 0) != 0 || target.empty()) return false;
  if (target.front() != '/') {  // absolute-form: drop scheme and authority
    const size_t scheme = target.find("://");
    if (scheme == std::string_view::npos) return false;
    const size_t path = target.find('/', scheme + 3);
    target = path == std::string_view::npos ? std::string_view("/") : target.substr(path);
  }
  const size_t q = target.find('?');
  req.path = PercentDecode(target.substr(0, q));
  req.raw_query = q == std::string_view::npos ? "" : std::string(target.substr(q + 1));
  req.query = DecodeQuery(req.raw_query);
  size_t pos = line_end == std::string::npos ? head.size() : line_end + 2;
  while (pos < head.size()) {
    size_t end = head.find("\r\n", pos);
    if (end == std::string::npos) end = head.size();
    const std::string_view h = std::string_view(head).substr(pos, end - pos);
    pos = end + 2;
    const size_t colon = h.find(':');
    if (colon == std::string_view::npos || colon == 0) return false;
    req.headers.Add(std::string(Trim(h.substr(0, colon))), std::string(Trim(h.substr(colon + 1))));
  }
  return true;
}

bool ReadBody(Reader& reader, Connection& conn, ServerRequest& req, const std::string& version) {
  const auto expect = req.headers.Get("Expect");
  if (expect && EqualsIgnoreCase(*expect, "100-continue") && version == "HTTP/1.1") {
    if (!conn.WriteAll("HTTP/1.1 100 Continue\r\n\r\n")) return false;
  }
  const auto te = req.headers.Get("Transfer-Encoding");
  if (te && !EqualsIgnoreCase(Trim(*te), "identity")) {
    // Chunked: size line, data, CRLF ... 0, trailers, blank line.
    while (true) {
      std::string line;
      if (!reader.ReadLine(line)) return false;
      size_t size = 0;
      if (!ParseSize(std::string_view(line).substr(0, line.find(';')), 16, size)) return false;
      if (size == 0) break;
      if (!reader.ReadExactly(size, req.body)) return false;
      std::string crlf;
      if (!reader.ReadLine(crlf) || !crlf.empty()) return false;
    }
    for (std::string trailer;;) {
      if (!reader.ReadLine(trailer)) return false;
      if (trailer.empty()) return true;
    }
  }
  const auto length = req.headers.Get("Content-Length");
  if (!length) return true;
  size_t n = 0;
  if (!ParseSize(*length, 10, n)) return false;
  req.body.reserve(std::min<size_t>(n, size_t{1} << 30));
  return reader.ReadExactly(n, req.body);
}

std::string StatusLine(const ServerResponse& r) {
  const std::string reason = r.reason.empty() ? std::string(StandardReason(r.status)) : r.reason;
  return "HTTP/1.1 " + std::to_string(r.status) + " " + Sanitize(reason) + "\r\n";
}

void AppendHeaders(const Headers& headers, std::string& out) {
  for (const auto& [name, value] : headers.entries()) {
    if (EqualsIgnoreCase(name, "Content-Length") || EqualsIgnoreCase(name, "Transfer-Encoding") ||
        EqualsIgnoreCase(name, "Connection")) {
      continue;  // framing is ours
    }
    out += Sanitize(name) + ": " + Sanitize(value) + "\r\n";
  }
}

void ServeConnection(const std::shared_ptr<ServerState>& state, ServerState::Live* self,
                     Connection& conn_ref) {
  Connection* conn = &conn_ref;
  Reader reader(*conn);
  const std::string remote = PeerAddress(conn->fd());
  while (true) {
    std::string head;
    if (!reader.ReadHead(head)) return;
    ServerRequest req;
    std::string version;
    if (!ParseHead(head, req, version) || !ReadBody(reader, *conn, req, version)) {
      conn->WriteAll("HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
      return;
    }
    req.remote_address = remote;
    const auto connection = req.headers.Get("Connection");
    bool keep_alive = version == "HTTP/1.1"
                          ? !(connection && EqualsIgnoreCase(*connection, "close"))
                          : (connection && EqualsIgnoreCase(*connection, "keep-alive"));

    ServerResponse resp;
    try {
      resp = state->handler(req);
    } catch (...) {
      resp = ServerResponse::Text(500, "handler failed\n");
    }
    if (auto c = resp.headers.Get("Connection"); c && EqualsIgnoreCase(*c, "close"))
      keep_alive = false;
    const bool head_only = req.method == "HEAD";
    const bool no_body = head_only || resp.status == 204 || resp.status == 304 || resp.status < 200;

    std::string out = StatusLine(resp);
    AppendHeaders(resp.headers, out);
    if (!keep_alive) out += "Connection: close\r\n";

    if (!resp.stream || no_body) {
      if (resp.status != 204 && resp.status != 304 && resp.status >= 200) {
        out += "Content-Length: " + std::to_string(resp.body.size()) + "\r\n";
      }
      out += "\r\n";
      if (!no_body) out += resp.body;
      if (!conn->WriteAll(out) || !keep_alive) return;
      continue;
    }

    const bool chunked = version == "HTTP/1.1";
    if (chunked) out += "Transfer-Encoding: chunked\r\n";
    if (!chunked && keep_alive) out += "Connection: close\r\n";
    out += "\r\n";
    if (!conn->WriteAll(out)) return;
    ChunkWriter writer(*conn, chunked);
    {
      std::lock_guard lock(state->mu);
      if (state->stopping) writer.Close();
      self->writer = &writer;
    }
    try {
      resp.stream(writer);
    } catch (...) {
      writer.Close();  // a broken stream must not look complete
    }
    {
      std::lock_guard lock(state->mu);
      self->writer = nullptr;
    }
    if (!writer.Finish() || !keep_alive) return;
  }
}

class SocketServer final : public Server {
 public:
  SocketServer(std::shared_ptr<ServerState> state, int listen_fd, int port, std::string url)
      : state_(std::move(state)), listen_fd_(listen_fd), port_(port), url_(std::move(url)) {
    acceptor_ = std::thread([this] { AcceptLoop(); });
  }
  ~SocketServer() override { Stop(); }

  int port() const override { return port_; }
  std::string url() const override { return url_; }

  void Stop() override {
    std::lock_guard stop_lock(stop_mu_);
    if (stopped_) return;
    stopped_ = true;
    {
      std::lock_guard lock(state_->mu);
      state_->stopping = true;
      for (auto& l : state_->live) {
        if (l.writer != nullptr) l.writer->Close();
        if (l.fd >= 0) shutdown(l.fd, SHUT_RDWR);  // wakes reads and writes blocked on it
      }
    }
    shutdown(listen_fd_, SHUT_RDWR);  // wakes accept()
    acceptor_.join();
    close(listen_fd_);
    // No new connection threads after the acceptor ended; join the rest.
    std::list<ServerState::Live> live;
    {
      std::lock_guard lock(state_->mu);
      live.swap(state_->live);
    }
    for (auto& l : live) l.thread.join();
  }

 private:
  void AcceptLoop() {
    // Threads started here inherit this mask: a write to a vanished peer
    // (OpenSSL writes without MSG_NOSIGNAL) must fail with EPIPE, not kill us.
    sigset_t block;
    sigemptyset(&block);
    sigaddset(&block, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &block, nullptr);
    while (true) {
      const int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (fd < 0) {
        if (errno == EINTR || errno == ECONNABORTED) continue;
        if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
          std::this_thread::sleep_for(std::chrono::milliseconds(50));
          std::lock_guard lock(state_->mu);
          if (!state_->stopping) continue;
        }
        return;  // the listening socket was shut down
      }
      Reap();
      const int one = 1;
      setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
      timeval tv{kSocketTimeoutSeconds, 0};
      setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
      setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));

      std::lock_guard lock(state_->mu);
      if (state_->stopping) {
        close(fd);
        return;
      }
      auto& l = state_->live.emplace_back();
      l.fd = fd;
      auto state = state_;
      ServerState::Live* self = &l;
      try {
        l.thread = std::thread([state, self, fd] {
          SSL* ssl = nullptr;
          bool ready = true;
          if (state->ssl_ctx) {
            ssl = SSL_new(state->ssl_ctx.get());
            ready = ssl != nullptr && SSL_set_fd(ssl, fd) == 1 && SSL_accept(ssl) == 1;
            if (!ready) ERR_clear_error();
          }
          auto conn = std::make_unique<Connection>(fd, ssl);  // owns fd and ssl
          if (ready) ServeConnection(state, self, *conn);
          // The fd closes under the lock, so Stop never shuts down a number the
          // kernel has already handed to someone else.
          std::lock_guard lock(state->mu);
          conn.reset();
          self->fd = -1;
          self->done = true;
        });
      } catch (const std::system_error&) {  // out of threads: drop this connection
        state_->live.pop_back();
        close(fd);
      }
    }
  }

  // Joins connection threads that have finished.
  void Reap() {
    std::list<ServerState::Live> finished;
    {
      std::lock_guard lock(state_->mu);
      for (auto it = state_->live.begin(); it != state_->live.end();) {
        auto next = std::next(it);
        if (it->done) finished.splice(finished.end(), state_->live, it);
        it = next;
      }
    }
    for (auto& l : finished) l.thread.join();
  }

  std::shared_ptr<ServerState> state_;
  const int listen_fd_;
  const int port_;
  const std::string url_;
  std::thread acceptor_;
  std::mutex stop_mu_;
  bool stopped_ = false;
};

Result<std::shared_ptr<SSL_CTX>> MakeServerTls(const ServerOptions& options) {
  std::shared_ptr<SSL_CTX> ctx(SSL_CTX_new(TLS_server_method()), SslCtxFree());
  if (!ctx) return InternalError("cannot create a TLS context");
  SSL_CTX_set_min_proto_version(ctx.get(), TLS1_2_VERSION);
  if (SSL_CTX_use_certificate_chain_file(ctx.get(), options.tls_cert_file.c_str()) != 1 ||
      SSL_CTX_use_PrivateKey_file(ctx.get(), options.tls_key_file.c_str(), SSL_FILETYPE_PEM) != 1 ||
      SSL_CTX_check_private_key(ctx.get()) != 1) {
    ERR_clear_error();
    return InvalidError("TLS certificate " + options.tls_cert_file + " and key " +
                        options.tls_key_file + " are unreadable or do not match");
  }
  return ctx;
}

}  // namespace

Result<std::unique_ptr<Server>> StartServer(ServerOptions options, Handler handler) {
  const size_t colon = options.listen.rfind(':');
  if (colon == std::string::npos) return InvalidError("listen address must be host:port");
  std::string host = options.listen.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  const std::string port_text = options.listen.substr(colon + 1);
  size_t requested_port = 0;
  if (host.empty() || !ParseSize(port_text, 10, requested_port) || requested_port > 65535) {
    return InvalidError("bad listen address " + options.listen);
  }
  if (options.tls_cert_file.empty() != options.tls_key_file.empty()) {
    return InvalidError("HTTPS needs both a certificate and a key file");
  }

  auto state = std::make_shared<ServerState>();
  state->handler = std::move(handler);
  if (!options.tls_cert_file.empty()) {
    ASSIGN_OR_RETURN(state->ssl_ctx, MakeServerTls(options));
  }

  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* found = nullptr;
  if (getaddrinfo(host.c_str(), port_text.c_str(), &hints, &found) != 0 || found == nullptr) {
    return InvalidError("cannot resolve listen host " + host);
  }
  std::unique_ptr<addrinfo, decltype(&freeaddrinfo)> guard(found, &freeaddrinfo);
  const int fd = socket(found->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return InternalError("socket() failed: " + std::string(std::strerror(errno)));
  const int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (bind(fd, found->ai_addr, found->ai_addrlen) != 0 || listen(fd, SOMAXCONN) != 0) {
    const std::string why = std::strerror(errno);
    close(fd);
    return RetryableError("cannot listen on " + options.listen + ": " + why);
  }
  sockaddr_storage bound{};
  socklen_t len = sizeof(bound);
  getsockname(fd, reinterpret_cast<sockaddr*>(&bound), &len);
  const int port = bound.ss_family == AF_INET6
                       ? ntohs(reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port)
                       : ntohs(reinterpret_cast<sockaddr_in*>(&bound)->sin_port);

  std::string url_host = host.find(':') != std::string::npos ? "[" + host + "]" : host;
  if (host == "0.0.0.0") url_host = "127.0.0.1";
  if (host == "::") url_host = "[::1]";
  const std::string url = std::string(state->ssl_ctx ? "https" : "http") + "://" + url_host + ":" +
                          std::to_string(port);
  return std::unique_ptr<Server>(new SocketServer(std::move(state), fd, port, url));
}

}  // namespace nixmox::http
