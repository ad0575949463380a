// Selection: which paths a backup stores (--exclude, --exclude-from, --files-from, --null,
// --one-file-system) and the glob matcher shared by backup, find and restore --only.
//
// Glob rules (GNU tar / rsync): `*` and `?` do not cross '/', `**` does, `[...]` classes and
// `\` escapes as fnmatch(3). A pattern without '/' matches a base name anywhere ("*.o"); a
// pattern with '/' (a leading one is dropped) is anchored to the stored path ("proj/build");
// a trailing '/' matches directories only ("cache/").
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "pbackup/comm.h"
#include "pbackup/entry.h"
#include "pbackup/log.h"
#include "pbackup/options.h"

namespace pbackup {

// True when `pattern` matches the whole of `text` under the rules above (no anchoring logic:
// `text` is what the pattern is held against).
bool glob_match(const std::string& pattern, const std::string& text);
// The exclude rule: base-name match for a pattern without '/', anchored otherwise.
bool pattern_matches_path(const std::string& pattern, const std::string& path, bool is_dir);
// Does the string hold a glob character (`*`, `?`, `[`)?
bool has_glob(const std::string& s);

struct Selection {
  std::vector<std::string> excludes;  // patterns
  std::vector<std::string> files;     // --files-from: paths on disk (rank 0 uses them)
  bool one_file_system = false;
  // an incremental level: the scan leaves files' extended attributes, holes and read check to
  // read_file_details(), run only on the entries still to be stored (not shared: set on every rank)
  bool defer_file_details = false;
  bool excluded(const std::string& path, bool is_dir) const;
};

// Patterns from an --exclude-from file: one per line, `#` comments and blank lines skipped.
std::vector<std::string> read_pattern_file(const std::string& file);
// Paths from a --files-from file ("-": stdin), newline- or (null) NUL-separated; empty
// items skipped. Throws Fatal naming the file.
std::vector<std::string> read_file_list(const std::string& file, bool null);

// Every rank: rank 0 reads the pattern and list files and hands the selection to every rank.
// On error every rank returns false and rank 0 has logged why.
bool share_selection(Comm& comm, const BackupOptions& opt, Selection& sel, Log& log);

// --dry-run: scans and selects like a backup, prints every path that would be stored (escaped,
// one per line) and the count and bytes, writes nothing. Every rank calls it.
int run_dry_run(Comm& comm, const std::vector<Root>& roots, const Selection& sel, Log& log);

// A path for one output line: backslash, newline, tab and other control characters as
// C escapes (\\, \n, \t, \ooo), as GNU tar prints names.
std::string escape_name(const std::string& path);

}  // namespace pbackup
