// The parallel restore driver shared by our tar archives (blocks from the manifest) and by zip
// archives (members from the central directory): every rank takes its share of independent
// units, its threads restore them through one Extractor, and rank 0 applies links and metadata
// once every writer is done (directories last).
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "core/extract.h"
#include "format/sparse.h"
#include "pbackup/comm.h"
#include "pbackup/log.h"
#include "pbackup/options.h"

namespace pbackup {

struct UnitResult {
  std::vector<RestoredEntry> entries;  // for the final pass on rank 0
  std::vector<std::string> errors;     // members not restored, with the reason
  std::vector<std::string> lost;       // what was not restored because of damage ("members from ...")
  uint64_t bytes = 0;                  // file data written
  std::vector<std::pair<uint64_t, uint64_t>> parts;  // (spanning file, bytes of it written here)
  std::vector<uint64_t> heads;                       // spanning files whose header this unit held
  // Sanitized paths of the unit's first and last member headers, and whether the paths rose
  // strictly within it (for plans that check the order).
  std::string first_path, last_path;
  bool ordered = true;
};

// A file whose data spans several units (a big file of our tar): created once, before any unit
// is restored, by rank 0 (so exactly one creator, whatever order the units run in), then filled
// in by the units holding its parts, which write only into that inode.
// A sparse one (GNU sparse 1.0) is created at its real size, all hole, and its units write only
// the region bytes of their part of the stored data (map + regions) at the offsets the map
// gives; `size` counts stored bytes either way.
struct SpanningFile {
  std::string path;  // sanitized
  uint64_t size = 0;  // bytes of its data in the archive
  bool sparse = false;
  SparseLayout layout{};  // sparse: read by rank 0 from the head block, shared before any unit
  std::string error{};    // sparse: why the map could not be had (the file is then lost)
};

struct ParallelRestorePlan {
  std::vector<uint64_t> sizes;  // one per unit of work: bytes to read, for sharing them out
  size_t selected_units = 0;    // for the summary: "from 3 of 57 blocks" (a unit may hold several)
  size_t total_units = 0;
  std::string unit_name;        // "blocks", "zip members"
  std::vector<SpanningFile> spanning;
  // Units are in stream order and their member paths must rise strictly from one to the next
  // (our tar: entries are sorted). If they do not (duplicate names), the parallel result cannot
  // give tar's "last member wins", and run_parallel_units returns kExitRestream.
  bool check_order = false;
  // Restores one unit; `inodes` are the spanning files' inode numbers (0: not created). Throws
  // only for what must stop the whole restore (an interrupt); damage is reported in the result.
  std::function<UnitResult(size_t unit, Extractor& x, const std::vector<uint64_t>& inodes)> restore;
};

// run_parallel_units' answer when the members were not in the order the plan promised.
constexpr int kExitRestream = -1;

// Which of `sizes`' units this rank takes: the largest first, each to the least loaded rank
// (the same deal on every rank).
std::vector<size_t> my_units(const std::vector<uint64_t>& sizes, int rank, int ranks);

// verify: this rank's share of a zip's members inflated and checked against size and CRC-32;
// one message per damaged member.
struct ArchiveSource;
std::vector<std::string> check_zip_members(const ArchiveSource& s, int rank, int ranks, int threads);

int run_parallel_units(Comm& comm, const ParallelRestorePlan& plan, const RestoreOptions& opt, Log& log);

}  // namespace pbackup
