// The file list spread over the ranks (DESIGN §2): every rank keeps the entries its scan found;
// ordering by path is a sample sort over the ranks. Every message here is bounded (a batch of
// entries, or a few hundred sample paths per rank), never the size of the whole list.
#pragma once
#include <cstdint>
#include <functional>

#include "pbackup/comm.h"
#include "pbackup/entry.h"
#include "pbackup/format.h"

namespace pbackup {

// Entries per batch, and bytes per batch (at least one entry), of every message below.
constexpr size_t kListBatchEntries = 4096;
constexpr uint64_t kListBatchBytes = 4ull << 20;

// One list ordered by path (path_less), each entry moved once.
void sort_entries(EntryList& list);

// Collective. Orders the entries of every rank by path (path_less) across the ranks: on return
// each rank's list is sorted and every path on rank r sorts before every path on rank r+1.
// The ranks hold about equal shares (splitters from weighted samples of every rank's list).
// Paths are unique across the ranks (each was scanned once).
void sort_by_path(Comm& comm, EntryList& mine);

// Collective. Rank 0 receives every rank's list after its own, in rank order and in bounded
// batches; the other ranks' lists are emptied. After sort_by_path: the whole list in order.
void gather_in_order(Comm& comm, EntryList& mine);

// Collective. Rank 0 calls `each` for every rank's entries, in rank order (after sort_by_path:
// the whole list in order), holding one batch of another rank's at a time; the other ranks'
// lists are emptied.
void visit_in_order(Comm& comm, EntryList& mine, const std::function<void(Entry&&)>& each);

// Marks the second and later names (in list order) of a file with several links as hard links
// to the first. `entries` is the whole list, ordered.
void mark_hardlinks(EntryList& entries);

// Collective, after sort_by_path: the same over the list spread over the ranks. The names of
// files with several links go to a rank chosen by (dev, ino), which tells each later name its
// first one (two rounds of bounded batches; only files with several links travel).
void mark_hardlinks(Comm& comm, EntryList& mine);

// Collective, after sort_by_path: cuts the spread list into blocks rank after rank, each going
// on where the one before stopped (its open block and that block's entries move on; an entry
// whose head is in an earlier block is copied, so every block's entries are on one rank). The
// same blocks as fmt.cut() of the whole list. Returns this rank's blocks (global ids and stream
// offsets, pieces indexing `mine`). An entry belongs to the rank whose block holds its header.
std::vector<Block> cut_in_turn(Comm& comm, EntryList& mine, const Format& fmt, uint64_t block_bytes);

}  // namespace pbackup
