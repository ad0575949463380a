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

SparseMap parse_sparse_member(std::string_view data, uint64_t realsize, size_t& start) {
  size_t pos = 0;
  auto number = [&]() -> uint64_t {
    size_t nl = data.find('\n', pos);
    if (nl == std::string_view::npos || nl == pos || nl - pos > 20) throw Fatal("sparse member: bad map");
    uint64_t v = 0;
    for (size_t i = pos; i < nl; ++i) {
      char c = data[i];
      if (c < '0' || c > '9' || v > (UINT64_MAX - 9) / 10) throw Fatal("sparse member: bad number in map");
      v = v * 10 + static_cast<uint64_t>(c - '0');
    }
    pos = nl + 1;
    return v;
  };
  uint64_t n = number();
  if (n > data.size() / 4) throw Fatal("sparse member: map of " + std::to_string(n) + " regions is longer than the member");
  SparseMap map;
  uint64_t end = 0, total = 0;
  for (uint64_t i = 0; i < n; ++i) {
    uint64_t off = number(), len = number();
    if (off < end || off > realsize || len > realsize - off) throw Fatal("sparse member: map region outside the file or out of order");
    end = off + len;
    total += len;
    if (len) map.emplace_back(off, len);
  }
  start = (pos + 511) / 512 * 512;
  if (start > data.size() || data.size() - start != total)
    throw Fatal("sparse member: " + std::to_string(data.size()) + " bytes do not hold the map and " + std::to_string(total) + " bytes of data");
  return map;
}

}  // namespace pbackup
