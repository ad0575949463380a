// Streaming gzip decompression for the libarchive restore path. libarchive's own gzip filter
// does not check a member's CRC-32 or ISIZE ("XXX TODO: Verify the length and CRC" in
// archive_read_support_filter_gzip.c), so a flipped data byte in a manifest-less .tar.gz came
// out as a corrupt file with exit 0. This reader decompresses with zlib, which checks both for
// every member, reads any number of concatenated members, allows zero padding after the last
// one (as gzip does), and refuses anything else.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <string_view>

namespace pbackup {

class GunzipStream {
 public:
  // `pull` returns the next piece of compressed input (empty at its end) and throws on read
  // errors; the bytes must stay valid until the next call. Output comes in pieces of at most
  // `piece` bytes.
  explicit GunzipStream(std::function<std::string_view()> pull, size_t piece = size_t{1} << 20);
  ~GunzipStream();
  GunzipStream(const GunzipStream&) = delete;
  GunzipStream& operator=(const GunzipStream&) = delete;

  // The next piece of decompressed data (valid until the next call); empty at the end.
  // Throws Fatal naming the member and the compressed byte offset on damage.
  std::string_view next();
  uint64_t compressed_offset() const;  // of the next input byte
  static bool looks_like_gzip(std::string_view head);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace pbackup
