#include "src/nix/build_key.h"

#include <openssl/evp.h>

#include <array>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "src/api/types.h"

namespace nixmox::nix {
namespace {

std::string Sha256Hex(const std::string& data) {
  std::array<unsigned char, EVP_MAX_MD_SIZE> digest{};
  unsigned int length = 0;
  EVP_Digest(data.data(), data.size(), digest.data(), &length, EVP_sha256(), nullptr);
  std::string hex;
  hex.reserve(length * 2);
  for (unsigned int i = 0; i < length; ++i) {
    char byte[3];
    std::snprintf(byte, sizeof byte, "%02x", digest[i]);
    hex += byte;
  }
  return hex;
}

}  // namespace

std::string BuildKey(const api::NixImageSpec& spec, std::string_view storage,
                     std::string_view rebuild_token) {
  // nlohmann::json objects keep their keys sorted: the dump is canonical.
  nlohmann::json input = {
      {"v", 1},
      {"flake", spec.flake},
      {"attribute", spec.attribute},
      {"format", api::EnumName(spec.format)},
      {"substituters", spec.nix.substituters},
      {"trustedPublicKeys", spec.nix.trusted_public_keys},
      {"extraOptions", spec.nix.extra_options},
      {"cluster", spec.cluster_ref.name},
      {"storage", storage},
      {"rebuild", rebuild_token},
  };
  return Sha256Hex(input.dump()).substr(0, 16);
}

std::string JobName(std::string_view image, std::string_view key, std::string_view suffix) {
  constexpr std::size_t kMaxName = 63;
  std::string tail = "-" + std::string(key.substr(0, 8));
  if (!suffix.empty()) tail += "-" + std::string(suffix);
  std::string head(image.substr(0, kMaxName - std::min(kMaxName, tail.size())));
  while (!head.empty() && (head.back() == '-' || head.back() == '.')) head.pop_back();
  return head + tail;
}

}  // namespace nixmox::nix
