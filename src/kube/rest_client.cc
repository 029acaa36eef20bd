#include "src/kube/rest_client.h"

#include "src/kube/api_status.h"

namespace nixmox::kube {
namespace {

std::string Describe(std::string_view verb, const ResourceType& type, std::string_view ns,
                     std::string_view name) {
  std::string s(verb);
  s += ' ';
  s += type.resource;
  if (!ns.empty() || !name.empty()) {
    s += ' ';
    s += MakeKey(ns, name);
  }
  return s;
}

std::string WithQuery(std::string path,
                      const std::vector<std::pair<std::string, std::string>>& query) {
  if (query.empty()) return path;
  return path + "?" + http::EncodeQuery(query);
}

Result<Object> ParseBody(const std::string& body, std::string_view context) {
  auto json = Object::parse(body, nullptr, /*allow_exceptions=*/false);
  if (json.is_discarded()) {
    return InternalError(std::string(context) + ": response is not JSON");
  }
  return json;
}

}  // namespace

std::string_view PatchContentType(PatchType type) {
  switch (type) {
    case PatchType::kMerge:
      return "application/merge-patch+json";
    case PatchType::kJson:
      return "application/json-patch+json";
    case PatchType::kStrategicMerge:
      return "application/strategic-merge-patch+json";
  }
  return "application/merge-patch+json";
}

Result<ObjectList> ListAll(Reader& reader, const ResourceType& type, std::string_view ns,
                           ListOptions options, long long page_size) {
  ObjectList all;
  options.limit = page_size;
  options.continue_token.clear();
  while (true) {
    ASSIGN_OR_RETURN(ObjectList page, reader.List(type, ns, options));
    for (auto& item : page.items) all.items.push_back(std::move(item));
    all.resource_version = page.resource_version;
    if (page.continue_token.empty()) return all;
    options.continue_token = page.continue_token;
    // Continued pages come from the first page's snapshot; no resourceVersion allowed.
    options.resource_version.clear();
    options.resource_version_match.clear();
  }
}

Result<WatchEvent> ParseWatchEvent(std::string_view line) {
  auto json = Object::parse(line, nullptr, /*allow_exceptions=*/false);
  if (json.is_discarded() || !json.is_object()) {
    return InternalError("watch stream sent a line that is not a JSON object");
  }
  WatchEvent event;
  const std::string type = StringAt(json, {"type"});
  if (type == "ADDED")
    event.type = WatchEvent::Type::kAdded;
  else if (type == "MODIFIED")
    event.type = WatchEvent::Type::kModified;
  else if (type == "DELETED")
    event.type = WatchEvent::Type::kDeleted;
  else if (type == "BOOKMARK")
    event.type = WatchEvent::Type::kBookmark;
  else if (type == "ERROR")
    event.type = WatchEvent::Type::kError;
  else
    return InternalError("watch event of unknown type \"" + type + "\"");
  auto obj = json.find("object");
  if (obj == json.end() || !obj->is_object()) {
    return InternalError("watch event without an object");
  }
  event.object = std::move(*obj);
  return event;
}

RestClient::RestClient(std::shared_ptr<http::Client> http, std::shared_ptr<TokenSource> token)
    : http_(std::move(http)), token_(std::move(token)) {}

Result<std::unique_ptr<RestClient>> RestClient::FromConfig(const Config& config) {
  ASSIGN_OR_RETURN(std::unique_ptr<http::Client> http, NewHttpClient(config));
  return std::make_unique<RestClient>(std::shared_ptr<http::Client>(std::move(http)), config.token);
}

std::unique_ptr<RestClient> RestClient::WithTimeout(std::chrono::milliseconds timeout) const {
  auto copy = std::make_unique<RestClient>(http_, token_);
  copy->timeout_ = timeout;
  return copy;
}

Status RestClient::Authorize(http::Request& request) {
  request.headers.Set("Accept", "application/json");
  if (!token_) return OkStatus();
  auto token = token_->Token();
  if (!token.ok()) return token.status();
  request.headers.Set("Authorization", "Bearer " + *token);
  return OkStatus();
}

Result<Object> RestClient::Call(http::Request request, std::string_view context) {
  RETURN_IF_ERROR(Authorize(request));
  if (timeout_) request.timeout = *timeout_;
  auto response = http_->Send(request);
  if (!response.ok()) {
    Status s = response.status();
    return s.Annotate(context);
  }
  RETURN_IF_ERROR(StatusFromResponse(*response, context));
  return ParseBody(response->body, context);
}

Result<Object> RestClient::Get(const ResourceType& type, std::string_view ns,
                               std::string_view name) {
  http::Request req;
  req.target = ResourcePath(type, ns, name);
  return Call(std::move(req), Describe("get", type, ns, name));
}

Result<ObjectList> RestClient::List(const ResourceType& type, std::string_view ns,
                                    const ListOptions& options) {
  http::Request req;
  req.target = WithQuery(ResourcePath(type, ns), ListQuery(options, /*watch=*/false));
  const std::string context = Describe("list", type, ns, "");
  ASSIGN_OR_RETURN(Object body, Call(std::move(req), context));
  ObjectList list;
  list.resource_version = StringAt(body, {"metadata", "resourceVersion"});
  list.continue_token = StringAt(body, {"metadata", "continue"});
  auto items = body.find("items");
  if (items != body.end() && items->is_array()) {
    list.items.reserve(items->size());
    for (auto& item : *items) {
      // Items of a list carry no apiVersion/kind; restore them so cached objects are whole.
      if (item.is_object()) {
        if (!item.contains("apiVersion")) item["apiVersion"] = type.ApiVersion();
        if (!item.contains("kind") && !type.kind.empty()) item["kind"] = type.kind;
      }
      list.items.push_back(std::move(item));
    }
  } else if (items != body.end() && !items->is_null()) {
    return InternalError(context + ": items is not an array");
  }
  return list;
}

Result<Object> RestClient::Create(const ResourceType& type, const Object& object) {
  const std::string ns = NamespaceOf(object);
  if (type.namespaced && ns.empty()) {
    return InvalidError("create " + type.resource + ": metadata.namespace is required");
  }
  http::Request req;
  req.method = "POST";
  req.target = ResourcePath(type, ns);
  req.SetBody("application/json", object.dump());
  return Call(std::move(req), Describe("create", type, ns, NameOf(object)));
}

Result<Object> RestClient::Put(const ResourceType& type, const Object& object,
                               std::string_view sub) {
  const std::string ns = NamespaceOf(object);
  const std::string name = NameOf(object);
  if (name.empty()) return InvalidError("update " + type.resource + ": metadata.name is required");
  http::Request req;
  req.method = "PUT";
  req.target = ResourcePath(type, ns, name, sub);
  req.SetBody("application/json", object.dump());
  return Call(std::move(req),
              Describe(sub.empty() ? "update" : "update status of", type, ns, name));
}

Result<Object> RestClient::Update(const ResourceType& type, const Object& object) {
  return Put(type, object, "");
}

Result<Object> RestClient::UpdateStatus(const ResourceType& type, const Object& object) {
  return Put(type, object, "status");
}

Result<Object> RestClient::Patch(const ResourceType& type, std::string_view ns,
                                 std::string_view name, PatchType patch_type, const Object& patch,
                                 std::string_view subresource) {
  http::Request req;
  req.method = "PATCH";
  req.target = ResourcePath(type, ns, name, subresource);
  req.SetBody(std::string(PatchContentType(patch_type)), patch.dump());
  return Call(std::move(req), Describe("patch", type, ns, name));
}

Status RestClient::Delete(const ResourceType& type, std::string_view ns, std::string_view name,
                          const DeleteOptions& options) {
  http::Request req;
  req.method = "DELETE";
  req.target = ResourcePath(type, ns, name);
  Object body = {{"kind", "DeleteOptions"}, {"apiVersion", "v1"}};
  if (!options.propagation_policy.empty()) body["propagationPolicy"] = options.propagation_policy;
  if (options.grace_period_seconds) body["gracePeriodSeconds"] = *options.grace_period_seconds;
  if (!options.precondition_uid.empty()) body["preconditions"]["uid"] = options.precondition_uid;
  if (!options.precondition_resource_version.empty()) {
    body["preconditions"]["resourceVersion"] = options.precondition_resource_version;
  }
  req.SetBody("application/json", body.dump());
  return Call(std::move(req), Describe("delete", type, ns, name)).status();
}

Result<std::string> RestClient::PodLogTail(std::string_view ns, std::string_view pod,
                                           std::string_view container, int tail_lines) {
  http::Request req;
  req.target = WithQuery(ResourcePath(resources::Pods(), ns, pod, "log"),
                         {{"container", std::string(container)},
                          {"tailLines", std::to_string(tail_lines)}});
  const std::string context = Describe("read the log of", resources::Pods(), ns, pod);
  RETURN_IF_ERROR(Authorize(req));
  req.headers.Set("Accept", "text/plain, */*");
  if (timeout_) req.timeout = *timeout_;
  auto response = http_->Send(req);
  if (!response.ok()) {
    Status s = response.status();
    return s.Annotate(context);
  }
  RETURN_IF_ERROR(StatusFromResponse(*response, context));
  return std::move(response->body);
}

Status RestClient::Watch(const ResourceType& type, std::string_view ns, const ListOptions& options,
                         const std::function<bool(const WatchEvent&)>& on_event,
                         std::shared_ptr<http::CancelToken> cancel) {
  http::Request req;
  req.target = WithQuery(ResourcePath(type, ns), ListQuery(options, /*watch=*/true));
  req.cancel = std::move(cancel);
  RETURN_IF_ERROR(Authorize(req));
  const std::string context = Describe("watch", type, ns, "");
  Status stream_status;  // set when a line ends the watch
  auto response = http_->Stream(req, [&](std::string_view line) {
    if (line.find_first_not_of(" \t\r") == std::string_view::npos) return true;
    auto event = ParseWatchEvent(line);
    if (!event.ok()) {
      stream_status = event.status();
      stream_status.Annotate(context);
      return false;
    }
    if (event->type == WatchEvent::Type::kError) {
      stream_status = StatusFromApiStatus(event->object, context);
      if (stream_status.ok()) stream_status = InternalError(context + ": ERROR event");
      return false;
    }
    return on_event(*event);
  });
  if (!stream_status.ok()) return stream_status;
  if (!response.ok()) {
    Status s = response.status();
    return s.Annotate(context);
  }
  return StatusFromResponse(*response, context);
}

}  // namespace nixmox::kube
