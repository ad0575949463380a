// Reading file data for blocks. The tar header (or zip entry) of a file is laid out before its
// data is read, so a file that cannot be read in full still fills its announced size: with
// zeros. Those zeros must never restore as good data, so such a file is recorded as DAMAGED
// (the rank reports it, rank 0 lists it in the manifest's "damaged" list, restore does not
// create it and exits 2, verify reports it; DESIGN §7). Damaged: the file vanished or cannot
// be opened since the scan, is no longer a regular file (a fifo swapped in would block the
// read forever: the open is O_NONBLOCK and the type checked by fstat), a read error, or it
// shrank while read. A file that grew or changed while read keeps a warning (exit 1), as GNU
// tar does. Paths at or over PATH_MAX are opened in pieces relative to a directory fd. Below a
// source root nothing is opened through a symlink: a directory swapped for a symlink to
// elsewhere after the scan makes its files damaged, never read from outside the tree.
#include "core/read.h"

#include <fcntl.h>
#include <limits.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>

#include "format/sparse.h"
#include "pbackup/error.h"
#include "util/fd.h"
#include "util/file_util.h"

namespace pbackup {

int open_long_path(const std::string& path, int flags) {
  if (path.size() < PATH_MAX) return ::open(path.c_str(), flags | O_CLOEXEC);
  // Longest prefixes that fit, cut at '/', each opened as a directory relative to the last; the
  // final piece with the caller's flags. Same symlink rules as a single open of the whole path.
  int dir = AT_FDCWD;
  size_t at = 0;
  while (path.size() - at >= PATH_MAX) {
    size_t cut = path.rfind('/', at + PATH_MAX - 2);
    if (cut == std::string::npos || cut < at) {
      if (dir != AT_FDCWD) ::close(dir);
      errno = ENAMETOOLONG;
      return -1;
    }
    std::string piece = cut == at ? "/" : path.substr(at, cut - at);
    int next = ::openat(dir, piece.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    int saved = errno;
    if (dir != AT_FDCWD) ::close(dir);
    if (next < 0) {
      errno = saved;
      return -1;
    }
    dir = next;
    at = cut + 1;
    while (at < path.size() && path[at] == '/') ++at;
  }
  int fd = ::openat(dir, path.c_str() + at, flags | O_CLOEXEC);
  int saved = errno;
  if (dir != AT_FDCWD) ::close(dir);
  errno = saved;
  return fd;
}

namespace {
// The directory of the last file this thread opened below a root (files are read in path order,
// so the next one mostly shares it): its path and an fd reached without following symlinks.
struct ParentDir {
  std::string path;
  int fd = -1;
  ~ParentDir() {
    if (fd >= 0) ::close(fd);
  }
};
thread_local ParentDir t_parent;

// The directory `dirs` ("a/b/c", or "" for `base` itself) below the directory `base`, not
// following a symlink anywhere below `base`. One openat2(RESOLVE_NO_SYMLINKS | RESOLVE_BENEATH)
// from this thread's descriptor of `base` (kept open: the scan opens every directory of a tree
// this way, and one walk per component cost a system call per level); where the kernel has no
// openat2 or the path is too long for one call, one openat(O_NOFOLLOW) per component.
int open_dir_below(const std::string& base, std::string_view dirs) {
  thread_local std::string base_path;
  thread_local Fd base_fd;
  if (!base_fd || base_path != base) {
    base_fd = Fd(open_long_path(base, O_RDONLY | O_DIRECTORY));
    if (!base_fd) return -1;
    base_path = base;
  }
  if (dirs.empty()) return ::openat(base_fd.get(), ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  static std::atomic<bool> no_openat2{false};
  if (!no_openat2.load(std::memory_order_relaxed) && dirs.size() < PATH_MAX) {
    struct open_how how {};
    how.flags = O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC;
    how.resolve = RESOLVE_NO_SYMLINKS | RESOLVE_BENEATH;
    const std::string rel(dirs);
    const long fd = ::syscall(SYS_openat2, base_fd.get(), rel.c_str(), &how, sizeof how);
    if (fd >= 0) return static_cast<int>(fd);
    if (errno == ELOOP || errno == ENOENT || errno == ENOTDIR || errno == EACCES || errno == EMFILE || errno == ENFILE) return -1;
    if (errno == ENOSYS || errno == EPERM) no_openat2 = true;  // an old kernel, or a seccomp filter: walk from now on
  }
  int dir = ::openat(base_fd.get(), ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  for (size_t from = 0; dir >= 0 && from <= dirs.size();) {
    size_t slash = dirs.find('/', from);
    if (slash == std::string_view::npos) slash = dirs.size();
    const std::string comp(dirs.substr(from, slash - from));
    const int next = ::openat(dir, comp.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    const int saved = errno;
    ::close(dir);
    errno = saved;
    dir = next;
    from = slash + 1;
  }
  return dir;
}
}  // namespace

int open_below_root(const std::string& disk, const std::string& archive_path, int flags, bool cache) {
  size_t first = archive_path.find('/');
  if (first == std::string::npos) return open_long_path(disk, flags);  // the root itself
  std::string_view tail(archive_path);
  tail.remove_prefix(first + 1);
  if (disk.size() <= tail.size() || disk.compare(disk.size() - tail.size(), tail.size(), tail) != 0 ||
      disk[disk.size() - tail.size() - 1] != '/')
    return open_long_path(disk, flags | O_NOFOLLOW);  // not ROOT/tail: cannot happen for scanned paths
  const size_t leaf_at = disk.rfind('/') + 1;  // inside the tail: tail's components are whole names
  const std::string_view parent(disk.data(), leaf_at);
  const std::string leaf = disk.substr(leaf_at);
  ParentDir uncached;
  ParentDir& c = cache ? t_parent : uncached;
  if (c.fd < 0 || c.path != parent) {
    const size_t last = tail.rfind('/');
    int dir = open_dir_below(disk.substr(0, disk.size() - tail.size()), last == std::string_view::npos ? "" : tail.substr(0, last));
    if (dir < 0) return -1;
    if (c.fd >= 0) ::close(c.fd);
    c.fd = dir;
    c.path = parent;
  }
  return ::openat(c.fd, leaf.c_str(), flags | O_CLOEXEC);
}

void FileData::damaged(const Entry& e, const std::string& why) {
  log_.warn(why + "; stored as zeros and listed as damaged in the manifest (restore will not create it)", e.path);
  std::lock_guard<std::mutex> l(mu_);
  if (damaged_.empty() || damaged_.back() != e.path) damaged_.push_back(e.path);
}

std::vector<std::string> FileData::take_damaged() {
  std::lock_guard<std::mutex> l(mu_);
  return std::move(damaged_);
}

// [offset, offset + length) of a sparse member's data (format/sparse.h): its map block, then
// the data regions back to back, read from their places in the file; holes are never read.
// Returns the bytes filled before the file ran short (as pread_full).
uint64_t FileData::read_sparse(int fd, const Entry& e, const std::string& disk, uint64_t offset, uint64_t length, char* out) {
  SparseMap map = decode_sparse_map(e.sparse);
  std::string head = sparse_map_block(map);
  uint64_t done = 0;
  if (offset < head.size()) {
    done = std::min<uint64_t>(length, head.size() - offset);
    std::memcpy(out, head.data() + offset, done);
  }
  uint64_t at = head.size();  // stored offset of the region below
  for (const auto& [off, len] : map) {
    if (done == length) break;
    uint64_t want = offset + done;  // next stored byte to fill
    if (want >= at + len) {
      at += len;
      continue;
    }
    uint64_t within = want - at, n = std::min<uint64_t>(len - within, length - done);
    uint64_t got = pread_full(fd, out + done, n, off + within, disk);
    done += got;
    if (got < n) return done;
    at += len;
  }
  return done;
}

void FileData::read(const Entry& e, const std::string& disk, uint64_t offset, uint64_t length, bool last, char* out) {
  const int flags = O_RDONLY | O_NOFOLLOW | O_NONBLOCK;
  Fd fd(open_below_root(disk, e.path, flags | O_NOATIME));
  if (!fd && errno == EPERM) fd = Fd(open_below_root(disk, e.path, flags));
  if (!fd) {
    std::memset(out, 0, length);
    if (errno == ELOOP || errno == ENOTDIR)
      damaged(e, quote(disk) + ": it or a directory on its path was replaced by a symlink (or other file) since the scan; not read through it");
    else
      damaged(e, sys_message(errno == ENOENT ? "file vanished since the scan:" : "cannot open", disk, errno));
    return;
  }
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0 || !S_ISREG(st.st_mode)) {
    std::memset(out, 0, length);
    damaged(e, quote(disk) + ": no longer a regular file (replaced since the scan)");
    return;
  }
  if (e.ino && (st.st_ino != e.ino || st.st_dev != e.dev) && offset == 0)
    log_.warn(quote(disk) + ": replaced by another file since the scan; storing the new one", disk);
  if (length >= (1u << 20) && e.sparse.empty())
    ::posix_fadvise(fd.get(), static_cast<off_t>(offset), static_cast<off_t>(length), POSIX_FADV_SEQUENTIAL);
  uint64_t got = 0;
  try {
    got = e.sparse.empty() ? pread_full(fd.get(), out, length, offset, disk) : read_sparse(fd.get(), e, disk, offset, length, out);
  } catch (const Fatal& f) {
    std::memset(out, 0, length);
    damaged(e, f.what());
    return;
  }
  if (got < length) {
    std::memset(out + got, 0, length - got);
    damaged(e, quote(disk) + ": file shrank by " + std::to_string(length - got) + " bytes while read");
    return;
  }
  if (!last) return;
  if (::fstat(fd.get(), &st) != 0) return;
  if (static_cast<uint64_t>(st.st_size) != e.size || st.st_mtim.tv_sec != e.mtime_sec ||
      static_cast<uint32_t>(st.st_mtim.tv_nsec) != e.mtime_nsec)
    log_.warn(quote(disk) + ": file changed as we read it", disk);
}

}  // namespace pbackup
