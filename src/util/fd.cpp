// An owning fd and the full pread/pwrite loops (see fd.h).
#include "util/fd.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include "pbackup/error.h"

namespace pbackup {

void Fd::reset(int fd) {
  if (fd_ >= 0) ::close(fd_);
  fd_ = fd;
}

Fd open_or_throw(const std::string& path, int flags, int mode) {
  int fd = ::open(path.c_str(), flags | O_CLOEXEC, mode);
  if (fd < 0) throw_sys("cannot open", path, errno);
  return Fd(fd);
}

void pwrite_all(int fd, std::string_view bytes, uint64_t offset, const std::string& path) {
  while (!bytes.empty()) {
    ssize_t n = ::pwrite(fd, bytes.data(), std::min<size_t>(bytes.size(), 1u << 30), static_cast<off_t>(offset));
    if (n < 0) {
      if (errno == EINTR) continue;
      throw_sys("cannot write", path, errno);
    }
    bytes.remove_prefix(static_cast<size_t>(n));
    offset += static_cast<uint64_t>(n);
  }
}

uint64_t pread_full(int fd, char* out, uint64_t n, uint64_t offset, const std::string& path) {
  uint64_t got = 0;
  while (got < n) {
    ssize_t r = ::pread(fd, out + got, std::min<uint64_t>(n - got, 1u << 30), static_cast<off_t>(offset + got));
    if (r < 0) {
      if (errno == EINTR) continue;
      throw_sys("cannot read", path, errno);
    }
    if (r == 0) break;
    got += static_cast<uint64_t>(r);
  }
  return got;
}

void fsync_or_throw(int fd, const std::string& path) {
  if (::fsync(fd) != 0) throw_sys("cannot sync", path, errno);
}

}  // namespace pbackup
