// nixmox-builder as the Job runs it: the real binary runs real nix (Debian's
// nix-bin, no daemon, default store) on the offline example flake and uploads
// to a real pve-sim process over HTTPS with a verified certificate.
//
// nix without a daemon needs root (it writes /nix). As root every test runs
// and a missing or broken nix fails them; as another user they are skipped
// when nix cannot build here, with the reason.
#include <fcntl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>

#include "src/http/http.h"
#include "src/http/tls_util.h"
#include "src/nix/result.h"
#include "src/proxmox/client.h"
#include "test/support/subprocess.h"

namespace nixmox::nix {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using nixmox::testing::RunCommand;
using nixmox::testing::Subprocess;
using nixmox::testing::TempDir;
using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::StartsWith;

constexpr char kTokenId[] = "root@pam!builder";
constexpr char kTokenSecret[] = "c4a1e9f0-3b7d-4d2e-9a56-8f1b0c2d3e4f";
constexpr char kAccessToken[] = "ghp_n1xm0xAcc3ssT0kenThatMustNotLeak";

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// The offline flake's nix options for this machine (what the Job passes in CI).
const std::vector<std::string> kNixOptions = {"--nix-option", "sandbox=false", "--nix-option",
                                              "substituters="};

// Why nix cannot run here, or "" when it can (or when we are root: then it must).
std::string NixUnavailableReason(const std::string& flake_dir) {
  if (::geteuid() == 0) return "";
  auto r = RunCommand(
      {"nix", "--extra-experimental-features", "nix-command flakes", "--option", "sandbox", "false",
       "--option", "substituters", "", "build", "--no-link", "path:" + flake_dir + "#qcow2"},
      120s);
  if (r.exit_code == 0) return "";
  return "not root, and nix cannot build without a daemon here (it writes /nix as root): " +
         Tail(r.output, 3, 400);
}

struct BuilderRun {
  int exit_code = -1;
  std::string out, err, result_text;
  BuildResult result;
  bool parsed = false;
};

class BuilderTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // The flake in a directory of its own: a path: flake is all of its directory.
    flake_dir_ = dir_.File("flake");
    fs::create_directories(flake_dir_);
    fs::copy_file(NIXMOX_OFFLINE_FLAKE "/flake.nix", flake_dir_ + "/flake.nix");
    if (std::string why = NixUnavailableReason(flake_dir_); !why.empty()) GTEST_SKIP() << why;

    auto cert = http::GenerateSelfSignedCert("pve-sim", {"127.0.0.1"});
    ASSERT_TRUE(cert.ok()) << cert.status().ToString();
    ca_pem_ = cert->cert_pem;
    ASSERT_TRUE(http::WritePemFile(dir_.File("cert.pem"), cert->cert_pem).ok());
    ASSERT_TRUE(http::WritePemFile(dir_.File("key.pem"), cert->key_pem).ok());
    auto sim = Subprocess::Start(
        {NIXMOX_PVE_SIM_PATH, "--listen", "127.0.0.1:0", "--nodes", "pve1,pve2", "--token",
         std::string(kTokenId) + "=" + kTokenSecret, "--task-ms", "100", "--tls-cert",
         dir_.File("cert.pem"), "--tls-key", dir_.File("key.pem"), "--auth-fail-delay-ms", "10"},
        {}, dir_.File("pve-sim.log"));
    ASSERT_TRUE(sim.ok()) << sim.status().ToString();
    sim_ = std::make_unique<Subprocess>(std::move(sim).value());
    auto url = sim_->ReadLine(30s);
    ASSERT_TRUE(url.ok()) << "pve-sim printed no URL: " << url.status().ToString();
    url_ = *url;
    ASSERT_THAT(url_, StartsWith("https://"));

    proxmox::PveClientOptions o;
    o.base_url = url_;
    o.tls.ca_pem = ca_pem_;
    o.token = proxmox::ApiToken(kTokenId, kTokenSecret);
    auto pve = proxmox::ConnectPveClient(o);
    ASSERT_TRUE(pve.ok()) << pve.status().ToString();
    pve_ = std::move(pve).value();
  }

  std::vector<std::string> Args(const std::string& attribute, const std::string& format = "qcow2") {
    std::vector<std::string> args = {
        "--flake", "path:" + flake_dir_, "--attribute", attribute,   "--format", format, "--image",
        "web",     "--pve-url",          url_,          "--storage", "local"};
    args.insert(args.end(), kNixOptions.begin(), kNixOptions.end());
    return args;
  }

  // Runs nixmox-builder with the token (and `env`) in its environment;
  // stdout, stderr and the result file are kept apart.
  BuilderRun Builder(std::vector<std::string> args, std::vector<std::string> env = {},
                     bool with_ca = true) {
    const std::string n = std::to_string(++runs_);
    const std::string out = dir_.File("out" + n), err = dir_.File("err" + n),
                      result = dir_.File("result" + n + ".json");
    std::vector<std::string> argv = {"/usr/bin/env", std::string("NIXMOX_PVE_TOKEN_ID=") + kTokenId,
                                     std::string("NIXMOX_PVE_TOKEN_SECRET=") + kTokenSecret};
    if (with_ca) argv.push_back("NIXMOX_PVE_CA=" + ca_pem_);
    argv.insert(argv.end(), env.begin(), env.end());
    argv.insert(argv.end(), {"/bin/sh", "-c", "exec \"$0\" \"$@\" >" + out + " 2>" + err,
                             NIXMOX_BUILDER_PATH, "--result-file", result});
    argv.insert(argv.end(), args.begin(), args.end());
    BuilderRun run;
    run.exit_code = RunCommand(argv, 300s).exit_code;
    run.out = ReadFile(out);
    run.err = ReadFile(err);
    run.result_text = ReadFile(result);
    auto parsed = ParseResult(run.result_text);
    run.parsed = parsed.ok();
    if (parsed.ok()) run.result = *parsed;
    return run;
  }

  std::vector<proxmox::StorageContent> Listed(const std::string& node) {
    auto listed = pve_->ListStorageContent(node, "local", "import");
    EXPECT_TRUE(listed.ok()) << listed.status().ToString();
    return listed.ok() ? *listed : std::vector<proxmox::StorageContent>{};
  }

  // How many uploads pve-sim has answered (its admin endpoint).
  int Uploads() {
    http::ClientOptions o;
    o.base_url = url_;
    o.tls.ca_pem = ca_pem_;
    auto client = http::NewClient(o);
    EXPECT_TRUE(client.ok());
    http::Request r;
    r.target = "/_sim/requests";
    auto resp = (*client)->Send(r);
    EXPECT_TRUE(resp.ok()) << resp.status().ToString();
    if (!resp.ok()) return -1;
    return nlohmann::json::parse(resp->body)
        .value("POST /nodes/{node}/storage/{storage}/upload", 0);
  }

  static std::string Describe(const BuilderRun& run) {
    return "exit " + std::to_string(run.exit_code) + "\nresult: " + run.result_text +
           "\nstdout:\n" + run.out + "\nstderr:\n" + run.err;
  }

  TempDir dir_;
  std::string flake_dir_;
  std::string ca_pem_;
  std::unique_ptr<Subprocess> sim_;
  std::string url_;
  std::unique_ptr<proxmox::PveClient> pve_;
  int runs_ = 0;
};

TEST_F(BuilderTest, BuildsTheFlakeAndUploadsTheImageToEveryNode) {
  BuilderRun run = Builder(Args("qcow2"));
  ASSERT_EQ(run.exit_code, kExitOk) << Describe(run);
  ASSERT_TRUE(run.parsed) << Describe(run);
  const BuildResult& r = run.result;
  EXPECT_TRUE(r.ok);
  EXPECT_FALSE(r.unchanged);
  ASSERT_EQ(StoreHash(r.store_path).size(), 32u) << r.store_path;
  EXPECT_THAT(r.nar_hash, StartsWith("sha256-"));
  EXPECT_EQ(r.format, "qcow2");
  EXPECT_THAT(r.flake_revision, StartsWith("sha256-")) << "a path: flake is known by its narHash";
  EXPECT_TRUE(r.uploaded);
  EXPECT_EQ(r.nodes, (std::vector<std::string>{"pve1", "pve2"}));

  // The image is the real qcow2 that qemu-img made in the store.
  const std::string image = r.store_path + "/offline.qcow2";
  ASSERT_TRUE(fs::exists(image));
  EXPECT_EQ(static_cast<std::uintmax_t>(r.size), fs::file_size(image));
  auto info = RunCommand({"qemu-img", "info", "--output=json", image});
  ASSERT_EQ(info.exit_code, 0) << info.output;
  EXPECT_EQ(nlohmann::json::parse(info.output)["virtual-size"], 64 * 1024 * 1024);
  // narSize as nix-store itself reports it.
  auto nar = RunCommand(
      {"nix-store", "--option", "build-users-group", "", "--query", "--size", r.store_path});
  ASSERT_EQ(nar.exit_code, 0) << nar.output;
  EXPECT_EQ(std::to_string(r.nar_size), Tail(nar.output, 1, 100));

  const std::string volume = "local:import/" + VolumeFileName("web", r.store_path, "qcow2");
  EXPECT_EQ(r.volume_id, volume);
  for (const std::string node : {"pve1", "pve2"}) {
    auto listed = Listed(node);
    ASSERT_EQ(listed.size(), 1u) << node;
    EXPECT_EQ(listed[0].volid, volume);
    EXPECT_EQ(listed[0].size, 64u * 1024 * 1024) << "qcow2 volumes list their virtual size";
  }
  EXPECT_EQ(Uploads(), 2);

  // kvm says whether /dev/kvm could be opened, as QEMU would.
  const int fd = ::open("/dev/kvm", O_RDWR | O_CLOEXEC);
  EXPECT_EQ(r.kvm, fd >= 0);
  if (fd >= 0) ::close(fd);

  // Progress went to stdout, logs to stderr.
  auto last = LastProgress(run.out);
  ASSERT_TRUE(last.has_value()) << run.out;
  EXPECT_EQ(last->stage, Stage::kUpload);
  EXPECT_EQ(last->percent, 100);
  EXPECT_THAT(run.out, HasSubstr(R"("stage":"build")"));
  EXPECT_THAT(run.err, HasSubstr("running nix"));
  EXPECT_THAT(run.err, Not(HasSubstr("nixmox-progress")));
}

TEST_F(BuilderTest, SecondRunFindsTheVolumeAndSkipsTheUpload) {
  BuilderRun first = Builder(Args("qcow2"));
  ASSERT_EQ(first.exit_code, kExitOk) << Describe(first);
  ASSERT_EQ(Uploads(), 2);
  BuilderRun second = Builder(Args("qcow2"));
  ASSERT_EQ(second.exit_code, kExitOk) << Describe(second);
  EXPECT_TRUE(second.result.ok);
  EXPECT_FALSE(second.result.uploaded);
  EXPECT_EQ(second.result.store_path, first.result.store_path);
  EXPECT_EQ(second.result.volume_id, first.result.volume_id);
  EXPECT_EQ(second.result.nodes, first.result.nodes);
  EXPECT_EQ(Uploads(), 2) << "nothing was sent again";
}

TEST_F(BuilderTest, ExplicitNodeGetsTheOnlyUpload) {
  std::vector<std::string> args = Args("raw", "raw");
  args.insert(args.end(), {"--node", "pve2"});
  BuilderRun run = Builder(args);
  ASSERT_EQ(run.exit_code, kExitOk) << Describe(run);
  EXPECT_EQ(run.result.nodes, std::vector<std::string>{"pve2"});
  EXPECT_THAT(run.result.volume_id, HasSubstr(".raw"));
  EXPECT_TRUE(Listed("pve1").empty());
  auto listed = Listed("pve2");
  ASSERT_EQ(listed.size(), 1u);
  EXPECT_EQ(listed[0].volid, run.result.volume_id);
  EXPECT_EQ(listed[0].size, 16u * 1024 * 1024);
  EXPECT_EQ(run.result.size, 16 * 1024 * 1024);
}

TEST_F(BuilderTest, UnmovedRevisionReportsUnchangedAndMovedOneBuilds) {
  BuilderRun first = Builder(Args("qcow2"));
  ASSERT_EQ(first.exit_code, kExitOk) << Describe(first);
  const std::string revision = first.result.flake_revision;
  ASSERT_FALSE(revision.empty());

  std::vector<std::string> args = Args("qcow2");
  args.insert(args.end(), {"--expect-revision", revision});
  BuilderRun same = Builder(args);
  ASSERT_EQ(same.exit_code, kExitOk) << Describe(same);
  EXPECT_TRUE(same.result.ok);
  EXPECT_TRUE(same.result.unchanged);
  EXPECT_EQ(same.result.flake_revision, revision);
  EXPECT_EQ(same.result.store_path, "");
  EXPECT_THAT(same.err, Not(HasSubstr(" build --no-link"))) << "nothing was built";

  // The flake moves (a new file in it changes its narHash): a real build.
  std::ofstream(flake_dir_ + "/README") << "moved\n";
  BuilderRun moved = Builder(args);
  ASSERT_EQ(moved.exit_code, kExitOk) << Describe(moved);
  EXPECT_FALSE(moved.result.unchanged);
  EXPECT_NE(moved.result.flake_revision, revision);
  EXPECT_EQ(moved.result.store_path, first.result.store_path) << "same derivation, same image";
  EXPECT_FALSE(moved.result.uploaded);
}

TEST_F(BuilderTest, FailingBuildReportsNixsErrorWithExitCodeThree) {
  BuilderRun run = Builder(Args("broken"));
  EXPECT_EQ(run.exit_code, kExitBuildFailed) << Describe(run);
  ASSERT_TRUE(run.parsed) << Describe(run);
  EXPECT_FALSE(run.result.ok);
  EXPECT_EQ(run.result.stage, Stage::kBuild);
  EXPECT_THAT(run.result.error, HasSubstr("this attribute fails on purpose"));
  EXPECT_THAT(run.result.error, HasSubstr("failed with exit code 1"));
  EXPECT_LE(run.result_text.size(), kMaxMessageBytes);
  EXPECT_EQ(Uploads(), 0);
}

TEST_F(BuilderTest, FlakeThatDoesNotEvaluateReportsNixsError) {
  std::ofstream(flake_dir_ + "/flake.nix") << "{ outputs = { self }: { packages = ; }; }\n";
  BuilderRun run = Builder(Args("qcow2"));
  EXPECT_EQ(run.exit_code, kExitBuildFailed) << Describe(run);
  EXPECT_EQ(run.result.stage, Stage::kBuild);
  EXPECT_THAT(run.result.error, HasSubstr("syntax error"));
}

TEST_F(BuilderTest, MissingAttributeReportsNixsError) {
  BuilderRun run = Builder(Args("no-such-image"));
  EXPECT_EQ(run.exit_code, kExitBuildFailed) << Describe(run);
  EXPECT_THAT(run.result.error, HasSubstr("no-such-image"));
}

TEST_F(BuilderTest, WrongFormatForTheOutputIsABuildFailure) {
  BuilderRun run = Builder(Args("qcow2", "raw"));
  EXPECT_EQ(run.exit_code, kExitBuildFailed) << Describe(run);
  EXPECT_THAT(run.result.error, HasSubstr("no *.raw, *.img file"));
}

TEST_F(BuilderTest, UploadRefusedByProxmoxExitsWithFour) {
  std::vector<std::string> args = Args("qcow2");
  args[11] = "local-lvm";  // --storage: block storage takes no uploads (nor import content)
  ASSERT_EQ(args[10], "--storage");
  BuilderRun run = Builder(args);
  EXPECT_EQ(run.exit_code, kExitUploadFailed) << Describe(run);
  EXPECT_EQ(run.result.stage, Stage::kUpload);
  EXPECT_THAT(run.result.error, HasSubstr("local-lvm"));
}

TEST_F(BuilderTest, VerifiesTheCertificateUnlessToldNotTo) {
  BuilderRun untrusted = Builder(Args("qcow2"), {}, /*with_ca=*/false);
  EXPECT_EQ(untrusted.exit_code, kExitUploadFailed) << Describe(untrusted);
  EXPECT_EQ(untrusted.result.stage, Stage::kUpload);
  EXPECT_THAT(untrusted.result.error, HasSubstr("SSL handshake"));
  EXPECT_EQ(Uploads(), 0);

  std::vector<std::string> args = Args("qcow2");
  args.push_back("--pve-insecure");
  BuilderRun insecure = Builder(args, {}, /*with_ca=*/false);
  EXPECT_EQ(insecure.exit_code, kExitOk) << Describe(insecure);
  EXPECT_EQ(Uploads(), 2);
}

TEST_F(BuilderTest, SecretsAppearNowhere) {
  const std::vector<std::string> env = {std::string("NIX_ACCESS_TOKENS=github.com=") +
                                        kAccessToken};
  std::vector<BuilderRun> runs;
  runs.push_back(Builder(Args("qcow2"), env));   // success
  runs.push_back(Builder(Args("broken"), env));  // build failure
  std::vector<std::string> bad_storage = Args("qcow2");
  bad_storage[11] = "local-lvm";
  runs.push_back(Builder(bad_storage, env));  // upload failure
  // A wrong secret: Proxmox answers 401 and the error must not echo it.
  std::vector<std::string> wrong = {std::string("NIXMOX_PVE_TOKEN_SECRET=") + kTokenSecret + "x"};
  wrong.insert(wrong.end(), env.begin(), env.end());
  runs.push_back(Builder(Args("qcow2"), wrong));
  EXPECT_EQ(runs[0].exit_code, kExitOk) << Describe(runs[0]);
  EXPECT_EQ(runs[1].exit_code, kExitBuildFailed) << Describe(runs[1]);
  EXPECT_EQ(runs[2].exit_code, kExitUploadFailed) << Describe(runs[2]);
  EXPECT_EQ(runs[3].exit_code, kExitUploadFailed) << Describe(runs[3]);
  for (const BuilderRun& run : runs) {
    for (const std::string& text : {run.out, run.err, run.result_text}) {
      EXPECT_THAT(text, Not(HasSubstr(kTokenSecret)));
      EXPECT_THAT(text, Not(HasSubstr(kAccessToken)));
    }
  }
  // The token id may be named (it is not a secret); the log says whose token it is.
  EXPECT_THAT(runs[0].err, HasSubstr(std::string(kTokenId) + "=<redacted>"));
}

TEST_F(BuilderTest, BadArgumentsExitWithTwoAndSayWhich) {
  std::vector<std::string> args = Args("qcow2");
  args.insert(args.end(), {"--kvm", "Sometimes"});
  BuilderRun run = Builder(args);
  EXPECT_EQ(run.exit_code, kExitBadArguments) << Describe(run);
  ASSERT_TRUE(run.parsed) << Describe(run);
  EXPECT_EQ(run.result.stage, Stage::kArguments);
  EXPECT_THAT(run.result.error, HasSubstr("--kvm"));

  BuilderRun vma = Builder(Args("qcow2", "vma"));
  EXPECT_EQ(vma.exit_code, kExitBadArguments) << Describe(vma);
  EXPECT_THAT(vma.result.error, HasSubstr("--format vma"));
}

}  // namespace
}  // namespace nixmox::nix
