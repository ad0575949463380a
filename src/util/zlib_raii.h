// RAII wrappers for zlib and libdeflate handles, shared by the gzip codec and the zip format.
#pragma once

typedef struct z_stream_s z_stream;
struct libdeflate_compressor;

namespace pbackup {

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
// ~0.5 MB of tables allocated and set up per block otherwise). libdeflate keeps no state
// between calls, so the output is what a fresh one would give.
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

}  // namespace pbackup
