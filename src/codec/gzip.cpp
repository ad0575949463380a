// gzip codec: one gzip member per block, made by libdeflate (mtime 0 in the header), so the
// bytes depend only on the input and the level. Decompression is libdeflate's too, into a buffer
// of the block's known size.
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
    libdeflate_compressor* c = thread_deflate_compressor(level_);
    const size_t bound = libdeflate_gzip_compress_bound(c, in.size());
    char* buf = scratch(Scratch::Codec, bound);  // the bound is the input's size: not kept
    size_t n = libdeflate_gzip_compress(c, in.data(), in.size(), buf, bound);
    if (n == 0) throw Fatal("gzip: compression failed");
    out.append(buf, n);
  }

  // One member, decompressed by libdeflate into a buffer of exactly the expected size; it
  // checks the member's CRC-32 and ISIZE. The ISIZE trailer (size mod 2^32) is compared with
  // the expected size first, so a member that claims more is refused before anything is
  // allocated.
  std::string decompress(std::string_view in, uint64_t expected) const override {
    if (in.size() < 18) throw Fatal("gzip: truncated data (" + std::to_string(in.size()) + " bytes)");
    const auto* t = reinterpret_cast<const unsigned char*>(in.data() + in.size() - 4);
    uint32_t isize = t[0] | (t[1] << 8) | (t[2] << 16) | (static_cast<uint32_t>(t[3]) << 24);
    if (isize != static_cast<uint32_t>(expected))
      throw Fatal("gzip: the member's size trailer says " + std::to_string(isize) + " bytes (mod 2^32), expected " +
                  std::to_string(expected) + " (damaged, or not this block)");
    thread_local std::unique_ptr<libdeflate_decompressor, void (*)(libdeflate_decompressor*)> d(
        libdeflate_alloc_decompressor(), libdeflate_free_decompressor);  // the thread's, reused (holds no state between calls)
    if (!d) throw Fatal("gzip: out of memory (libdeflate decompressor)");
    std::string out = decode_buffer(expected, false, "gzip");
    size_t in_used = 0, out_used = 0;
    auto rc = libdeflate_gzip_decompress_ex(d.get(), in.data(), in.size(), out.data(), out.size(), &in_used, &out_used);
    if (rc == LIBDEFLATE_INSUFFICIENT_SPACE) wrong_size("gzip", expected, "more");
    if (rc != LIBDEFLATE_SUCCESS) throw Fatal("gzip: corrupt data (bad deflate data, CRC-32 or size trailer)");
    if (out_used != expected) wrong_size("gzip", expected, "fewer");
    if (in_used != in.size()) throw Fatal("gzip: trailing data after the member");
    return out;
  }

 private:
  int level_;
};

}  // namespace

std::string decode_buffer(uint64_t n, bool reserve_only, const char* what) {
  if (n > kMaxBlockRawSize)
    throw Fatal(std::string(what) + ": a block of " + std::to_string(n) + " bytes is larger than any block pbackup writes (" +
                std::to_string(kMaxBlockRawSize) + ")");
  try {
    if (n > std::string().max_size()) throw std::length_error("too long");
    std::string out;
    if (reserve_only) out.reserve(static_cast<size_t>(n));
    else out.resize(static_cast<size_t>(n));
    return out;
  } catch (const std::exception&) {  // bad_alloc, length_error
    throw Fatal(std::string(what) + ": out of memory for a block of " + std::to_string(n) + " bytes");
  }
}

void wrong_size(const char* what, uint64_t expected, const char* more_or_less) {
  throw Fatal(std::string(what) + ": the block decompresses to " + more_or_less + " than the expected " +
              std::to_string(expected) + " bytes");
}

std::unique_ptr<Codec> make_gzip_codec(int level) { return std::make_unique<GzipCodec>(level); }

}  // namespace pbackup
