// See gunzip_stream.h.
#include "codec/gunzip_stream.h"

#include <zlib.h>

#include <algorithm>
#include <string>
#include <vector>

#include "pbackup/error.h"

namespace pbackup {

struct GunzipStream::Impl {
  std::function<std::string_view()> pull;
  z_stream z{};
  bool z_ready = false;
  std::vector<char> out;
  std::string_view in;     // unread input of the current piece
  uint64_t consumed = 0;   // compressed bytes consumed before `in`
  uint64_t member = 0;     // members started
  uint64_t member_at = 0;  // where the current member started
  bool in_member = false, padding = false, input_ended = false, done = false;

  ~Impl() {
    if (z_ready) inflateEnd(&z);
  }
  // More input; false at its end.
  bool refill() {
    if (!in.empty()) return true;
    if (input_ended) return false;
    std::string_view piece = pull();
    if (piece.empty()) input_ended = true;
    in = piece;
    return !in.empty();
  }
  void take(size_t n) {
    in.remove_prefix(n);
    consumed += n;
  }
  [[noreturn]] void damaged(const std::string& why) const {
    throw Fatal("gzip member " + std::to_string(member) + " (at byte " + std::to_string(member_at) + ") is damaged near byte " +
                std::to_string(consumed) + ": " + why);
  }
  // Between members: another member, zero padding to the end, or the end.
  bool start_member() {
    while (refill()) {
      if (padding || in[0] == '\0') {  // zeros only, to the end
        padding = true;
        for (size_t i = 0; i < in.size(); ++i)
          if (in[i] != '\0') {
            take(i);
            throw Fatal("gzip stream: unexpected data at byte " + std::to_string(consumed) + " after the zero padding");
          }
        take(in.size());
        continue;
      }
      if (static_cast<unsigned char>(in[0]) != 0x1f)
        throw Fatal("gzip stream: data at byte " + std::to_string(consumed) + " is not a gzip member (damaged or trailing garbage)");
      ++member;
      member_at = consumed;
      int rc = z_ready ? inflateReset2(&z, 15 + 16) : inflateInit2(&z, 15 + 16);
      if (rc != Z_OK) throw Fatal("gzip: cannot start zlib (out of memory?)");
      z_ready = true;
      in_member = true;
      return true;
    }
    if (member == 0) throw Fatal("gzip stream: empty");
    return false;
  }
};

GunzipStream::GunzipStream(std::function<std::string_view()> pull, size_t piece) : impl_(std::make_unique<Impl>()) {
  impl_->pull = std::move(pull);
  impl_->out.resize(std::max<size_t>(piece, 1));
}
GunzipStream::~GunzipStream() = default;

uint64_t GunzipStream::compressed_offset() const { return impl_->consumed; }

bool GunzipStream::looks_like_gzip(std::string_view h) {
  return h.size() >= 3 && static_cast<unsigned char>(h[0]) == 0x1f && static_cast<unsigned char>(h[1]) == 0x8b && h[2] == 8;
}

std::string_view GunzipStream::next() {
  Impl& s = *impl_;
  while (!s.done) {
    if (!s.in_member && !s.start_member()) {
      s.done = true;
      break;
    }
    if (!s.refill()) s.damaged("the stream ends inside the member (truncated)");
    s.z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(s.in.data()));
    s.z.avail_in = static_cast<uInt>(std::min<size_t>(s.in.size(), 1u << 30));
    s.z.next_out = reinterpret_cast<Bytef*>(s.out.data());
    s.z.avail_out = static_cast<uInt>(s.out.size());
    const size_t offered = s.z.avail_in;
    int rc = inflate(&s.z, Z_NO_FLUSH);
    s.take(offered - s.z.avail_in);
    size_t produced = s.out.size() - s.z.avail_out;
    if (rc == Z_STREAM_END) s.in_member = false;  // zlib has checked the CRC-32 and ISIZE
    else if (rc == Z_MEM_ERROR) throw Fatal("gzip: out of memory");
    else if (rc != Z_OK && rc != Z_BUF_ERROR) s.damaged(s.z.msg ? s.z.msg : "zlib error " + std::to_string(rc));
    if (produced) return {s.out.data(), produced};
  }
  return {};
}

}  // namespace pbackup
