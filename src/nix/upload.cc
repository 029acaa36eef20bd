#include "src/nix/upload.h"

#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <condition_variable>
#include <fstream>
#include <limits>
#include <mutex>
#include <set>
#include <thread>

namespace nixmox::nix {
namespace {

namespace fs = std::filesystem;

bool HasContent(const std::string& list, std::string_view wanted) {
  std::size_t pos = 0;
  while (pos <= list.size()) {
    std::size_t end = list.find(',', pos);
    if (end == std::string::npos) end = list.size();
    if (std::string_view(list).substr(pos, end - pos) == wanted) return true;
    pos = end + 1;
  }
  return false;
}

std::string MiB(std::uint64_t bytes) {
  const std::uint64_t mib = bytes / (1024 * 1024);
  return mib > 0 || bytes == 0 ? std::to_string(mib) + " MiB" : std::to_string(bytes) + " B";
}

int Percent(std::uint64_t done, std::uint64_t total) {
  if (total == 0) return 100;
  return static_cast<int>(std::min<std::uint64_t>(100, done * 100 / total));
}

// Reports FileReadPosition every `interval` on its own thread until destroyed.
class ReadWatcher {
 public:
  ReadWatcher(fs::path file, std::chrono::milliseconds interval,
              std::function<void(std::uint64_t)> report)
      : file_(std::move(file)), interval_(interval), report_(std::move(report)) {
    thread_ = std::thread([this] { Loop(); });
  }
  ~ReadWatcher() {
    {
      std::lock_guard lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }
  ReadWatcher(const ReadWatcher&) = delete;
  ReadWatcher& operator=(const ReadWatcher&) = delete;

 private:
  void Loop() {
    std::unique_lock lock(mu_);
    std::uint64_t last = 0;
    while (!cv_.wait_for(lock, interval_, [this] { return stop_; })) {
      auto pos = FileReadPosition(file_);
      if (pos && *pos != last) {
        last = *pos;
        report_(*pos);
      }
    }
  }

  fs::path file_;
  std::chrono::milliseconds interval_;
  std::function<void(std::uint64_t)> report_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::thread thread_;
};

}  // namespace

Result<std::vector<std::string>> ChooseUploadNodes(
    const std::vector<proxmox::ClusterResource>& resources, const std::string& storage) {
  std::set<std::string> online;
  for (const auto& r : resources) {
    if (r.type == "node" && r.status == "online") online.insert(r.node);
  }
  std::vector<const proxmox::ClusterResource*> entries;
  for (const auto& r : resources) {
    if (r.type == "storage" && r.storage == storage) entries.push_back(&r);
  }
  if (entries.empty()) return NotFoundError("no node has storage '" + storage + "'");
  std::sort(entries.begin(), entries.end(),
            [](const auto* a, const auto* b) { return a->node < b->node; });
  for (const auto* e : entries) {
    if (!e->content.empty() && !HasContent(e->content, "import")) {
      return InvalidError("storage '" + storage + "' does not take import content (content: " +
                          e->content + "); enable 'import' on it or pick another storage");
    }
  }
  std::vector<std::string> nodes;
  for (const auto* e : entries) {
    // Storage status is "available" while the node reports it ("unknown" when offline).
    if (!online.contains(e->node) || (!e->status.empty() && e->status != "available")) continue;
    nodes.push_back(e->node);
    if (e->shared) break;  // one upload serves every node
  }
  if (nodes.empty()) {
    return RetryableError("every node with storage '" + storage + "' is offline or unavailable");
  }
  return nodes;
}

Result<UploadOutcome> UploadImage(proxmox::PveClient& pve, const UploadSpec& spec,
                                  const ProgressFn& progress, const Clock& clock,
                                  const proxmox::Sleeper& sleeper) {
  std::error_code ec;
  const std::uint64_t bytes = fs::file_size(spec.file, ec);
  if (ec) return InvalidError("cannot read " + spec.file.string() + ": " + ec.message());

  UploadOutcome outcome;
  outcome.volume_id = spec.storage + ":import/" + spec.filename;
  outcome.nodes = spec.nodes;
  if (outcome.nodes.empty()) {
    ASSIGN_OR_RETURN(auto storages, pve.ListClusterResources(proxmox::ResourceType::kStorage));
    ASSIGN_OR_RETURN(auto nodes, pve.ListClusterResources(proxmox::ResourceType::kNode));
    storages.insert(storages.end(), nodes.begin(), nodes.end());
    ASSIGN_OR_RETURN(outcome.nodes, ChooseUploadNodes(storages, spec.storage));
  }
  std::string node_list;
  for (const std::string& node : outcome.nodes) node_list += (node_list.empty() ? "" : ", ") + node;
  spdlog::info("volume {} goes to node(s) {}", outcome.volume_id, node_list);

  std::vector<std::string> todo;
  for (const std::string& node : outcome.nodes) {
    auto listed = pve.ListStorageContent(node, spec.storage, "import");
    if (!listed.ok()) {
      return Status(listed.status()).Annotate("listing " + spec.storage + " on " + node);
    }
    auto it = std::find_if(listed->begin(), listed->end(),
                           [&](const auto& c) { return c.volid == outcome.volume_id; });
    if (it == listed->end()) {
      todo.push_back(node);
    } else if (it->size == spec.listed_size) {
      spdlog::info("{} is on {} already with size {}: not uploading it there", outcome.volume_id,
                   node, it->size);
    } else {
      spdlog::warn("{} on {} has size {}, not {}: uploading it again", outcome.volume_id, node,
                   it->size, spec.listed_size);
      todo.push_back(node);
    }
  }

  const std::uint64_t total = bytes * todo.size();
  std::uint64_t done = 0;
  for (const std::string& node : todo) {
    const std::string where = MiB(bytes) + " to " + node;
    progress({Stage::kUpload, Percent(done, total), "uploading " + where});
    spdlog::info("uploading {} ({} bytes) to {} on {}", spec.file.string(), bytes, spec.storage,
                 node);
    Result<proxmox::Upid> upid = InvalidError("not started");
    {
      ReadWatcher watcher(spec.file, spec.progress_interval, [&](std::uint64_t pos) {
        progress({Stage::kUpload, std::min(99, Percent(done + std::min(pos, bytes), total)),
                  MiB(std::min(pos, bytes)) + "/" + where});
      });
      upid = pve.UploadToStorage(node, spec.storage, {"import", spec.file, spec.filename, "", ""});
    }
    if (!upid.ok()) return Status(upid.status()).Annotate("uploading to " + node);
    progress({Stage::kUpload, std::min(99, Percent(done + bytes, total)),
              "waiting for the import task on " + node});
    auto task = proxmox::WaitForTask(pve, *upid, spec.wait, clock, sleeper);
    if (!task.ok()) return Status(task.status()).Annotate("import task on " + node);
    done += bytes;
    spdlog::info("{} is on {} (task {})", outcome.volume_id, node, upid->raw);
    outcome.uploaded = true;
  }
  progress({Stage::kUpload, 100,
            outcome.uploaded ? outcome.volume_id + " uploaded" : outcome.volume_id + " present"});
  return outcome;
}

std::optional<std::uint64_t> FileReadPosition(const fs::path& file) {
  std::error_code ec;
  const fs::path wanted = fs::weakly_canonical(file, ec);
  if (ec) return std::nullopt;
  std::optional<std::uint64_t> best;
  for (fs::directory_iterator it("/proc/self/fd", ec), end; !ec && it != end; it.increment(ec)) {
    std::error_code link_ec;
    const fs::path target = fs::read_symlink(it->path(), link_ec);
    if (link_ec || target != wanted) continue;
    std::ifstream info("/proc/self/fdinfo/" + it->path().filename().string());
    std::string key;
    std::uint64_t value = 0;
    while (info >> key) {
      if (key == "pos:" && info >> value) {
        best = std::max(best.value_or(0), value);
        break;
      }
      info.ignore(std::numeric_limits<std::streamsize>::max(), '\n');
    }
  }
  return best;
}

}  // namespace nixmox::nix
