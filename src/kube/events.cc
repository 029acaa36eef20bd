#include "src/kube/events.h"

#include <spdlog/spdlog.h>

#include <cstdio>

#include "src/kube/time.h"

namespace nixmox::kube {

EventRecorder::EventRecorder(Writer& writer, EventRecorderOptions options)
    : writer_(writer),
      options_(std::move(options)),
      clock_(options_.clock ? *options_.clock : RealClock()) {}

Status EventRecorder::Event(const Object& object, std::string_view type, std::string_view reason,
                            std::string_view message) {
  const std::string obj_ns = NamespaceOf(object);
  const std::string obj_name = NameOf(object);
  if (obj_name.empty()) return InvalidError("event about an object without a name");
  // Events about cluster-scoped objects go to "default", as client-go does.
  const std::string ev_ns = obj_ns.empty() ? "default" : obj_ns;
  const std::string now = FormatTime(clock_.WallNow());
  const std::string key = StringAt(object, {"kind"}) + "\x1f" + obj_ns + "\x1f" + obj_name +
                          "\x1f" + UidOf(object) + "\x1f" + std::string(type) + "\x1f" +
                          std::string(reason) + "\x1f" + std::string(message);

  std::lock_guard lock(mu_);
  auto it = seen_.find(key);
  if (it != seen_.end()) {
    Seen& s = it->second;
    lru_.erase(s.lru);
    lru_.push_front(key);
    s.lru = lru_.begin();
    Object patch = {{"count", s.count + 1}, {"lastTimestamp", now}};
    auto patched = writer_.Patch(resources::Events(), s.ns, s.name, PatchType::kMerge, patch);
    if (patched.ok()) {
      ++s.count;
      return OkStatus();
    }
    if (patched.status().code() != Code::kNotFound) {
      spdlog::warn("event {} on {}: {}", reason, MakeKey(obj_ns, obj_name),
                   patched.status().ToString());
      return patched.status();
    }
    // The Event expired (TTL) or was deleted: start a new one below.
    lru_.erase(s.lru);
    seen_.erase(it);
  }

  char suffix[32];
  std::snprintf(
      suffix, sizeof suffix, ".%llx%llx",
      static_cast<unsigned long long>(
          std::chrono::duration_cast<std::chrono::nanoseconds>(clock_.WallNow().time_since_epoch())
              .count()),
      static_cast<unsigned long long>(++serial_));
  const std::string ev_name = obj_name + suffix;
  Object involved = {{"kind", StringAt(object, {"kind"})},
                     {"apiVersion", StringAt(object, {"apiVersion"})},
                     {"name", obj_name}};
  if (!obj_ns.empty()) involved["namespace"] = obj_ns;
  if (auto uid = UidOf(object); !uid.empty()) involved["uid"] = uid;
  if (auto rv = ResourceVersionOf(object); !rv.empty()) involved["resourceVersion"] = rv;
  Object ev = {{"apiVersion", "v1"},
               {"kind", "Event"},
               {"metadata", {{"name", ev_name}, {"namespace", ev_ns}}},
               {"involvedObject", involved},
               {"type", type},
               {"reason", reason},
               {"message", message},
               {"source", {{"component", options_.component}}},
               {"reportingComponent", options_.component},
               {"reportingInstance", options_.instance},
               {"firstTimestamp", now},
               {"lastTimestamp", now},
               {"count", 1}};
  if (!options_.instance.empty()) ev["source"]["host"] = options_.instance;
  auto created = writer_.Create(resources::Events(), ev);
  if (!created.ok()) {
    spdlog::warn("event {} on {}: {}", reason, MakeKey(obj_ns, obj_name),
                 created.status().ToString());
    return created.status();
  }
  lru_.push_front(key);
  seen_[key] = Seen{ev_ns, ev_name, 1, lru_.begin()};
  while (seen_.size() > options_.max_tracked && !lru_.empty()) {
    seen_.erase(lru_.back());
    lru_.pop_back();
  }
  return OkStatus();
}

}  // namespace nixmox::kube
