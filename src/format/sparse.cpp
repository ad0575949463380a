// GNU sparse 1.0 maps (see sparse.h).
#include "format/sparse.h"

#include <algorithm>
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

bool parse_sparse_map(std::string_view head, uint64_t stored, uint64_t realsize, SparseMap& out, uint64_t& start) {
  if (head.size() > stored) throw Fatal("internal: sparse member head longer than its data");
  const bool whole = head.size() == stored;
  size_t pos = 0;
  auto number = [&](uint64_t& v) -> bool {
    size_t nl = head.find('\n', pos);
    if (nl == std::string_view::npos) {
      if (whole || head.size() - pos > 20) throw Fatal("sparse member: bad map");
      return false;  // head ends inside the map
    }
    if (nl == pos || nl - pos > 20) throw Fatal("sparse member: bad map");
    v = 0;
    for (size_t i = pos; i < nl; ++i) {
      char c = head[i];
      if (c < '0' || c > '9' || v > (UINT64_MAX - 9) / 10) throw Fatal("sparse member: bad number in map");
      v = v * 10 + static_cast<uint64_t>(c - '0');
    }
    pos = nl + 1;
    return true;
  };
  uint64_t n = 0;
  if (!number(n)) return false;
  if (n > stored / 4) throw Fatal("sparse member: map of " + std::to_string(n) + " regions is longer than the member");
  SparseMap map;
  uint64_t end = 0, total = 0;
  for (uint64_t i = 0; i < n; ++i) {
    uint64_t off = 0, len = 0;
    if (!number(off) || !number(len)) return false;
    if (off < end || off > realsize || len > realsize - off) throw Fatal("sparse member: map region outside the file or out of order");
    end = off + len;
    total += len;  // <= end <= realsize: regions rise and do not overlap
    if (len) map.emplace_back(off, len);
  }
  start = (uint64_t{pos} + 511) / 512 * 512;
  if (start > stored || stored - start != total)
    throw Fatal("sparse member: " + std::to_string(stored) + " bytes do not hold the map and " + std::to_string(total) + " bytes of data");
  out = std::move(map);
  return true;
}

SparseMap parse_sparse_member(std::string_view data, uint64_t realsize, size_t& start) {
  SparseMap map;
  uint64_t st = 0;
  if (!parse_sparse_map(data, data.size(), realsize, map, st)) throw Fatal("sparse member: map cut short");
  start = static_cast<size_t>(st);
  return map;
}

SparseLayout make_sparse_layout(SparseMap map, uint64_t start, uint64_t realsize, uint64_t stored) {
  SparseLayout l;
  l.start = start;
  l.realsize = realsize;
  if (start > stored || start % 512) throw Fatal("sparse member: bad map size");
  uint64_t at = start, end = 0;
  for (auto& [off, len] : map) {
    if (!len || off < end || off > realsize || len > realsize - off || len > stored - at)
      throw Fatal("sparse member: map region outside the file, out of order or past the data");
    end = off + len;
    at += len;
    l.ends.push_back(at);
  }
  if (at != stored) throw Fatal("sparse member: the map's regions do not add up to the stored data");
  l.map = std::move(map);
  return l;
}

std::vector<SparsePiece> sparse_pieces(const SparseLayout& l, uint64_t at, uint64_t len) {
  const uint64_t stored = l.ends.empty() ? l.start : l.ends.back();
  if (at > stored || len > stored - at) throw Fatal("sparse member: data past the end of its map's regions");
  std::vector<SparsePiece> out;
  const uint64_t stop = at + len;
  uint64_t from = std::max(at, l.start);
  // the first region whose bytes end after `from`
  size_t i = static_cast<size_t>(std::upper_bound(l.ends.begin(), l.ends.end(), from) - l.ends.begin());
  for (; i < l.map.size() && from < stop; ++i) {
    const uint64_t begin = l.ends[i] - l.map[i].second;  // stored offset of region i
    const uint64_t to = std::min(stop, l.ends[i]);
    out.push_back(SparsePiece{l.map[i].first + (from - begin), from - at, to - from});
    from = to;
  }
  return out;
}

}  // namespace pbackup
