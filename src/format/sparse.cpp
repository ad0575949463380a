// GNU sparse 1.0 maps (see sparse.h).
#include "format/sparse.h"

#include <cstring>

#include "pbackup/error.h"

namespace pbackup {

std::string encode_sparse_map(const SparseMap& m) {
  std::string s(m.size() * 16, '\0');
  for (size_t i = 0; i < m.size(); ++i) {
    std::memcpy(&s[16 * i], &m[i].first, 8);
    std::memcpy(&s[16 * i + 8], &m[i].second, 8);
  }
  return s;
}

SparseMap decode_sparse_map(const std::string& s) {
  if (s.size() % 16) throw Fatal("internal: sparse map of " + std::to_string(s.size()) + " bytes");
  SparseMap m(s.size() / 16);
  for (size_t i = 0; i < m.size(); ++i) {
    std::memcpy(&m[i].first, &s[16 * i], 8);
    std::memcpy(&m[i].second, &s[16 * i + 8], 8);
  }
  return m;
}

std::string sparse_map_block(const SparseMap& m) {
  std::string t = std::to_string(m.size()) + "\n";
  for (auto& [off, len] : m) t += std::to_string(off) + "\n" + std::to_string(len) + "\n";
  t.resize((t.size() + 511) / 512 * 512, '\0');
  return t;
}

uint64_t tar_data_size(const Entry& e) {
  if (e.type != EntryType::File) return 0;
  if (e.sparse.empty()) return e.size;
  SparseMap m = decode_sparse_map(e.sparse);
  uint64_t n = sparse_map_block(m).size();
  for (auto& r : m) n += r.second;
  return n;
}

}  // namespace pbackup
