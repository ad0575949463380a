// RAII wrappers for zlib and libdeflate handles, shared by the gzip codec and the zip format.
#pragma once

typedef struct z_stream_s z_stream;
struct libdeflate_compressor;

namespace pbackup {

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
  ZStreamGuard(z_stream* z_, bool deflating_) : z(z_), deflating(deflating_) {}
  ~ZStreamGuard();
  ZStreamGuard(const ZStreamGuard&) = delete;
  ZStreamGuard& operator=(const ZStreamGuard&) = delete;
};

}  // namespace pbackup
