// nixmox-sandbox-cert CERT KEY NAME...: writes a fresh self-signed certificate
// for NAMEs (IP addresses or host names) to CERT and its private key to KEY.
// The sandbox serves pve-sim over HTTPS with it and hands the certificate to
// the ProxmoxCluster as its caBundle, so TLS is verified as with a real cluster.
#include <iostream>
#include <string>
#include <vector>

#include "src/http/tls_util.h"

int main(int argc, char** argv) {
  if (argc < 4) {
    std::cerr << "usage: nixmox-sandbox-cert CERT KEY NAME...\n";
    return 2;
  }
  const std::vector<std::string> names(argv + 3, argv + argc);
  auto cert = nixmox::http::GenerateSelfSignedCert("nixmox-sandbox", names, 7);
  if (!cert.ok()) {
    std::cerr << "nixmox-sandbox-cert: " << cert.status().ToString() << "\n";
    return 1;
  }
  for (const auto& [path, pem] :
       {std::pair{argv[1], cert->cert_pem}, std::pair{argv[2], cert->key_pem}}) {
    if (nixmox::Status s = nixmox::http::WritePemFile(path, pem); !s.ok()) {
      std::cerr << "nixmox-sandbox-cert: " << s.ToString() << "\n";
      return 1;
    }
  }
  return 0;
}
