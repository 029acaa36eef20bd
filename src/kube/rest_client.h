// Client over HTTP: the Kubernetes REST API for any group/version/resource.
#pragma once

#include <chrono>
#include <memory>
#include <optional>

#include "src/http/http.h"
#include "src/kube/client.h"
#include "src/kube/config.h"

namespace nixmox::kube {

// Thread-safe. Adds the token source's current bearer token to each request;
// the token never appears in a Status message or a log line.
class RestClient final : public Client {
 public:
  RestClient(std::shared_ptr<http::Client> http, std::shared_ptr<TokenSource> token);

  // From a Config: builds the http::Client with NewHttpClient.
  static Result<std::unique_ptr<RestClient>> FromConfig(const Config& config);

  // A client sharing this one's connection and token whose requests (not
  // watches) each end after `timeout`: the leader elector must not sit in a
  // lease renewal past its renew deadline.
  std::unique_ptr<RestClient> WithTimeout(std::chrono::milliseconds timeout) const;

  Result<Object> Get(const ResourceType& type, std::string_view ns, std::string_view name) override;
  Result<ObjectList> List(const ResourceType& type, std::string_view ns,
                          const ListOptions& options) override;
  Result<Object> Create(const ResourceType& type, const Object& object) override;
  Result<Object> Update(const ResourceType& type, const Object& object) override;
  Result<Object> UpdateStatus(const ResourceType& type, const Object& object) override;
  Result<Object> Patch(const ResourceType& type, std::string_view ns, std::string_view name,
                       PatchType patch_type, const Object& patch,
                       std::string_view subresource = "") override;
  Status Delete(const ResourceType& type, std::string_view ns, std::string_view name,
                const DeleteOptions& options = {}) override;
  Status Watch(const ResourceType& type, std::string_view ns, const ListOptions& options,
               const std::function<bool(const WatchEvent&)>& on_event,
               std::shared_ptr<http::CancelToken> cancel = nullptr) override;
  Result<std::string> PodLogTail(std::string_view ns, std::string_view pod,
                                 std::string_view container, int tail_lines) override;

 private:
  Status Authorize(http::Request& request);
  // Sends, maps errors, parses the JSON body.
  Result<Object> Call(http::Request request, std::string_view context);
  Result<Object> Put(const ResourceType& type, const Object& object, std::string_view sub);

  std::shared_ptr<http::Client> http_;
  std::shared_ptr<TokenSource> token_;
  std::optional<std::chrono::milliseconds> timeout_;
};

// Parses one line of a watch stream.
Result<WatchEvent> ParseWatchEvent(std::string_view line);

}  // namespace nixmox::kube
