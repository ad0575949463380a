// RAII wrappers for zlib and libdeflate handles (see zlib_raii.h).
#include "util/zlib_raii.h"

#include <libdeflate.h>
#include <zlib.h>

#include <string>

#include "pbackup/error.h"

namespace pbackup {

DeflateCompressor::DeflateCompressor(int level) : c_(libdeflate_alloc_compressor(level)) {
  if (!c_) throw Fatal("libdeflate: cannot allocate a compressor (level " + std::to_string(level) + ")");
}
DeflateCompressor::~DeflateCompressor() { libdeflate_free_compressor(c_); }

ZStreamGuard::~ZStreamGuard() {
  if (deflating) deflateEnd(z);
  else inflateEnd(z);
}

}  // namespace pbackup
