// A scripted in-memory http::Client for the Proxmox client's unit tests.
#pragma once

#include <deque>
#include <fstream>
#include <mutex>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "src/http/http.h"

namespace nixmox::proxmox::testutil {

// One scripted answer; `method`/`path` (when set) must match the request.
struct Scripted {
  std::string method;
  std::string path;  // decoded path without the query, e.g. "/api2/json/version"
  Result<http::Response> response;
};

class FakeHttpClient : public http::Client {
 public:
  using Handler = std::function<Result<http::Response>(const http::Request&)>;

  // Answers are consumed in order; when none is left the handler answers
  // (default: 501 like Proxmox for an unknown path).
  void Push(Result<http::Response> response) { Push("", "", std::move(response)); }
  void Push(std::string method, std::string path, Result<http::Response> response) {
    std::lock_guard lock(mu_);
    script_.push_back({std::move(method), std::move(path), std::move(response)});
  }
  void SetHandler(Handler handler) {
    std::lock_guard lock(mu_);
    handler_ = std::move(handler);
  }

  Result<http::Response> Send(const http::Request& request) override {
    Handler handler;
    {
      std::lock_guard lock(mu_);
      requests_.push_back(request);
      if (!script_.empty()) {
        Scripted next = std::move(script_.front());
        script_.pop_front();
        const std::string path = PathOf(request.target);
        if ((!next.method.empty() && next.method != request.method) ||
            (!next.path.empty() && next.path != path)) {
          mismatches_.push_back("expected " + next.method + " " + next.path + ", got " +
                                request.method + " " + path);
          http::Response r;
          r.status = 599;
          r.reason = "unexpected request in test";
          return r;
        }
        return std::move(next.response);
      }
      handler = handler_;
    }
    if (handler) return handler(request);
    http::Response r;
    r.status = 501;
    r.reason = "Method '" + request.method + " " + PathOf(request.target) + "' not implemented";
    return r;
  }

  Result<http::Response> Stream(const http::Request&,
                                const std::function<bool(std::string_view)>&) override {
    return InvalidError("the Proxmox client does not stream");
  }

  std::vector<http::Request> requests() const {
    std::lock_guard lock(mu_);
    return requests_;
  }
  std::vector<std::string> mismatches() const {
    std::lock_guard lock(mu_);
    return mismatches_;
  }
  size_t remaining() const {
    std::lock_guard lock(mu_);
    return script_.size();
  }

  static std::string PathOf(const std::string& target) {
    return http::PercentDecode(target.substr(0, target.find('?')));
  }
  static std::vector<std::pair<std::string, std::string>> QueryOf(const std::string& target) {
    const size_t q = target.find('?');
    if (q == std::string::npos) return {};
    return http::DecodeQuery(std::string_view(target).substr(q + 1));
  }
  // The body as sent, files read from disk.
  static std::string BodyOf(const http::Request& request) {
    std::string out;
    for (const auto& part : request.body) {
      if (part.file.empty()) {
        out += part.data;
      } else {
        std::ifstream in(part.file, std::ios::binary);
        std::stringstream ss;
        ss << in.rdbuf();
        out += ss.str();
      }
    }
    return out;
  }

 private:
  mutable std::mutex mu_;
  std::deque<Scripted> script_;
  Handler handler_;
  std::vector<http::Request> requests_;
  std::vector<std::string> mismatches_;
};

// {"data": data} with Proxmox's content type.
inline http::Response PveOk(const nlohmann::json& data) {
  http::Response r;
  r.status = 200;
  r.reason = "OK";
  r.headers.Set("Content-Type", "application/json;charset=UTF-8");
  r.body = nlohmann::json{{"data", data}}.dump();
  return r;
}

// An error as PVE 8.4 sends it: text in the reason phrase and, unless
// `old_server`, also in the body's "message".
inline http::Response PveError(int status, const std::string& text, bool old_server = false,
                               const nlohmann::json& errors = nullptr) {
  http::Response r;
  r.status = status;
  r.reason = text.substr(0, text.find('\n'));
  r.headers.Set("Content-Type", "application/json;charset=UTF-8");
  nlohmann::json body{{"data", nullptr}};
  if (!old_server) body["message"] = text + "\n";
  if (!errors.is_null()) body["errors"] = errors;
  r.body = body.dump();
  return r;
}

}  // namespace nixmox::proxmox::testutil
