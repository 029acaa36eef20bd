#include "src/kube/informer.h"

#include <spdlog/spdlog.h>

#include <thread>

namespace nixmox::kube {

Informer::Informer(Client& client, ResourceType type, std::string ns, InformerOptions options)
    : type_(type),
      options_(std::move(options)),
      clock_(options_.clock ? *options_.clock : RealClock()),
      owned_lw_(NewListerWatcher(client, type, std::move(ns), options_.label_selector,
                                 options_.field_selector)),
      lw_(*owned_lw_),
      reflector_(lw_, *this, options_.reflector) {}

Informer::Informer(ListerWatcher& lw, ResourceType type, InformerOptions options)
    : type_(std::move(type)),
      options_(std::move(options)),
      clock_(options_.clock ? *options_.clock : RealClock()),
      lw_(lw),
      reflector_(lw_, *this, options_.reflector) {}

Informer::~Informer() = default;

Status Informer::AddIndex(const std::string& name, IndexFunc fn) {
  return store_.AddIndex(name, std::move(fn));
}

void Informer::AddHandlers(EventHandlers handlers) {
  std::lock_guard lock(mu_);
  if (handlers.on_add) {
    for (const auto& obj : store_.List()) handlers.on_add(*obj);
  }
  handlers_.push_back(std::move(handlers));
}

void Informer::Dispatch(const std::function<void(const EventHandlers&)>& fn) {
  std::lock_guard lock(mu_);
  for (const auto& h : handlers_) {
    try {
      fn(h);
    } catch (const std::exception& e) {
      // A throwing handler must not take the informer down with it.
      spdlog::error("{} informer: event handler threw: {}", type_.resource, e.what());
    }
  }
}

void Informer::Replace(std::vector<Object> objects) {
  std::vector<ObjectPtr> ptrs;
  ptrs.reserve(objects.size());
  for (auto& o : objects) ptrs.push_back(std::make_shared<const Object>(std::move(o)));
  auto result = store_.Replace(std::move(ptrs));
  Dispatch([&](const EventHandlers& h) {
    if (h.on_delete)
      for (const auto& o : result.deleted) h.on_delete(*o);
    if (h.on_add)
      for (const auto& o : result.added) h.on_add(*o);
    if (h.on_update)
      for (const auto& [old, cur] : result.updated) h.on_update(*old, *cur);
  });
  {
    std::lock_guard lock(mu_);
    synced_ = true;
    if (!next_resync_ && options_.resync_period.count() > 0) {
      next_resync_ = clock_.Now() + options_.resync_period;
    }
  }
  synced_cv_.notify_all();
}

void Informer::Add(Object object) { Update(std::move(object)); }

void Informer::Update(Object object) {
  auto cur = std::make_shared<const Object>(std::move(object));
  ObjectPtr old = store_.Upsert(cur);
  Dispatch([&](const EventHandlers& h) {
    if (old) {
      if (h.on_update) h.on_update(*old, *cur);
    } else if (h.on_add) {
      h.on_add(*cur);
    }
  });
}

void Informer::Delete(Object object) {
  store_.Remove(KeyOf(object));
  Dispatch([&](const EventHandlers& h) {
    if (h.on_delete) h.on_delete(object);
  });
}

void Informer::ResyncIfDue() {
  if (options_.resync_period.count() <= 0 || !HasSynced()) return;
  {
    std::lock_guard lock(mu_);
    const auto now = clock_.Now();
    if (next_resync_ && now < *next_resync_) return;
    next_resync_ = now + options_.resync_period;
  }
  auto objects = store_.List();
  Dispatch([&](const EventHandlers& h) {
    if (h.on_update)
      for (const auto& o : objects) h.on_update(*o, *o);
  });
}

bool Informer::WaitForSync(const Stop& stop) const {
  std::unique_lock lock(mu_);
  while (!synced_) {
    if (stop.requested()) return false;
    // Re-check the stop flag now and then: Stop has its own condition variable.
    synced_cv_.wait_for(lock, std::chrono::milliseconds(50));
  }
  return true;
}

void Informer::Run(const Stop& stop) {
  std::thread resync;
  if (options_.resync_period.count() > 0) {
    resync = std::thread([&] {
      // Polls the clock so that a fake clock in tests drives resyncs too.
      const auto poll =
          std::min<std::chrono::milliseconds>(options_.resync_period, std::chrono::seconds(1));
      while (!stop.WaitFor(poll)) ResyncIfDue();
    });
  }
  reflector_.Run(stop);
  if (resync.joinable()) resync.join();
}

}  // namespace nixmox::kube
