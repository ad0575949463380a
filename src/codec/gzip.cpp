// gzip codec: one gzip member per block, made by libdeflate (mtime 0 in the header), so the
// bytes depend only on the input and the level. Decompression (verify) uses zlib.
#include <libdeflate.h>
#include <zlib.h>

#include <algorithm>
#include <memory>

#include "codec/registry.h"
#include "pbackup/error.h"
#include "pbackup/scratch.h"

namespace pbackup {
namespace {

// Whole-buffer compression with libdeflate: faster than zlib at the same level and slightly
// smaller output, and a block is a whole buffer anyway. Deterministic for a given level.
class GzipCodec final : public Codec {
 public:
  explicit GzipCodec(int level) : level_(level < 0 ? 6 : std::clamp(level, 1, 12)) {}
  std::string name() const override { return "gzip"; }
  std::string extension() const override { return "gz"; }

  void compress(std::string_view in, std::string& out) const override {
    DeflateCompressor c(level_);
    const size_t bound = libdeflate_gzip_compress_bound(c.get(), in.size());
    char* buf = scratch(Scratch::Codec, bound);  // the bound is the input's size: not kept
    size_t n = libdeflate_gzip_compress(c.get(), in.data(), in.size(), buf, bound);
    if (n == 0) throw Fatal("gzip: compression failed");
    out.append(buf, n);
  }

  // libdeflate when the member's size trailer (ISIZE, size mod 2^32) gives the output size;
  // it checks the CRC-32 and the size. zlib for anything else.
  std::string decompress(std::string_view in) const override {
    if (in.size() >= 18) {
      const auto* t = reinterpret_cast<const unsigned char*>(in.data() + in.size() - 4);
      size_t isize = t[0] | (t[1] << 8) | (t[2] << 16) | (static_cast<size_t>(t[3]) << 24);
      std::unique_ptr<libdeflate_decompressor, void (*)(libdeflate_decompressor*)> d(libdeflate_alloc_decompressor(),
                                                                                    libdeflate_free_decompressor);
      if (!d) throw Fatal("libdeflate: out of memory");
      std::string out(isize, '\0');
      size_t in_used = 0, out_used = 0;
      auto rc = libdeflate_gzip_decompress_ex(d.get(), in.data(), in.size(), out.data(), out.size(), &in_used, &out_used);
      if (rc == LIBDEFLATE_SUCCESS && in_used == in.size() && out_used == isize) return out;
      if (rc == LIBDEFLATE_BAD_DATA) throw Fatal("gzip: corrupt data (bad deflate data or CRC)");
    }
    return inflate_all(in, 15 + 16, "gzip");
  }

 private:
  int level_;
};

}  // namespace

std::string inflate_all(std::string_view in, int window_bits, const char* what) {
  z_stream z{};
  if (inflateInit2(&z, window_bits) != Z_OK) throw Fatal(std::string(what) + ": inflateInit2 failed");
  ZStreamGuard guard{&z, false};
  std::string out;
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
  size_t left_in = in.size();
  char buf[1 << 16];
  int rc = Z_OK;
  while (true) {
    if (z.avail_in == 0 && left_in) {
      z.avail_in = static_cast<uInt>(std::min<size_t>(left_in, 1u << 30));
      left_in -= z.avail_in;
    }
    z.next_out = reinterpret_cast<Bytef*>(buf);
    z.avail_out = sizeof buf;
    rc = inflate(&z, Z_NO_FLUSH);
    out.append(buf, sizeof buf - z.avail_out);
    if (rc == Z_STREAM_END) break;
    if (rc != Z_OK && !(rc == Z_BUF_ERROR && z.avail_out == 0))
      throw Fatal(std::string(what) + ": corrupt or truncated data (" + (z.msg ? z.msg : "zlib error") + ")");
    if (rc == Z_OK && z.avail_in == 0 && left_in == 0 && z.avail_out != 0)
      throw Fatal(std::string(what) + ": truncated data");
  }
  if (z.avail_in != 0 || left_in != 0) throw Fatal(std::string(what) + ": trailing data after the stream");
  return out;
}

DeflateCompressor::DeflateCompressor(int level) : c_(libdeflate_alloc_compressor(level)) {
  if (!c_) throw Fatal("libdeflate: cannot allocate a compressor (level " + std::to_string(level) + ")");
}
DeflateCompressor::~DeflateCompressor() { libdeflate_free_compressor(c_); }

ZStreamGuard::~ZStreamGuard() {
  if (deflating) deflateEnd(z);
  else inflateEnd(z);
}

std::unique_ptr<Codec> make_gzip_codec(int level) { return std::make_unique<GzipCodec>(level); }

}  // namespace pbackup
