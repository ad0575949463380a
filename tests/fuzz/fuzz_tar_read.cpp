// libFuzzer target: the tar walker of the parallel restore (read_tar_member), driven as
// restore_block drives it. Damage must be a Fatal, never a crash, a hang or a huge allocation.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "format/tar_read.h"
#include "pbackup/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view buf(reinterpret_cast<const char*>(data), size);
  size_t pos = 0;
  pbackup::TarMember m;
  try {
    for (int members = 0; pos + 512 <= buf.size() && pbackup::read_tar_member(buf, pos, m); ++members) {
      if (pos > buf.size()) __builtin_trap();  // read_tar_member must leave pos inside the buffer
      uint64_t n = std::min<uint64_t>(m.size, buf.size() - pos);
      pos += n == m.size ? pbackup::tar_padded(m.size) : n;
      if (members > 1000000) __builtin_trap();  // every member moves on by at least 512 bytes
    }
  } catch (const pbackup::Fatal&) {
  }
  return 0;
}
