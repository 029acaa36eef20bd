// Our own small HTTP interface. Nothing outside src/http sees cpprestsdk: the
// Proxmox and Kubernetes clients, the simulators and the operator's health and
// metrics endpoints use these types, and tests fake `Client` in memory.
#pragma once

#include <chrono>
#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "src/common/status.h"

namespace nixmox::http {

// An ordered list of headers; names compare case-insensitively.
class Headers {
 public:
  // Replaces every header of that name.
  void Set(std::string name, std::string value);
  void Add(std::string name, std::string value);
  void Remove(std::string_view name);
  // The first value of that name.
  std::optional<std::string> Get(std::string_view name) const;
  bool Has(std::string_view name) const { return Get(name).has_value(); }
  const std::vector<std::pair<std::string, std::string>>& entries() const { return entries_; }

 private:
  std::vector<std::pair<std::string, std::string>> entries_;
};

bool EqualsIgnoreCase(std::string_view a, std::string_view b);

// Lets another thread stop a request or stream that is in flight. Thread-safe.
class CancelToken {
 public:
  void Cancel();
  bool cancelled() const;
  // Runs fn when Cancel() is called, or at once if it already was. Callbacks must be quick.
  void OnCancel(std::function<void()> fn);

 private:
  mutable std::mutex mu_;
  bool cancelled_ = false;
  std::vector<std::function<void()>> callbacks_;
};

// One piece of a request body: bytes in memory, or a whole file streamed from disk
// (uploads of multi-GiB images never sit in memory).
struct BodyPart {
  std::string data;
  std::filesystem::path file;  // when set, `data` is ignored
  static BodyPart Bytes(std::string d) { return BodyPart{std::move(d), {}}; }
  static BodyPart File(std::filesystem::path f) { return BodyPart{{}, std::move(f)}; }
};

struct Request {
  std::string method = "GET";
  // Path and query, e.g. "/api2/json/version"; resolved against the client's base URL.
  std::string target;
  Headers headers;
  // The body is the parts concatenated; Content-Length is computed from them.
  std::vector<BodyPart> body;
  // Overrides the client's default timeout for the whole exchange (not for streams).
  std::optional<std::chrono::milliseconds> timeout;
  std::shared_ptr<CancelToken> cancel;

  void SetBody(std::string content_type, std::string data);
};

struct Response {
  int status = 0;
  std::string reason;  // the reason phrase as the server sent it
  Headers headers;
  std::string body;
};

struct TlsConfig {
  // Verification is on unless someone explicitly turns it off.
  bool insecure_skip_verify = false;
  std::string ca_file;  // PEM bundle on disk
  std::string ca_pem;   // PEM data; added to ca_file's certificates when both are set
  // Client certificate for mutual TLS (kubeconfig client-certificate/-key).
  std::string client_cert_file;
  std::string client_key_file;
  std::string client_cert_pem;
  std::string client_key_pem;
};

struct ClientOptions {
  std::string base_url;  // "https://pve.example:8006"
  TlsConfig tls;
  std::chrono::milliseconds timeout{30000};
  // A mutation (never resent on its own) goes out on a kept-alive connection
  // only if that connection was last used this recently and the server has not
  // closed it meanwhile; otherwise on a new connection. Keep it below the
  // server's idle timeout, so that the server is never closing the connection
  // just as the mutation goes out. The default suits pveproxy, which closes
  // idle connections after 5 s.
  std::chrono::milliseconds mutation_reuse_window{4000};
  // Sent with every request (Authorization, User-Agent). Values are never logged.
  Headers default_headers;
};

// An HTTP/1.1 client with connection reuse. Thread-safe: many requests may be in flight.
//
// Any HTTP status, 4xx and 5xx included, comes back as a Response. A transport
// failure comes back as a Status:
//   kRetryable      nothing reached the server (refused, DNS, TLS handshake);
//   kOutcomeUnknown the request may have reached it (timeout, reset after sending);
//   kCancelled      the request's CancelToken fired;
//   kInvalid        the request could not be formed (bad URL, unreadable body file).
// Messages name the method and path, never header values.
class Client {
 public:
  virtual ~Client() = default;

  virtual Result<Response> Send(const Request& request) = 0;

  // Sends the request and passes the response body to on_line one line at a time
  // (without the '\n'), as it arrives, until the server ends the body, on_line
  // returns false, or the request's CancelToken fires (then kCancelled). The
  // request's timeout bounds only the wait for the response headers. The returned
  // Response carries status and headers; for a non-2xx status, its body instead
  // of lines.
  virtual Result<Response> Stream(const Request& request,
                                  const std::function<bool(std::string_view line)>& on_line) = 0;
};

// The cpprestsdk-backed client. Invalid when the base URL or TLS material is bad.
Result<std::unique_ptr<Client>> NewClient(ClientOptions options);

// ---------------------------------------------------------------------------
// Server

struct ServerRequest {
  std::string method;
  std::string path;       // percent-decoded, without the query
  std::string raw_query;  // as sent, without '?'
  std::vector<std::pair<std::string, std::string>> query;  // decoded, in order
  Headers headers;
  std::string body;
  std::string remote_address;

  std::optional<std::string> QueryValue(std::string_view key) const;
};

// Where a streaming handler writes its body. Write returns false once the
// client has gone or the server is stopping; the handler should then return.
class StreamWriter {
 public:
  virtual ~StreamWriter() = default;
  virtual bool Write(std::string_view chunk) = 0;
  virtual bool closed() const = 0;
};

struct ServerResponse {
  int status = 200;
  std::string reason;  // empty: the standard phrase for the status
  Headers headers;
  std::string body;
  // When set, the body is written by this function instead (chunked transfer),
  // called once, off the handler thread. It returns when the stream is done.
  std::function<void(StreamWriter&)> stream;

  static ServerResponse Text(int status, std::string body,
                             std::string content_type = "text/plain; charset=utf-8");
};

using Handler = std::function<ServerResponse(const ServerRequest&)>;

struct ServerOptions {
  std::string listen = "127.0.0.1:0";  // host:port; port 0 picks a free port
  // Both set: HTTPS with this certificate chain and key (PEM files).
  std::string tls_cert_file;
  std::string tls_key_file;
};

// A listening HTTP server. The handler runs on server threads, possibly many at once.
class Server {
 public:
  virtual ~Server() = default;  // stops the server
  virtual int port() const = 0;
  virtual std::string url() const = 0;  // "http://127.0.0.1:PORT" (https with TLS)
  // Stops accepting, ends open streams, and returns once no handler is running.
  virtual void Stop() = 0;
};

Result<std::unique_ptr<Server>> StartServer(ServerOptions options, Handler handler);

// ---------------------------------------------------------------------------
// Helpers shared by clients and servers (no I/O).

std::string PercentEncode(std::string_view s);  // RFC 3986 unreserved characters kept
std::string PercentDecode(std::string_view s, bool plus_is_space = false);
// "a=1&b=x%20y" <-> pairs; form decoding treats '+' as space.
std::string EncodeQuery(const std::vector<std::pair<std::string, std::string>>& pairs);
std::vector<std::pair<std::string, std::string>> DecodeQuery(std::string_view query);
std::string_view StandardReason(int status);

}  // namespace nixmox::http
