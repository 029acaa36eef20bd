// Image formats and where an image sits in a build's output.
//
// A NixOS image derivation puts its image in $out (nixpkgs' make-disk-image:
// $out/nixos.qcow2; system.build.image: $out/nixos-image-*.qcow2; the
// Proxmox VMA builder: $out/vzdump-qemu-*.vma.zst), and a plain derivation may
// be the image file itself. FindImageFile looks for the one file of the
// format's extensions there.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "src/common/status.h"

namespace nixmox::nix {

struct ImageFormat {
  std::string name;                   // qcow2, raw, vma
  std::vector<std::string> suffixes;  // the file names looked for, e.g. ".raw", ".img"
  // The extension of the uploaded volume: Proxmox VE 8.4's `import` content
  // accepts .qcow2, .raw, .vmdk and .ova only, so raw images from ".img"
  // files travel as ".raw". Empty: the format cannot be uploaded at all.
  std::string upload_extension;
  // Why `upload_extension` is empty.
  std::string not_uploadable_reason;
};

// kInvalid for an unknown format name.
Result<ImageFormat> LookupImageFormat(std::string_view name);

// The image file of `format` in `output` (a store path: a file or a
// directory, searched a few levels deep, nix-support/ skipped). kNotFound when
// there is none, kInvalid when there are several (the message lists them).
Result<std::filesystem::path> FindImageFile(const std::filesystem::path& output,
                                            const ImageFormat& format);

// The virtual disk size in a qcow2 file's header; nullopt when `file` is not qcow2.
std::optional<std::uint64_t> Qcow2VirtualSize(const std::filesystem::path& file);

}  // namespace nixmox::nix
