// An in-memory http::Client for unit tests: records every request and answers
// from a script of responses (or lines, for streams).
#pragma once

#include <deque>
#include <mutex>
#include <string>
#include <vector>

#include "src/http/http.h"

namespace nixmox::kube::testing {

class FakeHttpClient : public http::Client {
 public:
  struct Reply {
    Result<http::Response> response = http::Response{200, "OK", {}, "{}"};
    std::vector<std::string> lines;  // for Stream
  };

  void Push(int status, std::string body, http::Headers headers = {}) {
    std::lock_guard lock(mu_);
    replies_.push_back(Reply{http::Response{status, "", std::move(headers), std::move(body)}, {}});
  }
  void PushStream(std::vector<std::string> lines, int status = 200) {
    std::lock_guard lock(mu_);
    replies_.push_back(Reply{http::Response{status, "", {}, ""}, std::move(lines)});
  }
  void PushError(Status s) {
    std::lock_guard lock(mu_);
    replies_.push_back(Reply{std::move(s), {}});
  }

  Result<http::Response> Send(const http::Request& request) override {
    return Next(request).response;
  }

  Result<http::Response> Stream(
      const http::Request& request,
      const std::function<bool(std::string_view line)>& on_line) override {
    Reply r = Next(request);
    if (!r.response.ok() || r.response->status / 100 != 2) return r.response;
    for (const auto& line : r.lines) {
      if (!on_line(line)) break;
    }
    return r.response;
  }

  std::vector<http::Request> requests() {
    std::lock_guard lock(mu_);
    return requests_;
  }
  http::Request last() {
    std::lock_guard lock(mu_);
    return requests_.back();
  }
  static std::string Body(const http::Request& r) {
    std::string out;
    for (const auto& p : r.body) out += p.data;
    return out;
  }

 private:
  Reply Next(const http::Request& request) {
    std::lock_guard lock(mu_);
    requests_.push_back(request);
    if (replies_.empty()) return Reply{http::Response{500, "", {}, "no scripted reply"}, {}};
    Reply r = std::move(replies_.front());
    replies_.pop_front();
    return r;
  }

  std::mutex mu_;
  std::deque<Reply> replies_;
  std::vector<http::Request> requests_;
};

}  // namespace nixmox::kube::testing
