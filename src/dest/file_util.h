// POSIX file helpers shared by the file destinations: an owning fd, full pwrite/pread loops,
// unique temporary names, and the all-or-nothing commit of a run's files.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace pbackup {

class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) : fd_(fd) {}
  Fd(Fd&& o) noexcept : fd_(o.release()) {}
  Fd& operator=(Fd&& o) noexcept {
    reset(o.release());
    return *this;
  }
  ~Fd() { reset(); }
  int get() const { return fd_; }
  explicit operator bool() const { return fd_ >= 0; }
  int release() {
    int f = fd_;
    fd_ = -1;
    return f;
  }
  void reset(int fd = -1);

 private:
  int fd_ = -1;
};

Fd open_or_throw(const std::string& path, int flags, int mode = 0644);
void pwrite_all(int fd, std::string_view bytes, uint64_t offset, const std::string& path);
// Reads up to n bytes; returns how many (fewer only at end of file).
uint64_t pread_full(int fd, char* out, uint64_t n, uint64_t offset, const std::string& path);
void fsync_or_throw(int fd, const std::string& path);
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

}  // namespace pbackup
