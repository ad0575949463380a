// libFuzzer target: the catalog reader (read_catalog), fed in chunks of varying size as a file
// is. Its contract: Fatal on malformed input, nothing else (no crash, no unbounded allocation:
// a record is at most kMaxCatalogRecord bytes); a catalog it accepts must write back to the
// same records, every field (version 2's ctime, dev, ino, level and member included), and
// print as `list --long` prints it.
// Two forms of input: a catalog file ("PBKCATLG..."; the seeds are real ones), or, to reach
// the record fields past the zstd layer, [version bit][count] + uncompressed records, which
// the target wraps in a header and a zstd frame itself.
#include <zstd.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "core/catalog.h"
#include "pbackup/error.h"

namespace {
void put(std::string& o, uint64_t v, int bytes) {
  for (int i = 0; i < bytes; ++i) o.push_back(static_cast<char>(v >> (8 * i)));
}

bool same(const pbackup::CatalogRecord& a, const pbackup::CatalogRecord& b) {
  return a.path == b.path && a.link == b.link && a.uname == b.uname && a.gname == b.gname && a.type == b.type && a.flags == b.flags &&
         a.mode == b.mode && a.uid == b.uid && a.gid == b.gid && a.size == b.size && a.mtime_sec == b.mtime_sec &&
         a.mtime_nsec == b.mtime_nsec && a.block == b.block && a.offset == b.offset && a.ctime_sec == b.ctime_sec &&
         a.ctime_nsec == b.ctime_nsec && a.dev == b.dev && a.ino == b.ino && a.level == b.level && a.member == b.member;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string file;
  std::string_view in(reinterpret_cast<const char*>(data), size);
  if (size >= 2 && in.substr(0, 8) != "PBKCATLG") {  // records: wrap them in a catalog file
    std::string_view records = in.substr(2);
    file = "PBKCATLG";
    put(file, 1 + (data[0] & 1), 4);
    put(file, 0, 4);
    put(file, data[1], 8);
    put(file, records.size(), 8);
    std::string z(ZSTD_compressBound(records.size()), '\0');
    size_t n = ZSTD_compress(z.data(), z.size(), records.data(), records.size(), 1);
    if (ZSTD_isError(n)) __builtin_trap();
    file.append(z.data(), n);
    in = file;
  }
  size_t step = size ? 1 + data[size - 1] % 97 : 1, at = 0;
  std::vector<pbackup::CatalogRecord> recs;
  try {
    pbackup::read_catalog([&]() -> std::string_view {
      if (at >= in.size()) return {};
      std::string_view c = in.substr(at, step);
      at += c.size();
      return c;
    }, [&](const pbackup::CatalogRecord& r) {
      if (recs.size() < 1000) recs.push_back(r);
      (void)pbackup::long_line(r);
    });
  } catch (const pbackup::Fatal&) {
    return 0;
  }
  if (recs.size() < 1000) {
    pbackup::CatalogWriter w(recs.size());
    for (auto& r : recs) w.add(r);
    std::string again = w.finish();
    size_t n = 0;
    pbackup::read_catalog(again, [&](const pbackup::CatalogRecord& r) {
      if (n >= recs.size() || !same(r, recs[n])) __builtin_trap();
      ++n;
    });
    if (n != recs.size()) __builtin_trap();
  }
  return 0;
}
