// Reading tar headers from a buffer: ustar, pax extended headers (path, linkpath, size, mtime,
// uid, gid, uname, gname, xattrs and ACLs) and GNU long names. Used by the parallel restore, which decompresses our blocks
// itself and needs to walk the members of one block without libarchive's stream.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>

namespace pbackup {

struct TarMember {
  std::string path, link;
  char type = '0';
  uint64_t size = 0;
  int64_t mtime = 0;
  uint32_t mtime_nsec = 0;
  uint32_t mode = 0, uid = 0, gid = 0;
  std::string uname, gname;
  bool sparse = false;  // GNU sparse 1.0: `path` is GNU.sparse.name, the data starts with the map
  uint64_t realsize = 0;  // of a sparse member
  std::string xattrs;  // SCHILY.acl.* and SCHILY.xattr.* records (LIBARCHIVE.xattr.* converted)
};

// Reads the header(s) of the member starting at `pos`; on success `pos` points at its data.
// Returns false at the end-of-archive marker. Throws Fatal on a damaged header: a checksum
// mismatch, a header cut short, a number out of range, a malformed pax record, or a special
// header (pax 'x'/'g', GNU 'L'/'K') larger than kMaxTarSpecialHeader.
bool read_tar_member(std::string_view buf, size_t& pos, TarMember& m);

// Where the first header of a block lies: 0, or past the data of the file the block continues
// (`cont_offset` of `cont_size` bytes, from the manifest) and its padding. Throws Fatal if
// cont_offset lies beyond cont_size.
size_t tar_block_start(std::string_view buf, bool continues, uint64_t cont_offset, uint64_t cont_size);

// Walks every member header of a block from `pos` as the parallel restore does, extracting
// nothing (verify); returns how many there are. Throws Fatal on a damaged header.
uint64_t walk_tar_members(std::string_view buf, size_t pos);

constexpr uint64_t kMaxTarSpecialHeader = 1 << 20;  // 1 MiB, libarchive's limit too

// n rounded up to whole 512-byte records (n must be below 2^64 - 511: sizes from a header are
// checked to fit in an int64 first).
inline uint64_t tar_padded(uint64_t n) { return (n + 511) / 512 * 512; }

}  // namespace pbackup
