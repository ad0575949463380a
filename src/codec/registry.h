// Codec registry internals: the factories of the codec files, helpers shared by the codecs,
// and zlib/libdeflate helpers shared by the gzip codec and the zip format.
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

// An owned libdeflate compressor.
class DeflateCompressor {
 public:
  explicit DeflateCompressor(int level);
  ~DeflateCompressor();
  DeflateCompressor(const DeflateCompressor&) = delete;
  DeflateCompressor& operator=(const DeflateCompressor&) = delete;
  libdeflate_compressor* get() const { return c_; }
  int level() const { return level_; }

 private:
  libdeflate_compressor* c_;
  int level_;
};
// This thread's compressor for `level`, reused from call to call (a level-9 compressor is
// ~0.5 MB of tables allocated and set up per block otherwise).
libdeflate_compressor* thread_deflate_compressor(int level);

// Ends a z_stream on scope exit (deflateEnd or inflateEnd).
struct ZStreamGuard {
  z_stream* z;
  bool deflating;
  ZStreamGuard(z_stream* z_, bool deflating_) : z(z_), deflating(deflating_) {}
  ~ZStreamGuard();
  ZStreamGuard(const ZStreamGuard&) = delete;
  ZStreamGuard& operator=(const ZStreamGuard&) = delete;
};

// An output buffer for `n` decompressed bytes: reserved (not touched) when `reserve_only`,
// else sized. Out of memory is a Fatal naming `what`, not std::bad_alloc.
std::string decode_buffer(uint64_t n, bool reserve_only, const char* what);
// The error for a stream that decompresses to more or fewer bytes than expected.
[[noreturn]] void wrong_size(const char* what, uint64_t expected, const char* more_or_less);

}  // namespace pbackup
