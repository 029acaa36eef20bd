// The NixImage reconciler: builds images with nixmox-builder Jobs, records
// the result in status, keeps the last generations and removes the uploaded
// volumes nothing uses any more. See README.md in this directory ("NixImage
// controller") for the states and the rules they follow.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "src/common/clock.h"
#include "src/controllers/cluster_runtime.h"
#include "src/kube/client.h"
#include "src/kube/controller.h"
#include "src/kube/events.h"
#include "src/kube/store.h"
#include "src/nix/job.h"

namespace nixmox::controllers {

// The label selector of the Jobs and Pods the operator watches.
inline constexpr char kBuilderSelector[] = "app.kubernetes.io/name=nixmox-builder";

// A ProxmoxVM whose imageRef names an image, and the store path its status
// says it runs ("" before its first image).
struct ImageUser {
  std::string name;
  std::string store_path;
};

struct ImageControllerOptions {
  Clock* clock = nullptr;  // RealClock() when null
  nix::BuilderDefaults builder;
  bool allow_local_flakes = false;  // --allow-local-flakes
  // The ProxmoxVMs whose imageRef names the image "ns/name" (the informer's
  // kIndexImageRuns index in production, which unpacks no object); null: a
  // List of the namespace, filtered.
  std::function<Result<std::vector<ImageUser>>(const std::string& image_key)> users;
  // Reads the running builder's progress from its log; null: no progress.
  kube::LogReader* logs = nullptr;
  // How often a running build is looked at (for its progress; a Job's end
  // arrives through the Job watch at once).
  std::chrono::milliseconds build_poll{std::chrono::seconds(5)};
  // Backoff between failed attempts of the same build: base * 2^(n-1), capped.
  std::chrono::milliseconds retry_base{std::chrono::seconds(30)};
  std::chrono::milliseconds retry_max{std::chrono::minutes(30)};
};

class ImageReconciler final : public kube::Reconciler {
 public:
  // `reader` serves NixImages, ProxmoxClusters, ProxmoxVMs, and builder Jobs
  // and Pods. All references must outlive the reconciler.
  ImageReconciler(kube::Reader& reader, kube::Writer& writer, kube::EventRecorder& events,
                  ClusterRegistry& registry, ImageControllerOptions options = {});
  ~ImageReconciler() override;

  Result<kube::ReconcileResult> Reconcile(const kube::Request& request) override;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// The NixImage key ("ns/name") a builder Job or Pod belongs to, by its label.
std::vector<std::string> ImageKeysForBuilderObject(const kube::Object& object);

}  // namespace nixmox::controllers
