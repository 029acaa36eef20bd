// Records core/v1 Events about objects, as kubectl describe shows them.
// Repeats of the same event (same object, type, reason and message) update the
// existing Event's count and lastTimestamp instead of creating another.
#pragma once

#include <cstdint>
#include <list>
#include <map>
#include <mutex>
#include <string>
#include <string_view>

#include "src/common/clock.h"
#include "src/common/status.h"
#include "src/kube/client.h"

namespace nixmox::kube {

inline constexpr std::string_view kEventNormal = "Normal";
inline constexpr std::string_view kEventWarning = "Warning";

struct EventRecorderOptions {
  std::string component = "nixmox-operator";  // source.component / reportingController
  std::string instance;                       // source.host / reportingInstance (pod name)
  Clock* clock = nullptr;                     // RealClock() when null
  size_t max_tracked = 4096;                  // distinct events remembered for aggregation
};

// Thread-safe. Writes synchronously; events are best effort, so callers usually
// ignore the returned Status (it is logged here).
class EventRecorder {
 public:
  // `writer` must outlive the recorder.
  EventRecorder(Writer& writer, EventRecorderOptions options = {});

  // `object` is the involved object (needs apiVersion, kind, metadata.name and,
  // for namespaced objects, metadata.namespace). type is Normal or Warning.
  Status Event(const Object& object, std::string_view type, std::string_view reason,
               std::string_view message);

 private:
  struct Seen {
    std::string ns, name;  // of the Event object
    std::int64_t count = 0;
    std::list<std::string>::iterator lru;
  };

  Writer& writer_;
  EventRecorderOptions options_;
  Clock& clock_;
  std::mutex mu_;
  std::map<std::string, Seen> seen_;  // aggregation key -> Event
  std::list<std::string> lru_;        // most recent first
  std::uint64_t serial_ = 0;
};

}  // namespace nixmox::kube
