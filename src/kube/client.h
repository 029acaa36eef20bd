// The Kubernetes client interfaces. Reconcilers read through a Reader (the
// informer cache in production) and write through a Writer (the API server);
// informers list and watch through a Reader plus a Watcher. RestClient is the
// real implementation; tests use fakes behind the same interfaces.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "src/common/status.h"
#include "src/http/http.h"
#include "src/kube/object.h"
#include "src/kube/resource.h"

namespace nixmox::kube {

struct ObjectList {
  std::vector<Object> items;
  std::string resource_version;  // of the list, to start a watch from
  std::string continue_token;    // non-empty: more pages follow
};

enum class PatchType {
  kMerge,           // application/merge-patch+json (RFC 7386)
  kJson,            // application/json-patch+json (RFC 6902)
  kStrategicMerge,  // application/strategic-merge-patch+json (built-in types only)
};
std::string_view PatchContentType(PatchType type);

struct DeleteOptions {
  std::string propagation_policy;  // "Foreground", "Background", "Orphan"; "" = server default
  // Preconditions: the delete fails with Conflict unless the object still has these.
  std::string precondition_uid;
  std::string precondition_resource_version;
  std::optional<long long> grace_period_seconds;
};

struct WatchEvent {
  enum class Type { kAdded, kModified, kDeleted, kBookmark, kError };
  Type type = Type::kAdded;
  Object object;  // for kError, the metav1.Status
};

// Thread-safe in every implementation.
class Reader {
 public:
  virtual ~Reader() = default;
  virtual Result<Object> Get(const ResourceType& type, std::string_view ns,
                             std::string_view name) = 0;
  // One page (limit/continue) or, without a limit, everything.
  virtual Result<ObjectList> List(const ResourceType& type, std::string_view ns,
                                  const ListOptions& options) = 0;
};

// Namespace and name of written objects come from their metadata. Results are
// the objects as the server returned them.
class Writer {
 public:
  virtual ~Writer() = default;
  virtual Result<Object> Create(const ResourceType& type, const Object& object) = 0;
  // Conflict when metadata.resourceVersion is stale.
  virtual Result<Object> Update(const ResourceType& type, const Object& object) = 0;
  // PUT to the status subresource: only .status changes.
  virtual Result<Object> UpdateStatus(const ResourceType& type, const Object& object) = 0;
  // subresource "" patches the object, "status" its status.
  virtual Result<Object> Patch(const ResourceType& type, std::string_view ns, std::string_view name,
                               PatchType patch_type, const Object& patch,
                               std::string_view subresource = "") = 0;
  virtual Status Delete(const ResourceType& type, std::string_view ns, std::string_view name,
                        const DeleteOptions& options = {}) = 0;
};

class Watcher {
 public:
  virtual ~Watcher() = default;
  // Blocks, passing each event to on_event, until the server ends the stream
  // (OK: resume from the last resourceVersion seen), on_event returns false (OK),
  // `cancel` fires (Cancelled) or the request fails. An ERROR event ends the
  // watch with the Status it carries: Gone when the resourceVersion has expired.
  virtual Status Watch(const ResourceType& type, std::string_view ns, const ListOptions& options,
                       const std::function<bool(const WatchEvent&)>& on_event,
                       std::shared_ptr<http::CancelToken> cancel = nullptr) = 0;
};

// Container logs (pods/NAME/log): plain text, not objects.
class LogReader {
 public:
  virtual ~LogReader() = default;
  // The last `tail_lines` lines of the log of `container` in pod ns/name.
  virtual Result<std::string> PodLogTail(std::string_view ns, std::string_view pod,
                                         std::string_view container, int tail_lines) = 0;
};

class Client : public Reader, public Writer, public Watcher, public LogReader {};

// Follows continue tokens until the list is complete (pages of `page_size`).
Result<ObjectList> ListAll(Reader& reader, const ResourceType& type, std::string_view ns,
                           ListOptions options, long long page_size = 500);

}  // namespace nixmox::kube
