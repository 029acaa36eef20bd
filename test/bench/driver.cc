// nixmox-bench: the measuring half of test/bench/run.sh. run.sh starts the
// real binaries; this creates ProxmoxVMs through the Kubernetes API (with
// nixmox's own REST client, as fast as a client can) and times what users
// see. Times are seconds of the system clock, so they compare with pve-sim's
// request log on the same machine.
//
//   nixmox-bench converge --kubeconfig K --namespace NS --template FILE --count N
//                         --out FILE [--prefix vm-] [--parallel 4] [--timeout-s 3600]
//                         [--window W]
//     Creates N ProxmoxVMs named PREFIX00000... from the template (a ProxmoxVM
//     as JSON; its name is replaced) while watching them, until every one of
//     them is Ready (condition Ready=True) or the timeout passes. Writes the
//     start and end of the creates and each VM's Ready time. Exit 1 on timeout.
//     With --window, creates one at a time so that at most W of them are
//     still waiting to be provisioned (no phase, Pending or Provisioning):
//     a fleet made as fast as the operator takes it, rather than all at once.
//
//   nixmox-bench fill --kubeconfig K --namespace NS --template FILE --count N
//                     --out FILE [--prefix vm-] [--parallel 4] [--status FILE]
//     Creates N ProxmoxVMs from the template without waiting for anything;
//     with --status, writes that status (JSON) to each through the status
//     subresource, its vmid made unique (the file's vmid + the VM's index).
//     Fills caches for the memory scenario.
//
//   nixmox-bench rollout --kubeconfig K --namespace NS --count N --old-store-path P
//                        --out FILE [--prefix vm-] [--timeout-s 3600]
//     Watches the N ProxmoxVMs PREFIX00000... while their NixImage changes:
//     a VM is updated once it is Ready with a status.imageStorePath other
//     than P, and unavailable from its stop until then (the operator's own
//     rule: phase Updating, Provisioning or Starting, or on the new image
//     but not Ready yet; a VM waiting for its turn still runs the old one).
//     Writes, at every change, how many are updated and how many are
//     unavailable, and each VM's update time; ends when all are updated.
//     Exit 1 on timeout.
//
//   nixmox-bench latency --kubeconfig K --namespace NS --template FILE --count N
//                        --request-log FILE --out FILE [--prefix lat-] [--gap-ms 500]
//     N times, one after the other: creates one ProxmoxVM, waits for the VMID
//     the operator writes to its status, and finds in pve-sim's request log
//     the first request that names that VMID. Writes each sample: the seconds
//     from the create's answer (the object is stored) to that request, and
//     how long the create call took. The next create comes once the VM is
//     Ready and the gap has passed.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <fstream>
#include <functional>
#include <iostream>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "src/common/status.h"
#include "src/kube/client.h"
#include "src/kube/config.h"
#include "src/kube/object.h"
#include "src/kube/rest_client.h"

namespace nixmox::bench {
namespace {

using Json = nlohmann::json;

kube::ResourceType ProxmoxVms() {
  return kube::ResourceType{"nixmox.io", "v1alpha1", "proxmoxvms", true, "ProxmoxVM"};
}

double Now() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

bool IsReady(const kube::Object& vm) {
  const Json conditions = vm.value("status", Json::object()).value("conditions", Json::array());
  for (const Json& c : conditions) {
    if (c.value("type", "") == "Ready") return c.value("status", "") == "True";
  }
  return false;
}

std::optional<int> VmidOf(const kube::Object& vm) {
  const Json status = vm.value("status", Json::object());
  if (auto it = status.find("vmid"); it != status.end() && it->is_number_integer()) {
    return it->get<int>();
  }
  return std::nullopt;
}

// Follows the namespace's ProxmoxVMs with list + watch, resuming after the
// server ends a stream (and listing again after 410 Gone), and remembers when
// each one was first seen Ready and its VMID.
class Tracker {
 public:
  // `on_change`, when given, runs with the lock held after each observed
  // object (with the observation's time), so it sees every intermediate state.
  Tracker(kube::Client& client, std::string ns, std::function<void(double)> on_change = nullptr)
      : client_(client), ns_(std::move(ns)), on_change_(std::move(on_change)) {
    thread_ = std::thread([this] { Run(); });
  }
  ~Tracker() {
    stop_ = true;
    cancel_->Cancel();
    thread_.join();
  }

  // Waits until `done` holds (it is called with the lock held) or `deadline`.
  bool WaitUntil(const std::function<bool()>& done, double deadline) {
    std::unique_lock lock(mu_);
    while (!done()) {
      if (Now() >= deadline) return false;
      changed_.wait_for(lock, std::chrono::milliseconds(200));
    }
    return true;
  }
  // Only inside WaitUntil's predicate, or with lock() held.
  const std::map<std::string, double>& ready() const { return ready_; }
  const std::map<std::string, int>& vmids() const { return vmids_; }
  const std::map<std::string, std::string>& phases() const { return phases_; }
  // Whether each one is Ready now, and the image store path its status names.
  const std::map<std::string, bool>& ready_now() const { return ready_now_; }
  const std::map<std::string, std::string>& store_paths() const { return store_paths_; }
  std::mutex& lock() { return mu_; }
  int restarts() const { return restarts_; }

 private:
  void Observe(const kube::Object& vm, double when) {
    std::lock_guard lock(mu_);
    const std::string name = kube::NameOf(vm);
    if (IsReady(vm) && !ready_.count(name)) ready_[name] = when;
    if (auto vmid = VmidOf(vm); vmid && !vmids_.count(name)) vmids_[name] = *vmid;
    phases_[name] = kube::StringAt(vm, {"status", "phase"});
    ready_now_[name] = IsReady(vm);
    store_paths_[name] = kube::StringAt(vm, {"status", "imageStorePath"});
    if (on_change_) on_change_(when);
    changed_.notify_all();
  }

  void Run() {
    std::string rv;
    while (!stop_) {
      if (rv.empty()) {
        Result<kube::ObjectList> list = kube::ListAll(client_, ProxmoxVms(), ns_, {});
        if (!list.ok()) {
          std::this_thread::sleep_for(std::chrono::milliseconds(500));
          continue;
        }
        const double when = Now();
        for (const kube::Object& vm : list->items) Observe(vm, when);
        rv = list->resource_version;
      }
      kube::ListOptions options;
      options.resource_version = rv;
      options.allow_watch_bookmarks = true;
      options.timeout_seconds = 300;
      Status s = client_.Watch(
          ProxmoxVms(), ns_, options,
          [&](const kube::WatchEvent& e) {
            if (stop_) return false;
            if (e.type == kube::WatchEvent::Type::kError) return false;
            if (e.type != kube::WatchEvent::Type::kBookmark) Observe(e.object, Now());
            rv = kube::ResourceVersionOf(e.object);
            return true;
          },
          cancel_);
      if (stop_) return;
      ++restarts_;
      if (s.code() == Code::kGone || !s.ok()) rv.clear();
    }
  }

  kube::Client& client_;
  const std::string ns_;
  std::shared_ptr<http::CancelToken> cancel_ = std::make_shared<http::CancelToken>();
  std::atomic<bool> stop_{false};
  std::atomic<int> restarts_{0};
  std::mutex mu_;
  std::condition_variable changed_;
  std::map<std::string, double> ready_;
  std::map<std::string, int> vmids_;
  std::map<std::string, std::string> phases_;
  std::map<std::string, bool> ready_now_;
  std::map<std::string, std::string> store_paths_;
  std::function<void(double)> on_change_;
  std::thread thread_;
};

struct Flags {
  std::string command;
  std::string kubeconfig;
  std::string ns;
  std::string template_file;
  std::string out;
  std::string prefix;
  std::string request_log;
  std::string status_file;
  std::string old_store_path;
  int count = 0;
  int parallel = 4;
  int gap_ms = 500;
  int window = 0;
  double timeout_s = 3600;
};

Result<Flags> ParseFlags(int argc, char** argv) {
  if (argc < 2) return InvalidError("no command (converge, fill, rollout or latency)");
  Flags f;
  f.command = argv[1];
  for (int i = 2; i < argc; ++i) {
    const std::string flag = argv[i];
    if (i + 1 >= argc) return InvalidError(flag + " needs a value");
    const std::string value = argv[++i];
    try {
      if (flag == "--kubeconfig") f.kubeconfig = value;
      else if (flag == "--namespace") f.ns = value;
      else if (flag == "--template") f.template_file = value;
      else if (flag == "--out") f.out = value;
      else if (flag == "--prefix") f.prefix = value;
      else if (flag == "--request-log") f.request_log = value;
      else if (flag == "--status") f.status_file = value;
      else if (flag == "--old-store-path") f.old_store_path = value;
      else if (flag == "--count") f.count = std::stoi(value);
      else if (flag == "--parallel") f.parallel = std::max(1, std::stoi(value));
      else if (flag == "--gap-ms") f.gap_ms = std::stoi(value);
      else if (flag == "--window") f.window = std::stoi(value);
      else if (flag == "--timeout-s") f.timeout_s = std::stod(value);
      else return InvalidError("unknown flag " + flag);
    } catch (const std::exception&) {
      return InvalidError("bad value for " + flag + ": " + value);
    }
  }
  if (f.ns.empty() || f.out.empty() || f.count <= 0) {
    return InvalidError("--namespace, --out and --count are required");
  }
  if (f.template_file.empty() && f.command != "rollout") {
    return InvalidError("--template is required");
  }
  if (f.old_store_path.empty() && f.command == "rollout") {
    return InvalidError("rollout needs --old-store-path");
  }
  if (f.prefix.empty()) f.prefix = f.command == "latency" ? "lat-" : "vm-";
  return f;
}

std::string NameFor(const std::string& prefix, int i) {
  char digits[16];
  std::snprintf(digits, sizeof digits, "%05d", i);
  return prefix + digits;
}

kube::Object Manifest(const Json& tmpl, const std::string& ns, const std::string& name) {
  kube::Object vm = tmpl;
  vm["metadata"]["name"] = name;
  vm["metadata"]["namespace"] = ns;
  return vm;
}

Status WriteJson(const std::string& path, const Json& doc) {
  std::ofstream out(path);
  out << doc.dump(1) << "\n";
  if (!out) return InternalError("cannot write " + path);
  return OkStatus();
}

// Creates the N ProxmoxVMs with f.parallel clients at once (and writes
// `status` to each when it is an object); returns how many failed.
int CreateAll(kube::Client& client, const Flags& f, const Json& tmpl, const Json& status) {
  std::atomic<int> next{0};
  std::atomic<int> failed{0};
  std::vector<std::thread> workers;
  for (int w = 0; w < f.parallel; ++w) {
    workers.emplace_back([&] {
      for (int i = next++; i < f.count; i = next++) {
        const std::string name = NameFor(f.prefix, i);
        Result<kube::Object> created = client.Create(ProxmoxVms(), Manifest(tmpl, f.ns, name));
        if (created.ok() && status.is_object()) {
          kube::Object with_status = *created;
          with_status["status"] = status;
          with_status["status"]["vmid"] = status.value("vmid", 100) + i;
          created = client.UpdateStatus(ProxmoxVms(), with_status);
        }
        if (!created.ok()) {
          ++failed;
          std::cerr << "nixmox-bench: create " << name << ": " << created.status().ToString()
                    << "\n";
        }
      }
    });
  }
  for (std::thread& t : workers) t.join();
  return failed;
}

int Fill(kube::Client& client, const Flags& f, const Json& tmpl) {
  Json status;
  if (!f.status_file.empty()) {
    std::ifstream in(f.status_file);
    status = Json::parse(in, nullptr, /*allow_exceptions=*/false);
    if (!status.is_object()) {
      std::cerr << "nixmox-bench: " << f.status_file << " is not a JSON object\n";
      return 2;
    }
  }
  const double start = Now();
  const int failed = CreateAll(client, f, tmpl, status);
  const double seconds = Now() - start;
  std::cerr << "nixmox-bench: created " << f.count - failed << " ProxmoxVMs in " << seconds
            << " s\n";
  if (Status s = WriteJson(f.out, {{"count", f.count}, {"start", start}, {"seconds", seconds},
                                   {"create_failures", failed}});
      !s.ok()) {
    std::cerr << "nixmox-bench: " << s.ToString() << "\n";
    return 2;
  }
  return failed == 0 ? 0 : 1;
}

// Creates the N ProxmoxVMs one at a time, each once fewer than f.window of
// those created are still waiting to be provisioned; returns how many failed.
int CreateWindowed(kube::Client& client, const Flags& f, const Json& tmpl, Tracker& tracker,
                   double deadline) {
  int failed = 0;
  for (int i = 0; i < f.count; ++i) {
    tracker.WaitUntil(
        [&] {
          int waiting = 0;
          for (int j = 0; j < i; ++j) {
            auto it = tracker.phases().find(NameFor(f.prefix, j));
            const std::string phase = it == tracker.phases().end() ? "" : it->second;
            waiting += phase.empty() || phase == "Pending" || phase == "Provisioning";
          }
          return waiting < f.window;
        },
        deadline);
    const std::string name = NameFor(f.prefix, i);
    Result<kube::Object> created = client.Create(ProxmoxVms(), Manifest(tmpl, f.ns, name));
    if (!created.ok()) {
      ++failed;
      std::cerr << "nixmox-bench: create " << name << ": " << created.status().ToString() << "\n";
    }
  }
  return failed;
}

int Converge(kube::Client& client, const Flags& f, const Json& tmpl) {
  Tracker tracker(client, f.ns);
  const double start = Now();
  const int failed = f.window > 0 ? CreateWindowed(client, f, tmpl, tracker, start + f.timeout_s)
                                  : CreateAll(client, f, tmpl, Json());
  const double applied = Now();
  std::cerr << "nixmox-bench: created " << f.count - failed << " ProxmoxVMs in "
            << applied - start << " s\n";

  auto ours = [&] {
    int n = 0;
    for (const auto& [name, when] : tracker.ready()) n += name.rfind(f.prefix, 0) == 0;
    return n;
  };
  double last_report = Now();
  const double deadline = start + f.timeout_s;
  bool done = false;
  while (!done && Now() < deadline) {
    done = tracker.WaitUntil([&] { return ours() >= f.count || Now() - last_report >= 10; },
                             deadline);
    std::lock_guard lock(tracker.lock());
    done = ours() >= f.count;
    if (!done) {
      std::cerr << "nixmox-bench: " << ours() << " of " << f.count << " Ready after "
                << static_cast<int>(Now() - start) << " s\n";
      last_report = Now();
    }
  }

  Json ready = Json::array();
  {
    std::lock_guard lock(tracker.lock());
    std::vector<std::pair<double, std::string>> order;
    for (const auto& [name, when] : tracker.ready()) {
      if (name.rfind(f.prefix, 0) == 0) order.emplace_back(when - start, name);
    }
    std::sort(order.begin(), order.end());
    for (const auto& [t, name] : order) ready.push_back({{"name", name}, {"t", t}});
  }
  const Json doc = {{"count", f.count},
                    {"start", start},
                    {"apply_seconds", applied - start},
                    {"create_failures", failed},
                    {"ready", ready},
                    {"all_ready", done},
                    {"watch_restarts", tracker.restarts()}};
  if (Status s = WriteJson(f.out, doc); !s.ok()) {
    std::cerr << "nixmox-bench: " << s.ToString() << "\n";
    return 2;
  }
  return done ? 0 : 1;
}

// The first line of pve-sim's request log, at or after `offset`, whose vmid
// field is `vmid`; its time. `offset` moves past the lines read.
std::optional<double> FirstRequestFor(const std::string& log, std::streamoff& offset, int vmid) {
  std::ifstream in(log);
  in.seekg(offset);
  const std::string want = std::to_string(vmid);
  std::optional<double> found;
  for (std::string line; std::getline(in, line);) {
    if (in.eof()) break;  // a line still being written
    offset = in.tellg();
    std::vector<std::string> fields;
    std::stringstream ss(line);
    for (std::string field; std::getline(ss, field, '\t');) fields.push_back(field);
    if (fields.size() >= 5 && fields[4] == want && !found) found = std::stod(fields[0]);
  }
  return found;
}

int Latency(kube::Client& client, const Flags& f, const Json& tmpl) {
  Tracker tracker(client, f.ns);
  std::streamoff offset = 0;
  {
    std::ifstream in(f.request_log, std::ios::ate);
    if (in) offset = in.tellg();
  }
  Json samples = Json::array();
  int missing = 0;
  for (int i = 0; i < f.count; ++i) {
    const std::string name = NameFor(f.prefix, i);
    const double sent = Now();
    Result<kube::Object> created = client.Create(ProxmoxVms(), Manifest(tmpl, f.ns, name));
    if (!created.ok()) {
      std::cerr << "nixmox-bench: create " << name << ": " << created.status().ToString() << "\n";
      return 2;
    }
    // Stored from here on (its watch event may already be out): the bench's
    // own connection setup before it is not the operator's latency.
    const double applied = Now();
    int vmid = 0;
    const bool got = tracker.WaitUntil(
        [&] {
          auto it = tracker.vmids().find(name);
          if (it == tracker.vmids().end()) return false;
          vmid = it->second;
          return true;
        },
        applied + 120);
    std::optional<double> first;
    // The log is flushed every 50 ms; the request may wait in the operator's
    // queues for a long time: look for up to 60 s.
    for (int tries = 0; got && !first && tries < 1200; ++tries) {
      first = FirstRequestFor(f.request_log, offset, vmid);
      if (!first) std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    if (!first) {
      ++missing;
      std::cerr << "nixmox-bench: no Proxmox request for " << name << " (VMID " << vmid << ")\n";
    } else {
      samples.push_back({{"name", name},
                         {"vmid", vmid},
                         {"seconds", *first - applied},
                         {"create_call_seconds", applied - sent}});
    }
    // The next one comes to a quiet fleet: once this one is Ready, and a gap.
    tracker.WaitUntil([&] { return tracker.ready().count(name) > 0; }, Now() + 120);
    std::this_thread::sleep_for(std::chrono::milliseconds(f.gap_ms));
  }
  if (Status s = WriteJson(f.out, {{"count", f.count}, {"missing", missing}, {"samples", samples}});
      !s.ok()) {
    std::cerr << "nixmox-bench: " << s.ToString() << "\n";
    return 2;
  }
  return missing == 0 ? 0 : 1;
}

int Rollout(kube::Client& client, const Flags& f) {
  const double start = Now();
  Json series = Json::array();
  std::map<std::string, double> updated_at;
  int most_unavailable = 0;
  int last_updated = -1;
  int last_unavailable = -1;
  // Counts over the fleet at each observation (the tracker's lock is held).
  Tracker* self = nullptr;
  auto on_change = [&](double when) {
    if (self == nullptr) return;
    int updated = 0;
    int unavailable = 0;
    for (int i = 0; i < f.count; ++i) {
      const std::string name = NameFor(f.prefix, i);
      auto ready = self->ready_now().find(name);
      const bool is_ready = ready != self->ready_now().end() && ready->second;
      auto path = self->store_paths().find(name);
      const bool moved = path != self->store_paths().end() && !path->second.empty() &&
                         path->second != f.old_store_path;
      auto phase = self->phases().find(name);
      const std::string phase_now = phase == self->phases().end() ? "" : phase->second;
      const bool recreating =
          phase_now == "Updating" || phase_now == "Provisioning" || phase_now == "Starting";
      unavailable += recreating || (moved && !is_ready);
      if (is_ready && moved) {
        ++updated;
        if (!updated_at.count(name)) updated_at[name] = when - start;
      }
    }
    most_unavailable = std::max(most_unavailable, unavailable);
    if (updated != last_updated || unavailable != last_unavailable) {
      series.push_back({when - start, updated, unavailable});
      last_updated = updated;
      last_unavailable = unavailable;
    }
  };
  Tracker tracker(client, f.ns, on_change);
  {
    std::lock_guard lock(tracker.lock());
    self = &tracker;
    on_change(Now());  // what the tracker saw before
  }
  const bool done = tracker.WaitUntil(
      [&] { return static_cast<int>(updated_at.size()) >= f.count; }, start + f.timeout_s);
  Json doc;
  {
    std::lock_guard lock(tracker.lock());
    Json per_vm = Json::array();
    for (const auto& [name, t] : updated_at) per_vm.push_back({{"name", name}, {"t", t}});
    doc = {{"count", f.count},
           {"start", start},
           {"all_updated", done},
           {"updated", updated_at.size()},
           {"most_unavailable", most_unavailable},
           {"series", series},
           {"updated_at", per_vm}};
    self = nullptr;
  }
  if (Status s = WriteJson(f.out, doc); !s.ok()) {
    std::cerr << "nixmox-bench: " << s.ToString() << "\n";
    return 2;
  }
  return done ? 0 : 1;
}

int Main(int argc, char** argv) {
  Result<Flags> flags = ParseFlags(argc, argv);
  if (!flags.ok()) {
    std::cerr << "nixmox-bench: " << flags.status().message()
              << "\nusage: see the comment at the top of test/bench/driver.cc\n";
    return 2;
  }
  Json tmpl = Json::object();
  if (!flags->template_file.empty()) {
    std::ifstream in(flags->template_file);
    tmpl = Json::parse(in, nullptr, /*allow_exceptions=*/false);
    if (tmpl.is_discarded() || !tmpl.is_object()) {
      std::cerr << "nixmox-bench: " << flags->template_file << " is not a JSON object\n";
      return 2;
    }
  }
  Result<kube::Config> config = kube::DefaultConfig(flags->kubeconfig);
  if (!config.ok()) {
    std::cerr << "nixmox-bench: " << config.status().ToString() << "\n";
    return 2;
  }
  Result<std::unique_ptr<kube::RestClient>> client = kube::RestClient::FromConfig(*config);
  if (!client.ok()) {
    std::cerr << "nixmox-bench: " << client.status().ToString() << "\n";
    return 2;
  }
  if (flags->command == "converge") return Converge(**client, *flags, tmpl);
  if (flags->command == "fill") return Fill(**client, *flags, tmpl);
  if (flags->command == "rollout") return Rollout(**client, *flags);
  if (flags->command == "latency") {
    if (flags->request_log.empty()) {
      std::cerr << "nixmox-bench: latency needs --request-log\n";
      return 2;
    }
    return Latency(**client, *flags, tmpl);
  }
  std::cerr << "nixmox-bench: unknown command " << flags->command << "\n";
  return 2;
}

}  // namespace
}  // namespace nixmox::bench

int main(int argc, char** argv) { return nixmox::bench::Main(argc, argv); }
