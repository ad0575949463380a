// The stages of a backup and a restore, as plain functions over a Comm. The CLI parses
// options, builds a Comm and calls one of these; tests call them with LocalComm.
#pragma once
#include <atomic>
#include <cstdint>
#include <string>
#include <vector>

#include "pbackup/comm.h"
#include "pbackup/entry.h"
#include "pbackup/format.h"
#include "pbackup/log.h"
#include "pbackup/options.h"

namespace pbackup {

class Destination;
struct Selection;  // src/core/select.h

// --- scan (src/core/scan.cpp) ---
// Checks the roots (exist, are directories or files, distinct base names). Rank 0.
std::vector<Root> resolve_roots(const std::vector<std::string>& sources, Log* log = nullptr);
// Every rank calls it; each rank returns the entries it found (unsorted): the file list stays
// spread over the ranks (core/file_list.h orders it).
// With a selection: excluded paths are neither stored nor descended into, --files-from lists
// replace the walk of the roots, --one-file-system stops at mount points.
// `found` (rank 0, optional): the entries found so far, for progress lines.
EntryList scan(Comm& comm, const std::vector<Root>& roots, Log& log, const Selection* sel = nullptr,
               std::atomic<uint64_t>* found = nullptr);
// After a scan with Selection::defer_file_details: reads what it left out for this rank's
// entries (files' extended attributes and holes; a file that cannot be read is dropped with a
// warning, as the scan would have).
void read_file_details(EntryList& mine, const std::vector<Root>& roots, Log& log);
// Sorts by path and marks hard links (second and later names of an inode): one whole list.
void order_entries(EntryList& entries);

// --- backup (src/core/backup.cpp) ---
struct BackupStats {
  uint64_t files = 0, dirs = 0, other = 0;
  uint64_t bytes_in = 0, bytes_out = 0;
  double seconds = 0;
  uint64_t warnings = 0;
  std::string archive;  // final name
};
// Runs the whole backup; returns the exit code (0, 1, 2) on every rank.
int run_backup(Comm& comm, const BackupOptions& opt, Log& log, BackupStats& stats);

// What restore, verify, list and compare did, for `--json` (src/cli/main.cpp): set on rank 0
// where each prints its summary. Counts that a path does not know stay at kUnknown (null).
struct RunSummary {
  static constexpr uint64_t kUnknown = ~uint64_t{0};
  std::string archive;
  uint64_t entries = kUnknown, files = kUnknown, dirs = kUnknown;
  uint64_t bytes_in = kUnknown, bytes_out = kUnknown;
  double seconds = 0;
  std::vector<std::pair<std::string, std::string>> differences;  // compare --json: (path, what), the first 10000
  uint64_t differences_total = 0;
  bool collect_differences = false;  // set by compare --json: differences go here, not to stdout
};
RunSummary& run_summary();  // the process's one summary (one command per process)

// --- restore / list (src/core/restore.cpp) ---
int run_restore(Comm& comm, const RestoreOptions& opt, Log& log);
int run_list(Comm& comm, const RestoreOptions& opt, Log& log);
struct ArchiveSource;
// Our tar archives with a manifest restore block by block on every rank and thread.
bool can_restore_in_parallel(const ArchiveSource& s);
// Returns kExitRestream (src/core/parallel_restore.h) when a name appears twice: then the
// archive must be streamed (last member wins).
int run_parallel_restore(Comm& comm, const ArchiveSource& s, const RestoreOptions& opt, Log& log);
// Any zip whose central directory this reader trusts restores member by member on every rank
// and thread (src/core/parallel_restore_zip.cpp); `why_not` says why another cannot.
bool zip_restores_in_parallel(const ArchiveSource& s, std::string& why_not);
int run_parallel_zip_restore(Comm& comm, const ArchiveSource& s, const RestoreOptions& opt, Log& log);
// Checks fragments (presence, size, SHA-256) and every block (SHA-256, and decompression with
// its codec's CRC) against the manifest, in parallel. 0 when all is well, 2 otherwise.
int run_verify(Comm& comm, const RestoreOptions& opt, Log& log);
// `report --source ARCHIVE --output FILE.html` (src/core/report.cpp): rank 0 writes the page.
int run_report(Comm& comm, const RestoreOptions& opt, Log& log);

// Threads this rank should use by default: the cores it may run on, shared with the
// `local_ranks` ranks of this node (Comm::local_size) when they are not bound to distinct cores.
int default_threads(int local_ranks);

// Archive names are UTF-8 (pax): use the user's locale, or C.UTF-8 where that is plain "C",
// so libarchive does not stumble converting names.
void use_utf8_locale();

// Set by the signal handlers (SIGINT, SIGTERM, SIGHUP, SIGUSR1, SIGUSR2); checked per block.
bool interrupted();
int interrupt_signal();  // the signal number, 0 if none
const char* signal_name(int sig);  // "SIGTERM", ...
// Another rank was interrupted by `sig`: this rank stops as if it had got the signal.
void interrupt_from_peer(int sig);
void install_signal_handlers();
// Temporary files (and, once those are gone, empty directories) the signal handler removes at once (so a SIGKILL following the signal leaves
// nothing); the pipeline then has 1.5 s to stop before the process exits 128+N regardless.
void register_temp_files(const std::vector<std::string>& paths);
// The member a streaming restore is writing (relative to the working directory, or absolute),
// "" when none: a process ended before the member is complete (the stream watchdog, a signal
// the pipeline did not stop for) removes it, so nothing is left looking restored.
void set_partial_file(const std::string& path);
// Removes the registered temporary files and the partial member now (before the process ends).
void remove_temp_files_now();

}  // namespace pbackup
