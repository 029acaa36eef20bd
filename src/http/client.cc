// http::Client over cpprestsdk's asio client.
//
// cpprest gives us connection pooling, TLS and HTTP/1.1 framing. Around it this
// file adds what our interface promises and cpprest does not:
// - a deadline for the whole exchange (cpprest only has a per-client
//   inactivity timer, which would also kill silent watch streams);
// - classification of transport failures by whether the request head was
//   written (cpprest reports upload progress only after the head is out);
// - request bodies made of memory and file parts, read from disk in chunks and
//   never rewindable, so cpprest can never replay a mutation on its own;
// - line-by-line streaming that a CancelToken can end at any moment;
// - mutations on kept-alive connections only when the server cannot have
//   dropped them (see ClientFor).
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>
#include <poll.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstring>
#include <fstream>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <system_error>
#include <vector>

#include "src/http/cpprest_include.h"
#include "src/http/http.h"

namespace nixmox::http {
namespace {

namespace cr = web::http::client;
using web::http::http_request;
using web::http::http_response;

// cpprest's own inactivity timer; our deadlines are enforced above it, and a
// watch may legitimately stay silent for a long time.
constexpr std::chrono::hours kCpprestInactivityTimeout{24};
constexpr size_t kChunkSize = 64 * 1024;

// Thrown from cpprest's per-request socket hook when the kept-alive connection
// picked for a mutation turns out closed by the server; nothing has been sent.
class ClosedWhileIdle : public std::runtime_error {
 public:
  ClosedWhileIdle() : std::runtime_error("the server had closed the idle connection") {}
};

// An HTTP/1.1 server sends nothing on an idle connection unasked: if its
// socket is readable (a TLS close_notify, a FIN) or hung up, the server has
// closed it. A connection not yet opened is new, and fine.
void RefuseClosedConnection(cr::native_handle handle, bool tls) {
  using Socket = boost::asio::ip::tcp::socket;
  Socket& socket = tls ? static_cast<boost::asio::ssl::stream<Socket&>*>(handle)->next_layer()
                       : *static_cast<Socket*>(handle);
  if (!socket.is_open()) return;
  pollfd p{socket.native_handle(), POLLIN | POLLRDHUP, 0};
  if (::poll(&p, 1, 0) != 0) throw ClosedWhileIdle();  // an error too: a new one is safe
}

bool IsIdempotent(std::string_view method) {
  return method == "GET" || method == "HEAD" || method == "OPTIONS";
}

// "GET /api2/json/version": the query is left out (it could carry a ticket).
std::string Describe(const Request& r) {
  std::string_view target = r.target;
  target = target.substr(0, target.find('?'));
  return r.method + " " + std::string(target);
}

// ---------------------------------------------------------------------------
// TLS material, applied to each new connection's context.

struct OpenSslDeleter {
  void operator()(BIO* b) const { BIO_free(b); }
  void operator()(X509* x) const { X509_free(x); }
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
  void operator()(X509_STORE* s) const { X509_STORE_free(s); }
  void operator()(SSL_CTX* c) const { SSL_CTX_free(c); }
};
template <typename T>
using OsslPtr = std::unique_ptr<T, OpenSslDeleter>;

Result<std::string> ReadWholeFile(const std::string& path, std::string_view what) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return InvalidError("cannot read " + std::string(what) + " " + path);
  std::string data((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  return data;
}

Result<std::vector<OsslPtr<X509>>> ParseCerts(const std::string& pem, std::string_view what) {
  OsslPtr<BIO> bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  std::vector<OsslPtr<X509>> certs;
  while (true) {
    X509* x = PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr);
    if (x == nullptr) break;
    certs.emplace_back(x);
  }
  ERR_clear_error();  // the loop ends on a "no start line" error
  if (certs.empty()) return InvalidError(std::string(what) + " holds no PEM certificate");
  return certs;
}

// PEM text of the trust bundle and client identity, loaded once by NewClient.
struct TlsMaterial {
  bool custom_ca = false;
  std::string ca_pem;
  std::string client_cert_pem;
  std::string client_key_pem;
};

Result<TlsMaterial> LoadTlsMaterial(const TlsConfig& tls) {
  TlsMaterial m;
  if (!tls.ca_file.empty()) {
    ASSIGN_OR_RETURN(m.ca_pem, ReadWholeFile(tls.ca_file, "CA file"));
    m.ca_pem += "\n";
  }
  m.ca_pem += tls.ca_pem;
  m.custom_ca = !tls.ca_file.empty() || !tls.ca_pem.empty();
  if (!tls.client_cert_file.empty()) {
    ASSIGN_OR_RETURN(m.client_cert_pem, ReadWholeFile(tls.client_cert_file, "client certificate"));
  } else {
    m.client_cert_pem = tls.client_cert_pem;
  }
  if (!tls.client_key_file.empty()) {
    ASSIGN_OR_RETURN(m.client_key_pem, ReadWholeFile(tls.client_key_file, "client key"));
  } else {
    m.client_key_pem = tls.client_key_pem;
  }
  if (m.client_cert_pem.empty() != m.client_key_pem.empty()) {
    return InvalidError("a client certificate needs both certificate and key");
  }
  return m;
}

// Installs the material into an OpenSSL context. A custom CA replaces the
// system trust store, as kubeconfig's certificate-authority does in kubectl.
Status ApplyTlsMaterial(const TlsMaterial& m, SSL_CTX* ctx) {
  if (m.custom_ca) {
    ASSIGN_OR_RETURN(auto cas, ParseCerts(m.ca_pem, "CA bundle"));
    OsslPtr<X509_STORE> store(X509_STORE_new());
    for (auto& c : cas) {
      if (X509_STORE_add_cert(store.get(), c.get()) != 1) {
        ERR_clear_error();  // a duplicate certificate in the bundle is harmless
      }
    }
    SSL_CTX_set_cert_store(ctx, store.release());
  }
  if (!m.client_cert_pem.empty()) {
    ASSIGN_OR_RETURN(auto chain, ParseCerts(m.client_cert_pem, "client certificate"));
    if (SSL_CTX_use_certificate(ctx, chain[0].get()) != 1) {
      ERR_clear_error();
      return InvalidError("client certificate rejected");
    }
    for (size_t i = 1; i < chain.size(); ++i) {
      // add1 takes its own reference.
      if (SSL_CTX_add1_chain_cert(ctx, chain[i].get()) != 1) {
        ERR_clear_error();
        return InvalidError("client certificate chain rejected");
      }
    }
    OsslPtr<BIO> bio(
        BIO_new_mem_buf(m.client_key_pem.data(), static_cast<int>(m.client_key_pem.size())));
    OsslPtr<EVP_PKEY> key(PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr));
    if (!key || SSL_CTX_use_PrivateKey(ctx, key.get()) != 1 ||
        SSL_CTX_check_private_key(ctx) != 1) {
      ERR_clear_error();
      return InvalidError("client key is unreadable or does not match the certificate");
    }
  }
  return OkStatus();
}

// ---------------------------------------------------------------------------
// Request body: the parts in order, read on demand. Deliberately not seekable,
// which is what stops cpprest from transparently resending a request after a
// pooled connection turned out to be dead.

class PartsStreamBuf : public concurrency::streams::details::streambuf_state_manager<uint8_t> {
 public:
  using Base = concurrency::streams::details::streambuf_state_manager<uint8_t>;
  using traits = Base::traits;
  using int_type = Base::int_type;
  using pos_type = Base::pos_type;
  using off_type = Base::off_type;

  explicit PartsStreamBuf(std::vector<BodyPart> parts)
      : Base(std::ios_base::in), parts_(std::move(parts)) {}

  bool can_seek() const override { return false; }
  bool has_size() const override { return false; }
  size_t buffer_size(std::ios_base::openmode) const override { return 0; }
  void set_buffer_size(size_t, std::ios_base::openmode) override {}
  size_t in_avail() const override { return 0; }
  pos_type getpos(std::ios_base::openmode) const override {
    return static_cast<pos_type>(traits::eof());
  }
  pos_type seekpos(pos_type, std::ios_base::openmode) override {
    return static_cast<pos_type>(traits::eof());
  }
  pos_type seekoff(off_type, std::ios_base::seekdir, std::ios_base::openmode) override {
    return static_cast<pos_type>(traits::eof());
  }
  bool acquire(uint8_t*& ptr, size_t& count) override {
    ptr = nullptr;
    count = 0;
    return false;
  }
  void release(uint8_t*, size_t) override {}

 protected:
  pplx::task<int_type> _putc(uint8_t) override {
    return pplx::task_from_result<int_type>(traits::eof());
  }
  pplx::task<size_t> _putn(const uint8_t*, size_t) override {
    return pplx::task_from_result<size_t>(0);
  }
  uint8_t* _alloc(size_t) override { return nullptr; }
  void _commit(size_t) override {}
  pplx::task<bool> _sync() override { return pplx::task_from_result(true); }

  pplx::task<size_t> _getn(uint8_t* ptr, size_t count) override {
    try {
      return pplx::task_from_result(Read(ptr, count));
    } catch (...) {
      return pplx::task_from_exception<size_t>(std::current_exception());
    }
  }
  size_t _scopy(uint8_t*, size_t) override { return 0; }
  int_type _sbumpc() override {
    uint8_t c;
    return Read(&c, 1) == 1 ? static_cast<int_type>(c) : traits::eof();
  }
  pplx::task<int_type> _bumpc() override { return pplx::task_from_result(_sbumpc()); }
  // Peeking is never used by the HTTP client; say "would block" honestly.
  int_type _sgetc() override { return traits::requires_async(); }
  pplx::task<int_type> _getc() override { return pplx::task_from_result<int_type>(traits::eof()); }
  pplx::task<int_type> _nextc() override { return pplx::task_from_result<int_type>(traits::eof()); }
  pplx::task<int_type> _ungetc() override {
    return pplx::task_from_result<int_type>(traits::eof());
  }

 private:
  // Copies up to count bytes from the current part onward; 0 at the end.
  size_t Read(uint8_t* out, size_t count) {
    std::lock_guard lock(mu_);
    size_t done = 0;
    while (done < count && index_ < parts_.size()) {
      const BodyPart& part = parts_[index_];
      if (part.file.empty()) {
        const size_t n = std::min(count - done, part.data.size() - offset_);
        std::memcpy(out + done, part.data.data() + offset_, n);
        done += n;
        offset_ += n;
        if (offset_ == part.data.size()) NextPart();
        continue;
      }
      if (!file_.is_open()) {
        file_.open(part.file, std::ios::binary);
        if (!file_) throw std::runtime_error("cannot open request body file");
      }
      file_.read(reinterpret_cast<char*>(out + done), static_cast<std::streamsize>(count - done));
      const auto n = static_cast<size_t>(file_.gcount());
      done += n;
      if (file_.eof()) {
        file_.close();
        NextPart();
      } else if (!file_) {
        throw std::runtime_error("error reading request body file");
      }
    }
    return done;
  }
  void NextPart() {
    ++index_;
    offset_ = 0;
  }

  std::mutex mu_;
  std::vector<BodyPart> parts_;
  size_t index_ = 0;
  size_t offset_ = 0;
  std::ifstream file_;
};

// ---------------------------------------------------------------------------
// One attempt of one exchange. Shared between the caller's thread and cpprest's
// callbacks: whoever finishes last frees it, so the caller may return at its
// deadline without waiting for cpprest to wind down.

struct Exchange {
  std::mutex mu;
  std::condition_variable cv;
  bool headers_done = false;  // a response head arrived, or the request failed
  bool body_done = false;     // Send only: the whole body arrived, or failed
  bool cancelled = false;     // the caller's CancelToken fired
  std::optional<http_response> response;
  std::exception_ptr error;
  std::vector<unsigned char> body;
  std::atomic<bool> head_written{false};  // set from cpprest's progress callback
  pplx::cancellation_token_source cts;
  std::shared_ptr<cr::http_client> client;  // kept alive while the exchange runs
};

struct Failure {
  Status status;
  bool retry_safe = false;  // the failure happened before anything reached the server
  bool closed_while_idle = false;  // ClosedWhileIdle: retry on a new connection
};

}  // namespace

class CppRestClient final : public Client {
 public:
  CppRestClient(ClientOptions options, web::uri base, cr::http_client_config config)
      : options_(std::move(options)),
        base_(std::move(base)),
        config_(std::move(config)),
        mutation_config_(MutationConfig(config_, base_.scheme() == "https")),
        client_(std::make_shared<cr::http_client>(base_, config_)) {}

  Result<Response> Send(const Request& request) override {
    Failure failure;
    auto result = Attempt(request, nullptr, &failure);
    if (!result.ok() && failure.closed_while_idle) {
      // Nothing was sent: the same mutation goes out on a new connection.
      result = Attempt(request, nullptr, &failure);
    } else if (!result.ok() && failure.retry_safe && IsIdempotent(request.method)) {
      // A pooled connection the server closed while idle fails before a byte of
      // response arrives. cpprest already retries the common case (EOF on a
      // reused connection) for bodies it may rewind; this covers the remaining
      // ones (e.g. EPIPE while writing the head) for methods safe to repeat.
      result = Attempt(request, nullptr, &failure);
    }
    return result;
  }

  Result<Response> Stream(const Request& request,
                          const std::function<bool(std::string_view line)>& on_line) override {
    Failure failure;
    return Attempt(request, &on_line, &failure);
  }

 private:
  using LineFn = std::function<bool(std::string_view)>;

  Result<http_request> BuildRequest(const Request& r, const std::shared_ptr<Exchange>& ex) {
    http_request req;
    try {
      req.set_method(r.method);
      req.set_request_uri(web::uri(r.target.empty() ? std::string("/") : r.target));
    } catch (const std::exception&) {
      return InvalidError(Describe(r) + ": malformed request target");
    }
    uint64_t length = 0;
    for (const auto& part : r.body) {
      if (part.file.empty()) {
        length += part.data.size();
        continue;
      }
      std::error_code ec;
      const auto size = std::filesystem::file_size(part.file, ec);
      std::ifstream probe(part.file, std::ios::binary);
      if (ec || !probe) {
        return InvalidError(Describe(r) + ": cannot read body file " + part.file.string());
      }
      length += size;
    }
    // Mutations always carry a (possibly empty) non-rewindable body: that is
    // what keeps cpprest from replaying them on a fresh connection.
    if (!r.body.empty() || !IsIdempotent(r.method)) {
      auto buf = std::make_shared<PartsStreamBuf>(r.body);
      concurrency::streams::streambuf<uint8_t> sb(buf);
      req.set_body(concurrency::streams::istream(sb), length);
      req.headers().remove(web::http::header_names::content_type);
    }
    auto apply = [&req](const Headers& headers) {
      for (const auto& [name, value] : headers.entries()) {
        if (EqualsIgnoreCase(name, "Content-Length") || EqualsIgnoreCase(name, "Host")) continue;
        req.headers().remove(name);
      }
      for (const auto& [name, value] : headers.entries()) {
        if (EqualsIgnoreCase(name, "Content-Length") || EqualsIgnoreCase(name, "Host")) continue;
        req.headers().add(name, value);
      }
    };
    apply(options_.default_headers);
    apply(r.headers);  // a request's own header replaces the default of that name
    std::weak_ptr<Exchange> weak = ex;
    req.set_progress_handler(
        [weak](web::http::message_direction::direction dir, utility::size64_t) {
          if (dir != web::http::message_direction::upload) return;
          if (auto e = weak.lock()) e->head_written = true;
        });
    return req;
  }

  // Called with ex.mu held.
  Failure Classify(const Request& r, const Exchange& ex, bool timed_out) {
    const std::string what = Describe(r);
    if (ex.cancelled) return {CancelledError(what + ": cancelled"), false};
    const bool reached = ex.head_written.load();
    if (timed_out) {
      std::string msg = what + ": no complete response within the timeout";
      // Never retried here: the caller's time is already spent.
      return reached ? Failure{OutcomeUnknownError(msg), false}
                     : Failure{RetryableError(msg), false};
    }
    std::string detail = "transport error";
    try {
      if (ex.error) std::rethrow_exception(ex.error);
    } catch (const ClosedWhileIdle& e) {
      return {RetryableError(what + ": " + e.what()), true, true};
    } catch (const web::http::http_exception& e) {
      detail = e.what();  // cpprest's own text: names the step, never a header
    } catch (const pplx::task_canceled&) {
      detail = "request aborted";
    } catch (const std::exception& e) {
      detail = e.what();
    }
    // cpprest replays an idempotent request whose reused connection hit EOF; if
    // the replay then cannot even connect, the replay's failure is what counts
    // (the first try met a connection the server had already dropped).
    const bool connect_phase = detail.rfind("Failed to connect", 0) == 0 ||
                               detail.rfind("Error resolving", 0) == 0 ||
                               detail.rfind("Error in SSL handshake", 0) == 0;
    if (!reached || connect_phase) return {RetryableError(what + ": " + detail), true};
    return {OutcomeUnknownError(what + ": " + detail), false};
  }

  static Response ConvertHead(const http_response& resp) {
    Response out;
    out.status = resp.status_code();
    out.reason = resp.reason_phrase();
    for (const auto& [name, value] : resp.headers()) out.headers.Add(name, value);
    return out;
  }

  // One try. On failure, *failure says whether anything reached the server.
  Result<Response> Attempt(const Request& r, const LineFn* on_line, Failure* failure) {
    *failure = Failure{};
    auto ex = std::make_shared<Exchange>();
    ASSIGN_OR_RETURN(http_request req, BuildRequest(r, ex));

    if (r.cancel) {
      std::weak_ptr<Exchange> weak = ex;
      r.cancel->OnCancel([weak] {
        if (auto e = weak.lock()) {
          {
            std::lock_guard lock(e->mu);
            e->cancelled = true;
          }
          e->cts.cancel();  // cpprest closes the socket; pending reads fail at once
          e->cv.notify_all();
        }
      });
      std::lock_guard lock(ex->mu);
      if (ex->cancelled) return CancelledError(Describe(r) + ": cancelled");
    }

    const bool streaming = on_line != nullptr;
    pplx::task<http_response> sent;
    try {
      ex->client = ClientFor(r.method);
      sent = ex->client->request(req, ex->cts.get_token());
    } catch (...) {
      std::lock_guard lock(ex->mu);
      ex->error = std::current_exception();
      *failure = Classify(r, *ex, false);
      if (failure->closed_while_idle) ForgetMutationClient(ex->client);
      return failure->status;
    }
    sent.then([ex, streaming](pplx::task<http_response> t) {
      http_response resp;
      try {
        resp = t.get();
      } catch (...) {
        std::lock_guard lock(ex->mu);
        ex->error = std::current_exception();
        ex->headers_done = ex->body_done = true;
        ex->cv.notify_all();
        return;
      }
      {
        std::lock_guard lock(ex->mu);
        ex->response = resp;
        ex->headers_done = true;
        ex->cv.notify_all();
      }
      if (streaming) return;  // the caller reads the body itself
      resp.extract_vector().then([ex](pplx::task<std::vector<unsigned char>> body) {
        std::lock_guard lock(ex->mu);
        try {
          ex->body = body.get();
        } catch (...) {
          ex->error = std::current_exception();
        }
        ex->body_done = true;
        ex->cv.notify_all();
      });
    });

    const auto deadline = std::chrono::steady_clock::now() + r.timeout.value_or(options_.timeout);
    std::unique_lock lock(ex->mu);
    auto finished = [&] { return ex->cancelled || (streaming ? ex->headers_done : ex->body_done); };
    if (!ex->cv.wait_until(lock, deadline, finished)) {
      *failure = Classify(r, *ex, true);
      lock.unlock();
      ex->cts.cancel();  // outside the lock: it may run our continuation inline
      return failure->status;
    }
    if (ex->cancelled || !ex->response || (ex->error && !streaming)) {
      if (ex->response && !ex->cancelled) {
        // The head arrived, the body broke off: the server acted.
        return OutcomeUnknownError(Describe(r) + ": response body interrupted");
      }
      *failure = Classify(r, *ex, false);
      if (failure->closed_while_idle) ForgetMutationClient(ex->client);
      return failure->status;
    }
    Response out = ConvertHead(*ex->response);
    if (!streaming) {
      out.body.assign(ex->body.begin(), ex->body.end());
      return out;
    }
    http_response resp = *ex->response;
    lock.unlock();
    return ReadLines(r, ex, resp, std::move(out), *on_line, deadline);
  }

  Result<Response> ReadLines(const Request& r, const std::shared_ptr<Exchange>& ex,
                             http_response resp, Response out, const LineFn& on_line,
                             std::chrono::steady_clock::time_point deadline) {
    auto cancelled = [&] {
      std::lock_guard lock(ex->mu);
      return ex->cancelled;
    };
    if (out.status < 200 || out.status > 299) {
      // An error body is short: read it whole, still within the deadline.
      auto task = resp.extract_vector();
      auto done = std::make_shared<std::pair<std::mutex, std::condition_variable>>();
      auto body = std::make_shared<std::optional<std::vector<unsigned char>>>();
      task.then([done, body](pplx::task<std::vector<unsigned char>> t) {
        std::lock_guard lock(done->first);
        try {
          *body = t.get();
        } catch (...) {
          *body = std::vector<unsigned char>();
        }
        done->second.notify_all();
      });
      std::unique_lock lock(done->first);
      if (!done->second.wait_until(lock, deadline, [&] { return body->has_value(); })) {
        ex->cts.cancel();
        return OutcomeUnknownError(Describe(r) + ": error body not received within the timeout");
      }
      out.body.assign((*body)->begin(), (*body)->end());
      return out;
    }

    auto buf = resp.body().streambuf();
    std::string pending;
    std::vector<uint8_t> chunk(kChunkSize);
    using traits = concurrency::streams::streambuf<uint8_t>::traits;
    try {
      while (true) {
        // Block for one byte, then take whatever else is already buffered.
        const size_t avail = buf.in_avail();
        if (avail == 0) {
          const auto c = buf.bumpc().get();
          if (c == traits::eof()) break;
          pending.push_back(static_cast<char>(c));
        } else {
          const size_t n = buf.getn(chunk.data(), std::min(avail, chunk.size())).get();
          pending.append(reinterpret_cast<const char*>(chunk.data()), n);
        }
        size_t start = 0;
        for (size_t nl; (nl = pending.find('\n', start)) != std::string::npos; start = nl + 1) {
          std::string_view line(pending.data() + start, nl - start);
          if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
          if (!on_line(line)) {
            ex->cts.cancel();  // drop the connection: its body is unread
            return out;
          }
          if (cancelled()) return CancelledError(Describe(r) + ": cancelled");
        }
        pending.erase(0, start);
      }
    } catch (...) {
      if (cancelled()) return CancelledError(Describe(r) + ": cancelled");
      return OutcomeUnknownError(Describe(r) + ": stream interrupted");
    }
    if (cancelled()) return CancelledError(Describe(r) + ": cancelled");
    if (!pending.empty()) {
      on_line(pending);  // a last line without '\n'
    }
    return out;
  }

  // Idempotent requests share one pooled client: if a pooled connection turns
  // out dead, replaying them is harmless (cpprest does, and so does Send).
  // Mutations are never replayed, so they avoid connections the server may
  // have dropped: their client, and with it its pool, is replaced when it has
  // not been used for mutation_reuse_window (below the server's idle timeout,
  // so the server cannot be closing it just as the request goes out), and when
  // its kept-alive connection shows the server closed it anyway (restarts).
  // Reuse matters: cpprest builds each TLS connection's context afresh and
  // loads the system trust store into it, some 30 ms of CPU per connection.
  std::shared_ptr<cr::http_client> ClientFor(const std::string& method) {
    if (IsIdempotent(method)) return client_;
    std::lock_guard lock(mutation_mu_);
    const auto now = std::chrono::steady_clock::now();
    if (!mutation_client_ || now - mutation_last_used_ > options_.mutation_reuse_window) {
      mutation_client_ = std::make_shared<cr::http_client>(base_, mutation_config_);
    }
    mutation_last_used_ = now;
    return mutation_client_;
  }

  void ForgetMutationClient(const std::shared_ptr<cr::http_client>& used) {
    std::lock_guard lock(mutation_mu_);
    if (mutation_client_ == used) mutation_client_.reset();
  }

  static cr::http_client_config MutationConfig(cr::http_client_config config, bool tls) {
    config.set_nativehandle_options(
        [tls](cr::native_handle handle) { RefuseClosedConnection(handle, tls); });
    return config;
  }

  const ClientOptions options_;
  const web::uri base_;
  const cr::http_client_config config_;
  const cr::http_client_config mutation_config_;
  const std::shared_ptr<cr::http_client> client_;  // thread-safe; owns a connection pool
  std::mutex mutation_mu_;
  std::shared_ptr<cr::http_client> mutation_client_;
  std::chrono::steady_clock::time_point mutation_last_used_;
};

Result<std::unique_ptr<Client>> NewClient(ClientOptions options) {
  web::uri base;
  try {
    base = web::uri(options.base_url);
  } catch (const std::exception&) {
    return InvalidError("malformed base URL");
  }
  if (base.scheme() != "http" && base.scheme() != "https") {
    return InvalidError("base URL must be http or https");
  }
  if (base.host().empty()) return InvalidError("base URL has no host");

  cr::http_client_config config;
  config.set_timeout(
      std::chrono::duration_cast<std::chrono::microseconds>(kCpprestInactivityTimeout));
  config.set_chunksize(kChunkSize);
  config.set_validate_certificates(!options.tls.insecure_skip_verify);
  if (base.scheme() == "https") {
    ASSIGN_OR_RETURN(TlsMaterial material, LoadTlsMaterial(options.tls));
    // Prove the material loads now, so a bad bundle fails NewClient, not requests.
    OsslPtr<SSL_CTX> probe(SSL_CTX_new(TLS_client_method()));
    RETURN_IF_ERROR(ApplyTlsMaterial(material, probe.get()));
    config.set_ssl_context_callback([material](boost::asio::ssl::context& ctx) {
      Status s = ApplyTlsMaterial(material, ctx.native_handle());
      if (!s.ok()) throw std::runtime_error(s.message());
    });
  }
  try {
    return std::unique_ptr<Client>(new CppRestClient(std::move(options), base, config));
  } catch (const std::exception&) {
    return InvalidError("cannot create an HTTP client for that base URL");
  }
}

}  // namespace nixmox::http
