// Cutting the container stream into blocks, shared by the formats.
#pragma once
#include <cstdint>
#include <functional>
#include <vector>

#include "pbackup/format.h"

namespace pbackup {

struct StreamShape {
  // Bytes of structure that precede an entry's data inside a block (tar header), 0 for none.
  std::function<uint64_t(const Entry&)> header_bytes;
  // Bytes of file data the entry carries.
  std::function<uint64_t(const Entry&)> data_bytes;
  // Data is cut at multiples of this; the entry's data is padded up to it at its end.
  uint64_t align = 1;
  // Entries with neither header nor data get no piece (zip: rank 0 writes them alone).
  bool skip_empty = false;
};

constexpr size_t kMaxPiecesPerBlock = 4096;

// Deterministic: depends only on the entries, the shape and block_bytes. A block holds whole
// small entries until it reaches block_bytes; a big file's data continues over several blocks.
// A tail shorter than 1/8 block stays with its block rather than starting a tiny one.
std::vector<Block> cut_blocks(const EntryList& entries, const StreamShape& shape,
                              uint64_t block_bytes);
// The same, resumable: cuts entries[from, end) onto `st` (the block being filled), appending
// the blocks it closes to `out`; cut_close (format.h) closes the last one. Cutting a list in
// several calls, even with the open block's entries moved to another list between them (its
// pieces renumbered), gives the same blocks as one call: the state is all the rule looks at.
void cut_more(const EntryList& entries, size_t from, const StreamShape& shape, uint64_t block_bytes, CutState& st,
              std::vector<Block>& out);

}  // namespace pbackup
