// SHA-256 over OpenSSL's EVP interface (pbackup/sha256.h).
#include <openssl/evp.h>

#include <memory>
#include <string>

#include "pbackup/error.h"
#include "pbackup/sha256.h"

namespace pbackup {

// The context is owned by Impl, so a constructor that throws after creating it frees it too.
struct Sha256::Impl {
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  Impl() = default;
  Impl(const Impl&) = delete;
  Impl& operator=(const Impl&) = delete;
  ~Impl() { EVP_MD_CTX_free(ctx); }
};
Sha256::Sha256() : impl_(std::make_unique<Impl>()) {
  if (!impl_->ctx || EVP_DigestInit_ex(impl_->ctx, EVP_sha256(), nullptr) != 1)
    throw Fatal("cannot initialise SHA-256 (OpenSSL)");
}
Sha256::~Sha256() = default;
void Sha256::update(std::string_view d) { EVP_DigestUpdate(impl_->ctx, d.data(), d.size()); }
std::string Sha256::hex() {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  EVP_DigestFinal_ex(impl_->ctx, md, &n);
  static const char* digits = "0123456789abcdef";
  std::string s;
  for (unsigned i = 0; i < n; ++i) {
    s.push_back(digits[md[i] >> 4]);
    s.push_back(digits[md[i] & 15]);
  }
  return s;
}
std::string sha256_hex(std::string_view data) {
  Sha256 h;
  h.update(data);
  return h.hex();
}

}  // namespace pbackup
