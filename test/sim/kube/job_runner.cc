#include "test/sim/kube/job_runner.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <fstream>
#include <sstream>

#include "test/sim/kube/patch.h"

extern char** environ;

namespace nixmox::kubesim {
namespace {

constexpr size_t kMaxTerminationMessage = 4096;
constexpr size_t kFallbackLogBytes = 2048;
constexpr int kFallbackLogLines = 80;

std::string Meta(const json& o, const char* field) {
  if (!o.contains("metadata") || !o["metadata"].contains(field)) return "";
  const json& v = o["metadata"][field];
  return v.is_string() ? v.get<std::string>() : "";
}

std::string ReadFile(const std::filesystem::path& path, size_t max = std::string::npos) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  std::string s = ss.str();
  if (s.size() > max) s.resize(max);
  return s;
}

std::string TailLines(const std::string& text, long lines) {
  if (lines < 0) return text;
  size_t pos = text.size();
  if (pos > 0 && text[pos - 1] == '\n') --pos;
  long seen = 0;
  while (pos > 0) {
    if (text[pos - 1] == '\n' && ++seen == lines) break;
    --pos;
  }
  return lines == 0 ? "" : text.substr(pos);
}

std::optional<std::string> Decode64(const std::string& in) {
  static const std::string kB64 =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  uint32_t buf = 0;
  int bits = 0;
  for (char c : in) {
    if (c == '=') break;
    size_t v = kB64.find(c);
    if (v == std::string::npos) return std::nullopt;
    buf = (buf << 6) | uint32_t(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out += char((buf >> bits) & 0xff);
    }
  }
  return out;
}

void ReplaceAll(std::string& s, const std::string& from, const std::string& to) {
  if (from.empty()) return;
  for (size_t pos = s.find(from); pos != std::string::npos; pos = s.find(from, pos + to.size())) {
    s.replace(pos, from.size(), to);
  }
}

// $(VAR) references to the container's own env, as the kubelet expands them;
// $$ escapes a dollar.
std::string Expand(const std::string& s, const std::map<std::string, std::string>& vars) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '$' && i + 1 < s.size() && s[i + 1] == '$') {
      out += '$';
      ++i;
    } else if (s[i] == '$' && i + 1 < s.size() && s[i + 1] == '(') {
      size_t end = s.find(')', i);
      std::string name = end == std::string::npos ? "" : s.substr(i + 2, end - i - 2);
      auto it = vars.find(name);
      if (it != vars.end()) {
        out += it->second;
        i = end;
      } else {
        out += s[i];
      }
    } else {
      out += s[i];
    }
  }
  return out;
}

json Condition(const std::string& type, const std::string& reason, const std::string& message,
               const std::string& now) {
  return {{"type", type},         {"status", "True"},
          {"lastProbeTime", now}, {"lastTransitionTime", now},
          {"reason", reason},     {"message", message}};
}

}  // namespace

struct JobRunner::Process {
  std::string ns, pod, uid, job_uid, container, image;
  pid_t pid = -1;
  std::filesystem::path dir, log, term;
  std::string message_policy;
  std::string started_at;
  std::thread waiter;
  std::atomic<bool> done{false};
  std::string kill_reason;
  std::optional<std::chrono::steady_clock::time_point> kill_at;
};

JobRunner::JobRunner(KubeSim& sim, JobRunnerOptions options)
    : sim_(sim), options_(std::move(options)) {
  std::filesystem::create_directories(options_.work_dir);
  sim_.SetLogHandler([this](const std::string& ns, const std::string& pod,
                            const http::ServerRequest& req) { return ServeLog(ns, pod, req); });
}

JobRunner::~JobRunner() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  if (loop_.joinable()) loop_.join();
  std::map<std::string, std::shared_ptr<Process>> procs;
  {
    std::lock_guard<std::mutex> lock(mu_);
    procs = processes_;
  }
  for (auto& [uid, p] : procs) {
    if (!p->done) ::kill(-p->pid, SIGKILL);
    if (p->waiter.joinable()) p->waiter.join();
  }
  sim_.SetLogHandler(nullptr);
}

void JobRunner::Start() {
  loop_ = std::thread([this] { Loop(); });
}

std::string JobRunner::Now() const {
  std::time_t t = std::chrono::system_clock::to_time_t(RealClock().WallNow());
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

void JobRunner::Loop() {
  uint64_t seen = 0;
  while (true) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (stopping_) return;
    }
    seen = sim_.WaitForChange(seen, std::chrono::milliseconds(200));
    ReapDeletedPods();
    ApiResult jobs = sim_.List("jobs.batch", "");
    if (!jobs.ok()) continue;
    for (const json& job : jobs.value()) ReconcileJob(job);
  }
}

void JobRunner::UpdateStatus(const std::string& group_resource, const std::string& ns,
                             const std::string& name, const std::function<void(json&)>& mutate) {
  for (int attempt = 0; attempt < 20; ++attempt) {
    ApiResult cur = sim_.Get(group_resource, ns, name);
    if (!cur.ok()) return;
    json next = cur.value();
    mutate(next);
    if (next == cur.value()) return;
    ApiResult res = sim_.Update(group_resource, ns, next, /*status=*/true);
    if (res.ok() || res.error().code != 409) return;
  }
}

void JobRunner::ReapDeletedPods() {
  std::vector<std::shared_ptr<Process>> procs;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto& [uid, p] : processes_) procs.push_back(p);
  }
  auto now = std::chrono::steady_clock::now();
  for (auto& p : procs) {
    if (p->done) continue;
    if (p->kill_at && now >= *p->kill_at) {
      ::kill(-p->pid, SIGKILL);
      continue;
    }
    ApiResult pod = sim_.Get("pods", p->ns, p->pod);
    if (!pod.ok() || Meta(pod.value(), "uid") != p->uid ||
        pod.value()["metadata"].contains("deletionTimestamp")) {
      Kill(p);
    }
  }
}

void JobRunner::Kill(const std::shared_ptr<Process>& p) {
  if (p->done || p->kill_at) return;
  ::kill(-p->pid, SIGTERM);
  p->kill_at = std::chrono::steady_clock::now() + options_.kill_grace;
}

void JobRunner::ReconcileJob(const json& job) {
  const std::string ns = Meta(job, "namespace");
  const std::string name = Meta(job, "name");
  const std::string uid = Meta(job, "uid");
  if (job["metadata"].contains("deletionTimestamp")) return;
  const json spec = job.value("spec", json::object());
  const json status = job.value("status", json::object());
  for (const json& c : status.value("conditions", json::array())) {
    if ((c.value("type", "") == "Complete" || c.value("type", "") == "Failed") &&
        c.value("status", "") == "True") {
      return;
    }
  }
  if (spec.value("suspend", false)) return;

  ApiResult pods_result = sim_.List("pods", ns);
  if (!pods_result.ok()) return;
  std::vector<json> pods;
  for (const json& pod : pods_result.value()) {
    for (const json& ref : pod["metadata"].value("ownerReferences", json::array())) {
      if (ref.value("uid", "") == uid && ref.value("controller", false)) pods.push_back(pod);
    }
  }
  int active = 0, succeeded = 0, failed = 0;
  std::vector<json> active_pods;
  for (const json& pod : pods) {
    std::string phase = pod["status"].value("phase", "Pending");
    if (phase == "Succeeded") {
      ++succeeded;
    } else if (phase == "Failed") {
      ++failed;
    } else if (!pod["metadata"].contains("deletionTimestamp")) {
      ++active;
      active_pods.push_back(pod);
    }
  }
  const std::string now = Now();
  std::string start_time = status.value("startTime", now);
  const int completions = spec.value("completions", 1);
  const int backoff_limit = spec.value("backoffLimit", 6);

  json conditions = json::array();
  std::string completion_time;
  bool deadline_passed = false;
  if (spec.contains("activeDeadlineSeconds")) {
    std::tm tm{};
    strptime(start_time.c_str(), "%Y-%m-%dT%H:%M:%SZ", &tm);
    auto start = std::chrono::system_clock::from_time_t(timegm(&tm));
    deadline_passed = RealClock().WallNow() - start >=
                      std::chrono::seconds(spec["activeDeadlineSeconds"].get<long>());
  }
  auto stop_active = [&](const std::string& reason) {
    std::lock_guard<std::mutex> lock(mu_);
    for (const json& pod : active_pods) {
      auto it = processes_.find(Meta(pod, "uid"));
      if (it != processes_.end()) {
        it->second->kill_reason = reason;
        Kill(it->second);
      }
    }
  };
  if (succeeded >= completions) {
    const char* msg = "Reached expected number of succeeded pods";
    conditions = {Condition("SuccessCriteriaMet", "CompletionsReached", msg, now),
                  Condition("Complete", "CompletionsReached", msg, now)};
    completion_time = now;
  } else if (deadline_passed) {
    const char* msg = "Job was active longer than specified deadline";
    conditions = {Condition("FailureTarget", "DeadlineExceeded", msg, now),
                  Condition("Failed", "DeadlineExceeded", msg, now)};
    stop_active("DeadlineExceeded");
  } else if (failed > backoff_limit) {
    const char* msg = "Job has reached the specified backoff limit";
    conditions = {Condition("FailureTarget", "BackoffLimitExceeded", msg, now),
                  Condition("Failed", "BackoffLimitExceeded", msg, now)};
    stop_active("BackoffLimitExceeded");
  } else if (active == 0) {
    bool wait = false;
    {
      std::lock_guard<std::mutex> lock(mu_);
      auto it = retry_after_.find(uid);
      wait = it != retry_after_.end() && std::chrono::steady_clock::now() < it->second;
    }
    if (!wait) {
      const json tmpl = spec.value("template", json::object());
      json pod = {
          {"apiVersion", "v1"},
          {"kind", "Pod"},
          {"metadata",
           {{"generateName", name + "-"},
            {"labels", tmpl.value("metadata", json::object()).value("labels", json::object())},
            {"ownerReferences",
             {{{"apiVersion", "batch/v1"},
               {"kind", "Job"},
               {"name", name},
               {"uid", uid},
               {"controller", true},
               {"blockOwnerDeletion", true}}}}}},
          {"spec", tmpl.value("spec", json::object())}};
      json annotations =
          tmpl.value("metadata", json::object()).value("annotations", json::object());
      if (!annotations.empty()) pod["metadata"]["annotations"] = annotations;
      pod["spec"]["nodeName"] = "kubesim";
      ApiResult created = sim_.Create("pods", ns, pod);
      if (created.ok()) {
        ++active;
        active_pods.push_back(created.value());
      }
    }
  }
  for (const json& pod : active_pods) {
    bool started;
    {
      std::lock_guard<std::mutex> lock(mu_);
      started = started_.count(Meta(pod, "uid")) > 0;
    }
    if (!started && conditions.empty()) StartPod(pod);
  }
  int ready = 0;
  for (const json& pod : active_pods) {
    if (pod["status"].value("phase", "") == "Running") ++ready;
  }
  if (!conditions.empty()) active = 0, ready = 0;
  UpdateStatus("jobs.batch", ns, name, [&](json& j) {
    json& s = j["status"];
    if (!s.is_object()) s = json::object();
    s["startTime"] = s.value("startTime", start_time);
    s["active"] = active;
    s["succeeded"] = succeeded;
    s["failed"] = failed;
    s["ready"] = ready;
    s["terminating"] = 0;
    s["uncountedTerminatedPods"] = json::object();
    if (active == 0) s.erase("active");
    if (succeeded == 0) s.erase("succeeded");
    if (failed == 0) s.erase("failed");
    if (!conditions.empty()) s["conditions"] = conditions;
    if (!completion_time.empty()) s["completionTime"] = completion_time;
  });
}

void JobRunner::StartPod(const json& pod) {
  const std::string ns = Meta(pod, "namespace");
  const std::string name = Meta(pod, "name");
  const std::string uid = Meta(pod, "uid");
  const json container = pod["spec"]["containers"][0];
  const std::string cname = container.value("name", "");
  auto fail_config = [&](const std::string& reason, const std::string& message) {
    UpdateStatus("pods", ns, name, [&](json& p) {
      p["status"]["phase"] = "Pending";
      p["status"]["containerStatuses"] = {
          {{"name", cname},
           {"image", container.value("image", "")},
           {"imageID", ""},
           {"ready", false},
           {"started", false},
           {"restartCount", 0},
           {"state", {{"waiting", {{"reason", reason}, {"message", message}}}}}}};
    });
  };

  auto dir = options_.work_dir / (ns + "_" + name);
  std::filesystem::create_directories(dir);
  auto term = dir / "termination-log";
  auto log = dir / "log";
  const std::string declared_term =
      container.value("terminationMessagePath", "/dev/termination-log");

  // The container's env: env entries override envFrom; secret and config map
  // references resolve now, as the kubelet does when it starts the container.
  std::map<std::string, std::string> vars;
  for (const json& from : container.value("envFrom", json::array())) {
    std::string prefix = from.value("prefix", "");
    bool secret = from.contains("secretRef");
    const json ref = secret ? from["secretRef"] : from.value("configMapRef", json::object());
    ApiResult src = sim_.Get(secret ? "secrets" : "configmaps", ns, ref.value("name", ""));
    if (!src.ok()) {
      if (ref.value("optional", false)) continue;
      fail_config("CreateContainerConfigError", std::string(secret ? "secret" : "configmap") +
                                                    " \"" + ref.value("name", "") + "\" not found");
      return;
    }
    for (auto it = src.value().value("data", json::object()).begin();
         it != src.value().value("data", json::object()).end(); ++it) {
      std::string v = it->get<std::string>();
      if (secret) v = Decode64(v).value_or("");
      vars[prefix + it.key()] = v;
    }
  }
  for (const json& e : container.value("env", json::array())) {
    std::string key = e.value("name", "");
    if (e.contains("value")) {
      vars[key] = Expand(e["value"].get<std::string>(), vars);
    } else if (e.contains("valueFrom")) {
      const json& vf = e["valueFrom"];
      bool secret = vf.contains("secretKeyRef");
      if (secret || vf.contains("configMapKeyRef")) {
        const json ref = secret ? vf["secretKeyRef"] : vf["configMapKeyRef"];
        std::string src_name = ref.value("name", "");
        std::string src_key = ref.value("key", "");
        ApiResult src = sim_.Get(secret ? "secrets" : "configmaps", ns, src_name);
        const json data = src.ok() ? src.value().value("data", json::object()) : json::object();
        if (!src.ok() || !data.contains(src_key)) {
          if (ref.value("optional", false)) continue;
          fail_config("CreateContainerConfigError",
                      !src.ok() ? std::string(secret ? "secret" : "configmap") + " \"" + src_name +
                                      "\" not found"
                                : "couldn't find key " + src_key + " in " +
                                      (secret ? "Secret " : "ConfigMap ") + ns + "/" + src_name);
          return;
        }
        std::string v = data[src_key].get<std::string>();
        vars[key] = secret ? Decode64(v).value_or("") : v;
      } else if (vf.contains("fieldRef")) {
        std::string path = vf["fieldRef"].value("fieldPath", "");
        if (path == "metadata.name")
          vars[key] = name;
        else if (path == "metadata.namespace")
          vars[key] = ns;
        else if (path == "metadata.uid")
          vars[key] = uid;
        else if (path == "spec.nodeName")
          vars[key] = "kubesim";
        else if (path == "spec.serviceAccountName")
          vars[key] = pod["spec"].value("serviceAccountName", "default");
        else if (path == "status.podIP" || path == "status.hostIP")
          vars[key] = "127.0.0.1";
        else if (path.rfind("metadata.labels['", 0) == 0 ||
                 path.rfind("metadata.annotations['", 0) == 0) {
          bool labels = path[9] == 'l';
          std::string k = path.substr(labels ? 17 : 22);
          k = k.substr(0, k.size() - 2);
          vars[key] =
              pod["metadata"].value(labels ? "labels" : "annotations", json::object()).value(k, "");
        }
      }
    }
  }
  for (auto& [k, v] : vars) ReplaceAll(v, declared_term, term.string());

  std::vector<std::string> argv;
  for (const json& a : container.value("command", json::array())) argv.push_back(Expand(a, vars));
  for (const json& a : container.value("args", json::array())) argv.push_back(Expand(a, vars));
  for (auto& a : argv) ReplaceAll(a, declared_term, term.string());

  auto fail_start = [&](const std::string& message) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      started_.insert(uid);
      for (const json& ref : pod["metadata"].value("ownerReferences", json::array())) {
        if (ref.value("controller", false)) {
          retry_after_[ref.value("uid", "")] =
              std::chrono::steady_clock::now() + options_.retry_delay;
        }
      }
    }
    std::string now = Now();
    UpdateStatus("pods", ns, name, [&](json& p) {
      p["status"]["phase"] = "Failed";
      p["status"]["containerStatuses"] = {{{"name", cname},
                                           {"image", container.value("image", "")},
                                           {"imageID", ""},
                                           {"ready", false},
                                           {"started", false},
                                           {"restartCount", 0},
                                           {"state",
                                            {{"terminated",
                                              {{"exitCode", 128},
                                               {"reason", "StartError"},
                                               {"message", message},
                                               {"startedAt", now},
                                               {"finishedAt", now}}}}}}};
    });
  };
  if (argv.empty()) {
    fail_start(
        "kubesim runs a container's command as a local process, and this container "
        "declares no command");
    return;
  }

  std::map<std::string, std::string> env;
  for (char** e = environ; *e; ++e) {
    std::string kv = *e;
    size_t eq = kv.find('=');
    if (eq != std::string::npos) env[kv.substr(0, eq)] = kv.substr(eq + 1);
  }
  env["HOSTNAME"] = name;
  for (const auto& [k, v] : vars) env[k] = v;
  env["KUBESIM_TERMINATION_MESSAGE_PATH"] = term.string();
  std::vector<std::string> env_strings;
  for (const auto& [k, v] : env) env_strings.push_back(k + "=" + v);
  std::vector<char*> envp, args;
  for (auto& s : env_strings) envp.push_back(s.data());
  envp.push_back(nullptr);
  for (auto& s : argv) args.push_back(s.data());
  args.push_back(nullptr);

  std::ofstream(term).close();
  std::string workdir = container.value("workingDir", "");
  if (workdir.empty() || !std::filesystem::is_directory(workdir)) workdir = dir.string();

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&actions, 1, log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
  posix_spawn_file_actions_adddup2(&actions, 1, 2);
  posix_spawn_file_actions_addchdir_np(&actions, workdir.c_str());
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP);
  posix_spawnattr_setpgroup(&attr, 0);
  pid_t pid = -1;
  int rc = posix_spawnp(&pid, args[0], &actions, &attr, args.data(), envp.data());
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  if (rc != 0) {
    fail_start("failed to start \"" + argv[0] + "\": " + std::strerror(rc));
    return;
  }

  auto p = std::make_shared<Process>();
  p->ns = ns;
  p->pod = name;
  p->uid = uid;
  p->container = cname;
  p->image = container.value("image", "");
  for (const json& ref : pod["metadata"].value("ownerReferences", json::array())) {
    if (ref.value("controller", false)) p->job_uid = ref.value("uid", "");
  }
  p->pid = pid;
  p->dir = dir;
  p->log = log;
  p->term = term;
  p->message_policy = container.value("terminationMessagePolicy", "File");
  p->started_at = Now();
  {
    std::lock_guard<std::mutex> lock(mu_);
    started_.insert(uid);
    processes_[uid] = p;
  }
  UpdateStatus("pods", ns, name, [&](json& o) {
    json& s = o["status"];
    s["phase"] = "Running";
    s["hostIP"] = "127.0.0.1";
    s["podIP"] = "127.0.0.1";
    s["startTime"] = p->started_at;
    s["conditions"] = {
        {{"type", "Ready"}, {"status", "True"}, {"lastTransitionTime", p->started_at}},
        {{"type", "ContainersReady"}, {"status", "True"}, {"lastTransitionTime", p->started_at}},
        {{"type", "PodScheduled"}, {"status", "True"}, {"lastTransitionTime", p->started_at}}};
    s["containerStatuses"] = {{{"name", cname},
                               {"image", p->image},
                               {"imageID", ""},
                               {"containerID", "kubesim://" + std::to_string(pid)},
                               {"ready", true},
                               {"started", true},
                               {"restartCount", 0},
                               {"state", {{"running", {{"startedAt", p->started_at}}}}}}};
  });
  p->waiter = std::thread([this, p] { Wait(p); });
}

void JobRunner::Wait(std::shared_ptr<Process> p) {
  int st = 0;
  while (waitpid(p->pid, &st, 0) < 0 && errno == EINTR) {
  }
  int exit_code = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + (WIFSIGNALED(st) ? WTERMSIG(st) : 0);
  std::string message = ReadFile(p->term, kMaxTerminationMessage);
  if (message.empty() && exit_code != 0 && p->message_policy == "FallbackToLogsOnError") {
    std::string tail = TailLines(ReadFile(p->log), kFallbackLogLines);
    if (tail.size() > kFallbackLogBytes) tail = tail.substr(tail.size() - kFallbackLogBytes);
    message = tail;
  }
  std::string finished = Now();
  if (exit_code != 0) {
    std::lock_guard<std::mutex> lock(mu_);
    retry_after_[p->job_uid] = std::chrono::steady_clock::now() + options_.retry_delay;
  }
  UpdateStatus("pods", p->ns, p->pod, [&](json& o) {
    if (Meta(o, "uid") != p->uid) return;
    json& s = o["status"];
    s["phase"] = exit_code == 0 ? "Succeeded" : "Failed";
    if (!p->kill_reason.empty()) {
      s["reason"] = p->kill_reason;
      s["message"] = "Pod was active on the node longer than the specified deadline";
    }
    for (json& c : s["conditions"]) {
      if (c.value("type", "") != "PodScheduled") {
        c["status"] = "False";
        c["reason"] = "PodCompleted";
        c["lastTransitionTime"] = finished;
      }
    }
    json terminated = {{"exitCode", exit_code},
                       {"reason", exit_code == 0 ? "Completed" : "Error"},
                       {"startedAt", p->started_at},
                       {"finishedAt", finished},
                       {"containerID", "kubesim://" + std::to_string(p->pid)}};
    if (WIFSIGNALED(st)) terminated["signal"] = WTERMSIG(st);
    if (!message.empty()) terminated["message"] = message;
    s["containerStatuses"] = {{{"name", p->container},
                               {"image", p->image},
                               {"imageID", ""},
                               {"containerID", "kubesim://" + std::to_string(p->pid)},
                               {"ready", false},
                               {"started", false},
                               {"restartCount", 0},
                               {"state", {{"terminated", terminated}}}}};
  });
  p->done = true;
}

http::ServerResponse JobRunner::ServeLog(const std::string& ns, const std::string& pod,
                                         const http::ServerRequest& req) {
  std::shared_ptr<Process> p;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto& [uid, proc] : processes_) {
      if (proc->ns == ns && proc->pod == pod) p = proc;
    }
  }
  auto error = [](int code, const std::string& reason, const std::string& message) {
    http::ServerResponse r;
    r.status = code;
    r.headers.Set("Content-Type", "application/json");
    r.body = json{{"kind", "Status"},    {"apiVersion", "v1"}, {"metadata", json::object()},
                  {"status", "Failure"}, {"message", message}, {"reason", reason},
                  {"code", code}}
                 .dump();
    return r;
  };
  if (!p) {
    return error(400, "BadRequest",
                 "container in pod \"" + pod + "\" is waiting to start: ContainerCreating");
  }
  if (auto c = req.QueryValue("container"); c && !c->empty() && *c != p->container) {
    return error(400, "BadRequest", "container " + *c + " is not valid for pod " + pod);
  }
  if (req.QueryValue("previous").value_or("") == "true") {
    return error(
        400, "BadRequest",
        "previous terminated container \"" + p->container + "\" in pod \"" + pod + "\" not found");
  }
  long tail = -1;
  long limit = -1;
  try {
    if (auto t = req.QueryValue("tailLines")) tail = std::stol(*t);
    if (auto l = req.QueryValue("limitBytes")) limit = std::stol(*l);
  } catch (const std::exception&) {
    return error(400, "BadRequest", "tailLines and limitBytes must be integers");
  }
  std::string text = TailLines(ReadFile(p->log), tail);
  if (limit >= 0 && static_cast<size_t>(limit) < text.size()) text.resize(limit);
  http::ServerResponse resp = http::ServerResponse::Text(200, text);
  if (req.QueryValue("follow").value_or("") == "true") {
    resp.body.clear();
    size_t offset = ReadFile(p->log).size();
    resp.stream = [p, text, offset](http::StreamWriter& w) {
      if (!text.empty() && !w.Write(text)) return;
      size_t pos = offset;
      while (!w.closed()) {
        bool finished = p->done.load();
        std::string all = ReadFile(p->log);
        if (all.size() > pos) {
          if (!w.Write(all.substr(pos))) return;
          pos = all.size();
        } else if (finished) {
          return;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
      }
    };
  }
  return resp;
}

}  // namespace nixmox::kubesim
