// The file list spread over the ranks (DESIGN §2): every rank keeps the entries its scan found;
// ordering by path is a sample sort over the ranks. Every message here is bounded (a batch of
// entries, or a few hundred sample paths per rank), never the size of the whole list.
#pragma once
#include <cstdint>

#include "pbackup/comm.h"
#include "pbackup/entry.h"

namespace pbackup {

// Entries per batch, and bytes per batch (at least one entry), of every message below.
constexpr size_t kListBatchEntries = 4096;
constexpr uint64_t kListBatchBytes = 4ull << 20;

// Collective. Orders the entries of every rank by path (path_less) across the ranks: on return
// each rank's list is sorted and every path on rank r sorts before every path on rank r+1.
// The ranks hold about equal shares (splitters from weighted samples of every rank's list).
// Paths are unique across the ranks (each was scanned once).
void sort_by_path(Comm& comm, EntryList& mine);

// Collective. Rank 0 receives every rank's list after its own, in rank order and in bounded
// batches; the other ranks' lists are emptied. After sort_by_path: the whole list in order.
void gather_in_order(Comm& comm, EntryList& mine);

// Marks the second and later names (in list order) of a file with several links as hard links
// to the first. `entries` is the whole list, ordered.
void mark_hardlinks(EntryList& entries);

}  // namespace pbackup
