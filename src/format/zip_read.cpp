// See zip_read.h. Anything this reader does not handle as a plain single-disk zip (multi-disk
// sets, data before the first member, a directory whose records do not add up, members that
// overlap) makes it return nullopt, so the caller streams the archive through libarchive
// instead. Members that overlap throw ZipOverlap: libarchive's seekable reader keeps one of
// them and drops the others without a word.
#include "format/zip_read.h"

#include <sys/stat.h>
#include <zlib.h>

#include <algorithm>
#include <cstring>
#include <ctime>

#include "pbackup/error.h"

namespace pbackup {
namespace {

constexpr uint32_t kEnd = 0x06054b50, kEnd64 = 0x06064b50, kLocator64 = 0x07064b50;
constexpr uint32_t kCentral = 0x02014b50, kLocal = 0x04034b50;
constexpr uint32_t kMax32 = 0xFFFFFFFFu;
constexpr uint64_t kMaxComment = 65535, kEndSize = 22;

// Little-endian reads within a string_view; `ok` turns false on any read past the end.
struct Cursor {
  std::string_view s;
  size_t pos = 0;
  bool ok = true;
  uint64_t le(int n) {
    if (pos + static_cast<size_t>(n) > s.size()) {
      ok = false;
      pos = s.size();
      return 0;
    }
    uint64_t v = 0;
    for (int i = 0; i < n; ++i) v |= static_cast<uint64_t>(static_cast<unsigned char>(s[pos + i])) << (8 * i);
    pos += static_cast<size_t>(n);
    return v;
  }
  uint16_t u16() { return static_cast<uint16_t>(le(2)); }
  uint32_t u32() { return static_cast<uint32_t>(le(4)); }
  uint64_t u64() { return le(8); }
  std::string_view bytes(uint64_t n) {
    if (n > s.size() - pos) {
      ok = false;
      pos = s.size();
      return {};
    }
    std::string_view v = s.substr(pos, n);
    pos += n;
    return v;
  }
};

// Calls f(id, data) for each extra field; false if the fields do not add up.
template <class F>
bool for_each_extra(std::string_view extra, F f) {
  Cursor c{extra};
  while (c.pos + 4 <= extra.size()) {
    uint16_t id = c.u16(), len = c.u16();
    std::string_view data = c.bytes(len);
    if (!c.ok) return false;
    f(id, data);
  }
  return true;
}

uint32_t crc32_of(std::string_view s) {
  return static_cast<uint32_t>(crc32_z(0, reinterpret_cast<const Bytef*>(s.data()), s.size()));
}

int64_t dos_to_unix(uint16_t time, uint16_t date) {
  std::tm tm{};
  tm.tm_year = ((date >> 9) & 0x7f) + 80;
  tm.tm_mon = std::max(0, ((date >> 5) & 0x0f) - 1);
  tm.tm_mday = std::max(1, date & 0x1f);
  tm.tm_hour = (time >> 11) & 0x1f;
  tm.tm_min = (time >> 5) & 0x3f;
  tm.tm_sec = (time & 0x1f) * 2;
  tm.tm_isdst = -1;
  return static_cast<int64_t>(std::mktime(&tm));
}

// A 32-bit Unix time from a "UT" or "UX" field. Info-ZIP zip and bsdtar write times before
// 1970 as negative (signed) and times from 2038-01-19 on as unsigned; unzip and 7-Zip tell them
// apart by the DOS date, which those writers clamp to 1980 for the first and keep at 2038 or
// later for the second. bsdtar reads every value as unsigned (1960 comes out as 2096).
int64_t ut_time(uint32_t v, uint16_t dos_date) {
  if (!(v & 0x80000000u)) return v;
  bool late = ((dos_date >> 9) & 0x7f) + 1980 >= 2038;
  return late ? static_cast<int64_t>(v) : static_cast<int64_t>(static_cast<int32_t>(v));
}

// Hosts whose writers put '\' between path components (zip's "version made by" high byte):
// MS-DOS/FAT, OS/2 HPFS, Windows NTFS, VFAT. Unix names may hold a '\' and keep it.
bool backslash_host(uint16_t made_by) {
  unsigned host = made_by >> 8;
  return host == 0 || host == 6 || host == 11 || host == 14;
}

struct EndRecord {
  uint64_t entries = 0, cd_size = 0, cd_offset = 0, end_at = 0;  // end_at: where the (zip64) end record starts
};

// Finds the end record in the archive's last 64 KiB (+22 bytes); follows the zip64 locator.
std::optional<EndRecord> find_end(uint64_t size, const ReadAt& read) {
  if (size < kEndSize) return std::nullopt;
  uint64_t tail_len = std::min<uint64_t>(size, kEndSize + kMaxComment);
  std::string tail = read(size - tail_len, tail_len);
  size_t at = std::string::npos;
  for (size_t i = tail.size() - kEndSize + 1; i-- > 0;) {
    Cursor c{tail, i};
    if (c.u32() != kEnd) continue;
    c.pos = i + 20;
    if (i + kEndSize + c.u16() == tail.size()) {  // the comment reaches exactly to the end
      at = i;
      break;
    }
    if (at == std::string::npos) at = i;
  }
  if (at == std::string::npos) return std::nullopt;
  Cursor c{tail, at + 4};
  uint16_t disk = c.u16(), cd_disk = c.u16();
  uint64_t on_disk = c.u16(), entries = c.u16();
  uint64_t cd_size = c.u32(), cd_offset = c.u32();
  if (disk != 0 || cd_disk != 0 || on_disk != entries) return std::nullopt;  // multi-disk
  EndRecord e{entries, cd_size, cd_offset, size - tail_len + at};
  bool wants64 = entries == 0xFFFF || cd_size == kMax32 || cd_offset == kMax32;
  if (e.end_at >= 20) {
    std::string loc = read(e.end_at - 20, 20);
    Cursor l{loc};
    if (l.u32() == kLocator64) {
      uint32_t disk64 = l.u32();
      uint64_t end64 = l.u64();
      uint32_t disks = l.u32();
      if (disk64 != 0 || disks > 1 || e.end_at < 20 + 56 || end64 > e.end_at - 20 - 56) return std::nullopt;
      std::string rec = read(end64, 56);
      Cursor r{rec};
      if (r.u32() != kEnd64) return std::nullopt;
      r.u64();  // record size
      r.u16();  // made by
      r.u16();  // needed
      if (r.u32() != 0 || r.u32() != 0) return std::nullopt;
      uint64_t on64 = r.u64();
      e.entries = r.u64();
      e.cd_size = r.u64();
      e.cd_offset = r.u64();
      if (on64 != e.entries) return std::nullopt;
      e.end_at = end64;
    } else if (wants64) {
      return std::nullopt;
    }
  }
  // The directory must end where the end record starts: otherwise there are bytes before the
  // first member (a self-extractor) or the directory is damaged; libarchive copes with both.
  if (e.cd_offset > e.end_at || e.cd_size != e.end_at - e.cd_offset) return std::nullopt;
  return e;
}

}  // namespace

bool ZipMember::is_dir() const { return S_ISDIR(mode); }
bool ZipMember::is_symlink() const { return S_ISLNK(mode); }

std::optional<ZipDirectory> read_zip_directory(uint64_t size, const ReadAt& read) {
  std::optional<EndRecord> end = find_end(size, read);
  if (!end) return std::nullopt;
  // Every central record takes at least 46 bytes: a count that cannot fit is not believed.
  if (end->entries > end->cd_size / 46) return std::nullopt;
  std::string cd = read(end->cd_offset, end->cd_size);
  Cursor c{cd};
  ZipDirectory dir;
  dir.offset = end->cd_offset;
  std::vector<ZipMember>& out = dir.members;
  out.reserve(end->entries);
  for (uint64_t k = 0; k < end->entries; ++k) {
    if (c.u32() != kCentral) return std::nullopt;
    ZipMember m;
    uint16_t made_by = c.u16();
    c.u16();  // version needed
    m.flags = c.u16();
    m.method = c.u16();
    uint16_t time = c.u16(), date = c.u16();
    m.crc = c.u32();
    m.csize = c.u32();
    m.usize = c.u32();
    uint16_t nlen = c.u16(), xlen = c.u16(), clen = c.u16(), disk = c.u16();
    c.u16();  // internal attributes
    uint32_t external = c.u32();
    m.header_offset = c.u32();
    m.name = std::string(c.bytes(nlen));
    std::string_view extra = c.bytes(xlen);
    c.bytes(clen);
    if (!c.ok || disk != 0) return std::nullopt;
    m.mtime = dos_to_unix(time, date);
    std::optional<int64_t> ut, ux;  // "UT" wins over the older "UX", either over the DOS time
    std::string unicode_name;
    bool fields_ok = for_each_extra(extra, [&](uint16_t id, std::string_view d) {
      Cursor x{d};
      if (id == 0x0001) {  // zip64: only the fields that are 0xFFFFFFFF above, in this order
        if (m.usize == kMax32) m.usize = x.u64();
        if (m.csize == kMax32) m.csize = x.u64();
        if (m.header_offset == kMax32) m.header_offset = x.u64();
        if (!x.ok) m.header_offset = ~uint64_t{0};
      } else if (id == 0x5455 && d.size() >= 5 && (d[0] & 1)) {  // "UT": flags, then mtime
        x.pos = 1;
        ut = ut_time(x.u32(), date);
      } else if (id == 0x5855 && d.size() >= 8) {  // old "UX": atime, mtime (UTC)
        x.pos = 4;
        ux = ut_time(x.u32(), date);
      } else if (id == 0x7075 && d.size() >= 5 && x.le(1) == 1) {
        // Info-ZIP Unicode Path: version 1, the CRC-32 of the header's name, the UTF-8 name.
        // Used only while the CRC matches: a tool that renamed the member without updating
        // the extra field leaves a stale name there.
        uint32_t crc = x.u32();
        std::string_view utf8 = d.substr(5);
        if (crc == crc32_of(m.name) && !utf8.empty()) unicode_name = std::string(utf8);
      }
    });
    if (!fields_ok) return std::nullopt;
    if (ut || ux) m.mtime = ut ? *ut : *ux;
    if (!unicode_name.empty()) m.name = std::move(unicode_name);
    // Windows writers' "arc\\test" is "arc/test"; the name is then checked like any other.
    if (backslash_host(made_by)) std::replace(m.name.begin(), m.name.end(), '\\', '/');
    if (m.header_offset > end->cd_offset || m.csize > end->cd_offset - m.header_offset) return std::nullopt;
    uint32_t unix_mode = (made_by >> 8) == 3 ? external >> 16 : 0;
    bool dir_name = !m.name.empty() && m.name.back() == '/';
    if (unix_mode & S_IFMT) m.mode = unix_mode;
    else if (dir_name || (external & 0x10)) m.mode = S_IFDIR | (unix_mode ? unix_mode & 07777 : 0755);
    else m.mode = S_IFREG | (unix_mode ? unix_mode & 07777 : (external & 0x01) ? 0444 : 0644);
    if (dir_name && !S_ISDIR(m.mode)) m.mode = S_IFDIR | (m.mode & 07777);
    out.push_back(std::move(m));
  }
  // The records must fill the directory exactly (a count that lies low would hide members),
  // and members must not overlap: each starts after the previous one's header and data.
  if (c.pos != cd.size()) return std::nullopt;
  std::vector<std::pair<uint64_t, uint64_t>> spans;  // (offset, least end)
  for (const auto& m : out) spans.emplace_back(m.header_offset, m.header_offset + 30 + m.csize);
  std::sort(spans.begin(), spans.end());
  for (size_t i = 0; i < spans.size(); ++i) {
    uint64_t next = i + 1 < spans.size() ? spans[i + 1].first : dir.offset;
    if (spans[i].second > next)
      throw ZipOverlap("zip members overlap (two central directory records share bytes at offset " +
                       std::to_string(spans[i].first) + "; a zip bomb's trick): not restored");
  }
  return dir;
}

uint64_t zip_local_header_size(std::string_view fixed30, const ZipMember& m) {
  Cursor c{fixed30};
  if (c.u32() != kLocal)
    throw Fatal("no local header at byte " + std::to_string(m.header_offset) + " for " + quote(m.name));
  c.pos = 26;
  uint64_t nlen = c.u16(), xlen = c.u16();
  if (!c.ok) throw Fatal("local header of " + quote(m.name) + " is cut short");
  return kZipLocalFixed + nlen + xlen;
}

ZipLocal parse_zip_local_header(std::string_view header, const ZipMember& m) {
  uint64_t n = zip_local_header_size(header, m);
  if (header.size() < n) throw Fatal("local header of " + quote(m.name) + " is cut short");
  Cursor c{header, 26};
  uint16_t nlen = c.u16();
  c.u16();
  c.bytes(nlen);
  std::string_view extra = header.substr(c.pos, n - c.pos);
  ZipLocal local;
  local.data_offset = m.header_offset + n;
  std::optional<uint32_t> old_uid, old_gid;
  for_each_extra(extra, [&](uint16_t id, std::string_view d) {
    Cursor x{d};
    if (id == 0x7875 && x.le(1) == 1) {  // "ux": version 1, uid size, uid, gid size, gid
      uint64_t us = x.le(1);
      uint64_t uid = us <= 8 ? x.le(static_cast<int>(us)) : 0;
      uint64_t gs = x.le(1);
      uint64_t gid = gs <= 8 ? x.le(static_cast<int>(gs)) : 0;
      if (x.ok && us <= 8 && gs <= 8) {
        local.uid = static_cast<uint32_t>(uid);
        local.gid = static_cast<uint32_t>(gid);
      }
    } else if (id == 0x7855 && d.size() >= 4) {  // old "Ux": 16-bit uid and gid
      local.uid = x.u16();
      local.gid = x.u16();
    } else if (id == 0x5855 && d.size() >= 12) {  // older "UX": atime, mtime, 16-bit uid, gid
      x.pos = 8;
      old_uid = x.u16();
      old_gid = x.u16();
    }
  });
  if (!local.uid && old_uid) {  // "ux" and "Ux" are newer: they win
    local.uid = old_uid;
    local.gid = old_gid;
  }
  return local;
}

}  // namespace pbackup
