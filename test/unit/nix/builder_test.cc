// nixmox-builder's command line, secrets, and the parts of its run that need
// neither nix nor Proxmox (a stand-in `nix` script plays nix where one is run).
#include "src/nix/builder.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>

#include "test/support/subprocess.h"

namespace nixmox::nix {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::Pair;

std::vector<std::string> Required() {
  return {"--flake",     "github:example/images",
          "--attribute", "packages.x86_64-linux.web",
          "--format",    "qcow2",
          "--image",     "web",
          "--pve-url",   "https://pve.example:8006",
          "--storage",   "local"};
}

std::vector<std::string> With(std::vector<std::string> extra) {
  std::vector<std::string> args = Required();
  args.insert(args.end(), extra.begin(), extra.end());
  return args;
}

TEST(ParseBuilderArgs, ReadsTheRequiredFlagsAndDefaults) {
  auto cl = ParseBuilderArgs(Required());
  ASSERT_TRUE(cl.ok()) << cl.status().ToString();
  const BuilderOptions& o = cl->options;
  EXPECT_EQ(o.flake, "github:example/images");
  EXPECT_EQ(o.attribute, "packages.x86_64-linux.web");
  EXPECT_EQ(o.format, "qcow2");
  EXPECT_EQ(o.image, "web");
  EXPECT_EQ(o.pve_url, "https://pve.example:8006");
  EXPECT_EQ(o.storage, "local");
  EXPECT_TRUE(o.nodes.empty());
  EXPECT_FALSE(o.pve_insecure);
  EXPECT_EQ(o.result_file, "/dev/termination-log");
  EXPECT_EQ(o.kvm, KvmMode::kAuto);
  EXPECT_EQ(o.nix.program, "nix");
  EXPECT_EQ(o.expect_revision, "");
}

TEST(ParseBuilderArgs, ReadsEveryOptionalFlagAndRepeats) {
  auto cl = ParseBuilderArgs(With({"--node",
                                   "pve1",
                                   "--node=pve2",
                                   "--pve-insecure",
                                   "--substituter",
                                   "https://a",
                                   "--substituter",
                                   "https://b",
                                   "--trusted-public-key",
                                   "a:1=",
                                   "--nix-option",
                                   "sandbox=false",
                                   "--nix-option=substituters=",
                                   "--nix-option",
                                   "x=a=b",
                                   "--expect-revision",
                                   "abc",
                                   "--result-file",
                                   "/tmp/r.json",
                                   "--kvm",
                                   "Required",
                                   "--nix",
                                   "/opt/nix/bin/nix"}));
  ASSERT_TRUE(cl.ok()) << cl.status().ToString();
  const BuilderOptions& o = cl->options;
  EXPECT_THAT(o.nodes, ElementsAre("pve1", "pve2"));
  EXPECT_TRUE(o.pve_insecure);
  EXPECT_THAT(o.nix.substituters, ElementsAre("https://a", "https://b"));
  EXPECT_THAT(o.nix.trusted_public_keys, ElementsAre("a:1="));
  EXPECT_THAT(o.nix.options,
              ElementsAre(Pair("sandbox", "false"), Pair("substituters", ""), Pair("x", "a=b")));
  EXPECT_EQ(o.expect_revision, "abc");
  EXPECT_EQ(o.result_file, "/tmp/r.json");
  EXPECT_EQ(o.kvm, KvmMode::kRequired);
  EXPECT_EQ(o.nix.program, "/opt/nix/bin/nix");
}

TEST(ParseBuilderArgs, KvmModesAndBooleans) {
  EXPECT_EQ(ParseBuilderArgs(With({"--kvm", "Disabled"}))->options.kvm, KvmMode::kDisabled);
  EXPECT_EQ(ParseBuilderArgs(With({"--kvm=auto"}))->options.kvm, KvmMode::kAuto);
  EXPECT_FALSE(ParseBuilderArgs(With({"--pve-insecure=false"}))->options.pve_insecure);
}

TEST(ParseBuilderArgs, HelpStopsParsing) {
  auto cl = ParseBuilderArgs({"--help"});
  ASSERT_TRUE(cl.ok());
  EXPECT_TRUE(cl->help);
  EXPECT_THAT(BuilderUsage(), HasSubstr("--expect-revision"));
}

// Each bad command line is refused with a message naming what is wrong.
TEST(ParseBuilderArgs, RefusesBadCommandLinesSayingWhich) {
  const std::vector<std::pair<std::vector<std::string>, std::string>> cases = {
      {{"--flake", "x"}, "--attribute is required"},
      {With({"--bogus", "1"}), "unknown flag --bogus"},
      {With({"stray"}), "unexpected argument 'stray'"},
      {With({"--node"}), "--node needs a value"},
      {With({"--kvm", "sometimes"}), "--kvm"},
      {With({"--nix-option", "novalue"}), "--nix-option: 'novalue' is not NAME=VALUE"},
      {With({"--nix-option", "=x"}), "--nix-option"},
      {With({"--pve-insecure=maybe"}), "--pve-insecure"},
      {With({"--format", "vmdk"}), "unknown image format 'vmdk'"},
      {With({"--format", "vma"}), "--format vma"},
      {With({"--image", "a/b"}), "--image"},
      {With({"--image", "web server"}), "--image"},
      {With({"--pve-url", "pve.example:8006"}), "--pve-url"},
      {With({"--storage", "lo cal"}), "--storage"},
      {With({"--node", "-pve1"}), "--node"},
      {With({"--flake", "--attribute"}), "--flake"},
      {With({"--attribute", "a#b"}), "--attribute"},
  };
  for (const auto& [args, wanted] : cases) {
    auto cl = ParseBuilderArgs(args);
    ASSERT_FALSE(cl.ok()) << wanted;
    EXPECT_EQ(cl.status().code(), Code::kInvalid) << wanted;
    EXPECT_THAT(cl.status().message(), HasSubstr(wanted));
  }
}

TEST(ResultFileFromArgs, FindsTheFlagEvenInABadCommandLine) {
  EXPECT_EQ(ResultFileFromArgs({"--bogus", "--result-file", "/tmp/a"}), "/tmp/a");
  EXPECT_EQ(ResultFileFromArgs({"--result-file=/tmp/b", "--format"}), "/tmp/b");
  EXPECT_EQ(ResultFileFromArgs({"--result-file"}), "/dev/termination-log");
}

constexpr char kSecret[] = "7e3d9c1a-5b2f-4e8d-a6c0-1f9b3e5d7a2c";

TEST(ReadSecrets, ReadsTheTokenCaAndAccessTokens) {
  auto s = ReadSecrets({"PATH=/bin", "NIXMOX_PVE_TOKEN_ID=nixmox@pve!builder",
                        std::string("NIXMOX_PVE_TOKEN_SECRET=") + kSecret + "\n",
                        "NIXMOX_PVE_CA=-----BEGIN CERTIFICATE-----\nx\n",
                        "NIX_ACCESS_TOKENS=github.com=ghp_abcdefgh"});
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_EQ(s->token.id(), "nixmox@pve!builder");
  // A trailing newline (a Secret made from a file) is not part of the secret.
  EXPECT_EQ(s->token.AuthorizationHeader(),
            std::string("PVEAPIToken=nixmox@pve!builder=") + kSecret);
  EXPECT_EQ(s->ca_pem, "-----BEGIN CERTIFICATE-----\nx\n");
  EXPECT_EQ(s->access_tokens, "github.com=ghp_abcdefgh");
}

TEST(ReadSecrets, MissingOrMalformedTokenNamesTheVariableNotTheValue) {
  auto none = ReadSecrets({"PATH=/bin"});
  EXPECT_EQ(none.status().code(), Code::kInvalid);
  EXPECT_THAT(none.status().message(), HasSubstr("NIXMOX_PVE_TOKEN_ID"));
  auto no_secret = ReadSecrets({"NIXMOX_PVE_TOKEN_ID=a@b!c"});
  EXPECT_THAT(no_secret.status().message(), HasSubstr("NIXMOX_PVE_TOKEN_SECRET"));
  auto bad_id = ReadSecrets(
      {"NIXMOX_PVE_TOKEN_ID=justaname", std::string("NIXMOX_PVE_TOKEN_SECRET=") + kSecret});
  EXPECT_EQ(bad_id.status().code(), Code::kInvalid);
  EXPECT_THAT(bad_id.status().message(), HasSubstr("user@realm!tokenid"));
  EXPECT_THAT(bad_id.status().message(), Not(HasSubstr(kSecret)));
}

TEST(RedactSecrets, HidesTheTokenAndEveryAccessToken) {
  BuilderSecrets s;
  s.token = proxmox::ApiToken("a@b!c", kSecret);
  s.access_tokens = "github.com=ghp_abcdefgh gitlab.com=PAT:zyxwvuts";
  const std::string text = RedactSecrets(
      s, std::string("auth ") + kSecret + " and ghp_abcdefgh and PAT:zyxwvuts, a@b!c stays");
  EXPECT_EQ(text, "auth <redacted> and <redacted> and <redacted>, a@b!c stays");
}

TEST(KvmUsable, SaysWhyADeviceCannotBeOpened) {
  std::string why;
  EXPECT_FALSE(KvmUsable("/nonexistent/kvm", &why));
  EXPECT_THAT(why, HasSubstr("/nonexistent/kvm"));
  EXPECT_TRUE(KvmUsable("/dev/null", &why));  // any device that opens read-write
}

// RunBuilder up to the point where nix or Proxmox would be needed.
class RunBuilderTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto cl = ParseBuilderArgs(With({"--nix", dir_.File("nix")}));
    ASSERT_TRUE(cl.ok()) << cl.status().ToString();
    options_ = cl->options;
    secrets_.token = proxmox::ApiToken("a@b!c", kSecret);
    environment_.env = {"PATH=/usr/bin:/bin", std::string("NIXMOX_PVE_TOKEN_SECRET=") + kSecret};
    environment_.progress = &progress_;
    environment_.kvm_device = "/dev/null";
  }

  // A stand-in nix: records each call's arguments, prints `metadata` for
  // `flake metadata` and fails `build` with `build_error` on stderr.
  void FakeNix(const std::string& metadata, const std::string& build_error) {
    const std::string path = dir_.File("nix");
    std::ofstream(path) << "#!/bin/sh\n"
                        << "echo \"$*\" >> \"$(dirname \"$0\")/calls\"\n"
                        << "case \" $* \" in\n"
                        << "  *' metadata '*) echo '" << metadata << "' ;;\n"
                        << "  *' build '*) echo '" << build_error << "' >&2; exit 1 ;;\n"
                        << "esac\n";
    std::filesystem::permissions(path, std::filesystem::perms::owner_all);
  }
  std::string Calls() {
    std::ifstream in(dir_.File("calls"));
    return std::string(std::istreambuf_iterator<char>(in), {});
  }

  nixmox::testing::TempDir dir_;
  BuilderOptions options_;
  BuilderSecrets secrets_;
  BuilderEnvironment environment_;
  std::ostringstream progress_;
};

TEST_F(RunBuilderTest, KvmRequiredWithoutKvmFailsTheBuildStageBeforeRunningNix) {
  FakeNix(R"({"locked":{"rev":"abc"}})", "unused");
  options_.kvm = KvmMode::kRequired;
  environment_.kvm_device = dir_.File("no-kvm");
  BuilderOutcome out = RunBuilder(options_, secrets_, environment_);
  EXPECT_EQ(out.exit_code, kExitBuildFailed);
  EXPECT_FALSE(out.result.ok);
  EXPECT_EQ(out.result.stage, Stage::kBuild);
  EXPECT_THAT(out.result.error, HasSubstr("--kvm Required"));
  EXPECT_EQ(Calls(), "") << "nix must not run";
}

TEST_F(RunBuilderTest, SameRevisionAsExpectedIsUnchangedWithoutBuilding) {
  FakeNix(R"({"locked":{"rev":"0123abc"},"url":"github:o/r/0123abc"})", "unused");
  options_.expect_revision = "0123abc";
  BuilderOutcome out = RunBuilder(options_, secrets_, environment_);
  EXPECT_EQ(out.exit_code, kExitOk);
  EXPECT_TRUE(out.result.ok);
  EXPECT_TRUE(out.result.unchanged);
  EXPECT_EQ(out.result.flake_revision, "0123abc");
  EXPECT_THAT(Calls(), HasSubstr("flake metadata --json github:example/images"));
  EXPECT_THAT(Calls(), Not(HasSubstr(" build ")));
}

TEST_F(RunBuilderTest, MovedRevisionBuildsTheLockedReference) {
  FakeNix(R"({"locked":{"rev":"0456def"},"url":"github:o/r/0456def"})", "error: attribute missing");
  options_.expect_revision = "0123abc";
  BuilderOutcome out = RunBuilder(options_, secrets_, environment_);
  EXPECT_EQ(out.exit_code, kExitBuildFailed);
  EXPECT_EQ(out.result.stage, Stage::kBuild);
  EXPECT_THAT(out.result.error, HasSubstr("error: attribute missing"));
  EXPECT_THAT(Calls(),
              HasSubstr("build --no-link --json -L github:o/r/0456def#packages.x86_64-linux.web"));
  EXPECT_THAT(progress_.str(), HasSubstr("nixmox-progress {"));
}

TEST_F(RunBuilderTest, BuildErrorNeverCarriesTheSecrets) {
  // A nix that (absurdly) prints the secrets: they are redacted on the way out.
  secrets_.access_tokens = "github.com=ghp_abcdefgh";
  FakeNix(R"({"locked":{"rev":"1"}})", std::string("leak ") + kSecret + " ghp_abcdefgh");
  BuilderOutcome out = RunBuilder(options_, secrets_, environment_);
  EXPECT_EQ(out.exit_code, kExitBuildFailed);
  EXPECT_THAT(out.result.error, HasSubstr("leak <redacted> <redacted>"));
  EXPECT_THAT(ToMessage(out.result), Not(HasSubstr(kSecret)));
  EXPECT_THAT(progress_.str(), Not(HasSubstr(kSecret)));
}

TEST_F(RunBuilderTest, WithoutKvmTellsNixItMayRunKvmBuildsEmulated) {
  FakeNix(R"({"locked":{"rev":"1"}})", "stop here");
  environment_.kvm_device = dir_.File("no-kvm");
  BuilderOutcome out = RunBuilder(options_, secrets_, environment_);
  EXPECT_EQ(out.exit_code, kExitBuildFailed);
  EXPECT_THAT(Calls(), HasSubstr("--option extra-system-features kvm"));
  EXPECT_THAT(progress_.str(), HasSubstr("emulated"));
}

}  // namespace
}  // namespace nixmox::nix
