#include "src/kube/fake_client.h"

#include "src/kube/selector.h"
#include "src/kube/time.h"

namespace nixmox::kube {
namespace {

std::string TypeKey(const ResourceType& t) { return t.group + "/" + t.version + "/" + t.resource; }

std::string NotFoundMessage(const ResourceType& t, std::string_view name) {
  return t.resource + " \"" + std::string(name) + "\" not found";
}

bool HasFinalizers(const Object& o) {
  auto md = o.find("metadata");
  if (md == o.end() || !md->is_object()) return false;
  auto f = md->find("finalizers");
  return f != md->end() && f->is_array() && !f->empty();
}

bool Deleting(const Object& o) { return !StringAt(o, {"metadata", "deletionTimestamp"}).empty(); }

}  // namespace

FakeClient::FakeClient(Clock& clock) : clock_(clock) {}

void FakeClient::FailNext(std::string verb, Status status) {
  std::lock_guard lock(mu_);
  failures_[verb].push_back(std::move(status));
}

void FakeClient::CompactForTest() {
  std::lock_guard lock(mu_);
  compacted_rv_ = rv_;
  history_.clear();
}

std::vector<std::string> FakeClient::actions() const {
  std::lock_guard lock(mu_);
  return actions_;
}

Status FakeClient::Injected(const std::string& verb) {
  auto it = failures_.find(verb);
  if (it == failures_.end() || it->second.empty()) return OkStatus();
  Status s = it->second.front();
  it->second.erase(it->second.begin());
  return s;
}

void FakeClient::Record(const std::string& verb, const ResourceType& type, const std::string& key) {
  actions_.push_back(verb + " " + type.resource + " " + key);
}

Result<Object> FakeClient::Store(const ResourceType& type, Object obj, WatchEvent::Type event) {
  const std::string key = KeyOf(obj);
  auto& objects = objects_[TypeKey(type)];
  if (event == WatchEvent::Type::kDeleted) {
    objects.erase(key);
    obj["metadata"]["resourceVersion"] = std::to_string(++rv_);
  } else {
    obj["metadata"]["resourceVersion"] = std::to_string(++rv_);
    objects[key] = obj;
  }
  history_.push_back(Change{rv_, TypeKey(type), WatchEvent{event, obj}});
  return obj;
}

Result<Object> FakeClient::Get(const ResourceType& type, std::string_view ns,
                               std::string_view name) {
  std::lock_guard lock(mu_);
  RETURN_IF_ERROR(Injected("get"));
  auto& objects = objects_[TypeKey(type)];
  auto it = objects.find(MakeKey(type.namespaced ? ns : "", name));
  if (it == objects.end()) return NotFoundError(NotFoundMessage(type, name));
  return it->second;
}

Result<ObjectList> FakeClient::List(const ResourceType& type, std::string_view ns,
                                    const ListOptions& options) {
  std::lock_guard lock(mu_);
  RETURN_IF_ERROR(Injected("list"));
  ASSIGN_OR_RETURN(LabelSelector labels, LabelSelector::Parse(options.label_selector));
  ASSIGN_OR_RETURN(FieldSelector fields, FieldSelector::Parse(options.field_selector));
  ObjectList list;
  list.resource_version = std::to_string(rv_);
  for (const auto& [key, obj] : objects_[TypeKey(type)]) {
    if (type.namespaced && !ns.empty() && NamespaceOf(obj) != ns) continue;
    if (labels.Matches(obj) && fields.Matches(obj)) list.items.push_back(obj);
  }
  return list;
}

Result<Object> FakeClient::Create(const ResourceType& type, const Object& object) {
  std::lock_guard lock(mu_);
  RETURN_IF_ERROR(Injected("create"));
  Object obj = object;
  const std::string name = NameOf(obj);
  if (name.empty()) return InvalidError("metadata.name: Required value");
  if (type.namespaced && NamespaceOf(obj).empty()) {
    return InvalidError("metadata.namespace: Required value");
  }
  if (objects_[TypeKey(type)].count(KeyOf(obj))) {
    return AlreadyExistsError(type.resource + " \"" + name + "\" already exists");
  }
  obj["metadata"]["uid"] = "uid-" + std::to_string(++uid_);
  obj["metadata"]["generation"] = 1;
  obj["metadata"]["creationTimestamp"] = FormatTime(clock_.WallNow());
  obj["apiVersion"] = type.ApiVersion();
  if (!type.kind.empty()) obj["kind"] = type.kind;
  Record("create", type, KeyOf(obj));
  return Store(type, std::move(obj), WatchEvent::Type::kAdded);
}

Result<Object> FakeClient::Write(const ResourceType& type, const std::string& ns,
                                 const std::string& name,
                                 const std::function<Status(Object&)>& mutate, bool status_only,
                                 const std::string& verb) {
  RETURN_IF_ERROR(Injected(verb));
  auto& objects = objects_[TypeKey(type)];
  auto it = objects.find(MakeKey(type.namespaced ? ns : "", name));
  if (it == objects.end()) return NotFoundError(NotFoundMessage(type, name));
  const Object current = it->second;
  Object next = current;
  RETURN_IF_ERROR(mutate(next));
  // The server owns identity; spec and status are each written only through their own door.
  for (const char* f : {"uid", "creationTimestamp", "generation", "deletionTimestamp"}) {
    if (current["metadata"].contains(f)) {
      next["metadata"][f] = current["metadata"][f];
    } else {
      next["metadata"].erase(f);
    }
  }
  next["metadata"]["name"] = current["metadata"]["name"];
  if (current["metadata"].contains("namespace")) {
    next["metadata"]["namespace"] = current["metadata"]["namespace"];
  }
  if (status_only) {
    Object only = current;
    if (next.contains("status"))
      only["status"] = next["status"];
    else
      only.erase("status");
    next = std::move(only);
  } else {
    if (current.contains("status"))
      next["status"] = current["status"];
    else
      next.erase("status");
    if (next.value("spec", Object()) != current.value("spec", Object())) {
      next["metadata"]["generation"] = GenerationOf(current) + 1;
    }
  }
  next["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"];
  if (next == current) return current;  // a no-op write changes nothing, not even the version
  Record(verb, type, KeyOf(current));
  if (Deleting(next) && !HasFinalizers(next)) {
    return Store(type, std::move(next), WatchEvent::Type::kDeleted);
  }
  return Store(type, std::move(next), WatchEvent::Type::kModified);
}

Result<Object> FakeClient::Update(const ResourceType& type, const Object& object) {
  std::lock_guard lock(mu_);
  const std::string rv = ResourceVersionOf(object);
  return Write(
      type, NamespaceOf(object), NameOf(object),
      [&](Object& o) {
        if (!rv.empty() && rv != ResourceVersionOf(o)) {
          return ConflictError(
              "the object has been modified; please apply your changes to the "
              "latest version and try again");
        }
        o = object;
        return OkStatus();
      },
      false, "update");
}

Result<Object> FakeClient::UpdateStatus(const ResourceType& type, const Object& object) {
  std::lock_guard lock(mu_);
  const std::string rv = ResourceVersionOf(object);
  return Write(
      type, NamespaceOf(object), NameOf(object),
      [&](Object& o) {
        if (!rv.empty() && rv != ResourceVersionOf(o)) {
          return ConflictError("the object has been modified");
        }
        o = object;
        return OkStatus();
      },
      true, "update_status");
}

Result<Object> FakeClient::Patch(const ResourceType& type, std::string_view ns,
                                 std::string_view name, PatchType patch_type, const Object& patch,
                                 std::string_view subresource) {
  std::lock_guard lock(mu_);
  return Write(
      type, std::string(ns), std::string(name),
      [&](Object& o) {
        const std::string rv = StringAt(patch, {"metadata", "resourceVersion"});
        if (patch_type != PatchType::kJson && !rv.empty() && rv != ResourceVersionOf(o)) {
          return ConflictError("the object has been modified");
        }
        try {
          if (patch_type == PatchType::kJson) {
            o = o.patch(patch);
          } else {
            o.merge_patch(patch);  // strategic merge treated as merge: no list semantics
          }
        } catch (const nlohmann::json::exception& e) {
          return InvalidError(std::string("patch does not apply: ") + e.what());
        }
        return OkStatus();
      },
      subresource == "status", "patch");
}

Status FakeClient::Delete(const ResourceType& type, std::string_view ns, std::string_view name,
                          const DeleteOptions& options) {
  std::lock_guard lock(mu_);
  RETURN_IF_ERROR(Injected("delete"));
  auto& objects = objects_[TypeKey(type)];
  auto it = objects.find(MakeKey(type.namespaced ? ns : "", name));
  if (it == objects.end()) return NotFoundError(NotFoundMessage(type, name));
  Object obj = it->second;
  if (!options.precondition_uid.empty() && options.precondition_uid != UidOf(obj)) {
    return ConflictError("Precondition failed: UID in precondition: " + options.precondition_uid +
                         ", UID in object meta: " + UidOf(obj));
  }
  if (!options.precondition_resource_version.empty() &&
      options.precondition_resource_version != ResourceVersionOf(obj)) {
    return ConflictError("Precondition failed: resourceVersion mismatch");
  }
  Record("delete", type, KeyOf(obj));
  if (HasFinalizers(obj)) {
    if (Deleting(obj)) return OkStatus();
    obj["metadata"]["deletionTimestamp"] = FormatTime(clock_.WallNow());
    return Store(type, std::move(obj), WatchEvent::Type::kModified).status();
  }
  return Store(type, std::move(obj), WatchEvent::Type::kDeleted).status();
}

Result<std::string> FakeClient::PodLogTail(std::string_view ns, std::string_view pod,
                                           std::string_view /*container*/, int tail_lines) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = logs_.find(MakeKey(ns, pod));
  if (it == logs_.end()) return Status(Code::kNotFound, "no log for pod " + MakeKey(ns, pod));
  std::vector<std::string_view> lines;
  std::string_view text = it->second;
  while (!text.empty()) {
    std::size_t nl = text.find('\n');
    lines.push_back(text.substr(0, nl));
    text = nl == std::string_view::npos ? std::string_view() : text.substr(nl + 1);
  }
  std::string tail;
  std::size_t first = lines.size() > static_cast<std::size_t>(tail_lines)
                          ? lines.size() - static_cast<std::size_t>(tail_lines)
                          : 0;
  for (std::size_t i = first; i < lines.size(); ++i) {
    tail.append(lines[i]);
    tail += '\n';
  }
  return tail;
}

void FakeClient::SetPodLog(std::string_view ns, std::string_view pod, std::string text) {
  std::lock_guard<std::mutex> lock(mu_);
  logs_[MakeKey(ns, pod)] = std::move(text);
}

Status FakeClient::Watch(const ResourceType& type, std::string_view ns, const ListOptions& options,
                         const std::function<bool(const WatchEvent&)>& on_event,
                         std::shared_ptr<http::CancelToken> cancel) {
  std::vector<WatchEvent> events;
  {
    std::lock_guard lock(mu_);
    RETURN_IF_ERROR(Injected("watch"));
    long long from = 0;
    if (!options.resource_version.empty()) from = std::stoll(options.resource_version);
    if (from < compacted_rv_) {
      return GoneError("too old resource version: " + options.resource_version);
    }
    ASSIGN_OR_RETURN(LabelSelector labels, LabelSelector::Parse(options.label_selector));
    for (const auto& c : history_) {
      if (c.rv <= from || c.type_key != TypeKey(type)) continue;
      if (type.namespaced && !ns.empty() && NamespaceOf(c.event.object) != ns) continue;
      if (!labels.Matches(c.event.object)) continue;
      events.push_back(c.event);
    }
  }
  for (const auto& e : events) {
    if (cancel && cancel->cancelled()) return CancelledError("watch cancelled");
    if (!on_event(e)) return OkStatus();
  }
  return OkStatus();
}

}  // namespace nixmox::kube
