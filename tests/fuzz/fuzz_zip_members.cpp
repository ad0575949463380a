// libFuzzer target: the zip member path of the parallel restore and verify (check_zip_members):
// central directory, plan (members in offset order, runs of small members read together, big
// members streamed), local headers read from a run's buffer or the file, stored and deflated
// data inflated in memory or piece by piece, sizes and CRC-32s checked. The input is written to
// a file (the path reads archives from files). Damage must be a message, never a crash, a hang
// or a huge allocation; a member claiming more than 16 MiB takes the streaming path.
#include <fcntl.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <string>

#include "core/parallel_restore.h"
#include "pbackup/error.h"
#include "pbackup/pipeline.h"
#include "pbackup/source.h"
#include "pbackup/store.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // A new name per input: the directory reader keeps the last directory it read per file name
  // and size.
  static uint64_t counter = 0;
  struct TempDir {
    std::string path;
    TempDir() {
      char tmpl[] = "/tmp/pbackup-fuzz-zip-XXXXXX";
      if (!::mkdtemp(tmpl)) __builtin_trap();
      path = tmpl;
    }
    ~TempDir() { ::rmdir(path.c_str()); }
  };
  static const TempDir temp;
  const std::string& dir = temp.path;
  std::string path = dir + "/a" + std::to_string(counter++);
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) __builtin_trap();
  for (size_t done = 0; done < size;) {
    ssize_t n = ::write(fd, data + done, size - done);
    if (n <= 0) __builtin_trap();
    done += static_cast<size_t>(n);
  }
  ::close(fd);
  pbackup::ArchiveSource s;
  s.name = "fuzz.zip";
  s.files = {path};
  s.sizes = {size};
  s.store = pbackup::make_local_store();
  try {
    std::string why;
    (void)pbackup::zip_restores_in_parallel(s, why);
    (void)pbackup::check_zip_members(s, 0, 1, 1);
  } catch (const pbackup::Fatal&) {
  }
  ::unlink(path.c_str());
  return 0;
}
