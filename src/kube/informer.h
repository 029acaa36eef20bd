// Informer: a reflector feeding a Store, with event handlers, periodic resync
// and has-synced. Reconcilers read from its store (see CacheReader); handlers
// usually just enqueue keys.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "src/common/clock.h"
#include "src/kube/reflector.h"
#include "src/kube/store.h"

namespace nixmox::kube {

// Any member may be empty. Handlers run on the informer's thread, one at a time,
// in the order the changes arrived; they must be quick (enqueue, don't reconcile).
struct EventHandlers {
  std::function<void(const Object& obj)> on_add;
  // Also called with old == cur on resync.
  std::function<void(const Object& old, const Object& cur)> on_update;
  // `obj` is the last state known; after a relist that missed the deletion it
  // is the cached copy.
  std::function<void(const Object& obj)> on_delete;
  // When set, gets instead of on_add the objects that were there before this
  // handler could watch them arrive: the informer's first list, and the cache
  // replayed to a handler added late (client-go's isInInitialList). Objects
  // created after that, relists included, still go to on_add.
  std::function<void(const Object& obj)> on_initial_add;
};

struct InformerOptions {
  // 0 disables resync. A resync calls on_update(obj, obj) for every cached object.
  std::chrono::milliseconds resync_period{0};
  Clock* clock = nullptr;  // RealClock() when null
  ReflectorOptions reflector;
  std::string label_selector;
  std::string field_selector;
};

class Informer final : private ReflectorSink {
 public:
  // `client` must outlive the informer. ns "" watches all namespaces.
  Informer(Client& client, ResourceType type, std::string ns, InformerOptions options = {});
  // With an explicit source (tests, or a custom list/watch). `lw` must outlive it.
  Informer(ListerWatcher& lw, ResourceType type, InformerOptions options = {});
  ~Informer() override;

  const ResourceType& type() const { return type_; }

  // Before Run. AlreadyExists for a duplicate name.
  Status AddIndex(const std::string& name, IndexFunc fn);
  // Thread-safe. A handler added after objects arrived first sees them as
  // adds (on_initial_add when set).
  void AddHandlers(EventHandlers handlers);

  // Lists, watches and resyncs until `stop`. Blocks; call it on its own thread.
  void Run(const Stop& stop);

  // True once the first list has been stored. Thread-safe.
  bool HasSynced() const { return synced_.load(); }
  // Blocks until synced or `stop`; true when synced.
  bool WaitForSync(const Stop& stop) const;

  const Store& store() const { return store_; }
  Reflector& reflector() { return reflector_; }

  // Calls on_update(obj, obj) for every object when the resync period has
  // passed since the last resync (by the clock). Run calls it; so may tests.
  void ResyncIfDue();

 private:
  void StartList() override;
  void ListPage(std::vector<Object> objects) override;
  void EndList() override;
  void Add(Object object) override;
  void Update(Object object) override;
  void Delete(Object object) override;

  void Dispatch(const std::function<void(const EventHandlers&)>& fn);

  const ResourceType type_;
  InformerOptions options_;
  Clock& clock_;
  std::unique_ptr<ListerWatcher> owned_lw_;
  ListerWatcher& lw_;
  Store store_;
  Reflector reflector_;
  std::vector<StoredPtr> listed_;  // the pages of the list in progress, packed

  mutable std::mutex mu_;  // guards handlers_, next_resync_; held while handlers run
  mutable std::condition_variable synced_cv_;
  std::vector<EventHandlers> handlers_;
  std::optional<Clock::SteadyTime> next_resync_;
  std::atomic<bool> synced_{false};
};

}  // namespace nixmox::kube
