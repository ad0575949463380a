// Tar header parsing (see tar_read.h). Every number, size and offset comes from the archive and
// is checked before it is used: positions never wrap, special headers (pax 'x'/'g', GNU 'L'/'K')
// are capped at kMaxSpecialHeader as libarchive caps them, and pax numbers must be whole decimal
// numbers that fit (anything else is a damaged header, not a guess).
#include "format/tar_read.h"

#include <algorithm>
#include <charconv>
#include <cstring>
#include <limits>
#include <map>
#include <optional>

#include "format/pax.h"
#include "pbackup/error.h"

namespace pbackup {
namespace {

constexpr uint64_t kMaxInt64 = static_cast<uint64_t>(std::numeric_limits<int64_t>::max());

// A numeric header field: octal digits (leading spaces or NULs, ended by a space or NUL), or
// GNU base-256 (first byte's top bit set; two's complement when the next bit is set too).
// nullopt if a base-256 value does not fit in an int64.
std::optional<int64_t> number(const char* f, size_t width) {
  const auto* u = reinterpret_cast<const unsigned char*>(f);
  if (u[0] & 0x80) {
    // Negative values are two's complement: their inverted bytes give the magnitude minus one.
    const bool negative = u[0] & 0x40;
    uint64_t mag = 0;
    for (size_t i = 0; i < width; ++i) {
      unsigned b = i == 0 ? (negative ? u[0] : u[0] & 0x7fu) : u[i];
      if (negative) b = ~b & 0xffu;
      if (mag >> 56) return std::nullopt;  // would not fit
      mag = (mag << 8) | b;
    }
    if (mag > kMaxInt64) return std::nullopt;
    return negative ? -static_cast<int64_t>(mag) - 1 : static_cast<int64_t>(mag);
  }
  uint64_t v = 0;
  size_t i = 0;
  while (i < width && (f[i] == ' ' || f[i] == '\0')) ++i;
  for (; i < width && f[i] >= '0' && f[i] <= '7'; ++i) v = (v << 3) | static_cast<uint64_t>(f[i] - '0');
  return static_cast<int64_t>(v);  // at most 12 octal digits: 36 bits
}

// A field that must be a non-negative number (size, mode, ids, checksum).
uint64_t unsigned_field(const char* f, size_t width, const char* what) {
  std::optional<int64_t> v = number(f, width);
  if (!v || *v < 0) throw Fatal(std::string("tar header: ") + what + " field out of range");
  return static_cast<uint64_t>(*v);
}

std::string field(const char* f, size_t width) { return std::string(f, strnlen(f, width)); }

// The whole of `s` as a decimal number of type T (no sign, no spaces, no leftovers).
template <class T>
std::optional<T> whole_number(std::string_view s) {
  T v{};
  if (s.empty() || s[0] == '+' || s[0] == '-') return std::nullopt;
  auto r = std::from_chars(s.data(), s.data() + s.size(), v, 10);
  if (r.ec != std::errc() || r.ptr != s.data() + s.size()) return std::nullopt;
  return v;
}

// "[-]SECONDS[.FRACTION]"; digits of the fraction beyond nanoseconds are dropped.
bool parse_pax_time(std::string_view v, int64_t& sec, uint32_t& nsec) {
  bool neg = !v.empty() && v[0] == '-';
  if (neg) v.remove_prefix(1);
  size_t dot = v.find('.');
  std::optional<int64_t> s = whole_number<int64_t>(v.substr(0, dot));
  if (!s) return false;
  uint32_t ns = 0;
  if (dot != std::string_view::npos) {
    std::string_view frac = v.substr(dot + 1);
    int digits = 0;
    for (char c : frac) {
      if (c < '0' || c > '9') return false;
      if (digits < 9) ns = ns * 10 + static_cast<uint32_t>(c - '0'), ++digits;
    }
    for (; digits < 9; ++digits) ns *= 10;
  }
  if (neg) {  // -1.25 is 1.25 s before the epoch: second -2, plus 0.75 (no overflow: s >= 0)
    sec = -*s - (ns ? 1 : 0);
    nsec = ns ? 1000000000u - ns : 0;
  } else {
    sec = *s;
    nsec = ns;
  }
  return true;
}

struct PaxValues {
  std::string path, link;
  std::optional<uint64_t> size;
  std::optional<int64_t> mtime;
  uint32_t nsec = 0;
  std::optional<uint32_t> uid, gid;
  std::optional<std::string> uname, gname;
  std::string sparse_name;
  std::optional<uint64_t> realsize, major;
  std::string acl_access, acl_default;
  std::map<std::string, std::string> xattrs;  // name -> value; SCHILY wins over LIBARCHIVE
  std::map<std::string, std::string> la_xattrs;
};

// The member's xattr and ACL records in the one form the pipeline carries (pax.h).
std::string xattr_records(const PaxValues& p) {
  std::string recs;
  if (!p.acl_access.empty()) add_pax_record(recs, kAclAccessKey, p.acl_access);
  if (!p.acl_default.empty()) add_pax_record(recs, kAclDefaultKey, p.acl_default);
  std::map<std::string, std::string> all = p.la_xattrs;
  for (auto& [k, v] : p.xattrs) all[k] = v;
  for (auto& [k, v] : all) add_pax_record(recs, std::string(kXattrKey) + encode_xattr_name(k), v);
  return recs;
}

// Parses the records "LEN KEY=VALUE\n" of a pax 'x' header into `p`.
void parse_pax(std::string_view data, PaxValues& p) {
  for_each_pax_record(data, [&](std::string_view key, std::string_view value) {
    auto bad = [&]() { return Fatal("tar: bad pax " + std::string(key) + " " + quote(std::string(value))); };
    if (key == "path") p.path = value;
    else if (key == "linkpath") p.link = value;
    else if (key == "size") {
      p.size = whole_number<uint64_t>(value);
      if (!p.size || *p.size > kMaxInt64) throw bad();
    } else if (key == "mtime") {
      int64_t s = 0;
      if (!parse_pax_time(value, s, p.nsec)) throw bad();
      p.mtime = s;
    } else if (key == "uid") {
      if (!(p.uid = whole_number<uint32_t>(value))) throw bad();
    } else if (key == "gid") {
      if (!(p.gid = whole_number<uint32_t>(value))) throw bad();
    } else if (key == "GNU.sparse.name") {
      p.sparse_name = value;
    } else if (key == "GNU.sparse.realsize") {
      p.realsize = whole_number<uint64_t>(value);
      if (!p.realsize || *p.realsize > kMaxInt64) throw bad();
    } else if (key == "GNU.sparse.major") {
      if (!(p.major = whole_number<uint64_t>(value))) throw bad();
    } else if (key == "uname") {
      p.uname = std::string(value);
    } else if (key == "gname") {
      p.gname = std::string(value);
    } else if (key == kAclAccessKey) {
      p.acl_access = value;
    } else if (key == kAclDefaultKey) {
      p.acl_default = value;
    } else if (key.substr(0, kXattrKey.size()) == kXattrKey) {
      p.xattrs[decode_xattr_name(key.substr(kXattrKey.size()))] = value;
    } else if (key.substr(0, kLibarchiveXattrKey.size()) == kLibarchiveXattrKey) {
      std::string v;
      if (!decode_base64(value, v)) throw bad();
      p.la_xattrs[decode_xattr_name(key.substr(kLibarchiveXattrKey.size()))] = std::move(v);
    }
  });
}

}  // namespace

bool read_tar_member(std::string_view buf, size_t& pos, TarMember& m) {
  m = TarMember{};
  PaxValues pax;
  std::string gnu_long, gnu_link;
  while (true) {
    if (pos > buf.size() || buf.size() - pos < 512) throw Fatal("tar header cut short");
    const char* h = buf.data() + pos;
    bool zero = true;
    for (size_t i = 0; i < 512 && zero; ++i) zero = h[i] == 0;
    if (zero) return false;
    unsigned sum = 0;
    for (size_t i = 0; i < 512; ++i) sum += (i >= 148 && i < 156) ? ' ' : static_cast<unsigned char>(h[i]);
    std::optional<int64_t> stored = number(h + 148, 8);
    if (!stored || static_cast<uint64_t>(*stored) != sum) throw Fatal("tar header checksum mismatch");
    char type = h[156] ? h[156] : '0';
    uint64_t size = unsigned_field(h + 124, 12, "size");
    pos += 512;
    if (type == 'x' || type == 'g' || type == 'L' || type == 'K') {
      if (size > kMaxTarSpecialHeader)
        throw Fatal("tar: special header of " + std::to_string(size) + " bytes (type '" + std::string(1, type) +
                    "') is larger than the limit of " + std::to_string(kMaxTarSpecialHeader));
      if (tar_padded(size) > buf.size() - pos) throw Fatal("tar extended header cut short");
      std::string_view data = buf.substr(pos, size);
      pos += tar_padded(size);
      if (type == 'L') gnu_long = std::string(data.substr(0, strnlen(data.data(), data.size())));
      else if (type == 'K') gnu_link = std::string(data.substr(0, strnlen(data.data(), data.size())));
      else if (type == 'x') parse_pax(data, pax);
      continue;  // 'g': global values are not used
    }
    m.type = type;
    std::string name = field(h, 100), prefix;
    if (std::memcmp(h + 257, "ustar", 5) == 0) prefix = field(h + 345, 155);
    m.sparse = !pax.sparse_name.empty();
    if (m.sparse && (!pax.major || *pax.major != 1 || !pax.realsize))
      throw Fatal("tar: sparse member " + quote(pax.sparse_name) + " is not in GNU sparse format 1.0 with a realsize");
    m.realsize = pax.realsize.value_or(0);
    m.path = m.sparse ? pax.sparse_name : !pax.path.empty() ? pax.path : !gnu_long.empty() ? gnu_long : (prefix.empty() ? name : prefix + "/" + name);
    m.link = !pax.link.empty() ? pax.link : !gnu_link.empty() ? gnu_link : field(h + 157, 100);
    m.size = pax.size ? *pax.size : size;
    if (pax.mtime) {
      m.mtime = *pax.mtime;
      m.mtime_nsec = pax.nsec;
    } else {
      std::optional<int64_t> t = number(h + 136, 12);
      if (!t) throw Fatal("tar header: mtime field out of range");
      m.mtime = *t;
    }
    m.mode = static_cast<uint32_t>(unsigned_field(h + 100, 8, "mode")) & 07777;
    m.uid = pax.uid ? *pax.uid : static_cast<uint32_t>(unsigned_field(h + 108, 8, "uid"));
    m.gid = pax.gid ? *pax.gid : static_cast<uint32_t>(unsigned_field(h + 116, 8, "gid"));
    m.uname = pax.uname ? *pax.uname : field(h + 265, 32);
    m.gname = pax.gname ? *pax.gname : field(h + 297, 32);
    m.xattrs = xattr_records(pax);
    if (m.type == '1' || m.type == '2' || m.type == '5' || m.type == '6') m.size = 0;
    while (m.path.size() > 1 && m.path.back() == '/') m.path.pop_back();
    return true;
  }
}

size_t tar_block_start(std::string_view buf, bool continues, uint64_t cont_offset, uint64_t cont_size) {
  if (!continues) return 0;
  if (cont_offset > cont_size) throw Fatal("tar block: continues at byte " + std::to_string(cont_offset) + " of a file of " +
                                           std::to_string(cont_size) + " bytes");
  uint64_t remaining = cont_size - cont_offset;
  uint64_t n = std::min<uint64_t>(remaining, buf.size());
  return static_cast<size_t>(n == remaining ? std::min<uint64_t>(tar_padded(n), buf.size()) : n);
}

uint64_t walk_tar_members(std::string_view buf, size_t pos) {
  TarMember m;
  uint64_t count = 0;
  // pos stays below buf.size() + 512 (a member's padding may run past a block's end)
  while (pos <= buf.size() && buf.size() - pos >= 512 && read_tar_member(buf, pos, m)) {
    ++count;
    uint64_t n = std::min<uint64_t>(m.size, buf.size() - pos);
    pos += n == m.size ? tar_padded(m.size) : n;
  }
  return count;
}

}  // namespace pbackup
