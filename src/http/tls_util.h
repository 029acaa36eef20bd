// Test-grade TLS helpers over OpenSSL (no cpprest): a self-signed serving
// certificate for simulators and tests, and writing PEM to files.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "src/common/status.h"

namespace nixmox::http {

struct CertAndKey {
  std::string cert_pem;
  std::string key_pem;  // unencrypted PKCS#8; a secret, never log it
};

// A self-signed certificate that is its own CA (basicConstraints CA:TRUE), so a
// client can trust it through TlsConfig::ca_pem. `names` become the
// subjectAltNames: entries that parse as IPv4/IPv6 addresses are IP SANs, the
// rest DNS SANs. Key: EC P-256. Valid from one hour ago for `days` days.
Result<CertAndKey> GenerateSelfSignedCert(const std::string& common_name,
                                          const std::vector<std::string>& names, int days = 30);

// Writes `pem` to `path` (mode 0600, replacing the file).
Status WritePemFile(const std::filesystem::path& path, const std::string& pem);

}  // namespace nixmox::http
