// The build key and the builder Job's rendering.
#include "src/nix/job.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "src/nix/build_key.h"

namespace nixmox::nix {
namespace {

using ::testing::Contains;
using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::SizeIs;

api::NixImageSpec Spec() {
  api::NixImageSpec spec;
  spec.flake = "github:example/infra";
  spec.attribute = "nixosConfigurations.web.config.system.build.image";
  spec.cluster_ref.name = "lab";
  return spec;
}

TEST(BuildKeyTest, IsStableAndCoversWhatDecidesTheResult) {
  const std::string key = BuildKey(Spec(), "local", "");
  EXPECT_THAT(key, SizeIs(16));
  EXPECT_EQ(key.find_first_not_of("0123456789abcdef"), std::string::npos);
  EXPECT_EQ(BuildKey(Spec(), "local", ""), key);

  auto changed = [&](const std::function<void(api::NixImageSpec&)>& edit) {
    api::NixImageSpec spec = Spec();
    edit(spec);
    return BuildKey(spec, "local", "") != key;
  };
  EXPECT_TRUE(changed([](auto& s) { s.flake = "github:example/infra/v2"; }));
  EXPECT_TRUE(changed([](auto& s) { s.attribute += "2"; }));
  EXPECT_TRUE(changed([](auto& s) { s.format = api::ImageFormat::kRaw; }));
  EXPECT_TRUE(changed([](auto& s) { s.nix.substituters = {"https://cache.example"}; }));
  EXPECT_TRUE(changed([](auto& s) { s.nix.extra_options["max-jobs"] = "4"; }));
  EXPECT_TRUE(changed([](auto& s) { s.cluster_ref.name = "other"; }));
  EXPECT_NE(BuildKey(Spec(), "nfs-images", ""), key);
  EXPECT_NE(BuildKey(Spec(), "local", "2026-11-23"), key);

  // What only changes how the build runs does not.
  EXPECT_FALSE(changed([](auto& s) { s.builder.timeout_seconds = 60; }));
  EXPECT_FALSE(changed([](auto& s) { s.builder.image = "other:1"; }));
  EXPECT_FALSE(changed([](auto& s) { s.generations = 9; }));
  EXPECT_FALSE(changed([](auto& s) { s.rollout.max_unavailable = 5; }));
}

TEST(JobNameTest, StaysWithin63Characters) {
  EXPECT_EQ(JobName("web", "0123456789abcdef"), "web-01234567");
  EXPECT_EQ(JobName("web", "0123456789abcdef", "2"), "web-01234567-2");
  const std::string long_name(80, 'a');
  const std::string name = JobName(long_name, "0123456789abcdef", "r20261123173129");
  EXPECT_LE(name.size(), 63u);
  EXPECT_THAT(name, ::testing::EndsWith("-01234567-r20261123173129"));
  // No "-" or "." where the image part was cut.
  EXPECT_EQ(JobName(std::string(50, 'a') + "-b", "0123456789abcdef", "r20261123173129").find("--"),
            std::string::npos);
}

class RenderJobTest : public ::testing::Test {
 protected:
  BuildJobRequest Request() {
    BuildJobRequest r;
    r.job_name = "web-01234567";
    r.build_key = "0123456789abcdef";
    r.image_metadata = {{"name", "web"}, {"namespace", "prod"}, {"uid", "uid-1"}};
    r.spec = Spec();
    r.cluster.endpoint = "https://pve.example:8006";
    r.cluster.credentials_ref.name = "pve-token";
    r.storage = "local";
    return r;
  }
  static std::vector<std::string> Args(const nlohmann::json& job) {
    return job["spec"]["template"]["spec"]["containers"][0]["args"].get<std::vector<std::string>>();
  }
  static const nlohmann::json& Container(const nlohmann::json& job) {
    return job["spec"]["template"]["spec"]["containers"][0];
  }
  // The value after `flag` in the argument list, "" when absent.
  static std::string After(const std::vector<std::string>& args, const std::string& flag) {
    for (std::size_t i = 0; i + 1 < args.size(); ++i) {
      if (args[i] == flag) return args[i + 1];
    }
    return "";
  }
  BuilderDefaults defaults_;
};

TEST_F(RenderJobTest, OwnedLabelledOneShotJob) {
  nlohmann::json job = RenderBuildJob(Request(), defaults_);
  EXPECT_EQ(job["apiVersion"], "batch/v1");
  EXPECT_EQ(job["kind"], "Job");
  EXPECT_EQ(job["metadata"]["name"], "web-01234567");
  EXPECT_EQ(job["metadata"]["namespace"], "prod");
  EXPECT_EQ(job["metadata"]["labels"][kImageLabel], "web");
  EXPECT_EQ(job["metadata"]["labels"][kBuildKeyLabel], "0123456789abcdef");
  const nlohmann::json& owner = job["metadata"]["ownerReferences"][0];
  EXPECT_EQ(owner["kind"], "NixImage");
  EXPECT_EQ(owner["uid"], "uid-1");
  EXPECT_TRUE(owner["controller"].get<bool>());
  EXPECT_EQ(job["spec"]["backoffLimit"], 0);
  EXPECT_EQ(job["spec"]["activeDeadlineSeconds"], 3600);
  EXPECT_EQ(job["spec"]["template"]["spec"]["restartPolicy"], "Never");
  EXPECT_EQ(job["spec"]["template"]["metadata"]["labels"][kImageLabel], "web");
  EXPECT_FALSE(job["spec"]["template"]["spec"]["automountServiceAccountToken"].get<bool>());
  EXPECT_EQ(Container(job)["terminationMessagePolicy"], "FallbackToLogsOnError");
  EXPECT_EQ(Container(job)["command"][0], "nixmox-builder");
  EXPECT_EQ(Container(job)["image"], defaults_.image);
}

TEST_F(RenderJobTest, ArgumentsCarryTheSpec) {
  BuildJobRequest r = Request();
  r.spec.format = api::ImageFormat::kRaw;
  r.spec.nix.substituters = {"https://cache.example"};
  r.spec.nix.trusted_public_keys = {"cache.example-1:AAAA"};
  r.spec.nix.extra_options = {{"max-jobs", "4"}};
  r.cluster.allowed_nodes = {"pve1", "pve3"};
  r.cluster.tls.insecure_skip_tls_verify = true;
  defaults_.nix_options = {"sandbox=false"};
  std::vector<std::string> args = Args(RenderBuildJob(r, defaults_));
  EXPECT_EQ(After(args, "--flake"), "github:example/infra");
  EXPECT_EQ(After(args, "--attribute"), r.spec.attribute);
  EXPECT_EQ(After(args, "--format"), "raw");
  EXPECT_EQ(After(args, "--image"), "web");
  EXPECT_EQ(After(args, "--pve-url"), "https://pve.example:8006");
  EXPECT_EQ(After(args, "--storage"), "local");
  EXPECT_EQ(After(args, "--substituter"), "https://cache.example");
  EXPECT_EQ(After(args, "--trusted-public-key"), "cache.example-1:AAAA");
  EXPECT_THAT(args, Contains("max-jobs=4"));
  EXPECT_THAT(args, Contains("sandbox=false"));
  EXPECT_THAT(args, Contains("pve3"));
  EXPECT_THAT(args, Contains("--pve-insecure"));
  EXPECT_THAT(args, Not(Contains("--expect-revision")));
  r.expect_revision = "abc123";
  EXPECT_EQ(After(Args(RenderBuildJob(r, defaults_)), "--expect-revision"), "abc123");
}

TEST_F(RenderJobTest, SecretsOnlyByReference) {
  BuildJobRequest r = Request();
  r.cluster.tls.ca_ref = api::CaRef{api::CaSourceKind::kConfigMap, "pve-ca", "ca.crt"};
  r.spec.nix.access_tokens_secret_ref = api::SecretKeyRef{"gh", "access-tokens"};
  nlohmann::json env = Container(RenderBuildJob(r, defaults_))["env"];
  std::map<std::string, nlohmann::json> by_name;
  for (const nlohmann::json& e : env) by_name[e["name"]] = e;
  EXPECT_EQ(by_name["NIXMOX_PVE_TOKEN_ID"]["valueFrom"]["secretKeyRef"]["name"], "pve-token");
  EXPECT_EQ(by_name["NIXMOX_PVE_TOKEN_ID"]["valueFrom"]["secretKeyRef"]["key"], "tokenID");
  EXPECT_EQ(by_name["NIXMOX_PVE_TOKEN_SECRET"]["valueFrom"]["secretKeyRef"]["key"], "tokenSecret");
  EXPECT_EQ(by_name["NIXMOX_PVE_CA"]["valueFrom"]["configMapKeyRef"]["name"], "pve-ca");
  EXPECT_EQ(by_name["NIX_ACCESS_TOKENS"]["valueFrom"]["secretKeyRef"]["name"], "gh");
  for (const nlohmann::json& e : env) EXPECT_FALSE(e.contains("value")) << e.dump();

  r = Request();
  r.cluster.tls.ca_bundle = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
  env = Container(RenderBuildJob(r, defaults_))["env"];
  EXPECT_THAT(env.dump(), HasSubstr("BEGIN CERTIFICATE"));  // a CA is public
}

TEST_F(RenderJobTest, KvmThroughTheResourceOrTheHostDevice) {
  BuildJobRequest r = Request();
  // Auto without a resource: no device, nothing privileged.
  nlohmann::json job = RenderBuildJob(r, defaults_);
  EXPECT_FALSE(Container(job).contains("securityContext"));
  EXPECT_FALSE(job["spec"]["template"]["spec"].contains("volumes"));
  EXPECT_EQ(After(Args(job), "--kvm"), "Auto");

  // Auto with the device plugin's resource.
  defaults_.kvm_resource = "devices.kubevirt.io/kvm";
  job = RenderBuildJob(r, defaults_);
  EXPECT_EQ(Container(job)["resources"]["limits"]["devices.kubevirt.io/kvm"], "1");

  // Disabled: never.
  r.spec.builder.kvm = api::KvmMode::kDisabled;
  job = RenderBuildJob(r, defaults_);
  EXPECT_FALSE(Container(job)["resources"].contains("limits"));

  // Required without a resource: the host's /dev/kvm, which needs privileges.
  defaults_.kvm_resource.clear();
  r.spec.builder.kvm = api::KvmMode::kRequired;
  job = RenderBuildJob(r, defaults_);
  EXPECT_TRUE(Container(job)["securityContext"]["privileged"].get<bool>());
  EXPECT_EQ(job["spec"]["template"]["spec"]["volumes"][0]["hostPath"]["path"], "/dev/kvm");
}

TEST_F(RenderJobTest, ResourcesFromDefaultsAndSpec) {
  BuildJobRequest r = Request();
  defaults_.resources.requests = {{"cpu", {"2"}}, {"memory", {"4Gi"}}};
  r.spec.builder.resources.requests = {{"memory", {"8Gi"}}};
  r.spec.builder.node_selector = {{"kvm", "yes"}};
  r.spec.builder.image = "mine:1";
  r.spec.builder.timeout_seconds = 900;
  nlohmann::json job = RenderBuildJob(r, defaults_);
  EXPECT_EQ(Container(job)["resources"]["requests"]["cpu"], "2");
  EXPECT_EQ(Container(job)["resources"]["requests"]["memory"], "8Gi");
  EXPECT_EQ(job["spec"]["template"]["spec"]["nodeSelector"]["kvm"], "yes");
  EXPECT_EQ(Container(job)["image"], "mine:1");
  EXPECT_EQ(job["spec"]["activeDeadlineSeconds"], 900);
}

}  // namespace
}  // namespace nixmox::nix
