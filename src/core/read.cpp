// Reading file data for blocks. A file that cannot be opened, shrank, grew or changed while
// read gets a warning naming it (exit status 1); the archive still holds exactly the size the
// header announced (zero padding if it shrank), as GNU tar does.
#include "core/read.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "dest/file_util.h"
#include "pbackup/error.h"

namespace pbackup {

void FileData::read(const Entry& e, const std::string& disk, uint64_t offset, uint64_t length,
                    bool last, char* out) {
  Fd fd(::open(disk.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOATIME));
  if (!fd && errno == EPERM) fd = Fd(::open(disk.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
  if (!fd) {
    log_.warn(sys_message("cannot open", disk, errno) + "; stored as zeros");
    std::memset(out, 0, length);
    return;
  }
  if (length >= (1u << 20)) ::posix_fadvise(fd.get(), static_cast<off_t>(offset), static_cast<off_t>(length), POSIX_FADV_SEQUENTIAL);
  uint64_t got = 0;
  try {
    got = pread_full(fd.get(), out, length, offset, disk);
  } catch (const Fatal& f) {
    log_.warn(std::string(f.what()) + "; stored as zeros");
  }
  if (got < length) {
    std::memset(out + got, 0, length - got);
    log_.warn(quote(disk) + ": file shrank by " + std::to_string(length - got) + " bytes; padded with zeros");
    return;
  }
  if (!last) return;
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) return;
  if (static_cast<uint64_t>(st.st_size) != e.size || st.st_mtim.tv_sec != e.mtime_sec ||
      static_cast<uint32_t>(st.st_mtim.tv_nsec) != e.mtime_nsec)
    log_.warn(quote(disk) + ": file changed as we read it");
}

}  // namespace pbackup
