// Per-thread buffers reused from block to block and never zero-filled. Building a block in a
// std::string and sizing a codec's worst-case output with resize() cleared megabytes per block,
// and each fresh allocation page-faulted them in again: ~7% of the CPU profile of a zstd backup
// of many small files (memset 2.8%, page faults 4%).
#pragma once
#include <cstddef>
#include <memory>

namespace pbackup {

enum class Scratch { Block = 0, Codec = 1 };

// At least `n` bytes for this thread and purpose, valid until the next call for the same
// purpose on this thread; the contents are whatever was there.
inline char* scratch(Scratch which, size_t n) {
  struct Buf {
    std::unique_ptr<char[]> p;
    size_t cap = 0;
  };
  thread_local Buf bufs[2];
  Buf& b = bufs[static_cast<int>(which)];
  if (b.cap < n) {
    b.p.reset();
    b.p = std::make_unique_for_overwrite<char[]>(n);
    b.cap = n;
  }
  return b.p.get();
}

}  // namespace pbackup
