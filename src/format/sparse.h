// Sparse files in tar, as GNU tar -S writes them in pax archives (GNU sparse format 1.0):
// pax records GNU.sparse.major=1, GNU.sparse.minor=0, GNU.sparse.name=<real path>,
// GNU.sparse.realsize=<file size>; the ustar name is <dir>/GNUSparseFile.0/<base> (GNU tar puts
// its pid there; 0 keeps archives identical); the member's data is the map - decimal numbers,
// one per line: the count of regions, then offset and length of each - padded to 512 bytes,
// followed by the data regions back to back. Holes are never stored.
// An Entry's map (Entry::sparse) is its data regions as pairs of 64-bit numbers; empty for a
// file stored whole.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "pbackup/entry.h"

namespace pbackup {

using SparseMap = std::vector<std::pair<uint64_t, uint64_t>>;  // (offset, length) of data

// A file more fragmented than this is stored whole (scan), so our maps stay small; a map whose
// text runs longer than kMaxSparseMapBytes (that many regions of two 20-digit numbers, and the
// count) is refused where it must be gathered from several blocks.
constexpr size_t kMaxSparseRegions = size_t{1} << 16;
constexpr uint64_t kMaxSparseMapBytes = 24 + uint64_t{kMaxSparseRegions} * 42;

std::string encode_sparse_map(const SparseMap& m);
SparseMap decode_sparse_map(const std::string& s);
// The map as stored at the start of the member's data, padded to 512 bytes.
std::string sparse_map_block(const SparseMap& m);
// Bytes the member's data takes in the tar stream: the file's size, or map block + regions.
uint64_t tar_data_size(const Entry& e);
// Reads the map at the start of a sparse member's `data` (all of it) of a file of `realsize`
// bytes: regions must lie inside the file in rising order, not overlap, and their lengths add
// up to what follows the map. Sets `start` to where the regions' bytes begin. Throws Fatal.
SparseMap parse_sparse_member(std::string_view data, uint64_t realsize, size_t& start);
// The same from the first bytes of the data only (`head`; the member's data is `stored` bytes
// in all), for a member spanning blocks. Returns false when `head` ends inside the map and
// more of the data would finish it; throws Fatal when the map is bad.
bool parse_sparse_map(std::string_view head, uint64_t stored, uint64_t realsize, SparseMap& map, uint64_t& start);

// Where a sparse member's stored bytes go in the file: the map occupies stored bytes
// [0, start), then the regions' bytes follow back to back.
struct SparseLayout {
  SparseMap map;               // rising, not overlapping, none empty
  uint64_t start = 0;          // the map's padded size
  uint64_t realsize = 0;       // the file's size
  std::vector<uint64_t> ends;  // stored offset where each region's bytes end
};
// Checks what parse_sparse_map checked (so a layout made from a message is safe too): regions
// rising, inside `realsize`, their bytes after `start` adding up to `stored`. Throws Fatal.
SparseLayout make_sparse_layout(SparseMap map, uint64_t start, uint64_t realsize, uint64_t stored);
// One piece of stored bytes [at, at + len): `len` bytes from `pos` (relative to `at`) go to
// file offset `file_offset`.
struct SparsePiece {
  uint64_t file_offset = 0, pos = 0, len = 0;
};
// The pieces of stored bytes [at, at + len) that are region data, in order; map bytes go
// nowhere. Throws Fatal if the range runs past the stored data.
std::vector<SparsePiece> sparse_pieces(const SparseLayout& l, uint64_t at, uint64_t len);

}  // namespace pbackup
