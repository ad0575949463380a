// An owning file descriptor and the POSIX read/write loops everyone uses: open or throw, write
// all bytes at an offset, read up to n bytes at an offset (EINTR retried, errors name the file).
#pragma once
#include <cstdint>
#include <string>
#include <string_view>

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

}  // namespace pbackup
