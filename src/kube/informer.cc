#include "src/kube/informer.h"

#include <spdlog/spdlog.h>

#include <thread>
#include <utility>

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
  const auto& replay = handlers.on_initial_add ? handlers.on_initial_add : handlers.on_add;
  if (replay) {
    for (const auto& obj : store_.List()) replay(obj->Unpack());
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

void Informer::StartList() { listed_.clear(); }

void Informer::ListPage(std::vector<Object> objects) {
  for (Object& obj : objects) {
    listed_.push_back(store_.Pack(obj));
    obj = nullptr;  // the page's json goes as it is packed
  }
}

void Informer::EndList() {
  auto result = store_.Replace(std::exchange(listed_, {}));
  const bool initial = !synced_.load();  // the first list, not a relist
  // Object by object, each unpacked once for every handler: a relist of
  // thousands never exists unpacked at once. Each handler still sees the
  // deletes, then the adds, then the updates.
  for (const auto& stored : result.deleted) {
    const Object obj = stored->Unpack();
    Dispatch([&](const EventHandlers& h) {
      if (h.on_delete) h.on_delete(obj);
    });
  }
  for (const auto& stored : result.added) {
    const Object obj = stored->Unpack();
    Dispatch([&](const EventHandlers& h) {
      const auto& add = initial && h.on_initial_add ? h.on_initial_add : h.on_add;
      if (add) add(obj);
    });
  }
  for (const auto& [stored_old, stored_cur] : result.updated) {
    const Object old = stored_old->Unpack();
    const Object cur = stored_cur->Unpack();
    Dispatch([&](const EventHandlers& h) {
      if (h.on_update) h.on_update(old, cur);
    });
  }
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
  // The store keeps the packed form; handlers get this json as the new state.
  StoredPtr old = store_.Upsert(store_.Pack(object));
  if (old) {
    const Object before = old->Unpack();
    old.reset();
    Dispatch([&](const EventHandlers& h) {
      if (h.on_update) h.on_update(before, object);
    });
  } else {
    Dispatch([&](const EventHandlers& h) {
      if (h.on_add) h.on_add(object);
    });
  }
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
  for (const auto& stored : store_.List()) {
    const Object obj = stored->Unpack();
    Dispatch([&](const EventHandlers& h) {
      if (h.on_update) h.on_update(obj, obj);
    });
  }
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
