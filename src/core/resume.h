// backup --resume (DESIGN §7 "Resume"): a run started with --resume keeps a journal beside its
// temporary file (OUT/.NAME.pbackup-journal, JSON lines, docs/format.md) of the blocks every
// rank has made durable: each rank fdatasyncs what it wrote at every round's settle() before
// it reports the round, so when rank 0 has every report of a round, the blocks it laid out a
// round earlier are on disk; it appends them (offset, size, SHA-256, a print of the entries
// they hold) and fdatasyncs the journal. A signal keeps the temporary file and the journal
// (an error or a finished run removes both). The same command with --resume re-scans and
// re-plans (the same tree gives the same blocks), checks the journal against the new plan
// (the command, then every journaled block's print: paths, sizes, mtimes, modes, owners of its
// entries), takes the interrupted run's temporary file, skips those blocks and goes on. Any
// difference: a notice saying why, and the run starts over.
#pragma once
#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "util/fd.h"

namespace pbackup {

struct BackupRun;

using BlockPrint = std::array<uint8_t, 16>;  // the first 128 bits of a SHA-256

// A block as the journal records it.
struct JournalBlock {
  uint64_t id = 0, raw = 0, offset = 0, size = 0;
  std::string sha256;  // hex, of the compressed bytes
};

struct ResumeState {
  std::string path;                   // the journal
  std::vector<BlockPrint> prints;     // rank 0: every planned block's print
  std::vector<JournalBlock> prefix;   // rank 0: blocks the interrupted run made durable (ids 0..K-1)
  std::vector<std::string> damaged;   // rank 0: damaged files in those blocks
  Fd journal;                         // rank 0: open for appending
};

// The journal's path for this run's archive.
std::string journal_path(const std::string& output_dir, const std::string& archive);

// plan stage, every rank, with --resume: rank 0 gets every block's print (in batches).
void gather_prints(BackupRun& run);

// plan stage, rank 0, with --resume, instead of dest->prepare(): takes an interrupted run's
// temporary file when its journal matches the new plan (run.resume->prefix then holds its
// blocks), else says why and prepares a new one; then opens the journal. Returns prepare()'s
// result. Throws Fatal on errors.
std::string prepare_resumable(BackupRun& run);

// rounds, rank 0: appends durable blocks (and the damaged files found in them) and syncs.
void journal_append(BackupRun& run, const std::vector<JournalBlock>& blocks, const std::vector<std::string>& damaged);

// Rank 0 after the commit, or on an error (not a signal): removes the journal.
void remove_journal(BackupRun& run) noexcept;

}  // namespace pbackup
