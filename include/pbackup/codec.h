// A codec turns one block of container bytes into one self-contained compressed stream
// (gzip member, bzip2 stream, zstd frame). Concatenations of such streams are valid files
// for gzip, bzip2, zstd, GNU tar and libarchive, which is what lets every block be
// compressed, and later decompressed, on any core (DESIGN §3).
#pragma once
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace pbackup {

class Codec {
 public:
  virtual ~Codec() = default;
  virtual std::string name() const = 0;       // "gzip"
  virtual std::string extension() const = 0;  // "gz"
  // Appends one independent compressed stream holding `in` to `out`.
  virtual void compress(std::string_view in, std::string& out) const = 0;
  // Decompresses exactly one stream produced by compress (or any valid single stream);
  // throws with a reason on damaged input.
  virtual std::string decompress(std::string_view in) const = 0;
};

// Registry: name -> factory. level < 0 means the codec's default.
std::unique_ptr<Codec> make_codec(const std::string& name, int level);
std::vector<std::string> codec_names();

}  // namespace pbackup
