#include "src/nix/image_file.h"

#include <algorithm>
#include <fstream>

namespace nixmox::nix {
namespace {

namespace fs = std::filesystem;

// Deep enough for $out/<dir>/<image>; NixOS image outputs keep it at the top.
constexpr int kMaxDepth = 3;

bool HasSuffix(const std::string& name, const ImageFormat& format) {
  return std::any_of(format.suffixes.begin(), format.suffixes.end(), [&](const std::string& s) {
    return name.size() > s.size() && name.compare(name.size() - s.size(), s.size(), s) == 0;
  });
}

void Collect(const fs::path& dir, const ImageFormat& format, int depth,
             std::vector<fs::path>& found) {
  std::error_code ec;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    const fs::path& p = it->path();
    const std::string name = p.filename().string();
    if (it->is_directory(ec)) {
      if (depth < kMaxDepth && name != "nix-support") Collect(p, format, depth + 1, found);
    } else if (it->is_regular_file(ec) && HasSuffix(name, format)) {
      found.push_back(p);
    }
  }
}

}  // namespace

Result<ImageFormat> LookupImageFormat(std::string_view name) {
  if (name == "qcow2") return ImageFormat{"qcow2", {".qcow2"}, "qcow2", ""};
  if (name == "raw") return ImageFormat{"raw", {".raw", ".img"}, "raw", ""};
  if (name == "vma") {
    return ImageFormat{
        "vma",
        {".vma.zst", ".vma.lzo", ".vma.gz", ".vma"},
        "",
        "a VMA is a vzdump backup archive (content 'backup'); Proxmox VE 8.4's upload API "
        "takes content iso, vztmpl or import, and import accepts .qcow2, .raw, .vmdk and .ova "
        "only, so a VMA cannot be uploaded through the API (build qcow2 or raw instead)"};
  }
  return InvalidError("unknown image format '" + std::string(name) + "' (qcow2, raw or vma)");
}

Result<fs::path> FindImageFile(const fs::path& output, const ImageFormat& format) {
  std::error_code ec;
  // A store path may be a symlink to the image (or to a directory holding it).
  const fs::path target = fs::is_symlink(output, ec) ? fs::canonical(output, ec) : output;
  if (fs::is_regular_file(target, ec)) {
    if (HasSuffix(output.filename().string(), format) ||
        HasSuffix(target.filename().string(), format)) {
      return target;
    }
    return NotFoundError(output.string() + " is a single file without a " + format.name +
                         " extension");
  }
  if (!fs::is_directory(target, ec)) {
    return NotFoundError(output.string() + " does not exist or is neither file nor directory");
  }
  std::vector<fs::path> found;
  Collect(target, format, 1, found);
  if (found.empty()) {
    std::string wanted;
    for (const std::string& s : format.suffixes) wanted += (wanted.empty() ? "*" : ", *") + s;
    return NotFoundError("no " + wanted + " file in " + output.string());
  }
  if (found.size() > 1) {
    std::sort(found.begin(), found.end());
    std::string list;
    for (const fs::path& p : found) list += (list.empty() ? "" : ", ") + p.string();
    return InvalidError("several " + format.name + " images in " + output.string() + ": " + list);
  }
  return found.front();
}

std::optional<std::uint64_t> Qcow2VirtualSize(const fs::path& file) {
  std::ifstream in(file, std::ios::binary);
  unsigned char header[32];
  if (!in.read(reinterpret_cast<char*>(header), sizeof header)) return std::nullopt;
  if (header[0] != 'Q' || header[1] != 'F' || header[2] != 'I' || header[3] != 0xfb) {
    return std::nullopt;
  }
  std::uint64_t size = 0;  // big-endian at offset 24
  for (int i = 24; i < 32; ++i) size = (size << 8) | header[i];
  return size;
}

}  // namespace nixmox::nix
