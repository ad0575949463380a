// Incremental backups (issue 15, docs/DESIGN.md §2 "Incremental levels"): a level stores only
// the entries that changed since the previous level, and its catalog describes the whole tree,
// each record naming the archive of the chain that holds the entry (CatalogRecord::level, an
// index into Manifest::chain). Only the previous level's catalog is read, never its data.
#pragma once
#include <cstdint>
#include <deque>
#include <string>
#include <string_view>
#include <vector>

#include "core/catalog.h"
#include "pbackup/comm.h"
#include "pbackup/entry.h"
#include "pbackup/format.h"
#include "pbackup/log.h"
#include "pbackup/manifest.h"
#include "pbackup/options.h"
#include "pbackup/source.h"

namespace pbackup {

template <class Ar>
void fields(Ar& a, Fragment& f) {
  a(f.name), a(f.size), a(f.sha256);
}

// Catalog records as the catalog stores them (encode_catalog_record's form), in order, in
// chunks of about 1 MiB: adding never copies what is held, and each chunk is freed once read.
class EncodedRecords {
 public:
  void add(std::string_view record);
  uint64_t size() const { return count_; }  // records not yet popped
  bool empty() const { return count_ == 0; }
  std::string_view front() const;  // the first record not yet popped ("" when empty)
  void pop();

 private:
  static constexpr size_t kChunk = 1u << 20;
  std::deque<std::string> chunks_;
  size_t at_ = 0;  // where front() starts in chunks_.front()
  uint64_t count_ = 0;
};

// What a backup run keeps of --incremental-from.
struct Incremental {
  bool on = false;
  ArchiveSource prev;              // every rank: the previous level (its catalog is read by every rank)
  std::vector<Fragment> chain;     // every rank: the new level's Manifest::chain
  std::string prev_catalog;        // every rank, when PREV is encrypted or in S3: its catalog, read
                                   // (decrypted) by rank 0 (the only rank holding the identities;
                                   // one GET, not one per rank) and broadcast
  EncodedRecords kept;             // this rank: unchanged entries' records (not stored again), as
                                   // PREV's catalog has them, in path order; the catalog merges
                                   // every rank's with the stored records
};

// Collective. Rank 0 resolves PREV, checks it can be the base of a level (our tar manifest
// with a catalog, not encrypted) and makes the new chain (PREV's chain plus PREV's manifest:
// name, size, SHA-256); every rank gets it. False (rank 0 logged why) on any error.
bool open_previous(Comm& comm, const BackupOptions& opt, const std::string& fmt_name, Incremental& inc, Log& log);

// Whether the live entry `e` is unchanged since the record `r` of the previous catalog: same
// type, size, mtime and ctime (ns), device and inode, mode, owner ids and link target, and
// not damaged then. Directories and files with several links are always stored again.
bool unchanged(const Entry& e, const CatalogRecord& r);

// Every rank, on the entries it scanned, sorted by path (sort_entries; before sort_by_path
// spreads the list, so the unchanged entries never travel): reads PREV's catalog (streamed: one
// record at a time, one pass) beside them, removes the unchanged and the moved entries from
// `mine` and keeps their records. Which rank holds an entry does not change the outcome.
// A moved entry whose old path still shows its inode on disk (under `roots`) is not moved: it
// is stored.
void drop_unchanged(Incremental& inc, EntryList& mine, const std::vector<Root>& roots);

// The manifests of a level's chain, found beside it (same folder or prefix) and checked
// against the SHA-256 its manifest records: chain[k] resolved. Throws Fatal naming a missing
// or altered level.
std::vector<ArchiveSource> resolve_chain(const ArchiveSource& newest, const S3Flags& s3, const AgeKeys& keys);

}  // namespace pbackup

namespace pbackup {

// Collective. `restore --source LEVEL_N` of an incremental level (rank 0 resolved `newest`; every
// rank calls this): rank 0 finds and checks the chain (resolve_chain) and reads the newest
// catalog, which says for every path of the tree at level N which archive holds it; then every
// archive is restored in parallel by the existing tar block restore, oldest first, each leaving
// alone the paths whose latest version is elsewhere or that are gone at level N (RestoreOptions::
// leave), so each entry is written once. Every level stores all directories, so the newest
// level, restored last, sets their modes and times. Rank 0 holds the path lists.
int restore_chain(Comm& comm, const ArchiveSource& newest, const RestoreOptions& opt, Log& log);

// Rank 0: `list` of an incremental level prints the whole tree from its catalog (a directory with
// a trailing '/'). False when `s` is not an incremental level.
bool list_chain_from_catalog(const ArchiveSource& s);

}  // namespace pbackup
