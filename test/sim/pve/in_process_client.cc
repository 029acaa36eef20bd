#include "test/sim/pve/in_process_client.h"

#include <fstream>
#include <sstream>

namespace nixmox::pvesim {
namespace {

Result<http::ServerRequest> ToServerRequest(const http::Request& request) {
  if (request.cancel && request.cancel->cancelled()) {
    return Status(Code::kCancelled, request.method + " " + request.target + ": cancelled");
  }
  http::ServerRequest out;
  out.method = request.method;
  std::string_view target = request.target;
  if (auto q = target.find('?'); q != std::string_view::npos) {
    out.raw_query = std::string(target.substr(q + 1));
    target = target.substr(0, q);
  }
  out.path = http::PercentDecode(target);
  out.query = http::DecodeQuery(out.raw_query);
  out.headers = request.headers;
  out.remote_address = "127.0.0.1";
  for (const http::BodyPart& part : request.body) {
    if (part.file.empty()) {
      out.body += part.data;
      continue;
    }
    std::ifstream in(part.file, std::ios::binary);
    if (!in) {
      return Status(Code::kInvalid, "cannot read body file " + part.file.string());
    }
    std::ostringstream data;
    data << in.rdbuf();
    out.body += data.str();
  }
  return out;
}

}  // namespace

Result<http::Response> InProcessClient::Send(const http::Request& request) {
  ASSIGN_OR_RETURN(http::ServerRequest server_request, ToServerRequest(request));
  http::ServerResponse answer = sim_.Handle(server_request);
  http::Response response;
  response.status = answer.status;
  response.reason =
      answer.reason.empty() ? std::string(http::StandardReason(answer.status)) : answer.reason;
  response.headers = answer.headers;
  response.body = std::move(answer.body);
  return response;
}

Result<http::Response> InProcessClient::Stream(
    const http::Request& request, const std::function<bool(std::string_view)>& on_line) {
  ASSIGN_OR_RETURN(http::Response response, Send(request));
  if (response.status < 200 || response.status > 299) return response;
  std::string_view body = response.body;
  while (!body.empty()) {
    auto nl = body.find('\n');
    std::string_view line = body.substr(0, nl);
    if (!on_line(line)) break;
    if (nl == std::string_view::npos) break;
    body.remove_prefix(nl + 1);
  }
  response.body.clear();
  return response;
}

}  // namespace nixmox::pvesim
