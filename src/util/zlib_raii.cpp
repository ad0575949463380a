// RAII wrappers for zlib and libdeflate handles (see zlib_raii.h).
#include "util/zlib_raii.h"

#include <libdeflate.h>
#include <zlib.h>

#include <memory>
#include <string>

#include "pbackup/error.h"

namespace pbackup {

DeflateCompressor::DeflateCompressor(int level) : c_(libdeflate_alloc_compressor(level)), level_(level) {
  if (!c_) throw Fatal("libdeflate: cannot allocate a compressor (level " + std::to_string(level) + ")");
}
DeflateCompressor::~DeflateCompressor() { libdeflate_free_compressor(c_); }

libdeflate_compressor* thread_deflate_compressor(int level) {
  thread_local std::unique_ptr<DeflateCompressor> c;
  if (!c || c->level() != level) c = std::make_unique<DeflateCompressor>(level);
  return c->get();
}

ZStreamGuard::~ZStreamGuard() {
  if (deflating) deflateEnd(z);
  else inflateEnd(z);
}

}  // namespace pbackup
