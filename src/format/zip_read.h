// Reading a zip archive's central directory (any zip: ours, Info-ZIP's, Python's), so that its
// members can be extracted in parallel at their offsets instead of streamed in order. Handles
// zip64 (end record, sizes, offsets), Unix modes in the external attributes, "UT" and old "UX"
// mtimes (32-bit, signed or unsigned as the DOS date says), "ux"/"Ux"/"UX" owners, Info-ZIP
// Unicode Path names (0x7075, while their CRC matches the header's name), '\\' separators from
// DOS/Windows writers, and local headers whose extra fields differ from the central ones.
#pragma once
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "pbackup/error.h"

namespace pbackup {

struct ZipMember {
  std::string name;             // as stored, or its Unicode Path, '\\' made '/' for DOS/Windows hosts (a directory ends with '/')
  uint64_t header_offset = 0;   // of its local header
  uint64_t csize = 0, usize = 0;
  uint32_t crc = 0;
  uint16_t method = 0, flags = 0;
  uint32_t mode = 0;            // st_mode with the type bits (S_IFREG/S_IFDIR/S_IFLNK)
  int64_t mtime = 0;            // Unix time: the "UT" field, else "UX", else the DOS time read as local time
  bool is_dir() const;
  bool is_symlink() const;
};

// Reads `n` archive bytes at `offset` (throws if it cannot).
using ReadAt = std::function<std::string(uint64_t offset, uint64_t n)>;

struct ZipDirectory {
  std::vector<ZipMember> members;  // in directory order
  uint64_t offset = 0;             // where the central directory starts (members end before it)
};

// Members whose bytes overlap (central records pointing into one another's data: a zip bomb's
// trick, which unzip refuses). libarchive would silently restore only one of them, so this is
// damage, not a reason to stream the archive.
struct ZipOverlap : Fatal {
  using Fatal::Fatal;
};

// The central directory of the archive of `size` bytes; nullopt if there is no end record (not
// a zip) or the directory is not one this reader trusts (see zip_read.cpp). Throws ZipOverlap
// and what `read` throws.
std::optional<ZipDirectory> read_zip_directory(uint64_t size, const ReadAt& read);

// What a local header adds: where the data starts, and the owner from its "ux" field.
struct ZipLocal {
  uint64_t data_offset = 0;
  std::optional<uint32_t> uid, gid;
};
constexpr uint64_t kZipLocalFixed = 30;  // bytes before the name and extra fields
// Length of the whole local header from its first 30 bytes (throws if the signature is wrong).
uint64_t zip_local_header_size(std::string_view fixed30, const ZipMember& m);
// Parses the whole local header of `m` (`header` holds at least zip_local_header_size bytes).
ZipLocal parse_zip_local_header(std::string_view header, const ZipMember& m);

}  // namespace pbackup
