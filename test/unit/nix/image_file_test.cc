// Finding the image in a build's output, as NixOS image builders lay it out.
#include "src/nix/image_file.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "test/support/subprocess.h"

namespace nixmox::nix {
namespace {

namespace fs = std::filesystem;
using nixmox::testing::TempDir;
using ::testing::HasSubstr;

class ImageFile : public ::testing::Test {
 protected:
  fs::path Touch(const std::string& relative, const std::string& content = "data") {
    const fs::path p = fs::path(dir_.path()) / relative;
    fs::create_directories(p.parent_path());
    std::ofstream(p) << content;
    return p;
  }
  fs::path Out() const { return fs::path(dir_.path()) / "out"; }
  static ImageFormat Format(const std::string& name) { return LookupImageFormat(name).value(); }

  TempDir dir_;
};

TEST_F(ImageFile, FindsTheQcow2OfAMakeDiskImageOutput) {
  Touch("out/nix-support/hydra-build-products", "file qcow2 x");
  const fs::path image = Touch("out/nixos.qcow2");
  auto found = FindImageFile(Out(), Format("qcow2"));
  ASSERT_TRUE(found.ok()) << found.status().ToString();
  EXPECT_EQ(*found, image);
}

TEST_F(ImageFile, FindsASystemBuildImageName) {
  const fs::path image = Touch("out/nixos-image-qcow2-25.05.20250101.abcdef-x86_64-linux.qcow2");
  Touch("out/nixos-image-qcow2-25.05.20250101.abcdef-x86_64-linux.qcow2.sha256", "x");
  auto found = FindImageFile(Out(), Format("qcow2"));
  ASSERT_TRUE(found.ok()) << found.status().ToString();
  EXPECT_EQ(*found, image);
}

TEST_F(ImageFile, FindsAnImageOneDirectoryDown) {
  const fs::path image = Touch("out/images/disk.raw");
  auto found = FindImageFile(Out(), Format("raw"));
  ASSERT_TRUE(found.ok()) << found.status().ToString();
  EXPECT_EQ(*found, image);
}

TEST_F(ImageFile, RawAlsoMeansImg) {
  const fs::path image = Touch("out/nixos.img");
  auto found = FindImageFile(Out(), Format("raw"));
  ASSERT_TRUE(found.ok()) << found.status().ToString();
  EXPECT_EQ(*found, image);
}

TEST_F(ImageFile, FindsACompressedVma) {
  const fs::path image = Touch("out/vzdump-qemu-nixos-25.05.vma.zst");
  auto found = FindImageFile(Out(), Format("vma"));
  ASSERT_TRUE(found.ok()) << found.status().ToString();
  EXPECT_EQ(*found, image);
}

TEST_F(ImageFile, AcceptsAnOutputThatIsTheImageFile) {
  const fs::path image = Touch("nixos.qcow2");
  auto found = FindImageFile(image, Format("qcow2"));
  ASSERT_TRUE(found.ok()) << found.status().ToString();
  EXPECT_EQ(*found, image);
  EXPECT_EQ(FindImageFile(image, Format("raw")).status().code(), Code::kNotFound);
}

TEST_F(ImageFile, MissingImageIsNotFoundAndSaysWhatWasWanted) {
  Touch("out/nixos.qcow2");
  auto found = FindImageFile(Out(), Format("raw"));
  ASSERT_FALSE(found.ok());
  EXPECT_EQ(found.status().code(), Code::kNotFound);
  EXPECT_THAT(found.status().message(), HasSubstr("*.raw, *.img"));
  EXPECT_EQ(FindImageFile(fs::path(dir_.path()) / "absent", Format("raw")).status().code(),
            Code::kNotFound);
}

TEST_F(ImageFile, SeveralImagesAreAnErrorListingThem) {
  Touch("out/a.qcow2");
  Touch("out/b/c.qcow2");
  auto found = FindImageFile(Out(), Format("qcow2"));
  ASSERT_FALSE(found.ok());
  EXPECT_EQ(found.status().code(), Code::kInvalid);
  EXPECT_THAT(found.status().message(), HasSubstr("a.qcow2"));
  EXPECT_THAT(found.status().message(), HasSubstr("c.qcow2"));
}

TEST_F(ImageFile, NixSupportIsNotSearched) {
  Touch("out/nix-support/old.qcow2");
  EXPECT_EQ(FindImageFile(Out(), Format("qcow2")).status().code(), Code::kNotFound);
}

TEST(ImageFormat, KnowsTheUploadExtensionsProxmoxAccepts) {
  EXPECT_EQ(LookupImageFormat("qcow2")->upload_extension, "qcow2");
  EXPECT_EQ(LookupImageFormat("raw")->upload_extension, "raw");
  auto vma = LookupImageFormat("vma");
  ASSERT_TRUE(vma.ok());
  EXPECT_EQ(vma->upload_extension, "");
  EXPECT_THAT(vma->not_uploadable_reason, HasSubstr("backup"));
  EXPECT_EQ(LookupImageFormat("vmdk").status().code(), Code::kInvalid);
}

TEST(Qcow2VirtualSize, ReadsTheHeaderOfARealImage) {
  TempDir dir;
  const std::string file = dir.File("disk.qcow2");
  auto made = nixmox::testing::RunCommand({"qemu-img", "create", "-q", "-f", "qcow2", file, "96M"});
  ASSERT_EQ(made.exit_code, 0) << made.output;
  EXPECT_EQ(Qcow2VirtualSize(file), 96u * 1024 * 1024);
  std::ofstream(dir.File("raw")) << "not a qcow2 header at all, long enough though";
  EXPECT_EQ(Qcow2VirtualSize(dir.File("raw")), std::nullopt);
  EXPECT_EQ(Qcow2VirtualSize(dir.File("absent")), std::nullopt);
}

}  // namespace
}  // namespace nixmox::nix
