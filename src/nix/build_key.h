// The build key: which builds of a NixImage are the same build.
//
// Two specs with the same key produce the same image in the same place, so
// a finished build for the key is reused and nothing is rebuilt. The key
// covers what decides the result (flake, attribute, format, the Nix options
// that change what is fetched or built) and where it is uploaded (cluster
// and storage: a new target needs a new upload), plus the value of the
// nixmox.io/rebuild annotation, so that changing that value forces a build.
// Builder resources, timeout and image do not change the result and are
// left out.
#pragma once

#include <string>
#include <string_view>

#include "src/api/types.h"

namespace nixmox::nix {

// The annotation whose new value asks for a rebuild of an unchanged spec.
inline constexpr char kRebuildAnnotation[] = "nixmox.io/rebuild";

// 16 lowercase hex digits (the first 64 bits of a SHA-256). `storage` is the
// resolved target storage (spec.storage or the cluster's imageStorage).
std::string BuildKey(const api::NixImageSpec& spec, std::string_view storage,
                     std::string_view rebuild_token);

// "<image>-<key8>" and, for `suffix` non-empty, "<image>-<key8>-<suffix>";
// the image part is shortened so that the name stays within 63 characters
// (a Job's name is also a label value).
std::string JobName(std::string_view image, std::string_view key, std::string_view suffix = "");

}  // namespace nixmox::nix
