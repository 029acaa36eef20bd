// The builder's result message: what nixmox-builder writes and the NixImage
// controller reads must be the same object, within the kubelet's 4096 bytes.
#include "src/nix/result.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

namespace nixmox::nix {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;

constexpr char kStorePath[] = "/nix/store/0c8mv1s3s0j7ba7f8d2vn5bz4qz8wgky-nixos-image.qcow2";

BuildResult Success() {
  BuildResult r;
  r.ok = true;
  r.store_path = kStorePath;
  r.nar_hash = "sha256-3cxL1aJ8m1oQ0m0k5v9GfBq8XoQ3Zl4ZPpv1KfJZy8c=";
  r.nar_size = 123456;
  r.size = 120000;
  r.format = "qcow2";
  r.volume_id = "local:import/nixmox-web-0c8mv1s3s0j7ba7f8d2vn5bz4qz8wgky.qcow2";
  r.nodes = {"pve1", "pve2"};
  r.uploaded = true;
  r.flake_revision = "4f1c2e7a9b3d4c5e8f600a1b2c3d4e5f60718293";
  r.kvm = true;
  r.build_seconds = 12.5;
  r.upload_seconds = 3.25;
  return r;
}

TEST(BuildResult, SuccessRoundTripsThroughTheMessage) {
  const BuildResult r = Success();
  auto parsed = ParseResult(ToMessage(r));
  ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
  EXPECT_EQ(*parsed, r);
}

TEST(BuildResult, SuccessUsesTheDocumentedFieldNames) {
  const nlohmann::json j = nlohmann::json::parse(ToMessage(Success()));
  EXPECT_EQ(j["ok"], true);
  EXPECT_EQ(j["storePath"], kStorePath);
  EXPECT_EQ(j["narSize"], 123456);
  EXPECT_EQ(j["size"], 120000);
  EXPECT_EQ(j["volumeId"], Success().volume_id);
  EXPECT_EQ(j["nodes"], nlohmann::json({"pve1", "pve2"}));
  EXPECT_EQ(j["uploaded"], true);
  EXPECT_EQ(j["kvm"], true);
  EXPECT_EQ(j["buildSeconds"], 12.5);
  EXPECT_EQ(j["uploadSeconds"], 3.25);
  EXPECT_FALSE(j.contains("stage"));
  EXPECT_FALSE(j.contains("error"));
  EXPECT_FALSE(j.contains("unchanged"));
}

TEST(BuildResult, UnchangedCarriesOnlyTheRevision) {
  BuildResult r;
  r.ok = true;
  r.unchanged = true;
  r.flake_revision = "abc123";
  const std::string message = ToMessage(r);
  EXPECT_EQ(nlohmann::json::parse(message),
            nlohmann::json({{"ok", true}, {"unchanged", true}, {"flakeRevision", "abc123"}}));
  auto parsed = ParseResult(message);
  ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
  EXPECT_EQ(*parsed, r);
}

TEST(BuildResult, NotUploadedRoundTripsAsFalse) {
  BuildResult r = Success();
  r.uploaded = false;
  r.kvm = false;
  auto parsed = ParseResult(ToMessage(r));
  ASSERT_TRUE(parsed.ok());
  EXPECT_FALSE(parsed->uploaded);
  EXPECT_FALSE(parsed->kvm);
  EXPECT_EQ(*parsed, r);
}

TEST(BuildResult, FailureRoundTripsWithItsStage) {
  for (Stage stage : {Stage::kArguments, Stage::kBuild, Stage::kUpload}) {
    BuildResult r;
    r.stage = stage;
    r.error = "error: builder for '/nix/store/x.drv' failed with exit code 1";
    auto parsed = ParseResult(ToMessage(r));
    ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
    EXPECT_EQ(*parsed, r) << StageName(stage);
  }
  EXPECT_EQ(StageName(Stage::kUpload), "upload");
}

TEST(BuildResult, LongErrorIsCutFromTheFrontToFitTheLimit) {
  BuildResult r;
  r.stage = Stage::kBuild;
  for (int i = 0; i < 400; ++i) r.error += "line " + std::to_string(i) + ": something \"quoted\"\n";
  r.error += "the last line says why";
  const std::string message = ToMessage(r);
  EXPECT_LE(message.size(), kMaxMessageBytes);
  auto parsed = ParseResult(message);
  ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
  EXPECT_THAT(parsed->error, StartsWith("..."));
  EXPECT_THAT(parsed->error, HasSubstr("the last line says why"));
  EXPECT_EQ(parsed->stage, Stage::kBuild);
}

TEST(BuildResult, ErrorNeedingEscapesStillFits) {
  BuildResult r;
  r.error = std::string(6000, '\x01');  // each byte becomes \u0001 (6 bytes) in JSON
  const std::string message = ToMessage(r);
  EXPECT_LE(message.size(), kMaxMessageBytes);
  EXPECT_TRUE(ParseResult(message).ok());
}

// Regression: nix's stderr is not always UTF-8 and a cut may land inside a
// character; dump() used to throw on that and the builder wrote no result.
TEST(BuildResult, ErrorWithInvalidUtf8IsWrittenNotThrown) {
  BuildResult r;
  r.error = "bad byte \xff here";
  std::string message;
  ASSERT_NO_THROW(message = ToMessage(r));
  auto parsed = ParseResult(message);
  ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
  EXPECT_THAT(parsed->error, HasSubstr("bad byte"));
  EXPECT_THAT(parsed->error, HasSubstr("here"));
}

TEST(BuildResult, CutNeverSplitsACharacter) {
  // The text after the characters moves where the cut lands among them.
  for (const std::string end : {"", "x", "xy"}) {
    BuildResult r;
    for (int i = 0; i < 3000; ++i) r.error += "\xe2\x80\x98";  // U+2018, three bytes each
    r.error += end;
    const std::string message = ToMessage(r);
    EXPECT_LE(message.size(), kMaxMessageBytes);
    EXPECT_EQ(message.find("\xef\xbf\xbd"), std::string::npos) << "a replacement character";
    auto parsed = ParseResult(message);
    ASSERT_TRUE(parsed.ok());
    EXPECT_EQ((parsed->error.size() - 3 - end.size()) % 3, 0u);
  }
}

TEST(ParseResult, RejectsWhatIsNotAResult) {
  EXPECT_EQ(ParseResult("").status().code(), Code::kInvalid);
  EXPECT_EQ(ParseResult("Error: container killed").status().code(), Code::kInvalid);
  EXPECT_EQ(ParseResult("[1,2]").status().code(), Code::kInvalid);
  EXPECT_EQ(ParseResult(R"({"ok":"yes"})").status().code(), Code::kInvalid);
  EXPECT_EQ(ParseResult(R"({"ok":true,"narSize":"big","storePath":"/nix/store/x","volumeId":"v"})")
                .status()
                .code(),
            Code::kInvalid);
  EXPECT_EQ(ParseResult(R"({"ok":false,"stage":"deploy","error":"x"})").status().code(),
            Code::kInvalid);
  // A success must say what it built and where it went.
  EXPECT_EQ(ParseResult(R"({"ok":true})").status().code(), Code::kInvalid);
}

TEST(ParseResult, IgnoresUnknownFields) {
  auto parsed = ParseResult(R"({"ok":false,"stage":"upload","error":"x","future":1})");
  ASSERT_TRUE(parsed.ok());
  EXPECT_EQ(parsed->stage, Stage::kUpload);
}

TEST(Tail, KeepsTheLastNonEmptyLines) {
  EXPECT_EQ(Tail("a\nb\n\nc\r\nd  \n\n", 3, 100), "b\nc\nd");
  EXPECT_EQ(Tail("only", 5, 100), "only");
  EXPECT_EQ(Tail("", 5, 100), "");
  EXPECT_EQ(Tail("a\nb", 0, 100), "");
}

TEST(Tail, CutsAtALineBoundaryWhenItCan) {
  EXPECT_EQ(Tail("first line\nsecond\nthird", 3, 14), "second\nthird");
  // One line too long: its end.
  EXPECT_EQ(Tail("abcdefghij", 3, 4), "ghij");
}

TEST(Tail, DoesNotSplitACharacter) {
  const std::string t = Tail("x\xe2\x80\x98y", 1, 3);  // "‘y" is 4 bytes
  EXPECT_EQ(t, "y");
}

TEST(Progress, LineRoundTripsAndTheLastOneWins) {
  const Progress build{Stage::kBuild, -1, "building '/nix/store/x.drv'"};
  const Progress upload{Stage::kUpload, 45, "120/260 MiB to pve1"};
  const std::string line = FormatProgress(upload);
  EXPECT_THAT(line, StartsWith("nixmox-progress {"));
  EXPECT_EQ(line.find('\n'), std::string::npos);
  const std::string log = "2026-01-01 info something\n" + FormatProgress(build) + "\n" + line +
                          "\nnixmox-progress {broken\nplain text\n";
  EXPECT_EQ(LastProgress(log), upload);
  EXPECT_EQ(LastProgress(FormatProgress(build)), build);
  EXPECT_EQ(LastProgress("no progress here\n"), std::nullopt);
}

TEST(Progress, UnknownPercentIsLeftOut) {
  const std::string line = FormatProgress({Stage::kBuild, -1, "x"});
  EXPECT_EQ(line.find("percent"), std::string::npos);
}

TEST(StoreHash, TakesTheHashOfAStorePath) {
  EXPECT_EQ(StoreHash(kStorePath), "0c8mv1s3s0j7ba7f8d2vn5bz4qz8wgky");
  EXPECT_EQ(StoreHash("/nix/store/0c8mv1s3s0j7ba7f8d2vn5bz4qz8wgky"),
            "0c8mv1s3s0j7ba7f8d2vn5bz4qz8wgky");
  EXPECT_EQ(StoreHash("/nix/store/0c8mv1s3s0j7ba7f8d2vn5bz4qz8wgky-x/sub/file.qcow2"),
            "0c8mv1s3s0j7ba7f8d2vn5bz4qz8wgky");
}

TEST(StoreHash, RejectsWhatIsNotAStorePath) {
  EXPECT_EQ(StoreHash("/tmp/0c8mv1s3s0j7ba7f8d2vn5bz4qz8wgky-x"), "");
  EXPECT_EQ(StoreHash("/nix/store/short-x"), "");
  EXPECT_EQ(StoreHash("/nix/store/0c8mv1s3s0j7ba7f8d2vn5bz4qz8wgkyX"), "");
  // Outside nix's base-32 alphabet (e, o, t, u and capitals never occur).
  EXPECT_EQ(StoreHash("/nix/store/0c8mv1s3s0j7ba7f8d2vn5bz4qz8wgke-x"), "");
  EXPECT_EQ(StoreHash("/nix/store/0C8MV1S3S0J7BA7F8D2VN5BZ4QZ8WGKY-x"), "");
}

TEST(VolumeFileName, NamesTheImageByStoreHash) {
  EXPECT_EQ(VolumeFileName("web", kStorePath, "qcow2"),
            "nixmox-web-0c8mv1s3s0j7ba7f8d2vn5bz4qz8wgky.qcow2");
  EXPECT_EQ(VolumeFileName("db.prod", kStorePath, "raw"),
            "nixmox-db.prod-0c8mv1s3s0j7ba7f8d2vn5bz4qz8wgky.raw");
}

}  // namespace
}  // namespace nixmox::nix
