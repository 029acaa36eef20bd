// An in-memory Client for unit tests of anything that talks to Kubernetes
// (reconcilers, the leader elector, the event recorder). It keeps the API
// server's rules that callers depend on: resourceVersion preconditions
// (Conflict), AlreadyExists/NotFound, generation bumped on spec changes,
// status changed only through the status subresource, finalizers delaying
// deletion, label selectors on lists. Watch replays the changes after the
// given resourceVersion and then ends (it does not block), or Gone when that
// version is older than the fake's history. Thread-safe.
//
// Test-only: linked from the nixmox_kube_fake library.
#pragma once

#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "src/common/clock.h"
#include "src/kube/client.h"

namespace nixmox::kube {

class FakeClient final : public Client {
 public:
  explicit FakeClient(Clock& clock = RealClock());

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
  // The text SetPodLog gave (its last tail_lines lines); NotFound without one.
  Result<std::string> PodLogTail(std::string_view ns, std::string_view pod,
                                 std::string_view container, int tail_lines) override;
  void SetPodLog(std::string_view ns, std::string_view pod, std::string text);

  // Fault injection: the next matching call ("get", "list", "create", "update",
  // "update_status", "patch", "delete", "watch") fails with `status` instead.
  void FailNext(std::string verb, Status status);
  // Forgets watch history up to now: watches from older versions get Gone.
  void CompactForTest();
  // Every mutating call, as "verb resource ns/name", in order.
  std::vector<std::string> actions() const;

 private:
  struct Change {
    long long rv;
    std::string type_key;
    WatchEvent event;
  };
  Result<Object> Store(const ResourceType& type, Object obj, WatchEvent::Type event);
  Result<Object> Write(const ResourceType& type, const std::string& ns, const std::string& name,
                       const std::function<Status(Object&)>& mutate, bool status_only,
                       const std::string& verb);
  Status Injected(const std::string& verb);
  void Record(const std::string& verb, const ResourceType& type, const std::string& key);

  Clock& clock_;
  mutable std::mutex mu_;
  long long rv_ = 1;
  long long compacted_rv_ = 0;
  long long uid_ = 0;
  std::map<std::string, std::map<std::string, Object>> objects_;  // type key -> ns/name -> obj
  std::vector<Change> history_;
  std::map<std::string, std::vector<Status>> failures_;
  std::vector<std::string> actions_;
  std::map<std::string, std::string> logs_;  // ns/pod -> text
};

}  // namespace nixmox::kube
