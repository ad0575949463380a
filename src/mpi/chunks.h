// How messages bigger than an MPI count (int: 2 GiB - 1) travel: in rounds of chunks. Pure
// arithmetic, no MPI, so the unit tests check it without mpirun (tests/unit/test_chunks.cpp).
//   broadcast, send/recv: bytes [k*C, (k+1)*C) in step k, C = the chunk size.
//   gather, scatter: in round k every rank moves bytes [k*C, (k+1)*C) of its own string, where
//   C = per_rank_chunk(): every round's total (all ranks together) and every displacement stay
//   below INT_MAX, whatever the rank count.
#pragma once
#include <algorithm>
#include <climits>
#include <cstdint>
#include <cstdlib>
#include <vector>

namespace pbackup::chunks {

// The largest chunk MPI takes by default: 1 GiB. PBACKUP_TEST_MPI_CHUNK=N (test only: a tiny
// N makes the integration tests run the chunked paths) overrides it.
inline uint64_t chunk_bytes() {
  static const uint64_t c = [] {
    uint64_t v = 1ull << 30;
    if (const char* e = std::getenv("PBACKUP_TEST_MPI_CHUNK")) {
      char* end = nullptr;
      unsigned long long t = std::strtoull(e, &end, 10);
      if (end && *end == 0 && t >= 1 && t <= v) v = t;
    }
    return v;
  }();
  return c;
}

// Chunk size for gather/scatter rounds with `ranks` ranks: ranks * C <= INT_MAX.
inline uint64_t per_rank_chunk(uint64_t chunk, int ranks) {
  uint64_t r = static_cast<uint64_t>(std::max(ranks, 1));
  return std::max<uint64_t>(1, std::min<uint64_t>(chunk, static_cast<uint64_t>(INT_MAX) / r));
}

// Rounds needed to move strings of these sizes (at least 1, so empty exchanges still agree).
inline uint64_t rounds(const std::vector<uint64_t>& sizes, uint64_t c) {
  uint64_t most = 0;
  for (uint64_t s : sizes) most = std::max(most, s);
  return std::max<uint64_t>(1, (most + c - 1) / c);
}

// Bytes of a string of n bytes that move in round k (0 when it is done), as an MPI count.
inline int in_round(uint64_t n, uint64_t c, uint64_t k) {
  uint64_t from = k * c;
  return from >= n ? 0 : static_cast<int>(std::min<uint64_t>(c, n - from));
}

// Counts and displacements of round k for every rank (int by construction: c * ranks <= INT_MAX).
inline uint64_t round_layout(const std::vector<uint64_t>& sizes, uint64_t c, uint64_t k, std::vector<int>& counts,
                             std::vector<int>& displs) {
  counts.assign(sizes.size(), 0);
  displs.assign(sizes.size(), 0);
  uint64_t total = 0;
  for (size_t r = 0; r < sizes.size(); ++r) {
    counts[r] = in_round(sizes[r], c, k);
    displs[r] = static_cast<int>(total);
    total += static_cast<uint64_t>(counts[r]);
  }
  return total;
}

}  // namespace pbackup::chunks
