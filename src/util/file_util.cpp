// POSIX file helpers (see file_util.h).
#include "util/file_util.h"

#include <fcntl.h>
#include <stdio.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

#include "pbackup/error.h"
#include "pbackup/sha256.h"

namespace pbackup {

std::string dir_of(const std::string& path) {
  auto slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

void fsync_dir(const std::string& dir) {
  Fd d(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (d) ::fsync(d.get());  // best effort: some file systems refuse fsync on directories
}

std::string random_tag() {
  unsigned char b[8];
  size_t got = 0;
  while (got < sizeof b) {
    ssize_t n = ::getrandom(b + got, sizeof b - got, 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      throw_sys("cannot get random bytes for a temporary name", "getrandom", errno);
    }
    got += static_cast<size_t>(n);
  }
  static const char hex[] = "0123456789abcdef";
  std::string s;
  for (unsigned char c : b) {
    s += hex[c >> 4];
    s += hex[c & 15];
  }
  return s;
}

void write_new_file(const std::string& path, std::string_view bytes) {
  Fd fd = open_or_throw(path, O_WRONLY | O_CREAT | O_EXCL);
  try {
    pwrite_all(fd.get(), bytes, 0, path);
    fsync_or_throw(fd.get(), path);
    if (::close(fd.release()) != 0) throw_sys("cannot close", path, errno);
  } catch (...) {
    ::unlink(path.c_str());
    throw;
  }
}

void rename_noreplace(const std::string& from, const std::string& to) {
  auto taken = [&] { return Fatal("archive file " + quote(to) + " already exists (the name is taken, perhaps by another backup with the same --name)"); };
  if (::renameat2(AT_FDCWD, from.c_str(), AT_FDCWD, to.c_str(), RENAME_NOREPLACE) == 0) return;
  int err = errno;
  if (err == EEXIST) throw taken();
  if (err != EINVAL && err != ENOSYS && err != EOPNOTSUPP) throw_sys("cannot rename into", to, err);
  // No RENAME_NOREPLACE here (NFS, some FUSE): a hard link fails on an existing name as well.
  if (::link(from.c_str(), to.c_str()) == 0) {
    ::unlink(from.c_str());
    return;
  }
  err = errno;
  if (err == EEXIST) throw taken();
  if (err != EPERM && err != EOPNOTSUPP && err != ENOSYS) throw_sys("cannot link into", to, err);
  // Neither (a file system without hard links and without RENAME_NOREPLACE): look, then rename.
  // A concurrent run could slip in between; the manifest's own no-replace step stays the arbiter.
  struct stat st {};
  if (::lstat(to.c_str(), &st) == 0) throw taken();
  if (::rename(from.c_str(), to.c_str()) != 0) throw_sys("cannot rename into", to, errno);
}

void commit_renames(const std::string& dir, const std::vector<std::pair<std::string, std::string>>& moves) {
  size_t done = 0;
  try {
    for (; done < moves.size(); ++done) rename_noreplace(moves[done].first, moves[done].second);
    fsync_dir(dir);
  } catch (...) {
    for (size_t i = 0; i < done; ++i) ::unlink(moves[i].second.c_str());
    fsync_dir(dir);
    throw;
  }
}

void make_dirs(const std::string& path, const std::string& what) {
  for (size_t i = 1; i <= path.size(); ++i) {
    if (i != path.size() && path[i] != '/') continue;
    std::string cur = path.substr(0, i);
    if (::mkdir(cur.c_str(), 0755) != 0 && errno != EEXIST) throw_sys(what, cur, errno);
  }
}

void hash_file_range(const std::string& path, uint64_t from, uint64_t to, Sha256& h) {
  Fd fd = open_or_throw(path, O_RDONLY);
  ::posix_fadvise(fd.get(), static_cast<off_t>(from), static_cast<off_t>(to - from), POSIX_FADV_SEQUENTIAL);
  std::string buf(4 << 20, '\0');
  for (uint64_t off = from; off < to;) {
    uint64_t n = pread_full(fd.get(), buf.data(), std::min<uint64_t>(buf.size(), to - off), off, path);
    if (n == 0) throw Fatal(quote(path) + " is shorter than the layout says");
    h.update(std::string_view(buf.data(), n));
    off += n;
  }
}

std::string hash_file(const std::string& path, uint64_t size) {
  Sha256 h;
  hash_file_range(path, 0, size, h);
  return h.hex();
}

void check_output_dir(const std::string& dir) {
  struct stat st {};
  if (::stat(dir.c_str(), &st) != 0) throw Fatal(sys_message("output directory", dir, errno));
  if (!S_ISDIR(st.st_mode)) throw Fatal("output directory " + quote(dir) + ": not a directory");
  if (::access(dir.c_str(), W_OK | X_OK) != 0) throw Fatal(sys_message("output directory", dir, errno));
}

void adopt_temp(const std::string& path, uint64_t bytes) {
  Fd fd = open_or_throw(path, O_RDONLY | O_NOFOLLOW);
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) throw Fatal(sys_message("cannot stat", path, errno));
  if (!S_ISREG(st.st_mode)) throw Fatal("temporary file " + quote(path) + ": not a regular file");
  if (static_cast<uint64_t>(st.st_size) < bytes)
    throw Fatal("temporary file " + quote(path) + " holds " + std::to_string(st.st_size) + " bytes, the journal says " +
                std::to_string(bytes) + " were written");
}

}  // namespace pbackup
