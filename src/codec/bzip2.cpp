// bzip2 codec: one bzip2 stream per block (libbz2, 900k blocks by default). bzip2 and GNU tar
// read concatenated streams as one file.
#include <bzlib.h>

#include <algorithm>
#include <memory>

#include "codec/registry.h"
#include "pbackup/error.h"

namespace pbackup {
namespace {

struct BzGuard {
  bz_stream* s;
  bool compressing;
  BzGuard(bz_stream* s_, bool compressing_) : s(s_), compressing(compressing_) {}
  BzGuard(const BzGuard&) = delete;
  BzGuard& operator=(const BzGuard&) = delete;
  ~BzGuard() {
    if (compressing) BZ2_bzCompressEnd(s);
    else BZ2_bzDecompressEnd(s);
  }
};

class Bzip2Codec final : public Codec {
 public:
  explicit Bzip2Codec(int level) : level_(level < 1 ? 9 : std::min(level, 9)) {}
  std::string name() const override { return "bzip2"; }
  std::string extension() const override { return "bz2"; }

  void compress(std::string_view in, std::string& out) const override {
    bz_stream s{};
    if (BZ2_bzCompressInit(&s, level_, 0, 0) != BZ_OK) throw Fatal("bzip2: init failed");
    BzGuard guard{&s, true};
    size_t start = out.size();
    // Worst case: 1% + 600 bytes over the input.
    out.resize(start + in.size() + in.size() / 100 + 1024);
    size_t left_in = in.size(), produced = 0;
    s.next_in = const_cast<char*>(in.data());
    int rc;
    do {
      if (s.avail_in == 0 && left_in) {
        s.avail_in = static_cast<unsigned>(std::min<size_t>(left_in, 1u << 30));
        left_in -= s.avail_in;
      }
      if (out.size() - start - produced < 65536) out.resize(out.size() + (1 << 20));
      s.next_out = out.data() + start + produced;
      s.avail_out = static_cast<unsigned>(std::min<size_t>(out.size() - start - produced, 1u << 30));
      unsigned before = s.avail_out;
      rc = BZ2_bzCompress(&s, (left_in || s.avail_in) ? BZ_RUN : BZ_FINISH);
      produced += before - s.avail_out;
    } while (rc == BZ_RUN_OK || rc == BZ_FINISH_OK);
    if (rc != BZ_STREAM_END) throw Fatal("bzip2: compression failed");
    out.resize(start + produced);
    out.shrink_to_fit();  // the bound is the input's size; a window holds many of these
  }

  // libbz2 checks every block's CRC and the stream's combined CRC (BZ_DATA_ERROR otherwise).
  // Output goes to a buffer reserved for the expected size, in 64 KiB steps: a stream that
  // holds more is refused as soon as it does.
  std::string decompress(std::string_view in, uint64_t expected) const override {
    bz_stream s{};
    if (BZ2_bzDecompressInit(&s, 0, 0) != BZ_OK) throw Fatal("bzip2: init failed");
    BzGuard guard{&s, false};
    std::string out = decode_buffer(expected, true, "bzip2");
    char buf[1 << 16];
    size_t left_in = in.size();
    s.next_in = const_cast<char*>(in.data());
    while (true) {
      if (s.avail_in == 0 && left_in) {
        s.avail_in = static_cast<unsigned>(std::min<size_t>(left_in, 1u << 30));
        left_in -= s.avail_in;
      }
      s.next_out = buf;
      s.avail_out = sizeof buf;
      int rc = BZ2_bzDecompress(&s);
      size_t got = sizeof buf - s.avail_out;
      if (got > expected - out.size()) wrong_size("bzip2", expected, "more");
      out.append(buf, got);
      if (rc == BZ_STREAM_END) break;
      if (rc == BZ_DATA_ERROR) throw Fatal("bzip2: corrupt data (CRC mismatch or bad block)");
      if (rc != BZ_OK) throw Fatal("bzip2: corrupt data (error " + std::to_string(rc) + ")");
      if (s.avail_in == 0 && left_in == 0 && s.avail_out != 0) throw Fatal("bzip2: truncated data");
    }
    if (s.avail_in != 0 || left_in != 0) throw Fatal("bzip2: trailing data after the stream");
    if (out.size() != expected) wrong_size("bzip2", expected, "fewer");
    return out;
  }

 private:
  int level_;
};

}  // namespace

std::unique_ptr<Codec> make_bzip2_codec(int level) { return std::make_unique<Bzip2Codec>(level); }

}  // namespace pbackup
