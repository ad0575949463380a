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
#include <functional>
#include <string>
#include <string_view>
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

// What an interrupted run's journal is checked against: this run's command and plan.
struct JournalExpect {
  std::function<bool(const std::string& command)> same_command;  // the header's command print
  uint64_t blocks = 0;                                            // blocks in this run's plan
  // Why journaled block b (b.id < blocks, `print` its print in hex) is not this run's block
  // b.id; empty when it is.
  std::function<std::string(const JournalBlock& b, const std::string& print)> differs;
  size_t max_line = 64u << 20;  // a damaged-files line holds one round's paths
};

// An interrupted run's journal as read. Usable when `why` is empty; else `why` says why not
// (damaged, another command, blocks that changed, ...) and the rest is what was read before.
struct JournalRead {
  std::string tag;                    // its temporary files' tag (set once the header was read)
  std::vector<JournalBlock> blocks;   // ids 0..K-1, tiling archive bytes 0..end
  std::vector<std::string> damaged;
  uint64_t end = 0;                   // archive bytes its blocks cover
  uint64_t good_bytes = 0;            // journal bytes up to the last complete line
  std::string why;
};

// Parses a journal (docs/format.md) pulled chunk by chunk (`next` returns an empty view at the
// end) and checks it against `expect`. Never throws on malformed input: a journal that cannot
// be continued comes back with `why` set. Memory: the lines read (at most max_line bytes each
// beyond them) and the blocks and damaged paths they hold. A last line without its newline
// (cut short by a signal) is ignored.
JournalRead parse_journal(const std::function<std::string_view()>& next, const JournalExpect& expect);
JournalRead parse_journal(std::string_view text, const JournalExpect& expect);

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
