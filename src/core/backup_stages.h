// The state the backup stages share (backup.cpp, backup_rounds.cpp): one BackupRun per rank,
// filled in stage by stage, and one error holder for this rank's first error.
#pragma once
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/consolidate.h"
#include "core/incremental.h"
#include "core/messages.h"
#include "core/resume.h"
#include "crypto/age.h"
#include "core/select.h"
#include "pbackup/comm.h"
#include "pbackup/destination.h"
#include "pbackup/error.h"
#include "pbackup/format.h"
#include "pbackup/log.h"
#include "pbackup/manifest.h"
#include "pbackup/options.h"
#include "pbackup/pipeline.h"

namespace pbackup {

using Clock = std::chrono::steady_clock;

// This rank's first error in a stage. The ranks agree on it at the end of every stage
// (BackupRun::agree), so all take the same path and none throws across a collective.
class ErrorHolder {
 public:
  void set(const std::string& why) {
    if (why_.empty()) why_ = why;
  }
  // Runs f, keeping the message of what it throws.
  template <class F>
  void guard(F&& f) {
    try {
      f();
    } catch (const std::exception& e) {
      set(e.what());
    }
  }
  bool ok() const { return why_.empty(); }
  const std::string& why() const { return why_; }

 private:
  std::string why_;
};

// What `pbackup report` draws (src/core/report.cpp): this rank's phases, in ms since its start.
// Appended from the main, compressor and writer threads; at most kMaxSpans per kind (adjacent
// spans are merged once full), so a run of a million rounds stays small.
class Timeline {
 public:
  static constexpr size_t kMaxSpans = 200;
  void add(const std::string& phase, Clock::time_point t0, Clock::time_point from, Clock::time_point to);
  std::vector<std::string> flat() const;  // phase, from, to, ... (ms as decimal strings), for the wire
 private:
  mutable std::mutex mu_;
  std::vector<std::tuple<std::string, uint64_t, uint64_t>> spans_;
};

struct BackupRun {
  Comm& comm;
  const BackupOptions& opt;
  Log& log;
  const bool root;
  const Clock::time_point t0;
  std::unique_ptr<Format> fmt;
  Setup setup;                        // every rank
  Selection sel;                      // every rank: --exclude, --files-from, --one-file-system
  DestinationSpec spec;
  std::unique_ptr<Destination> dest;  // every rank
  std::vector<int> writer_of;         // every rank: per rank, who writes its blocks (itself if it sees the output)
  // The ordered file list stays spread over the ranks (core/file_list.h): this rank's slice and
  // the blocks cut from it. When the layout needs every entry (zip's central directory), rank 0
  // holds the whole list and every block instead (whole_on_root).
  EntryList entries;
  std::vector<Block> blocks;
  bool whole_on_root = false;
  Incremental inc;                    // --incremental-from (core/incremental.h)
  Consolidation con;                  // `consolidate` (core/consolidate.h): entries and data from a chain
  std::vector<BlockInfo> plan;        // rank 0: every block (no entries)
  int threads = 1;                    // this rank's
  std::vector<int> thread_counts;     // rank 0: every rank's
  Manifest man;                       // rank 0: block records and damaged files, from the rounds
  uint64_t bytes_in = 0;              // rank 0: container bytes before compression
  uint64_t files = 0, dirs = 0, other = 0;  // rank 0, after the commit's list stage: entries stored
  std::string catalog;                // rank 0, the same: the catalog file
  uint64_t total = 0;                 // every rank after the rounds: the archive's size
  ErrorHolder error;
  std::vector<age::Recipient> recipients;  // rank 0, when encrypting (--encrypt-to...)
  Timeline timeline;                  // this rank's phases (report)
  std::vector<std::pair<uint64_t, uint64_t>> throughput;  // rank 0: (ms, bytes done) per round, thinned
  std::unique_ptr<ResumeState> resume;  // with --resume (core/resume.h)

  BackupRun(Comm& c, const BackupOptions& o, Log& l)
      : comm(c), opt(o), log(l), root(c.rank() == 0), t0(Clock::now()) {}

  // Every rank, at the same step: whether every rank is fine (no error and, with `signals`, no
  // signal).
  bool agree(bool signals = true) { return comm.all_ok(error.ok() && !(signals && interrupted())); }
  // Every rank, at the same step, once the ranks disagreed: each rank that failed logs its own
  // reason (tagged with its rank and host); the ranks agree on a signal any of them got, so
  // each exits 128+N and rank 0 says so (cli/main.cpp).
  int fail() {
    const int sig = static_cast<int>(comm.max(static_cast<uint64_t>(interrupt_signal())));
    // the same reason on several ranks (a part upload's error reaches them all) is said once,
    // by rank 0; a rank with a reason of its own says it, with its rank and host
    std::string root_why = error.why();
    comm.broadcast(root_why, 0);
    if (root && sig && resume && resume->journal) {
      // --resume: the temporary files and the journal stay for the same command with --resume
      log.notice("kept the temporary files and the journal " + quote(resume->path) + ": the same command with --resume continues");
    } else if (root) {
      dest->abort();
      remove_journal(*this);
    }
    if (sig) return 128 + sig;
    if (!error.ok() && (root || error.why() != root_why)) log.error(error.why());
    return kExitFatal;
  }
  std::string since() const;  // "1.23 s" since the start, for the info log
  void memory(const char* stage) const;  // debug log: peak and current RSS after a stage
};

// rounds: compresses and writes every block (backup_rounds.cpp). False when the ranks stopped
// (run.error holds this rank's reason, if any). Rank 0 fills run.man; every rank learns
// run.total once the last structural bytes are laid out.
bool run_rounds(BackupRun& run);

}  // namespace pbackup
