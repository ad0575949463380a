// libFuzzer target: the age reader (src/crypto/age.cpp) on hostile files -- the header parser
// (stanzas, base64 bodies, the MAC line), the X25519 and scrypt unwrapping, the header MAC, and
// the STREAM payload chunk by chunk (sizes, last-chunk flag) -- with the testkit's X25519
// identity (the seeds in tests/fuzz/corpus/fuzz_age are encrypted to it, so mutations get past
// the MAC into the payload) and a passphrase capped at a small scrypt work factor. Its
// contract: age::Error on bad input, nothing else; never reads past the input.
#include <cstddef>
#include <cstdint>
#include <string>

#include "crypto/age.h"

namespace age = pbackup::age;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::vector<age::Identity> ids = [] {
    auto v = age::parse_identity_file("AGE-SECRET-KEY-1XMWWC06LY3EE5RYTXM9MFLAZ2U56JJJ36S0MYPDRWSVLUL66MV4QX3S7F6\n", "fuzz");
    age::Identity pass = age::passphrase_identity(std::make_shared<age::Secret>("password", 8));
    pass.max_work_factor = 10;  // hostile work factors are refused, not run
    v.push_back(pass);
    return v;
  }();
  std::string_view in(reinterpret_cast<const char*>(data), size);
  try {
    (void)age::parse_header(in);
  } catch (const age::Error&) {
  }
  try {
    std::string plain = age::decrypt_buffer(in, ids);
    if (plain.size() >= size) __builtin_trap();  // a payload is always smaller than its file
  } catch (const age::Error&) {
  }
  // the size arithmetic the random-access reader relies on
  if (auto p = age::plain_size(size)) {
    if (age::sealed_size(*p) != size) __builtin_trap();
  }
  return 0;
}
