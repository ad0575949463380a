// The tar container: POSIX ustar headers with pax extended headers where ustar cannot say it
// (long or non-ASCII names and link targets, files of 8 GiB and more, sub-second or negative
// mtimes, large ids). Written by hand rather than through libarchive's writer so that a header
// can be produced on any rank for any entry without streaming the entry's data through it.
#pragma once
#include <string>

#include "pbackup/entry.h"

namespace pbackup {

// The header bytes (pax header if needed, then the ustar header) for one entry.
std::string tar_header(const Entry& e);

constexpr uint64_t kTarBlock = 512;

}  // namespace pbackup
