// The DataSource that reads source files from disk (see read.cpp).
#pragma once
#include <mutex>
#include <string>
#include <vector>

#include "pbackup/format.h"
#include "pbackup/log.h"

namespace pbackup {

// open(2) for paths of any length: at or over PATH_MAX it opens the longest prefixes that fit
// as directories, each relative to the last (as GNU tar does). -1 and errno on failure.
int open_long_path(const std::string& path, int flags);

// Opens `disk`, the on-disk path of archive path `archive_path` (ROOT/a/b/leaf), without
// following a symlink anywhere below the source root: the root's path is opened as given, then
// each directory below it with O_NOFOLLOW, then the leaf with `flags`. A directory swapped for a
// symlink after the scan fails with ELOOP/ENOTDIR instead of reading outside the source tree.
// With `cache`, the calling thread keeps the last directory's fd for the next call (files are
// read in path order); a directory swapped after it was opened is then still the one scanned.
int open_below_root(const std::string& disk, const std::string& archive_path, int flags, bool cache = true);

class FileData final : public DataSource {
 public:
  explicit FileData(Log& log) : log_(log) {}
  void read(const Entry& e, const std::string& disk, uint64_t offset, uint64_t length, bool last,
            char* out) override;
  // Archive paths of the files stored as zeros since the last call (see read.cpp).
  std::vector<std::string> take_damaged();

 private:
  void damaged(const Entry& e, const std::string& why);
  uint64_t read_sparse(int fd, const Entry& e, const std::string& disk, uint64_t offset, uint64_t length, char* out);
  Log& log_;
  std::mutex mu_;
  std::vector<std::string> damaged_;
};

}  // namespace pbackup
