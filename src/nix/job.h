// The builder Job: what the NixImage controller creates to build an image.
//
// One Job runs nixmox-builder once (backoffLimit 0: the controller retries
// with its own backoff, so a failed attempt stays visible), owned by the
// NixImage so that deleting the image deletes its Jobs. Everything the
// builder needs comes in its arguments and environment: the Proxmox token
// only by secretKeyRef, never as a value.
#pragma once

#include <chrono>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "src/api/types.h"

namespace nixmox::nix {

// Labels on builder Jobs and their Pods.
inline constexpr char kImageLabel[] = "nixmox.io/image";          // the NixImage's name
inline constexpr char kBuildKeyLabel[] = "nixmox.io/build-key";   // BuildKey()
inline constexpr char kJobNameLabel[] = "job-name";               // set by the Job controller
inline constexpr char kContainerName[] = "builder";
inline constexpr char kTerminationMessagePath[] = "/dev/termination-log";

// The operator's defaults for every builder Job (its --builder-* flags).
struct BuilderDefaults {
  std::string image = "ghcr.io/nixmox/nixmox-builder:0.1.0";
  // The command the container runs: on PATH in the builder image; the
  // sandbox, whose Jobs run on this machine, passes an absolute path.
  std::string command = "nixmox-builder";
  api::ResourceRequirements resources;  // spec.builder.resources overrides, per name
  // A device-plugin resource that gives a container /dev/kvm (for example
  // devices.kubevirt.io/kvm). Empty: kvm Required mounts the host's
  // /dev/kvm (a privileged container); Auto uses KVM only through the
  // resource, and builds emulated otherwise.
  std::string kvm_resource;
  // nix.conf options for every build, after the spec's ("sandbox=false").
  std::vector<std::string> nix_options;
  std::string service_account;  // "" = the namespace's default
};

struct BuildJobRequest {
  std::string job_name;
  std::string build_key;
  // The NixImage: metadata (name, namespace, uid) and spec.
  nlohmann::json image_metadata;
  api::NixImageSpec spec;
  api::ProxmoxClusterSpec cluster;
  std::string storage;                // resolved: spec.storage or cluster.imageStorage
  std::string expect_revision;        // non-empty: a refresh check (builds only if it moved)
};

// The batch/v1 Job object to create.
nlohmann::json RenderBuildJob(const BuildJobRequest& request, const BuilderDefaults& defaults);

}  // namespace nixmox::nix
