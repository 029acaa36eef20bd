// The nix command line: the arguments and environment nix gets, and reading
// the JSON of nix 2.8 (Debian) and of current nix.
#include "src/nix/nix_cli.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iterator>

#include "test/support/subprocess.h"

namespace nixmox::nix {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;

TEST(NixArgv, PutsSettingsBeforeTheCommandInOrder) {
  NixSettings s;
  s.program = "/usr/bin/nix";
  s.substituters = {"https://cache.nixos.org", "https://cache.example"};
  s.trusted_public_keys = {"cache.nixos.org-1:abc=", "example:def="};
  s.options = {{"sandbox", "false"}, {"substituters", ""}};
  EXPECT_THAT(
      NixArgv(s, {"build", "--json", "path:/x#y"}),
      ElementsAre("/usr/bin/nix", "--extra-experimental-features", "nix-command flakes", "--option",
                  "substituters", "https://cache.nixos.org https://cache.example", "--option",
                  "trusted-public-keys", "cache.nixos.org-1:abc= example:def=", "--option",
                  "sandbox", "false", "--option", "substituters", "", "build", "--json",
                  "path:/x#y"));
}

TEST(NixArgv, LeavesNixsListsAloneWhenNoneAreGiven) {
  EXPECT_THAT(NixArgv({}, {"path-info", "--json", "/nix/store/x"}),
              ElementsAre("nix", "--extra-experimental-features", "nix-command flakes", "path-info",
                          "--json", "/nix/store/x"));
}

TEST(NixEnvironment, DropsTheBuildersSecretsAndPassesAccessTokensInNixConfig) {
  const std::vector<std::string> base = {
      "PATH=/bin",
      "HOME=/root",
      "NIXMOX_PVE_TOKEN_ID=root@pam!ci",
      "NIXMOX_PVE_TOKEN_SECRET=s3cr3t-value",
      "NIX_ACCESS_TOKENS=github.com=ghp_abcdef",
      "NIX_CONFIG=max-jobs = 2",
  };
  const auto env = NixEnvironment(base, "github.com=ghp_abcdef");
  EXPECT_THAT(env, ElementsAre("PATH=/bin", "HOME=/root",
                               "NIX_CONFIG=max-jobs = 2\naccess-tokens = github.com=ghp_abcdef\n"));
}

TEST(NixEnvironment, WithoutTokensKeepsNixConfigAsItWas) {
  EXPECT_THAT(NixEnvironment({"A=1", "NIX_CONFIG=sandbox = false"}, ""),
              ElementsAre("A=1", "NIX_CONFIG=sandbox = false"));
  EXPECT_THAT(NixEnvironment({"A=1"}, ""), ElementsAre("A=1"));
}

TEST(AccessTokenValues, TakesTheValueOfEachHostToken) {
  EXPECT_THAT(AccessTokenValues("github.com=ghp_x1  gitlab.example=PAT:y2\nz3"),
              ElementsAre("ghp_x1", "PAT:y2", "z3"));
  EXPECT_THAT(AccessTokenValues(""), ElementsAre());
}

// Captured from nix 2.8.0 (Debian bookworm) for a path: flake.
constexpr char kPathFlakeMetadata[] = R"({"description":"t","lastModified":1795455089,
  "locked":{"lastModified":1795455089,"narHash":"sha256-IDmq/GTWnki2AFeJCEHIPyENIZu3pLOpfWwxanFasA0=",
  "path":"/tmp/f","type":"path"},"locks":{"nodes":{"root":{}},"root":"root","version":7},
  "original":{"path":"/tmp/f","type":"path"},"originalUrl":"path:/tmp/f",
  "path":"/nix/store/f8zbdp87kk680a8vh4jmraxi6aamqlxs-source","resolved":{"path":"/tmp/f","type":"path"},
  "resolvedUrl":"path:/tmp/f",
  "url":"path:/tmp/f?lastModified=1795455089&narHash=sha256-IDmq%2fGTWnki2AFeJCEHIPyENIZu3pLOpfWwxanFasA0="})";

TEST(ParseFlakeMetadata, PathFlakeIsKnownByItsNarHash) {
  auto meta = ParseFlakeMetadata(kPathFlakeMetadata);
  ASSERT_TRUE(meta.ok()) << meta.status().ToString();
  EXPECT_EQ(meta->revision, "sha256-IDmq/GTWnki2AFeJCEHIPyENIZu3pLOpfWwxanFasA0=");
  EXPECT_EQ(
      meta->locked_url,
      "path:/tmp/"
      "f?lastModified=1795455089&narHash=sha256-IDmq%2fGTWnki2AFeJCEHIPyENIZu3pLOpfWwxanFasA0=");
}

TEST(ParseFlakeMetadata, GitFlakeIsKnownByItsRev) {
  auto meta = ParseFlakeMetadata(R"({"locked":{"lastModified":1700000000,
      "narHash":"sha256-AAAA","owner":"o","repo":"r","rev":"0123456789abcdef0123456789abcdef01234567",
      "type":"github"},"url":"github:o/r/0123456789abcdef0123456789abcdef01234567?narHash=sha256-AAAA"})");
  ASSERT_TRUE(meta.ok()) << meta.status().ToString();
  EXPECT_EQ(meta->revision, "0123456789abcdef0123456789abcdef01234567");
  EXPECT_EQ(meta->locked_url,
            "github:o/r/0123456789abcdef0123456789abcdef01234567?narHash=sha256-AAAA");
}

TEST(ParseFlakeMetadata, FallsBackToLastModified) {
  auto meta =
      ParseFlakeMetadata(R"({"lastModified":42,"locked":{"type":"git","url":"file:///x"}})");
  ASSERT_TRUE(meta.ok()) << meta.status().ToString();
  EXPECT_EQ(meta->revision, "lastModified:42");
  EXPECT_EQ(meta->locked_url, "");
}

TEST(ParseFlakeMetadata, RejectsWhatNamesNoRevision) {
  EXPECT_EQ(ParseFlakeMetadata(R"({"locked":{}})").status().code(), Code::kInvalid);
  EXPECT_EQ(ParseFlakeMetadata("warning: something").status().code(), Code::kInvalid);
  EXPECT_EQ(ParseFlakeMetadata("[]").status().code(), Code::kInvalid);
}

TEST(ParseBuildOutputs, ReadsNix28AndPutsOutFirst) {
  auto outs = ParseBuildOutputs(
      R"([{"drvPath":"/nix/store/a.drv","outputs":{"dev":"/nix/store/d-dev","out":"/nix/store/o"}}])");
  ASSERT_TRUE(outs.ok()) << outs.status().ToString();
  EXPECT_THAT(*outs, ElementsAre("/nix/store/o", "/nix/store/d-dev"));
}

TEST(ParseBuildOutputs, RejectsOutputWithoutPaths) {
  EXPECT_EQ(ParseBuildOutputs("[]").status().code(), Code::kInvalid);
  EXPECT_EQ(ParseBuildOutputs(R"({"outputs":{}})").status().code(), Code::kInvalid);
  EXPECT_EQ(ParseBuildOutputs("").status().code(), Code::kInvalid);
}

constexpr char kPath[] = "/nix/store/mjs27ix6ig2bkbi3s3sm470vrv4lf7ic-hello";

TEST(ParsePathInfo, ReadsTheListOfNix28) {
  // As nix 2.8.0 prints it.
  auto info = ParsePathInfo(
      R"([{"path":"/nix/store/mjs27ix6ig2bkbi3s3sm470vrv4lf7ic-hello","narHash":"sha256-EFUdrtf6Rn0LWIJufrmg8q99aT3jGfLvd1//zaJEufY=","narSize":120,"references":[],"deriver":"/nix/store/76w21n1f03fs5kw8fnffphx7qrqffw6r-hello.drv","registrationTime":1795455092,"ultimate":true}])",
      kPath);
  ASSERT_TRUE(info.ok()) << info.status().ToString();
  EXPECT_EQ(info->path, kPath);
  EXPECT_EQ(info->nar_hash, "sha256-EFUdrtf6Rn0LWIJufrmg8q99aT3jGfLvd1//zaJEufY=");
  EXPECT_EQ(info->nar_size, 120);
}

TEST(ParsePathInfo, ReadsTheObjectOfNewerNix) {
  // nix 2.19 and later: an object keyed by store path.
  auto info = ParsePathInfo(
      R"({"/nix/store/mjs27ix6ig2bkbi3s3sm470vrv4lf7ic-hello":{"ca":null,"deriver":"/nix/store/x.drv","narHash":"sha256-EFUdrtf6Rn0LWIJufrmg8q99aT3jGfLvd1//zaJEufY=","narSize":120,"references":[],"registrationTime":1,"signatures":[],"ultimate":true}})",
      kPath);
  ASSERT_TRUE(info.ok()) << info.status().ToString();
  EXPECT_EQ(info->nar_hash, "sha256-EFUdrtf6Rn0LWIJufrmg8q99aT3jGfLvd1//zaJEufY=");
  EXPECT_EQ(info->nar_size, 120);
}

TEST(ParsePathInfo, InvalidOrMissingPathIsNotFound) {
  EXPECT_EQ(
      ParsePathInfo(
          R"([{"path":"/nix/store/mjs27ix6ig2bkbi3s3sm470vrv4lf7ic-hello","valid":false}])", kPath)
          .status()
          .code(),
      Code::kNotFound);
  EXPECT_EQ(ParsePathInfo(R"({"/nix/store/mjs27ix6ig2bkbi3s3sm470vrv4lf7ic-hello":null})", kPath)
                .status()
                .code(),
            Code::kNotFound);
  EXPECT_EQ(ParsePathInfo(R"([{"path":"/nix/store/other","narHash":"h","narSize":1}])", kPath)
                .status()
                .code(),
            Code::kNotFound);
  EXPECT_EQ(ParsePathInfo("nope", kPath).status().code(), Code::kInvalid);
  EXPECT_EQ(
      ParsePathInfo(R"([{"path":"/nix/store/mjs27ix6ig2bkbi3s3sm470vrv4lf7ic-hello"}])", kPath)
          .status()
          .code(),
      Code::kInvalid);
}

// NixCli over a stand-in `nix` (a shell script): what it is given and how
// its output and failures come back.
class FakeNix : public ::testing::Test {
 protected:
  void SetUp() override {
    script_ = dir_.File("nix");
    std::ofstream(script_) << R"(#!/bin/sh
printf '%s\n' "$@" > "$(dirname "$0")/args"
env > "$(dirname "$0")/env"
case " $* " in
  *" path-info "*) echo '[{"path":"/nix/store/mjs27ix6ig2bkbi3s3sm470vrv4lf7ic-hello","narHash":"sha256-x","narSize":5}]' ;;
  *" build "*) i=1; while [ $i -le 30 ]; do echo "nix line $i" >&2; i=$((i+1)); done; exit 1 ;;
esac
)";
    std::filesystem::permissions(script_, std::filesystem::perms::owner_all);
  }
  std::string Read(const std::string& name) {
    std::ifstream in(dir_.File(name));
    return std::string(std::istreambuf_iterator<char>(in), {});
  }

  nixmox::testing::TempDir dir_;
  std::string script_;
};

TEST_F(FakeNix, InfoRunsPathInfoAndReadsItsJson) {
  NixSettings s;
  s.program = script_;
  s.options = {{"sandbox", "false"}};
  NixCli cli(s, NixEnvironment({"PATH=/usr/bin:/bin"}, "github.com=ghp_secretvalue"), nullptr);
  auto info = cli.Info(kPath);
  ASSERT_TRUE(info.ok()) << info.status().ToString();
  EXPECT_EQ(info->nar_size, 5);
  EXPECT_EQ(Read("args"),
            "--extra-experimental-features\nnix-command flakes\n--option\nsandbox\nfalse\n"
            "path-info\n--json\n" +
                std::string(kPath) + "\n");
  // The access token reaches nix through its environment only.
  EXPECT_THAT(Read("env"), HasSubstr("access-tokens = github.com=ghp_secretvalue"));
  EXPECT_THAT(Read("args"), Not(HasSubstr("ghp_secretvalue")));
}

TEST_F(FakeNix, FailedBuildCarriesTheLastTwentyLinesOfStderr) {
  NixSettings s;
  s.program = script_;
  std::vector<std::string> seen;
  NixCli cli(s, {"PATH=/usr/bin:/bin"}, [&](std::string_view l) { seen.emplace_back(l); });
  auto built = cli.Build("path:/x#y");
  ASSERT_FALSE(built.ok());
  EXPECT_EQ(built.status().code(), Code::kInternal);
  const std::string& m = built.status().message();
  EXPECT_THAT(m, HasSubstr("nix build failed (exit code 1)"));
  EXPECT_THAT(m, HasSubstr("nix line 11\n"));
  EXPECT_THAT(m, HasSubstr("nix line 30"));
  EXPECT_THAT(m, Not(HasSubstr("nix line 10\n")));
  ASSERT_EQ(seen.size(), 30u);  // every line was seen while it ran
  EXPECT_EQ(seen.front(), "nix line 1");
  EXPECT_THAT(Read("args"), HasSubstr("build\n--no-link\n--json\n-L\npath:/x#y\n"));
}

TEST(NixCli, MissingProgramIsNotFound) {
  NixSettings s;
  s.program = "/nonexistent/nix";
  NixCli cli(s, {}, nullptr);
  EXPECT_EQ(cli.Build("path:/x#y").status().code(), Code::kNotFound);
}

}  // namespace
}  // namespace nixmox::nix
