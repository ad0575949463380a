// A codec turns one block of container bytes into one self-contained compressed stream
// (gzip member, bzip2 stream, zstd frame). Concatenations of such streams are valid files
// for gzip, bzip2, zstd, GNU tar and libarchive, which is what lets every block be
// compressed, and later decompressed, on any core (DESIGN §3).
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace pbackup {

// No block holds more than this uncompressed (--block-mb is at most 1024, and a block is cut at
// its size plus an eighth and one header); decoders refuse a larger expected size at once.
constexpr uint64_t kMaxBlockRawSize = uint64_t{2} << 30;

class Codec {
 public:
  virtual ~Codec() = default;
  virtual std::string name() const = 0;       // "gzip"
  virtual std::string extension() const = 0;  // "gz"
  // Appends one independent compressed stream holding `in` to `out`.
  virtual void compress(std::string_view in, std::string& out) const = 0;
  // Decompresses exactly one stream produced by compress (or any valid single stream) that
  // must hold exactly `expected_size` bytes (the manifest's raw_size). Throws Fatal with a
  // reason on damaged input, a failed checksum (gzip CRC-32 and ISIZE, bzip2 block and stream
  // CRCs, zstd content checksum), more or less output than expected, or no memory for it.
  // Never holds more than expected_size bytes of output plus a fixed buffer, whatever the
  // stream's own headers claim; an expected_size above kMaxBlockRawSize is refused.
  virtual std::string decompress(std::string_view in, uint64_t expected_size) const = 0;
};

// Registry: name -> factory. level < 0 means the codec's default.
std::unique_ptr<Codec> make_codec(const std::string& name, int level);
std::vector<std::string> codec_names();

}  // namespace pbackup
