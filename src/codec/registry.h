// Codec registry internals: the factories of the codec files and helpers shared by the codecs.
// (The zlib/libdeflate RAII wrappers, shared with the zip format, are in util/zlib_raii.h.)
#pragma once
#include <memory>
#include <string>
#include <string_view>

#include "pbackup/codec.h"
#include "util/zlib_raii.h"

namespace pbackup {

std::unique_ptr<Codec> make_gzip_codec(int level);
std::unique_ptr<Codec> make_bzip2_codec(int level);
std::unique_ptr<Codec> make_zstd_codec(int level);

// An output buffer for `n` decompressed bytes: reserved (not touched) when `reserve_only`,
// else sized. Out of memory is a Fatal naming `what`, not std::bad_alloc.
std::string decode_buffer(uint64_t n, bool reserve_only, const char* what);
// The error for a stream that decompresses to more or fewer bytes than expected.
[[noreturn]] void wrong_size(const char* what, uint64_t expected, const char* more_or_less);

}  // namespace pbackup
