// `pbackup consolidate --source LEVEL_N` (issue 15): a synthetic full backup of the tree at level
// N, built by the backup pipeline (scan replaced, reads replaced) from the chain's archives: the
// entries come from level N's catalog (original metadata: ctime, dev, ino as recorded), each
// member's bytes are read from the block of the archive that holds it (decompressed in memory,
// never extracted). The output is an ordinary full backup (catalog level 0, no chain).
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "pbackup/comm.h"
#include "pbackup/codec.h"
#include "pbackup/entry.h"
#include "pbackup/format.h"
#include "pbackup/log.h"
#include "pbackup/options.h"
#include "pbackup/source.h"

namespace pbackup {

struct Consolidation {
  bool on = false;
  std::vector<ArchiveSource> levels;  // every rank: the chain's archives, then level N (index = catalog level)
  std::vector<std::string> sources;   // level N's manifest sources (the new manifest records them)
  std::string catalog;                // every rank: level N's catalog (zstd), read and checked once by
                                      // rank 0 and broadcast; the three passes over it parse this copy
  struct Where {  // the catalog record's: the member's header is at `offset` of `block` of `level`
    uint32_t level = 0;
    uint64_t block = 0, offset = 0;
    bool damaged = false;
    std::string member;  // its name in that archive
  };
  std::unordered_map<std::string, Where> where;  // this rank: its slice's files, after locate()
  std::vector<std::unique_ptr<Codec>> codecs;    // per level
  std::vector<std::vector<const ManifestBlock*>> blocks;  // per level: its data blocks, in manifest order
  std::vector<std::vector<const ManifestBlock*>> by_raw;  // per level: the same by raw_offset
};

// Collective. Rank 0 resolves --source and its chain (resolve_chain checks every level); every
// rank gets them. False (rank 0 logged why) on any error.
bool open_consolidation(Comm& comm, const BackupOptions& opt, Consolidation& con, Log& log);

// Every rank: the "scan": the records of level N's catalog as entries, every size-th one from
// this rank's index (sort_by_path then orders and spreads them). Throws Fatal.
EntryList consolidation_entries(Comm& comm, const Consolidation& con);

// Every rank, after sort_by_path (xattrs/ACLs and sparse maps size the headers the cut lays
// out) and again after the cut (entries moved to the next rank): streams the catalog beside its
// sorted slice (a merge), keeps each file's record location, and reads the member header of the
// entries flagged with xattrs, ACLs or holes to take them. Throws Fatal naming level and member.
void locate(Consolidation& con, EntryList& mine);

// The "disk path" of a block job's entry when consolidating: where its bytes lie in the chain
// ("" for an entry without data), so the job carries it to whichever rank compresses it.
std::string chain_location(const Consolidation& con, const Entry& e);

// Reads member bytes from the chain instead of the disk; `disk` is chain_location's string.
class ChainData final : public DataSource {
 public:
  ChainData(const Consolidation& con, Log& log) : con_(con), log_(log) {}
  void read(const Entry& e, const std::string& disk, uint64_t offset, uint64_t length, bool last, char* out) override;
  std::vector<std::string> take_damaged() { return std::move(damaged_); }

 private:
  const Consolidation& con_;
  Log& log_;
  std::vector<std::string> damaged_;
};

}  // namespace pbackup
