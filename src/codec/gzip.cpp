// gzip codec: one gzip member per block (zlib, deflate, window 15). The member header is
// zlib's fixed one (mtime 0, OS unix), so the bytes depend only on the input and level.
#include <zlib.h>

#include "codec/registry.h"
#include "pbackup/error.h"

namespace pbackup {
namespace {

class GzipCodec final : public Codec {
 public:
  explicit GzipCodec(int level) : level_(level < 0 ? 6 : level) {}
  std::string name() const override { return "gzip"; }
  std::string extension() const override { return "gz"; }

  void compress(std::string_view in, std::string& out) const override {
    z_stream z{};
    if (deflateInit2(&z, level_, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
      throw Fatal("gzip: deflateInit2 failed");
    ZStreamGuard guard{&z, true};
    size_t start = out.size();
    out.resize(start + deflateBound(&z, in.size()));
    z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
    z.avail_in = 0;
    z.next_out = reinterpret_cast<Bytef*>(out.data() + start);
    z.avail_out = 0;
    size_t left_in = in.size(), left_out = out.size() - start;
    int rc;
    do {
      // zlib counts in 32 bits: feed at most 1 GiB at a time.
      if (z.avail_in == 0 && left_in) {
        z.avail_in = static_cast<uInt>(std::min<size_t>(left_in, 1u << 30));
        left_in -= z.avail_in;
      }
      if (z.avail_out == 0) {
        z.avail_out = static_cast<uInt>(std::min<size_t>(left_out, 1u << 30));
        left_out -= z.avail_out;
      }
      rc = deflate(&z, left_in || z.avail_in ? Z_NO_FLUSH : Z_FINISH);
    } while (rc == Z_OK || rc == Z_BUF_ERROR);
    if (rc != Z_STREAM_END) throw Fatal("gzip: deflate failed");
    out.resize(reinterpret_cast<char*>(z.next_out) - out.data());
  }

  std::string decompress(std::string_view in) const override {
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

ZStreamGuard::~ZStreamGuard() {
  if (deflating) deflateEnd(z);
  else inflateEnd(z);
}

std::unique_ptr<Codec> make_gzip_codec(int level) { return std::make_unique<GzipCodec>(level); }

}  // namespace pbackup
