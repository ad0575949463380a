// Codec registry internals: the factories of the codec files, and zlib helpers shared by the
// gzip codec and the zip format.
#pragma once
#include <memory>
#include <string>
#include <string_view>

#include "pbackup/codec.h"

typedef struct z_stream_s z_stream;
struct libdeflate_compressor;

namespace pbackup {

std::unique_ptr<Codec> make_gzip_codec(int level);
std::unique_ptr<Codec> make_bzip2_codec(int level);
std::unique_ptr<Codec> make_zstd_codec(int level);

// An owned libdeflate compressor (one per block: allocation is cheap next to compression).
class DeflateCompressor {
 public:
  explicit DeflateCompressor(int level);
  ~DeflateCompressor();
  DeflateCompressor(const DeflateCompressor&) = delete;
  DeflateCompressor& operator=(const DeflateCompressor&) = delete;
  libdeflate_compressor* get() const { return c_; }

 private:
  libdeflate_compressor* c_;
};

// Ends a z_stream on scope exit (deflateEnd or inflateEnd).
struct ZStreamGuard {
  z_stream* z;
  bool deflating;
  ~ZStreamGuard();
};

// Inflates a whole zlib/gzip/raw stream (by window_bits); throws Fatal naming `what`.
std::string inflate_all(std::string_view in, int window_bits, const char* what);

}  // namespace pbackup
