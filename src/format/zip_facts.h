// What a zip block tells rank 0 about each entry piece it holds (carried in UnitInfo::extra,
// one PartFact after another).
#pragma once
#include <cstdint>

#include "pbackup/wire.h"

namespace pbackup {

struct PartFact {
  uint32_t entry = 0;
  uint64_t header_pos = kNoHeader;  // where the local header starts inside the block
  bool placeholder = false;         // header written with zeros: rank 0 rewrites it
  bool last = false;
  uint32_t crc = 0;
  uint64_t csize = 0, usize = 0;
  static constexpr uint64_t kNoHeader = ~uint64_t{0};
  bool operator==(const PartFact&) const = default;
};

template <class Ar>
void fields(Ar& a, PartFact& f) {
  a(f.entry), a(f.header_pos), a.flags(f.placeholder, f.last), a(f.crc), a(f.csize), a(f.usize);
}

}  // namespace pbackup
