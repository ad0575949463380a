// zip format, as Info-ZIP writes it on Unix: deflate, Unix modes in the external attributes,
// "UT" mtime and "ux" uid/gid extra fields, symlinks stored as their target with S_IFLNK, zip64
// when a size, an offset or the entry count needs it. Hard links become copies and fifos are
// left out (zip cannot say either).
//
// Only file data is compressed by the ranks: every piece of a file is a raw deflate segment of
// its own, ended by a full flush (or by the final block for the file's last piece), so segments
// concatenate into one valid deflate stream, and their CRC-32s combine with crc32_combine.
// Rank 0 writes all structure: local headers (once the file's last segment is known, into the
// space reserved before its first one), data-less entries and the central directory.
#include <sys/stat.h>
#include <libdeflate.h>
#include <zlib.h>

#include <algorithm>

#include <cstring>
#include <ctime>

#include "format/cut.h"
#include "format/pax.h"
#include "format/zip_facts.h"
#include "format/registry.h"
#include "pbackup/error.h"
#include "pbackup/log.h"
#include "util/zlib_raii.h"

namespace pbackup {
namespace {

constexpr uint32_t kMax32 = 0xFFFFFFFFu;
// Files at least this big get zip64 sizes; decided before compression because the local
// header's size must be known before the data is placed (deflate never expands by 32 MiB).
constexpr uint64_t kZip64Data = 0xFE000000ull;

struct Le {
  std::string& s;
  void u16(uint32_t v) { s.push_back(char(v & 0xff)); s.push_back(char((v >> 8) & 0xff)); }
  void u32(uint32_t v) { u16(v & 0xffff); u16(v >> 16); }
  void u64(uint64_t v) { u32(uint32_t(v)); u32(uint32_t(v >> 32)); }
};

bool needs_zip64(const Entry& e) { return e.type == EntryType::File && e.size >= kZip64Data; }

std::string zip_name(const Entry& e) { return e.path + (e.type == EntryType::Dir ? "/" : ""); }

// General purpose flag bit 11 (the name is UTF-8): only on names that are valid UTF-8, as
// Info-ZIP and 7-Zip set it. Other names are byte strings in no known charset, so they carry
// no Unicode Path extra (0x7075) either: it would have to guess an encoding (CP437? Latin-1?)
// and readers would prefer that guess to the bytes the file system had.
uint16_t name_flags(const std::string& name) {
  for (unsigned char c : name)
    if (c >= 0x80) return valid_utf8(name) ? 0x0800 : 0;
  return 0;
}

// The DOS date field holds 1980..2107 (local time); times outside are clamped.
bool dos_time_clamped(int64_t t) {
  time_t tt = static_cast<time_t>(t);
  struct tm tm {};
  localtime_r(&tt, &tm);
  return tm.tm_year < 80 || tm.tm_year > 207;
}

// The "UT" mtime is 32 bits: signed for times before 1970, unsigned from 2038-01-19 on (as
// Info-ZIP zip and bsdtar write it; readers tell the two apart by the DOS date: see zip_read).
bool ut_holds(int64_t t) { return t >= INT32_MIN && t <= static_cast<int64_t>(UINT32_MAX); }

void dos_time(int64_t t, uint16_t& time, uint16_t& date) {
  time_t tt = static_cast<time_t>(t);
  struct tm tm {};
  localtime_r(&tt, &tm);
  if (tm.tm_year < 80) {
    time = 0;
    date = (1 << 5) | 1;  // 1980-01-01
    return;
  }
  if (tm.tm_year > 207) tm.tm_year = 207;
  time = static_cast<uint16_t>((tm.tm_hour << 11) | (tm.tm_min << 5) | (tm.tm_sec / 2));
  date = static_cast<uint16_t>(((tm.tm_year - 80) << 9) | ((tm.tm_mon + 1) << 5) | tm.tm_mday);
}

uint32_t unix_mode(const Entry& e) {
  switch (e.type) {
    case EntryType::Dir: return S_IFDIR | (e.mode & 07777);
    case EntryType::Symlink: return S_IFLNK | 0777;
    default: return S_IFREG | (e.mode & 07777);
  }
}

// Extra fields common to local and central headers: UT (mtime) and ux (uid/gid).
std::string common_extra(const Entry& e) {
  std::string x;
  Le le{x};
  if (ut_holds(e.mtime_sec)) {
    le.u16(0x5455);
    le.u16(5);
    x.push_back(1);
    le.u32(static_cast<uint32_t>(e.mtime_sec & 0xFFFFFFFF));
  }
  le.u16(0x7875);
  le.u16(11);
  x.push_back(1);
  x.push_back(4);
  le.u32(e.uid);
  x.push_back(4);
  le.u32(e.gid);
  return x;
}

uint64_t local_header_size(const Entry& e) {
  return 30 + zip_name(e).size() + common_extra(e).size() + (needs_zip64(e) ? 20 : 0);
}

struct Record {  // what the central directory needs of an entry
  uint64_t offset = 0, csize = 0, usize = 0;
  uint32_t crc = 0;
  uint16_t method = 0;
};

std::string local_header(const Entry& e, const Record& r) {
  std::string s;
  Le le{s};
  bool z64 = needs_zip64(e);
  uint16_t t, d;
  dos_time(e.mtime_sec, t, d);
  std::string name = zip_name(e), extra = common_extra(e);
  le.u32(0x04034b50);
  le.u16(z64 ? 45 : 20);
  le.u16(name_flags(name));
  le.u16(r.method);
  le.u16(t);
  le.u16(d);
  le.u32(r.crc);
  le.u32(z64 ? kMax32 : static_cast<uint32_t>(r.csize));
  le.u32(z64 ? kMax32 : static_cast<uint32_t>(r.usize));
  le.u16(static_cast<uint32_t>(name.size()));
  le.u16(static_cast<uint32_t>(extra.size() + (z64 ? 20 : 0)));
  s += name;
  s += extra;
  if (z64) {
    le.u16(0x0001);
    le.u16(16);
    le.u64(r.usize);
    le.u64(r.csize);
  }
  return s;
}

void central_header(std::string& s, const Entry& e, const Record& r) {
  Le le{s};
  bool z64 = needs_zip64(e);
  bool off64 = r.offset >= kMax32;
  uint16_t t, d;
  dos_time(e.mtime_sec, t, d);
  std::string name = zip_name(e), extra = common_extra(e);
  std::string x64;
  Le lx{x64};
  if (z64) {
    lx.u64(r.usize);
    lx.u64(r.csize);
  }
  if (off64) lx.u64(r.offset);
  le.u32(0x02014b50);
  le.u16((3 << 8) | ((z64 || off64) ? 45 : 30));
  le.u16((z64 || off64) ? 45 : 20);
  le.u16(name_flags(name));
  le.u16(r.method);
  le.u16(t);
  le.u16(d);
  le.u32(r.crc);
  le.u32(z64 ? kMax32 : static_cast<uint32_t>(r.csize));
  le.u32(z64 ? kMax32 : static_cast<uint32_t>(r.usize));
  le.u16(static_cast<uint32_t>(name.size()));
  le.u16(static_cast<uint32_t>(extra.size() + (x64.empty() ? 0 : 4 + x64.size())));
  le.u16(0);  // comment
  le.u16(0);  // disk
  le.u16(0);  // internal attributes
  le.u32((unix_mode(e) << 16) | (e.type == EntryType::Dir ? 0x10 : 0));
  le.u32(off64 ? kMax32 : static_cast<uint32_t>(r.offset));
  s += name;
  s += extra;
  if (!x64.empty()) {
    le.u16(0x0001);
    le.u16(static_cast<uint32_t>(x64.size()));
    s += x64;
  }
}

class ZipLayout final : public Layout {
 public:
  explicit ZipLayout(const EntryList& entries) : entries_(entries), rec_(entries.size()) {}

  void place(const std::vector<UnitInfo>& units, std::vector<uint64_t>& offsets,
             std::vector<Write>& structural) override {
    for (const auto& u : units) {
      offsets.push_back(pos_);
      ByteReader r(u.extra);
      while (!r.done()) {
        PartFact f = get<PartFact>(r);
        if (f.entry >= rec_.size()) throw Fatal("zip layout: block names an unknown entry");
        Record& rec = rec_[f.entry];
        if (f.header_pos != PartFact::kNoHeader) {
          rec.offset = pos_ + f.header_pos;
          rec.method = entries_[f.entry].type == EntryType::File && entries_[f.entry].size ? 8 : 0;
          rec.crc = f.crc;
          rec.csize = f.csize;
          rec.usize = f.usize;
          pending_ = f.placeholder;
          pending_offset_ = rec.offset;
        } else {
          rec.crc = static_cast<uint32_t>(crc32_combine64(rec.crc, f.crc, static_cast<z_off64_t>(f.usize)));
          rec.csize += f.csize;
          rec.usize += f.usize;
        }
        if (f.last && pending_) {
          structural.push_back({rec.offset, local_header(entries_[f.entry], rec), true});
          pending_ = false;
        }
      }
      pos_ += u.size;
    }
  }

  uint64_t settled() const override { return pending_ ? pending_offset_ : pos_; }
  uint64_t finish(std::vector<Write>& structural) override {
    const uint64_t cd_start = pos_;
    Write w{pos_, {}};
    for (size_t i = 0; i < entries_.size(); ++i) {
      central_header(w.bytes, entries_[i], rec_[i]);
      if (w.bytes.size() >= (4u << 20)) {  // hand over in pieces: the directory can be large
        pos_ += w.bytes.size();
        structural.push_back(std::move(w));
        w = Write{pos_, {}};
      }
    }
    pos_ += w.bytes.size();
    const uint64_t cd_size = pos_ - cd_start, n = entries_.size();
    Le le{w.bytes};
    bool z64 = n >= 0xFFFF || cd_size >= kMax32 || cd_start >= kMax32;
    if (z64) {
      const uint64_t eocd64 = pos_;
      le.u32(0x06064b50);
      le.u64(44);
      le.u16((3 << 8) | 45);
      le.u16(45);
      le.u32(0);
      le.u32(0);
      le.u64(n);
      le.u64(n);
      le.u64(cd_size);
      le.u64(cd_start);
      le.u32(0x07064b50);
      le.u32(0);
      le.u64(eocd64);
      le.u32(1);
    }
    le.u32(0x06054b50);
    le.u16(0);
    le.u16(0);
    le.u16(z64 ? 0xFFFF : static_cast<uint32_t>(n));
    le.u16(z64 ? 0xFFFF : static_cast<uint32_t>(n));
    le.u32(z64 ? kMax32 : static_cast<uint32_t>(cd_size));
    le.u32(z64 ? kMax32 : static_cast<uint32_t>(cd_start));
    le.u16(0);
    pos_ = w.offset + w.bytes.size();
    structural.push_back(std::move(w));
    return pos_;
  }

 private:
  const EntryList& entries_;
  std::vector<Record> rec_;
  uint64_t pos_ = 0;
  bool pending_ = false;  // the entry being placed has a placeholder header
  uint64_t pending_offset_ = 0;
};

// One raw deflate segment; `finish` ends the deflate stream, otherwise a full flush leaves it
// byte-aligned and open for the next segment. Final segments (most files are one) go through
// libdeflate, which is faster; zlib is needed for the non-final flush libdeflate cannot do.
void deflate_segment(std::string_view in, bool finish, int level, std::string& out) {
  if (finish) {
    libdeflate_compressor* c = thread_deflate_compressor(std::clamp(level, 1, 12));
    out.resize(libdeflate_deflate_compress_bound(c, in.size()));
    size_t n = libdeflate_deflate_compress(c, in.data(), in.size(), out.data(), out.size());
    if (n == 0) throw Fatal("zip: deflate failed");
    out.resize(n);
    return;
  }
  level = std::clamp(level, 1, 9);
  z_stream z{};
  if (deflateInit2(&z, level, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY) != Z_OK)
    throw Fatal("zip: deflateInit2 failed");
  ZStreamGuard guard{&z, true};
  out.resize(deflateBound(&z, in.size()) + 16);
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
  z.next_out = reinterpret_cast<Bytef*>(out.data());
  size_t left_in = in.size(), left_out = out.size();
  const int flush = finish ? Z_FINISH : Z_FULL_FLUSH;
  while (true) {
    if (z.avail_in == 0 && left_in) {
      z.avail_in = static_cast<uInt>(std::min<size_t>(left_in, 1u << 30));
      left_in -= z.avail_in;
    }
    if (z.avail_out == 0 && left_out) {
      z.avail_out = static_cast<uInt>(std::min<size_t>(left_out, 1u << 30));
      left_out -= z.avail_out;
    }
    int rc = deflate(&z, left_in ? Z_NO_FLUSH : flush);
    if (rc == Z_STREAM_END) break;
    if (rc == Z_STREAM_ERROR) throw Fatal("zip: deflate failed");
    if (!finish && left_in == 0 && z.avail_in == 0 && z.avail_out != 0) break;  // flushed
  }
  out.resize(reinterpret_cast<char*>(z.next_out) - out.data());
}

class ZipFormat final : public Format {
 public:
  explicit ZipFormat(int level) : level_(level < 0 ? 6 : level) {}
  std::string name() const override { return "zip"; }
  std::string extension() const override { return "zip"; }

  void adapt(EntryList& entries, Log& log) const override {
    // In place: a copy would double rank 0's peak memory.
    uint64_t with_xattrs = 0, with_acls = 0, with_holes = 0, clamped = 0, lost = 0;
    auto keep_end = std::remove_if(entries.begin(), entries.end(), [&](Entry& e) {
      if (!e.xattrs.empty()) {  // zip has no place for them: counted, said once below
        bool x = false, a = false;
        for_each_pax_record(e.xattrs.str(), [&](std::string_view k, std::string_view) {
          (k == kAclAccessKey || k == kAclDefaultKey ? a : x) = true;
        });
        with_xattrs += x;
        with_acls += a;
        e.xattrs.clear();
      }
      if (!e.sparse.empty()) {  // stored whole: the holes read as zeros
        ++with_holes;
        e.sparse.clear();
      }
      if (e.type == EntryType::Fifo) {  // skipped: a warning (exit 1), as sockets are
        log.warn(quote(e.path) + ": fifo not stored (skipped: zip cannot hold fifos)", e.path);
        return true;
      }
      if (dos_time_clamped(e.mtime_sec)) {
        ++clamped;
        lost += !ut_holds(e.mtime_sec);
      }
      if (e.type == EntryType::Hardlink) {  // zip has no hard links: store the data again
        e.type = EntryType::File;
        e.link.clear();
      }
      return false;
    });
    entries.erase(keep_end, entries.end());
    if (with_xattrs)
      log.notice(std::to_string(with_xattrs) + " entries have extended attributes, which zip cannot hold: not stored (use a tar format to keep them)");
    if (clamped)
      log.warn(std::to_string(clamped) + " entries have mtimes outside zip's DOS time range (1980..2107): clamped there" +
               (lost ? "; " + std::to_string(lost) + " of them also outside the UT extra field's range (1901..2106), so every reader gets the clamped time"
                     : "; the exact time is in the UT extra field (read by unzip, bsdtar, 7-Zip and pbackup, not by Python's zipfile)") +
               " (use a tar format to keep such times)");
    if (with_holes)
      log.notice(std::to_string(with_holes) + " sparse files: zip cannot hold holes, stored with their holes as zeros (use a tar format to keep them)");
    if (with_acls)
      log.notice(std::to_string(with_acls) + " entries have POSIX ACLs, which zip cannot hold: not stored (use a tar format to keep them)");
  }

  void cut_more(const EntryList& entries, size_t from, uint64_t block_bytes, CutState& st,
                std::vector<Block>& out) const override {
    StreamShape shape;
    shape.header_bytes = [](const Entry& e) {
      return local_header_size(e) + (e.type == EntryType::Symlink ? e.link.size() : 0);
    };
    shape.data_bytes = [](const Entry& e) { return e.type == EntryType::File ? e.size : 0; };
    pbackup::cut_more(entries, from, shape, block_bytes, st, out);
  }
  bool layout_needs_entries() const override { return true; }  // the central directory

  // A block's bytes: for each piece, its local header if it starts the entry (real values
  // when the whole entry is in this block, zeros for rank 0 to fill in otherwise), then the
  // piece's deflate segment.
  void encode_block(const BlockJob& job, DataSource& src, std::vector<Unit>& out) const override {
    Unit u;
    u.block = job.block.id;
    u.entry = job.block.pieces.empty() ? 0 : job.block.pieces.front().entry;
    ByteWriter facts;
    std::string raw, seg;
    for (size_t i = 0; i < job.block.pieces.size(); ++i) {
      const Piece& p = job.block.pieces[i];
      const Entry& e = job.entries[i];
      raw.resize(p.length);
      if (p.length) src.read(e, job.disk_paths[i], p.offset, p.length, p.last, raw.data());
      if (e.type == EntryType::Symlink) raw = e.link;
      PartFact f;
      f.entry = p.entry;
      f.last = p.last;
      f.usize = raw.size();
      f.crc = static_cast<uint32_t>(crc32_z(0, reinterpret_cast<const Bytef*>(raw.data()), raw.size()));
      bool deflated = e.type == EntryType::File && e.size > 0;
      seg.clear();
      if (deflated) deflate_segment(raw, p.last, level_, seg);
      else seg = raw;
      f.csize = seg.size();
      if (p.header) {
        f.header_pos = u.data.size();
        f.placeholder = !p.last;
        Record r{0, f.csize, f.usize, f.crc, static_cast<uint16_t>(deflated ? 8 : 0)};
        std::string h = f.placeholder ? std::string(local_header_size(e), '\0') : local_header(e, r);
        u.data += h;
        u.raw += h.size();
      }
      u.data += seg;
      u.raw += raw.size();
      put(facts, f);
    }
    u.extra = facts.take();
    u.data.shrink_to_fit();
    out.push_back(std::move(u));
  }

  std::unique_ptr<Layout> make_layout(const EntryList& entries) const override {
    return std::make_unique<ZipLayout>(entries);
  }

 private:
  int level_;
};

}  // namespace

std::unique_ptr<Format> make_zip_format(int level) { return std::make_unique<ZipFormat>(level); }

}  // namespace pbackup
