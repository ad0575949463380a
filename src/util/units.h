// Sizes for people: binary units throughout (B, KiB, MiB, GiB, TiB, PiB), as the options take
// MiB (--block-mb, --split-chunk-mb), scaled so a 2 TiB backup does not read "2100000.0 MB".
#pragma once
#include <cstdint>
#include <string>

namespace pbackup {

// "512 B", "1.5 KiB", "12.3 MiB", "2.10 TiB": three significant digits from KiB up.
std::string human_bytes(uint64_t bytes);
// "2026-11-29 13:02:05" (UTC), the prefix of progress lines in batch logs.
std::string log_timestamp();

}  // namespace pbackup
