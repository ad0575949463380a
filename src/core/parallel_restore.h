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
#include "pbackup/comm.h"
#include "pbackup/log.h"
#include "pbackup/options.h"

namespace pbackup {

struct UnitResult {
  std::vector<RestoredEntry> entries;  // for the final pass on rank 0
  std::vector<std::string> errors;     // members not restored, with the reason
  uint64_t bytes = 0;                  // file data written
};

struct ParallelRestorePlan {
  std::vector<uint64_t> sizes;  // one per unit of work: bytes to read, for sharing them out
  size_t selected_units = 0;    // for the summary: "from 3 of 57 blocks" (a unit may hold several)
  size_t total_units = 0;
  std::string unit_name;        // "blocks", "zip members"
  // Restores one unit; throws Fatal for damage that must stop the whole restore.
  std::function<UnitResult(size_t unit, Extractor& x)> restore;
};

// Which of `sizes`' units this rank takes: the largest first, each to the least loaded rank
// (the same deal on every rank).
std::vector<size_t> my_units(const std::vector<uint64_t>& sizes, int rank, int ranks);

// verify: this rank's share of a zip's members inflated and checked against size and CRC-32;
// one message per damaged member.
struct ArchiveSource;
std::vector<std::string> check_zip_members(const ArchiveSource& s, int rank, int ranks, int threads);

int run_parallel_units(Comm& comm, const ParallelRestorePlan& plan, const RestoreOptions& opt, Log& log);

}  // namespace pbackup
