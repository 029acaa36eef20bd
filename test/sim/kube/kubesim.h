// kubesim: an in-memory Kubernetes API server for tests, faithful to the parts
// of the API that nixmox, kubectl and helm use (see README.md for the list
// and for what is not modelled).
//
// KubeSim is the whole server minus the socket: Handle() answers one HTTP
// request, so unit tests drive it in process and the `kubesim` binary serves
// it through http::StartServer. Watches answer with a streaming response whose
// writer runs on the server's thread until the client goes, the watch times
// out or Shutdown() is called. All methods are thread-safe.
//
// Admin endpoints for benchmarks and fault tests (no authentication, outside
// the API's paths): GET|DELETE /_sim/requests (request counters keyed
// "VERB resource[.group][/subresource]", with the apiserver's verbs GET,
// LIST, WATCH, POST, PUT, PATCH, DELETE) and POST /_sim/drop-watches (ends
// every open watch stream now, as a restarting apiserver or a proxy cutting
// connections would; answers {"dropped": N}).
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <random>
#include <string>
#include <vector>

#include "src/common/clock.h"
#include "src/http/http.h"
#include "test/sim/kube/api_error.h"
#include "test/sim/kube/resources.h"

namespace nixmox::kubesim {

struct Options {
  // Bearer token every request must carry; empty turns authentication off.
  std::string token;
  // How many past events a watch can resume from; older resourceVersions get
  // 410 Gone (the real server's etcd compaction, made deterministic).
  size_t watch_window = 10000;
  // How often an idle watch that asked for bookmarks gets one.
  std::chrono::milliseconds bookmark_interval{60000};
  // A watch without ?timeoutSeconds ends after this long.
  std::chrono::seconds default_watch_timeout{1800};
  // Timestamps (creationTimestamp, deletionTimestamp, ages). Not owned; null = RealClock().
  const Clock* clock = nullptr;
  // What /api reports as serverAddressByClientCIDRs.
  std::string server_address = "127.0.0.1:6443";
};

// Serves one pod's log (GET .../pods/NAME/log); installed by the Job runner.
using LogHandler = std::function<http::ServerResponse(const std::string& ns, const std::string& pod,
                                                      const http::ServerRequest& request)>;

class KubeSim {
 public:
  explicit KubeSim(Options options);
  ~KubeSim();
  KubeSim(const KubeSim&) = delete;
  KubeSim& operator=(const KubeSim&) = delete;

  http::ServerResponse Handle(const http::ServerRequest& request);

  // Ends every open watch; later watches end at once.
  void Shutdown();
  void SetServerAddress(std::string address);
  void SetLogHandler(LogHandler handler);

  // In-process access with the same semantics as the HTTP verbs (no auth).
  // group_resource is "pods", "jobs.batch", "foos.example.com".
  ApiResult Get(const std::string& group_resource, const std::string& ns, const std::string& name);
  // A JSON array of the objects, in namespace/name order; ns "" means all.
  ApiResult List(const std::string& group_resource, const std::string& ns);
  ApiResult Create(const std::string& group_resource, const std::string& ns, json object);
  // status=true writes through the /status subresource.
  ApiResult Update(const std::string& group_resource, const std::string& ns, json object,
                   bool status);
  ApiResult Delete(const std::string& group_resource, const std::string& ns,
                   const std::string& name, const std::string& propagation = "");

  // The cluster-wide resourceVersion counter's current value.
  uint64_t resource_version();
  // Blocks until the counter passes `seen`, `timeout` passes or Shutdown().
  uint64_t WaitForChange(uint64_t seen, std::chrono::milliseconds timeout);

 private:
  struct Event {
    uint64_t rv;
    std::string group_resource;
    std::string type;  // ADDED, MODIFIED, DELETED
    json object;
    json old;  // the previous state for MODIFIED
  };
  struct WriteOptions {
    bool dry_run = false;
    std::string field_validation = "Warn";  // Strict, Warn, Ignore (the API default is Warn)
    std::vector<std::string>* warnings = nullptr;
  };
  struct DeleteOptions {
    std::string propagation;  // "" = the resource's default
    std::string precondition_uid;
    std::string precondition_rv;
    bool dry_run = false;
  };
  struct Target;
  struct WatchSpec;

  // Everything below runs with mu_ held.
  ApiResult DoCreate(const ResourceInfo& r, const std::string& ns, json object,
                     const WriteOptions& w);
  ApiResult DoUpdate(const ResourceInfo& r, const std::string& ns, const std::string& name,
                     json object, bool status, const WriteOptions& w);
  ApiResult DoDelete(const ResourceInfo& r, const std::string& ns, const std::string& name,
                     const DeleteOptions& d);
  ApiResult Admit(const ResourceInfo& r, json& object, const json* old, const WriteOptions& w);
  json* Find(const ResourceInfo& r, const std::string& ns, const std::string& name);
  void Commit(const ResourceInfo& r, json object, const std::string& type, const json* old);
  void Remove(const ResourceInfo& r, const std::string& key);
  // Runs the garbage collector when a write since its last run could have
  // given it work: see gc_pending_.
  void CollectGarbage();
  bool FinishIfUnblocked(const ResourceInfo& r, const std::string& key);
  std::string Now() const;
  std::string NewUid();

  http::ServerResponse Serve(const http::ServerRequest& req);
  http::ServerResponse ServeAdmin(const http::ServerRequest& req, const std::string& path);
  void CountRequest(const http::ServerRequest& req, const Target& t);
  http::ServerResponse ServeResource(const http::ServerRequest& req, const Target& t);
  http::ServerResponse ServeList(const http::ServerRequest& req, const Target& t);
  http::ServerResponse ServeWatch(const http::ServerRequest& req, const Target& t);
  http::ServerResponse ServePatch(const http::ServerRequest& req, const Target& t);
  void RunWatch(const WatchSpec& spec, http::StreamWriter& writer);

  Options options_;
  const Clock& clock_;
  std::mutex mu_;
  std::condition_variable cv_;
  Registry registry_;
  uint64_t rv_ = 1;
  // group_resource -> "namespace/name" -> object
  std::map<std::string, std::map<std::string, json>> objects_;
  std::deque<Event> history_;
  uint64_t compacted_ = 0;  // events with rv <= compacted_ are no longer kept
  bool stopping_ = false;
  // Set by a commit of an object being deleted or with owners, and by every
  // removal (its dependents): the only writes after which the collector can
  // find something to do. Other writes (status updates, Events) skip a scan
  // of every stored object.
  bool gc_pending_ = false;
  std::mt19937_64 rng_;
  LogHandler log_handler_;
  uint64_t watch_epoch_ = 0;  // bumped by /_sim/drop-watches; a watch ends when it moves
  std::atomic<int> open_watches_{0};

  std::mutex counters_mu_;
  std::map<std::string, uint64_t> counters_;
};

}  // namespace nixmox::kubesim
