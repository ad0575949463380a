// The messages core's stages send between ranks, each a struct with one field list
// (pbackup/wire.h) that both encodes and decodes it. tests/unit/test_wire.cpp round-trips each.
#pragma once
#include <cstdint>
#include <deque>
#include <string>
#include <vector>

#include "core/catalog.h"
#include "core/extract.h"
#include "pbackup/entry.h"
#include "pbackup/format.h"
#include "pbackup/source.h"
#include "pbackup/wire.h"

namespace pbackup {

// ---- scan (scan.cpp) ----
// A directory to walk. Rank 0 sends a worker a batch of them (std::deque<DirTask>; empty: done).
struct DirTask {
  uint32_t root = 0;
  std::string path;  // archive path
  std::string disk;  // on-disk path
  uint64_t dev = 0;  // device of its root (--one-file-system)
  bool operator==(const DirTask&) const = default;
};
template <class Ar>
void fields(Ar& a, DirTask& t) {
  a(t.root), a(t.path), a(t.disk), a(t.dev);
}

// A worker's answer: the directories it did not open yet (it keeps the entries it found:
// the file list stays spread over the ranks, file_list.h).
struct ScanResult {
  std::deque<DirTask> left;
  uint64_t found = 0;  // entries this worker holds so far (rank 0's progress lines)
  bool operator==(const ScanResult&) const = default;
};
template <class Ar>
void fields(Ar& a, ScanResult& r) {
  a(r.left), a(r.found);
}

// ---- backup setup (backup.cpp): rank 0 decides, every rank learns the outcome ----
struct Setup {
  std::string error;
  std::string archive;  // final file name
  std::vector<Root> roots;
  bool operator==(const Setup&) const = default;
};
template <class Ar>
void fields(Ar& a, Setup& s) {
  a(s.error), a(s.archive), a(s.roots);
}

// ---- which ranks see a directory (sight.cpp) ----
// Rank 0 to all: this check's tag and the ranks that put a marker file in the directory.
struct SightCall {
  std::string tag;
  std::vector<uint32_t> leaders;
  bool operator==(const SightCall&) const = default;
};
template <class Ar>
void fields(Ar& a, SightCall& c) {
  a(c.tag), a(c.leaders);
}
// Each rank to rank 0: why its marker could not be made (a leader), which leaders' markers it saw.
struct SightReport {
  std::string error;
  std::vector<uint8_t> seen;  // per leader, 1 = seen (and the directory writable)
  bool operator==(const SightReport&) const = default;
};
template <class Ar>
void fields(Ar& a, SightReport& r) {
  a(r.error), a(r.seen);
}

// A blind rank's write, sent to the rank that writes for it (forward.cpp); empty bytes: "that
// was all this round".
struct Forwarded {
  uint64_t offset = 0;
  std::string bytes;
  bool operator==(const Forwarded&) const = default;
};
template <class Ar>
void fields(Ar& a, Forwarded& f) {
  a(f.offset), a(f.bytes);
}

// ---- backup plan (backup.cpp): what rank 0 keeps of each block (the entries stay with their
// rank, file_list.h) ----
struct BlockInfo {
  uint64_t id = 0, raw_bytes = 0, raw_offset = 0;
  uint32_t owner = 0;        // the rank holding its entries
  uint64_t files = 0;        // files whose data ends in it
  uint64_t pieces = 0;       // entries (or parts of one) it holds: what its job carries
  std::string first;         // path of its first entry
  bool continues = false;    // starts inside a file's data: where, and that file's stored size
  bool cont_sparse = false;
  uint64_t cont_offset = 0, cont_size = 0;
  bool operator==(const BlockInfo&) const = default;
};
template <class Ar>
void fields(Ar& a, BlockInfo& b) {
  a(b.id), a(b.raw_bytes), a(b.raw_offset), a(b.owner), a(b.files), a(b.pieces), a(b.first), a.flags(b.continues, b.cont_sparse);
  a(b.cont_offset), a(b.cont_size);
}

// ---- backup rounds (backup_rounds.cpp) ----
enum class RoundCmd : uint8_t { kWork = 0, kFinish = 1, kAbort = 2 };

// Rank 0 to each rank, once per step: what to do, where the units this rank reported last go,
// how far the archive is settled, the rounds of blocks to queue (ids), and which of the blocks
// it holds the entries of go to which rank as jobs (one exchange per step).
struct RoundOrder {
  RoundCmd cmd = RoundCmd::kWork;
  uint64_t settled = 0;
  std::vector<uint64_t> offsets;
  std::vector<std::vector<uint64_t>> rounds;
  std::vector<uint64_t> give;     // block ids this rank holds, to send as jobs
  std::vector<uint32_t> give_to;  // the rank each goes to
  bool operator==(const RoundOrder&) const = default;
};
template <class Ar>
void fields(Ar& a, RoundOrder& o) {
  a(o.cmd), a(o.settled), a(o.offsets), a(o.rounds), a(o.give), a(o.give_to);
  if constexpr (!Ar::kWriting)
    if (o.give.size() != o.give_to.size()) throw std::runtime_error("internal message: give lists differ in length");
}

// Each rank to rank 0, once per step: its problem (it logs the reason itself), the units it
// compressed (sizes and checksums, no data) and the files it could not read in full.
struct RoundReport {
  std::string problem;
  std::vector<UnitInfo> units;
  std::vector<std::string> damaged;
  bool operator==(const RoundReport&) const = default;
};
template <class Ar>
void fields(Ar& a, RoundReport& r) {
  a(r.problem), a(r.units), a(r.damaged);
}

// ---- backup commit (backup.cpp): fragment checksums, read back in parallel ----
struct FragmentHash {
  uint64_t index = 0;
  std::string sha256;
  bool operator==(const FragmentHash&) const = default;
};
template <class Ar>
void fields(Ar& a, FragmentHash& h) {
  a(h.index), a(h.sha256);
}

// ---- restore (restore.cpp): how rank 0 found the archive is to be restored ----
struct RestoreWay {
  enum Mode : uint8_t { kStream = 0, kTarBlocks = 1, kFailed = 2, kZipMembers = 3 };
  Mode mode = kStream;
  ArchiveSource source;
  std::vector<std::string> leave;  // kTarBlocks: paths to leave alone (--keep-old-files & co.)
};
template <class Ar>
void fields(Ar& a, RestoreWay& w) {
  a(w.mode), a(w.source), a(w.leave);
}

// ---- restore --every-node (restore_nodes.cpp): rank 0 to all, before the copy to each node ----
struct StagePlan {
  std::string error;  // the source could not be found
  std::string tag;    // names this run's staging directory
  ArchiveSource source;
};
template <class Ar>
void fields(Ar& a, StagePlan& p) {
  a(p.error), a(p.tag), a(p.source);
}

// ---- parallel restore (parallel_restore.cpp): what a rank's units tell rank 0 ----
struct SpanPart {  // bytes of a spanning file written by one unit
  uint64_t file = 0, bytes = 0;
  bool operator==(const SpanPart&) const = default;
};
template <class Ar>
void fields(Ar& a, SpanPart& p) {
  a(p.file), a(p.bytes);
}

struct UnitOrder {  // a unit's first and last member paths, for plans that check the order
  uint64_t unit = 0;
  std::string first, last;
  bool ordered = true;
  bool operator==(const UnitOrder&) const = default;
};
template <class Ar>
void fields(Ar& a, UnitOrder& o) {
  a(o.unit), a(o.first), a(o.last), a(o.ordered);
}

struct RankResults {
  std::string fatal;                   // what stopped this rank's units
  uint32_t signal = 0;                 // the signal this rank got, 0 if none
  std::vector<RestoredEntry> entries;  // not finished on their rank: for the final pass
  std::vector<std::string> errors, lost, implied;
  std::vector<SpanPart> parts;
  std::vector<uint64_t> heads;         // spanning files whose header a unit held
  std::vector<UnitOrder> order;
  uint64_t finished = 0;               // files complete with their metadata: only counted
  std::vector<uint64_t> matched;       // --only selectors such files matched
  bool operator==(const RankResults&) const = default;
};
template <class Ar>
void fields(Ar& a, RankResults& r) {
  a(r.fatal), a(r.signal), a(r.entries), a(r.errors), a(r.lost), a(r.implied), a(r.parts), a(r.heads), a(r.order);
  a(r.finished), a(r.matched);
}

}  // namespace pbackup
