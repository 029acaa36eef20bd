#include "src/http/tls_util.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <openssl/bio.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <set>
#include <sstream>

namespace nixmox::http {
namespace {

std::unique_ptr<X509, decltype(&X509_free)> ParseCert(const std::string& pem) {
  std::unique_ptr<BIO, decltype(&BIO_free)> bio(
      BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())), &BIO_free);
  return {PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr), &X509_free};
}

std::set<std::string> SubjectAltNames(X509* cert) {
  std::set<std::string> out;
  auto* names =
      static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr));
  for (int i = 0; names != nullptr && i < sk_GENERAL_NAME_num(names); ++i) {
    const GENERAL_NAME* gn = sk_GENERAL_NAME_value(names, i);
    if (gn->type == GEN_DNS) {
      out.insert("DNS:" +
                 std::string(reinterpret_cast<const char*>(ASN1_STRING_get0_data(gn->d.dNSName)),
                             ASN1_STRING_length(gn->d.dNSName)));
    } else if (gn->type == GEN_IPADD) {
      char text[INET6_ADDRSTRLEN] = {};
      const int len = ASN1_STRING_length(gn->d.iPAddress);
      inet_ntop(len == 4 ? AF_INET : AF_INET6, ASN1_STRING_get0_data(gn->d.iPAddress), text,
                sizeof(text));
      out.insert("IP:" + std::string(text));
    }
  }
  GENERAL_NAMES_free(names);
  return out;
}

TEST(GenerateSelfSignedCertTest, CertificateParsesBackWithAllSans) {
  auto generated =
      GenerateSelfSignedCert("kubesim", {"localhost", "127.0.0.1", "::1", "kubesim.test"});
  ASSERT_TRUE(generated.ok()) << generated.status().ToString();
  auto cert = ParseCert(generated->cert_pem);
  ASSERT_NE(cert, nullptr);
  EXPECT_EQ(SubjectAltNames(cert.get()),
            (std::set<std::string>{"DNS:localhost", "DNS:kubesim.test", "IP:127.0.0.1", "IP:::1"}));
  char cn[256] = {};
  X509_NAME_get_text_by_NID(X509_get_subject_name(cert.get()), NID_commonName, cn, sizeof(cn));
  EXPECT_STREQ(cn, "kubesim");
}

TEST(GenerateSelfSignedCertTest, IsASelfSignedCaWhoseKeyMatches) {
  auto generated = GenerateSelfSignedCert("ca", {"localhost"}, 2);
  ASSERT_TRUE(generated.ok());
  auto cert = ParseCert(generated->cert_pem);
  ASSERT_NE(cert, nullptr);
  EXPECT_EQ(X509_check_ca(cert.get()), 1);
  std::unique_ptr<BIO, decltype(&BIO_free)> bio(
      BIO_new_mem_buf(generated->key_pem.data(), static_cast<int>(generated->key_pem.size())),
      &BIO_free);
  std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)> key(
      PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr), &EVP_PKEY_free);
  ASSERT_NE(key, nullptr);
  EXPECT_EQ(X509_check_private_key(cert.get(), key.get()), 1);
  EXPECT_EQ(X509_verify(cert.get(), key.get()), 1);  // signed by its own key
  // Valid now, and not for longer than asked.
  EXPECT_LT(X509_cmp_current_time(X509_get0_notBefore(cert.get())), 0);
  EXPECT_GT(X509_cmp_current_time(X509_get0_notAfter(cert.get())), 0);
  time_t in_three_days = time(nullptr) + 3 * 24 * 3600;
  EXPECT_LT(X509_cmp_time(X509_get0_notAfter(cert.get()), &in_three_days), 0);
}

TEST(GenerateSelfSignedCertTest, TwoCertificatesDiffer) {
  auto a = GenerateSelfSignedCert("x", {"localhost"});
  auto b = GenerateSelfSignedCert("x", {"localhost"});
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_NE(a->cert_pem, b->cert_pem);
  EXPECT_NE(a->key_pem, b->key_pem);
}

TEST(GenerateSelfSignedCertTest, RejectsNonPositiveValidity) {
  EXPECT_EQ(GenerateSelfSignedCert("x", {"localhost"}, 0).status().code(), Code::kInvalid);
}

TEST(WritePemFileTest, WritesContentOwnerReadableOnly) {
  const auto dir =
      std::filesystem::temp_directory_path() / ("nixmox-tls-test-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  const auto path = dir / "key.pem";
  ASSERT_TRUE(WritePemFile(path, "-----BEGIN X-----\nabc\n-----END X-----\n").ok());
  std::ifstream in(path);
  std::stringstream content;
  content << in.rdbuf();
  EXPECT_EQ(content.str(), "-----BEGIN X-----\nabc\n-----END X-----\n");
  const auto perms = std::filesystem::status(path).permissions();
  EXPECT_EQ(perms & (std::filesystem::perms::group_all | std::filesystem::perms::others_all),
            std::filesystem::perms::none);
  std::filesystem::remove_all(dir);
}

TEST(WritePemFileTest, FailsForAMissingDirectory) {
  EXPECT_FALSE(WritePemFile("/nonexistent-dir-for-nixmox/x.pem", "x").ok());
}

}  // namespace
}  // namespace nixmox::http
