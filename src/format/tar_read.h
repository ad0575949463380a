// Reading tar headers from a buffer: ustar, pax extended headers (path, linkpath, size, mtime,
// uid, gid) and GNU long names. Used by the parallel restore, which decompresses our blocks
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
};

// Reads the header(s) of the member starting at `pos`; on success `pos` points at its data.
// Returns false at the end-of-archive marker. Throws Fatal on a damaged header.
bool read_tar_member(std::string_view buf, size_t& pos, TarMember& m);

inline uint64_t tar_padded(uint64_t n) { return (n + 511) / 512 * 512; }

}  // namespace pbackup
