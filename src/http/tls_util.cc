#include "src/http/tls_util.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <memory>

namespace nixmox::http {
namespace {

struct Free {
  void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }
  void operator()(EVP_PKEY_CTX* p) const { EVP_PKEY_CTX_free(p); }
  void operator()(X509* p) const { X509_free(p); }
  void operator()(BIO* p) const { BIO_free(p); }
  void operator()(GENERAL_NAMES* p) const { GENERAL_NAMES_free(p); }
  void operator()(X509_EXTENSION* p) const { X509_EXTENSION_free(p); }
  void operator()(BIGNUM* p) const { BN_free(p); }
};
template <typename T>
using Ptr = std::unique_ptr<T, Free>;

Status Fail(const char* what) {
  ERR_clear_error();
  return InternalError(std::string("generating certificate: ") + what);
}

std::string BioString(BIO* bio) {
  char* data = nullptr;
  const long len = BIO_get_mem_data(bio, &data);
  return std::string(data, static_cast<size_t>(len));
}

Status AddExtension(X509* cert, int nid, const char* value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, cert, cert, nullptr, nullptr, 0);
  Ptr<X509_EXTENSION> ext(X509V3_EXT_conf_nid(nullptr, &ctx, nid, value));
  if (!ext || X509_add_ext(cert, ext.get(), -1) != 1) return Fail("extension");
  return OkStatus();
}

// One SAN: an IP address when it parses as one, else a DNS name.
GENERAL_NAME* MakeName(const std::string& name) {
  unsigned char addr[16];
  int len = 0;
  if (inet_pton(AF_INET, name.c_str(), addr) == 1) {
    len = 4;
  } else if (inet_pton(AF_INET6, name.c_str(), addr) == 1) {
    len = 16;
  }
  GENERAL_NAME* gn = GENERAL_NAME_new();
  if (gn == nullptr) return nullptr;
  if (len > 0) {
    ASN1_OCTET_STRING* ip = ASN1_OCTET_STRING_new();
    ASN1_OCTET_STRING_set(ip, addr, len);
    GENERAL_NAME_set0_value(gn, GEN_IPADD, ip);
  } else {
    ASN1_IA5STRING* dns = ASN1_IA5STRING_new();
    ASN1_STRING_set(dns, name.data(), static_cast<int>(name.size()));
    GENERAL_NAME_set0_value(gn, GEN_DNS, dns);
  }
  return gn;
}

}  // namespace

Result<CertAndKey> GenerateSelfSignedCert(const std::string& common_name,
                                          const std::vector<std::string>& names, int days) {
  if (days <= 0) return InvalidError("certificate validity must be at least one day");
  Ptr<EVP_PKEY_CTX> kctx(EVP_PKEY_CTX_new_id(EVP_PKEY_EC, nullptr));
  EVP_PKEY* raw_key = nullptr;
  if (!kctx || EVP_PKEY_keygen_init(kctx.get()) != 1 ||
      EVP_PKEY_CTX_set_ec_paramgen_curve_nid(kctx.get(), NID_X9_62_prime256v1) != 1 ||
      EVP_PKEY_keygen(kctx.get(), &raw_key) != 1) {
    return Fail("key");
  }
  Ptr<EVP_PKEY> key(raw_key);

  Ptr<X509> cert(X509_new());
  if (!cert || X509_set_version(cert.get(), 2) != 1) return Fail("certificate");
  // A random 127-bit serial: clients cache by issuer+serial, so reuse confuses them.
  unsigned char serial_bytes[16];
  if (RAND_bytes(serial_bytes, sizeof(serial_bytes)) != 1) return Fail("serial");
  serial_bytes[0] &= 0x7f;
  Ptr<BIGNUM> serial(BN_bin2bn(serial_bytes, sizeof(serial_bytes), nullptr));
  if (!serial || !BN_to_ASN1_INTEGER(serial.get(), X509_get_serialNumber(cert.get()))) {
    return Fail("serial");
  }
  X509_gmtime_adj(X509_getm_notBefore(cert.get()), -3600);
  X509_gmtime_adj(X509_getm_notAfter(cert.get()), static_cast<long>(days) * 24 * 3600);
  X509_NAME* subject = X509_get_subject_name(cert.get());
  X509_NAME_add_entry_by_txt(subject, "CN", MBSTRING_UTF8,
                             reinterpret_cast<const unsigned char*>(common_name.c_str()), -1, -1,
                             0);
  X509_NAME_add_entry_by_txt(subject, "O", MBSTRING_UTF8,
                             reinterpret_cast<const unsigned char*>("nixmox test"), -1, -1, 0);
  if (X509_set_issuer_name(cert.get(), subject) != 1 ||
      X509_set_pubkey(cert.get(), key.get()) != 1) {
    return Fail("names");
  }
  RETURN_IF_ERROR(AddExtension(cert.get(), NID_basic_constraints, "critical,CA:TRUE"));
  RETURN_IF_ERROR(
      AddExtension(cert.get(), NID_key_usage, "critical,digitalSignature,keyCertSign,cRLSign"));
  RETURN_IF_ERROR(AddExtension(cert.get(), NID_ext_key_usage, "serverAuth,clientAuth"));
  RETURN_IF_ERROR(AddExtension(cert.get(), NID_subject_key_identifier, "hash"));
  if (!names.empty()) {
    Ptr<GENERAL_NAMES> sans(GENERAL_NAMES_new());
    for (const auto& n : names) {
      GENERAL_NAME* gn = MakeName(n);
      if (gn == nullptr || sk_GENERAL_NAME_push(sans.get(), gn) == 0) {
        GENERAL_NAME_free(gn);
        return Fail("subjectAltName");
      }
    }
    if (X509_add1_ext_i2d(cert.get(), NID_subject_alt_name, sans.get(), 0, X509V3_ADD_DEFAULT) !=
        1) {
      return Fail("subjectAltName");
    }
  }
  if (X509_sign(cert.get(), key.get(), EVP_sha256()) <= 0) return Fail("signature");

  Ptr<BIO> cert_bio(BIO_new(BIO_s_mem()));
  Ptr<BIO> key_bio(BIO_new(BIO_s_mem()));
  if (!cert_bio || !key_bio || PEM_write_bio_X509(cert_bio.get(), cert.get()) != 1 ||
      PEM_write_bio_PrivateKey(key_bio.get(), key.get(), nullptr, nullptr, 0, nullptr, nullptr) !=
          1) {
    return Fail("PEM encoding");
  }
  return CertAndKey{BioString(cert_bio.get()), BioString(key_bio.get())};
}

Status WritePemFile(const std::filesystem::path& path, const std::string& pem) {
  const int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return InternalError("cannot create " + path.string());
  size_t done = 0;
  while (done < pem.size()) {
    const ssize_t n = write(fd, pem.data() + done, pem.size() - done);
    if (n <= 0) {
      close(fd);
      return InternalError("cannot write " + path.string());
    }
    done += static_cast<size_t>(n);
  }
  fchmod(fd, 0600);
  if (close(fd) != 0) return InternalError("cannot write " + path.string());
  return OkStatus();
}

}  // namespace nixmox::http
