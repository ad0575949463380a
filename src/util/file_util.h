// POSIX file helpers shared by the file destinations, restore and verify: unique temporary
// names, the all-or-nothing commit of a run's files, directories, hashing a file. The owning
// fd and the full pread/pwrite loops are in util/fd.h.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "util/fd.h"

namespace pbackup {

// A random tag (16 hex digits) that makes a run's temporary names its own.
std::string random_tag();
// Creates `path` (O_EXCL: never an existing file), writes `bytes` and fsyncs it.
void write_new_file(const std::string& path, std::string_view bytes);
// Renames `from` to `to` unless `to` exists (renameat2 RENAME_NOREPLACE; link + unlink where the
// file system lacks it). Throws Fatal "... already exists" if `to` is taken.
void rename_noreplace(const std::string& from, const std::string& to);
// A run's commit: every (temporary, final) pair renamed in order without replacing anything,
// then the directory synced. On failure the final names this call made are removed again (they
// are this run's files) and Fatal is rethrown; the temporary files are the caller's to remove.
void commit_renames(const std::string& dir, const std::vector<std::pair<std::string, std::string>>& moves);
std::string dir_of(const std::string& path);
void fsync_dir(const std::string& dir);
// mkdir -p; Fatal("WHAT 'path': reason") on failure.
void make_dirs(const std::string& path, const std::string& what);
// SHA-256 (hex) of the first `size` bytes of a file; Fatal if it is shorter.
std::string hash_file(const std::string& path, uint64_t size);
// Feeds bytes [from, to) of the file at `path` to `h`.
class Sha256;
void hash_file_range(const std::string& path, uint64_t from, uint64_t to, Sha256& h);
// Checks that `dir` exists, is a directory and is writable; throws Fatal otherwise.
void check_output_dir(const std::string& dir);
// --resume: checks that an interrupted run's temporary file is a regular file (not followed
// through a link) holding at least `bytes` bytes; throws Fatal naming it otherwise.
void adopt_temp(const std::string& path, uint64_t bytes);

}  // namespace pbackup
