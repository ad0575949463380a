// SHA-256 through OpenSSL's EVP interface, as lowercase hex.
#pragma once
#include <memory>
#include <string>
#include <string_view>

namespace pbackup {

class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;
  void update(std::string_view data);
  std::string hex();  // finishes the digest

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

std::string sha256_hex(std::string_view data);

}  // namespace pbackup
