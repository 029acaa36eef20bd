#include "src/nix/job.h"

#include <utility>

namespace nixmox::nix {
namespace {

using nlohmann::json;

std::string MetaString(const json& metadata, const char* key) {
  auto it = metadata.find(key);
  return it != metadata.end() && it->is_string() ? it->get<std::string>() : std::string();
}

json EnvValue(const std::string& name, const std::string& value) {
  return {{"name", name}, {"value", value}};
}

json EnvFrom(const std::string& name, const char* source, const std::string& object,
             const std::string& key) {
  return {{"name", name}, {"valueFrom", {{source, {{"name", object}, {"key", key}}}}}};
}

std::vector<std::string> Arguments(const BuildJobRequest& r, const BuilderDefaults& defaults) {
  const api::NixImageSpec& spec = r.spec;
  std::vector<std::string> args = {
      "--flake",   spec.flake,
      "--attribute", spec.attribute,
      "--format",  std::string(api::EnumName(spec.format)),
      "--image",   MetaString(r.image_metadata, "name"),
      "--pve-url", r.cluster.endpoint,
      "--storage", r.storage,
      "--kvm",     std::string(api::EnumName(spec.builder.kvm)),
      // The container's terminationMessagePath, named so that runners which
      // relocate it (kubesim) see it.
      "--result-file", kTerminationMessagePath,
  };
  for (const std::string& node : r.cluster.allowed_nodes) {
    args.insert(args.end(), {"--node", node});
  }
  if (r.cluster.tls.insecure_skip_tls_verify) args.push_back("--pve-insecure");
  for (const std::string& s : spec.nix.substituters) args.insert(args.end(), {"--substituter", s});
  for (const std::string& k : spec.nix.trusted_public_keys) {
    args.insert(args.end(), {"--trusted-public-key", k});
  }
  for (const auto& [name, value] : spec.nix.extra_options) {
    args.insert(args.end(), {"--nix-option", name + "=" + value});
  }
  for (const std::string& option : defaults.nix_options) {
    args.insert(args.end(), {"--nix-option", option});
  }
  if (!r.expect_revision.empty()) args.insert(args.end(), {"--expect-revision", r.expect_revision});
  return args;
}

json Environment(const BuildJobRequest& r) {
  const api::CredentialsRef& creds = r.cluster.credentials_ref;
  json env = json::array({
      EnvFrom("NIXMOX_PVE_TOKEN_ID", "secretKeyRef", creds.name, creds.token_id_key),
      EnvFrom("NIXMOX_PVE_TOKEN_SECRET", "secretKeyRef", creds.name, creds.token_secret_key),
  });
  const api::ClusterTls& tls = r.cluster.tls;
  if (!tls.ca_bundle.empty()) {
    env.push_back(EnvValue("NIXMOX_PVE_CA", tls.ca_bundle));
  } else if (tls.ca_ref) {
    const char* source =
        tls.ca_ref->kind == api::CaSourceKind::kSecret ? "secretKeyRef" : "configMapKeyRef";
    env.push_back(EnvFrom("NIXMOX_PVE_CA", source, tls.ca_ref->name, tls.ca_ref->key));
  }
  if (const auto& tokens = r.spec.nix.access_tokens_secret_ref) {
    env.push_back(EnvFrom("NIX_ACCESS_TOKENS", "secretKeyRef", tokens->name, tokens->key));
  }
  return env;
}

json Resources(const api::ResourceRequirements& spec, const BuilderDefaults& defaults,
               bool kvm_resource) {
  std::map<std::string, std::string> requests, limits;
  for (const auto& [name, q] : defaults.resources.requests) requests[name] = q.value;
  for (const auto& [name, q] : defaults.resources.limits) limits[name] = q.value;
  for (const auto& [name, q] : spec.requests) requests[name] = q.value;
  for (const auto& [name, q] : spec.limits) limits[name] = q.value;
  if (kvm_resource) {
    limits[defaults.kvm_resource] = "1";
    requests[defaults.kvm_resource] = "1";
  }
  json out = json::object();
  if (!requests.empty()) out["requests"] = requests;
  if (!limits.empty()) out["limits"] = limits;
  return out;
}

}  // namespace

json RenderBuildJob(const BuildJobRequest& r, const BuilderDefaults& defaults) {
  const std::string name = MetaString(r.image_metadata, "name");
  const std::string ns = MetaString(r.image_metadata, "namespace");
  const api::BuilderSpec& builder = r.spec.builder;
  const json labels = {
      {"app.kubernetes.io/name", "nixmox-builder"},
      {"app.kubernetes.io/managed-by", "nixmox"},
      {kImageLabel, name},
      {kBuildKeyLabel, r.build_key},
  };

  // KVM: through the device plugin's resource when there is one; else the
  // host's device, which only a privileged container may open, and only
  // when the spec insists on it.
  const bool use_resource =
      builder.kvm != api::KvmMode::kDisabled && !defaults.kvm_resource.empty();
  const bool use_host_device =
      builder.kvm == api::KvmMode::kRequired && defaults.kvm_resource.empty();

  json container = {
      {"name", kContainerName},
      {"image", builder.image.empty() ? defaults.image : builder.image},
      {"command", json::array({defaults.command})},
      {"args", Arguments(r, defaults)},
      {"env", Environment(r)},
      {"resources", Resources(builder.resources, defaults, use_resource)},
      {"terminationMessagePath", kTerminationMessagePath},
      {"terminationMessagePolicy", "FallbackToLogsOnError"},
  };
  json pod_spec = {
      {"restartPolicy", "Never"},
      {"automountServiceAccountToken", false},
  };
  if (use_host_device) {
    container["securityContext"] = {{"privileged", true}};
    container["volumeMounts"] = json::array({{{"name", "kvm"}, {"mountPath", "/dev/kvm"}}});
    pod_spec["volumes"] = json::array(
        {{{"name", "kvm"}, {"hostPath", {{"path", "/dev/kvm"}, {"type", "CharDevice"}}}}});
  }
  pod_spec["containers"] = json::array({container});
  if (!builder.node_selector.empty()) pod_spec["nodeSelector"] = builder.node_selector;
  if (!defaults.service_account.empty()) pod_spec["serviceAccountName"] = defaults.service_account;

  json job = {
      {"apiVersion", "batch/v1"},
      {"kind", "Job"},
      {"metadata",
       {{"name", r.job_name},
        {"namespace", ns},
        {"labels", labels},
        {"annotations", {{"nixmox.io/flake", r.spec.flake}, {"nixmox.io/attribute", r.spec.attribute}}},
        {"ownerReferences",
         json::array({{{"apiVersion", "nixmox.io/v1alpha1"},
                       {"kind", "NixImage"},
                       {"name", name},
                       {"uid", MetaString(r.image_metadata, "uid")},
                       {"controller", true},
                       {"blockOwnerDeletion", true}}})}}},
      {"spec",
       {{"backoffLimit", 0},
        {"activeDeadlineSeconds", builder.timeout_seconds},
        {"template", {{"metadata", {{"labels", labels}}}, {"spec", pod_spec}}}}},
  };
  return job;
}

}  // namespace nixmox::nix
