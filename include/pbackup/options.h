// Options of each subcommand after parsing and validation, as the pipeline sees them.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "pbackup/log.h"

namespace pbackup {

// age encryption (issue 16). Secrets are named by file, never given on the command line.
struct AgeKeys {
  std::vector<std::string> recipients;       // backup --encrypt-to age1...
  std::vector<std::string> recipient_files;  // backup --encrypt-to-file FILE (as age -R)
  std::vector<std::string> identity_files;   // restore/list/verify --identity FILE (age-keygen's format)
  std::string passphrase_file;               // both: --passphrase-file FILE (scrypt)
  bool encrypting() const { return !recipients.empty() || !recipient_files.empty() || !passphrase_file.empty(); }
  bool decrypting() const { return !identity_files.empty() || !passphrase_file.empty(); }
};

struct BackupOptions {
  std::vector<std::string> sources;
  std::string output_dir;
  std::string algo = "gzip";
  std::string dest_type = "hdd";
  uint64_t split_chunk_mb = 0;
  std::string name;  // base name without extension; empty -> backup_YYYYMMDD_HHMMSS
  int threads = 0;   // 0 -> cores this rank may run on
  uint64_t block_mb = 4;
  int level = -1;    // codec default
  int progress = -1; // -1 auto, 0 off, 1 on
  LogLevel log_level = LogLevel::Warn;
  std::string command_line;
  std::string s3_endpoint, s3_region, s3_addressing;
  uint64_t s3_part_mb = 16;  // measured: docs/admin-guide.md, "Cloud"
  // selection (src/core/select.h)
  std::vector<std::string> excludes, exclude_from;
  std::string files_from;  // "-": stdin
  bool null_separated = false;
  bool one_file_system = false;
  bool dry_run = false;
  std::string incremental_from;  // issue 15: the previous level (archive, folder or s3:// URL)
  std::string consolidate_from;  // issue 15: `consolidate --source LEVEL_N` (core/consolidate.h); no sources then
  AgeKeys keys;  // recipients: the archive is written as BASE.EXT.age
  bool json = false;  // --json: the summary as one JSON object on stdout
  bool resume = false;  // --resume: keep a journal; continue an interrupted run of the same command (core/resume.h)
};

struct RestoreOptions {
  std::string source;
  bool progress = true;  // restore, verify: progress lines every 5 s (--no-progress: none)
  std::string restore_to;
  bool is_split = false;
  std::string original_base_filename;
  std::vector<std::string> only;  // paths or globs (src/core/select.h)
  std::string only_from;          // file of --only patterns, one per line
  // restore into a non-empty directory (GNU tar): overwrite (default), keep_old (existing
  // files are an error), skip_old (existing files are kept silently), keep_newer (files newer
  // on disk than in the archive are kept)
  enum class Existing { Overwrite, KeepOld, SkipOld, KeepNewer } existing = Existing::Overwrite;
  std::vector<std::string> leave; // set by run_restore: sorted paths the parallel tar path keeps
  // set by a chain restore (issue 15): members restored under another path (a renamed entry whose
  // data an earlier level holds), sorted by member
  std::vector<std::pair<std::string, std::string>> rename;
  bool long_list = false;         // list --long
  std::vector<std::string> find_sources;  // find --source PATH...
  std::string pattern;            // find PATTERN
  std::string against;            // compare --against DIR
  bool checksum = false;          // compare --checksum
  bool numeric_owner = false;     // owners by the archive's ids only, never by name
  int stall_timeout_s = 60;       // streaming through libarchive: stop after this long without progress (0: never)
  uint64_t stream_memory_mib = 4096;  // ... or past this resident size (0: no limit)
  bool every_node = false;        // restore_to is node-local: a complete copy on every node
  bool node_local_copy = false;   // set by --every-node for each node's restore: its ranks share restore_to
  std::string s3_endpoint, s3_region, s3_addressing;
  int threads = 0;
  LogLevel log_level = LogLevel::Warn;
  AgeKeys keys;  // identities or passphrase for an age-encrypted archive
  bool json = false;  // --json: the summary (list: one object per member, then it) on stdout
  std::string output;  // report --output FILE.html
};

// pbackup cloud-cleanup
struct CleanupOptions {
  std::string source;        // s3://BUCKET/PREFIX
  int64_t older_than_s = 0;  // only uploads started at least this long ago (0: all)
  bool dry_run = false;      // list only
  std::string s3_endpoint, s3_region, s3_addressing;
  LogLevel log_level = LogLevel::Warn;
};

}  // namespace pbackup
