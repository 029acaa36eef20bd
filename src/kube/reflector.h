// Reflector: keeps a sink (the informer) equal to the server's view of one
// resource type by listing, then watching from the list's resourceVersion.
// A watch the server ends normally, or a dropped connection, resumes from the
// last resourceVersion seen (bookmarks included); 410 Gone or an ERROR event
// makes the next round relist and replace the sink's contents.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <random>
#include <string>

#include "src/common/backoff.h"
#include "src/common/status.h"
#include "src/kube/client.h"
#include "src/kube/stop.h"

namespace nixmox::kube {

// List and watch of one type in one namespace ("" = all), with a fixed selector.
class ListerWatcher {
 public:
  virtual ~ListerWatcher() = default;
  virtual Result<ObjectList> List(const ListOptions& options) = 0;
  virtual Status Watch(const ListOptions& options,
                       const std::function<bool(const WatchEvent&)>& on_event,
                       std::shared_ptr<http::CancelToken> cancel) = 0;
};

// Over a Client. `client` must outlive the result.
std::unique_ptr<ListerWatcher> NewListerWatcher(Client& client, ResourceType type, std::string ns,
                                                std::string label_selector = "",
                                                std::string field_selector = "");

// Where the reflector delivers what it learns. Called from the reflector's thread only.
class ReflectorSink {
 public:
  virtual ~ReflectorSink() = default;
  // A relist comes a page at a time, so that the sink can pack each page as
  // it arrives instead of holding the whole list as json: StartList, then
  // ListPage for every page, then EndList, after which the pages are the
  // sink's whole contents. A list that fails mid-way gets no EndList; the
  // next StartList drops its pages.
  virtual void StartList() = 0;
  virtual void ListPage(std::vector<Object> objects) = 0;
  virtual void EndList() = 0;
  virtual void Add(Object object) = 0;
  virtual void Update(Object object) = 0;
  virtual void Delete(Object object) = 0;
};

struct ReflectorOptions {
  std::string name = "reflector";  // for logs
  long long page_size = 500;
  // Each watch asks the server to end it after a random time in [min, 2*min),
  // so that many clients do not reconnect in lockstep.
  std::chrono::seconds min_watch_timeout{300};
  BackoffPolicy backoff{std::chrono::milliseconds(800), std::chrono::milliseconds(30000), 2.0, 0.2};
  std::uint64_t seed = std::random_device{}();
};

class Reflector {
 public:
  // `lw` and `sink` must outlive the reflector.
  Reflector(ListerWatcher& lw, ReflectorSink& sink, ReflectorOptions options = {});

  // One round: relists when needed (first round, or after Gone/ERROR), then runs
  // one watch to its end. Returns how the watch ended: OK when the server closed
  // it (the next round resumes from the last resourceVersion), or the error.
  // Not thread-safe: one caller at a time (Run, or a test).
  Status ListAndWatch(const std::shared_ptr<http::CancelToken>& cancel);

  // Rounds until `stop`, backing off after errors. Blocks.
  void Run(const Stop& stop);

  // The resourceVersion the next watch starts from ("" before the first list).
  std::string last_resource_version() const;
  bool needs_relist() const;

 private:
  ListerWatcher& lw_;
  ReflectorSink& sink_;
  ReflectorOptions options_;
  std::mt19937_64 rng_;
  mutable std::mutex mu_;
  std::string last_rv_;
  bool need_list_ = true;
  int events_in_last_watch_ = 0;  // Run's thread only
};

}  // namespace nixmox::kube
