// The Job runner plays the job controller and the kubelet for batch/v1 Jobs
// (kubesim --run-jobs). For each Job it creates a Pod, runs the Pod's first
// container's command + args as a local process (no image, no isolation: the
// process inherits kubesim's environment plus the container's env, with
// secretKeyRef, configMapKeyRef, fieldRef and envFrom resolved), records
// phase, exit code and termination message in the Pod's status, serves the
// log at .../pods/NAME/log, and keeps the Job's status (startTime, active,
// succeeded, failed, conditions SuccessCriteriaMet/Complete or
// FailureTarget/Failed, completionTime) honouring backoffLimit and
// activeDeadlineSeconds.
//
// Termination messages: a process cannot write the container's
// terminationMessagePath (/dev/termination-log by default) on this machine,
// so every pod gets a private file instead. Its path is in the environment
// variable KUBESIM_TERMINATION_MESSAGE_PATH, and every occurrence of the
// declared terminationMessagePath in command, args and env values is
// rewritten to it.
//
// Simplified: one pod at a time per Job (completions and parallelism above 1
// run sequentially), restartPolicy OnFailure is treated as Never (a new pod
// per retry), the retry delay is fixed (JobRunnerOptions::retry_delay) rather
// than the controller's exponential one, and only the first container runs.
#pragma once

#include <chrono>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>

#include "src/common/clock.h"
#include "test/sim/kube/kubesim.h"

namespace nixmox::kubesim {

struct JobRunnerOptions {
  // Where pod logs and termination-message files live; created if missing.
  std::filesystem::path work_dir;
  // The wait between a failed pod and its replacement.
  std::chrono::milliseconds retry_delay{1000};
  // How long a killed process gets between SIGTERM and SIGKILL.
  std::chrono::milliseconds kill_grace{2000};
};

class JobRunner {
 public:
  // `sim` must outlive the runner. Installs the pod log handler on `sim`.
  JobRunner(KubeSim& sim, JobRunnerOptions options);
  // Kills running processes and joins every thread.
  ~JobRunner();
  JobRunner(const JobRunner&) = delete;
  JobRunner& operator=(const JobRunner&) = delete;

  void Start();

 private:
  struct Process;

  void Loop();
  void ReconcileJob(const json& job);
  void StartPod(const json& pod);
  void Wait(std::shared_ptr<Process> p);
  void Kill(const std::shared_ptr<Process>& p);
  void ReapDeletedPods();
  // Applies `mutate` to the latest copy of an object's status and writes it,
  // retrying on conflicts.
  void UpdateStatus(const std::string& group_resource, const std::string& ns,
                    const std::string& name, const std::function<void(json&)>& mutate);
  http::ServerResponse ServeLog(const std::string& ns, const std::string& pod,
                                const http::ServerRequest& request);
  std::string Now() const;

  KubeSim& sim_;
  JobRunnerOptions options_;
  std::mutex mu_;
  bool stopping_ = false;
  std::map<std::string, std::shared_ptr<Process>> processes_;                 // by pod uid
  std::map<std::string, std::chrono::steady_clock::time_point> retry_after_;  // by job uid
  std::set<std::string> started_;  // pod uids whose process was started or failed to start
  std::thread loop_;
};

}  // namespace nixmox::kubesim
