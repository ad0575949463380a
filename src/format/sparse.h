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

}  // namespace pbackup
