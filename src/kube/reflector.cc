#include "src/kube/reflector.h"

#include <spdlog/spdlog.h>

namespace nixmox::kube {
namespace {

class ClientListerWatcher final : public ListerWatcher {
 public:
  ClientListerWatcher(Client& client, ResourceType type, std::string ns, std::string labels,
                      std::string fields)
      : client_(client),
        type_(std::move(type)),
        ns_(std::move(ns)),
        labels_(std::move(labels)),
        fields_(std::move(fields)) {}

  Result<ObjectList> List(const ListOptions& options) override {
    ListOptions o = options;
    o.label_selector = labels_;
    o.field_selector = fields_;
    return client_.List(type_, ns_, o);
  }

  Status Watch(const ListOptions& options, const std::function<bool(const WatchEvent&)>& on_event,
               std::shared_ptr<http::CancelToken> cancel) override {
    ListOptions o = options;
    o.label_selector = labels_;
    o.field_selector = fields_;
    return client_.Watch(type_, ns_, o, on_event, std::move(cancel));
  }

 private:
  Client& client_;
  const ResourceType type_;
  const std::string ns_, labels_, fields_;
};

// Failures where nothing says our resourceVersion is bad: resume the watch.
bool ResumesWatch(const Status& s) {
  return s.ok() || s.code() == Code::kRetryable || s.code() == Code::kOutcomeUnknown ||
         s.code() == Code::kTooManyRequests || s.code() == Code::kCancelled;
}

}  // namespace

std::unique_ptr<ListerWatcher> NewListerWatcher(Client& client, ResourceType type, std::string ns,
                                                std::string label_selector,
                                                std::string field_selector) {
  return std::make_unique<ClientListerWatcher>(
      client, std::move(type), std::move(ns), std::move(label_selector), std::move(field_selector));
}

Reflector::Reflector(ListerWatcher& lw, ReflectorSink& sink, ReflectorOptions options)
    : lw_(lw), sink_(sink), options_(std::move(options)), rng_(options_.seed) {}

std::string Reflector::last_resource_version() const {
  std::lock_guard lock(mu_);
  return last_rv_;
}

bool Reflector::needs_relist() const {
  std::lock_guard lock(mu_);
  return need_list_;
}

Status Reflector::ListAndWatch(const std::shared_ptr<http::CancelToken>& cancel) {
  if (needs_relist()) {
    // Pages of a consistent snapshot; the first page's RV is the list's RV.
    // Each goes to the sink as it arrives: the whole list never exists as json.
    std::string list_rv;
    ListOptions options;
    options.limit = options_.page_size;
    sink_.StartList();
    while (true) {
      auto page = lw_.List(options);
      if (!page.ok()) return page.status();
      list_rv = page->resource_version;
      std::string next = std::move(page->continue_token);
      sink_.ListPage(std::move(page->items));
      if (next.empty()) break;
      options.continue_token = std::move(next);
      if (cancel && cancel->cancelled()) return CancelledError("stopped while listing");
    }
    sink_.EndList();
    std::lock_guard lock(mu_);
    last_rv_ = list_rv;
    need_list_ = false;
  }

  ListOptions options;
  options.resource_version = last_resource_version();
  options.allow_watch_bookmarks = true;
  const auto min = options_.min_watch_timeout.count();
  options.timeout_seconds =
      min +
      static_cast<long long>(rng_() % static_cast<std::uint64_t>(std::max<long long>(min, 1)));

  events_in_last_watch_ = 0;
  Status status = lw_.Watch(
      options,
      [&](const WatchEvent& event) {
        ++events_in_last_watch_;
        const std::string rv = ResourceVersionOf(event.object);
        switch (event.type) {
          case WatchEvent::Type::kAdded:
            sink_.Add(event.object);
            break;
          case WatchEvent::Type::kModified:
            sink_.Update(event.object);
            break;
          case WatchEvent::Type::kDeleted:
            sink_.Delete(event.object);
            break;
          case WatchEvent::Type::kBookmark:
            break;  // only moves the resourceVersion
          case WatchEvent::Type::kError:
            return false;  // the watcher turns these into a Status
        }
        if (!rv.empty()) {
          std::lock_guard lock(mu_);
          last_rv_ = rv;
        }
        return true;
      },
      cancel);
  if (!ResumesWatch(status)) {
    std::lock_guard lock(mu_);
    need_list_ = true;
  }
  return status;
}

void Reflector::Run(const Stop& stop) {
  Backoff backoff(options_.backoff, options_.seed);
  while (!stop.requested()) {
    Status s = ListAndWatch(stop.token());
    if (stop.requested()) return;
    // A server that keeps closing empty watches at once must not make us spin.
    const bool empty_close = s.ok() && events_in_last_watch_ == 0;
    if ((s.ok() && !empty_close) || s.code() == Code::kGone) {
      // A normal end or an expired version: go again now (resume or relist).
      if (s.code() == Code::kGone) spdlog::info("{}: {}; relisting", options_.name, s.ToString());
      backoff.Reset();
      continue;
    }
    auto delay = backoff.Next();
    if (s.retry_after() && *s.retry_after() > delay) delay = *s.retry_after();
    if (empty_close) {
      if (stop.WaitFor(delay)) return;
      continue;
    }
    spdlog::warn("{}: {}; retrying in {} ms", options_.name, s.ToString(), delay.count());
    if (stop.WaitFor(delay)) return;
  }
}

}  // namespace nixmox::kube
