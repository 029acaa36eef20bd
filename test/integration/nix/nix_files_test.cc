// The nix/ directory: nothing in it that needs nixpkgs can be built on these
// machines (no network), so these tests check what Debian's nix can check
// without it: every file parses, the pure parts evaluate, and the files ask
// for what the project needs. `--store dummy://` lets any user evaluate.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <string>
#include <vector>

#include "src/nix/result.h"
#include "test/support/subprocess.h"

namespace nixmox::nix {
namespace {

namespace fs = std::filesystem;
using nixmox::testing::CommandResult;
using nixmox::testing::RunCommand;
using ::testing::HasSubstr;

const fs::path kNixDir = NIXMOX_NIX_DIR;

CommandResult Eval(const std::string& expression) {
  return RunCommand(
      {"nix-instantiate", "--store", "dummy://", "--eval", "--strict", "--json", "-E", expression});
}

// The last line: nix may print warnings before the value.
std::string Value(const CommandResult& r) { return Tail(r.output, 1, 4096); }

TEST(NixFiles, EveryNixFileParses) {
  int files = 0;
  for (const auto& entry : fs::recursive_directory_iterator(kNixDir)) {
    if (!entry.is_regular_file() || entry.path().extension() != ".nix") continue;
    ++files;
    auto r =
        RunCommand({"nix-instantiate", "--store", "dummy://", "--parse", entry.path().string()});
    EXPECT_EQ(r.exit_code, 0) << entry.path() << ":\n" << r.output;
  }
  EXPECT_GE(files, 7) << "flake, package, images, version, module, two examples";
}

TEST(NixFiles, VersionIsCMakes) {
  auto r = Eval("import " + (kNixDir / "version.nix").string() + " " +
                (kNixDir.parent_path() / "CMakeLists.txt").string());
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(Value(r), "\"" NIXMOX_VERSION "\"");
}

TEST(NixFiles, PackageTakesTheProjectsDependencies) {
  auto r = Eval("builtins.attrNames (builtins.functionArgs (import " +
                (kNixDir / "package.nix").string() + "))");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  for (const char* dep : {"cmake", "ninja", "pkg-config", "cpprestsdk", "yaml-cpp", "nlohmann_json",
                          "spdlog", "prometheus-cpp", "openssl", "boost"}) {
    EXPECT_THAT(Value(r), HasSubstr(std::string("\"") + dep + "\"")) << dep;
  }
}

TEST(NixFiles, ImagesAreOperatorAndBuilder) {
  auto r = Eval("builtins.attrNames (import " + (kNixDir / "images.nix").string() + ")");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(Value(r), R"(["builder","operator"])");
}

TEST(NixFiles, ProxmoxGuestIsANixosModule) {
  auto r = Eval("builtins.functionArgs (import " +
                (kNixDir / "modules/proxmox-guest.nix").string() + ")");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(Value(r), R"({"config":false,"lib":false,"modulesPath":false,"pkgs":false})");
}

TEST(NixFiles, OfflineFlakeHasNoInputsAndTheAttributesTestsUse) {
  const std::string flake = "import " + (kNixDir / "examples/offline/flake.nix").string();
  auto inputs = Eval("(" + flake + ") ? inputs");
  ASSERT_EQ(inputs.exit_code, 0) << inputs.output;
  EXPECT_EQ(Value(inputs), "false");
  auto names =
      Eval("builtins.attrNames ((" + flake + ").outputs { self = null; }).packages.x86_64-linux");
  ASSERT_EQ(names.exit_code, 0) << names.output;
  EXPECT_EQ(Value(names), R"(["broken","default","qcow2","qcow2-v2","raw"])");
}

// Outputs are lazy: their names evaluate with a stand-in for nixpkgs that has
// only lib.genAttrs; no value that needs nixpkgs is forced.
std::string Outputs(const fs::path& flake, const std::string& system_attrs) {
  return "let lib = { genAttrs = names: f: builtins.listToAttrs (map (n: { name = n; value = f n; "
         "}) names); }; out = (import " +
         flake.string() + ").outputs { self = out; nixpkgs = { inherit lib; }; }; in " +
         system_attrs;
}

TEST(NixFiles, FlakeOffersPackagesImagesTheModuleAndTheExample) {
  auto r = Eval(Outputs(
      kNixDir / "flake.nix",
      "{ top = builtins.attrNames out; packages = builtins.attrNames out.packages.x86_64-linux; "
      "modules = builtins.attrNames out.nixosModules; "
      "module = baseNameOf (toString out.nixosModules.proxmox-guest); "
      "configs = builtins.attrNames out.nixosConfigurations; "
      "inputs = builtins.attrNames (builtins.functionArgs (import " +
          (kNixDir / "flake.nix").string() + ").outputs); }"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(Value(r), R"({"configs":["example-aarch64-linux","example-x86_64-linux"],)"
                      R"("inputs":["nixpkgs","self"],"module":"proxmox-guest.nix",)"
                      R"("modules":["default","proxmox-guest"],)"
                      R"("packages":["builder-image","default","example-qcow2","nixmox-builder",)"
                      R"("nixmox-operator","operator-image"],)"
                      R"("top":["nixosConfigurations","nixosModules","packages"]})");
}

TEST(NixFiles, ExampleFlakeOffersItsImages) {
  auto r = Eval(Outputs(kNixDir / "examples/nixos-qcow2/flake.nix",
                        "{ packages = builtins.attrNames out.packages.x86_64-linux; "
                        "configs = builtins.attrNames out.nixosConfigurations; }"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(Value(r), R"({"configs":["web"],"packages":["default","qcow2","qcow2-efi","raw"]})");
}

}  // namespace
}  // namespace nixmox::nix
