// libFuzzer target: a codec's block decoder (FUZZ_CODEC names it: gzip, bzip2, zstd). The input
// is 3 bytes of expected size (little-endian, at most 1 MiB) and then the block. For gzip the
// streaming GunzipStream of the libarchive restore path is fed the same bytes too.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "codec/gunzip_stream.h"
#include "pbackup/codec.h"
#include "pbackup/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::unique_ptr<pbackup::Codec> codec = pbackup::make_codec(FUZZ_CODEC, -1);
  if (size < 3) return 0;
  uint64_t expected = (data[0] | (data[1] << 8) | (static_cast<uint64_t>(data[2]) << 16)) % ((1 << 20) + 1);
  std::string_view block(reinterpret_cast<const char*>(data) + 3, size - 3);
  try {
    std::string out = codec->decompress(block, expected);
    if (out.size() != expected) __builtin_trap();  // the contract: exactly the expected size
  } catch (const pbackup::Fatal&) {
  }
  if (std::string_view(FUZZ_CODEC) == "gzip") {
    size_t at = 0, step = 1 + data[0] % 64;
    pbackup::GunzipStream g(
        [&]() {
          std::string_view piece = block.substr(at, step);
          at += piece.size();
          return piece;
        },
        1 + data[1] % 4096);
    try {
      uint64_t total = 0;
      for (std::string_view p; !(p = g.next()).empty();) total += p.size();
      (void)total;
    } catch (const pbackup::Fatal&) {
    }
  }
  return 0;
}
