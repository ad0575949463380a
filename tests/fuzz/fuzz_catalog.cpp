// libFuzzer target: the catalog reader (read_catalog), fed in chunks of varying size as a file
// is. Its contract: Fatal on malformed input, nothing else (no crash, no unbounded allocation:
// a record is at most kMaxCatalogRecord bytes); a catalog it accepts must write back to the
// same records.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "core/catalog.h"
#include "pbackup/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  size_t step = size ? 1 + data[0] % 97 : 1, at = 0;
  std::vector<pbackup::CatalogRecord> recs;
  try {
    pbackup::read_catalog([&]() -> std::string_view {
      if (at >= in.size()) return {};
      std::string_view c = in.substr(at, step);
      at += c.size();
      return c;
    }, [&](const pbackup::CatalogRecord& r) {
      if (recs.size() < 1000) recs.push_back(r);
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
      if (r.path != recs[n].path || r.size != recs[n].size || r.block != recs[n].block) __builtin_trap();
      ++n;
    });
    if (n != recs.size()) __builtin_trap();
  }
  return 0;
}
