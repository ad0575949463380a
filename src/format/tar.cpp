// tar format: headers (see tar.h), cutting, per-block compression and the trivial layout
// (blocks back to back, then one compressed end-of-archive marker).
#include "format/tar.h"

#include <cstring>

#include "format/cut.h"
#include "format/pax.h"
#include "format/sparse.h"
#include "format/registry.h"
#include "pbackup/codec.h"
#include "pbackup/error.h"
#include "pbackup/log.h"
#include "pbackup/scratch.h"
#include "pbackup/sha256.h"

namespace pbackup {
namespace {

void put_octal(char* field, size_t width, uint64_t v) {
  // width-1 octal digits, then NUL.
  field[width - 1] = '\0';
  for (size_t i = width - 1; i-- > 0;) {
    field[i] = static_cast<char>('0' + (v & 7));
    v >>= 3;
  }
}

bool fits_octal(uint64_t v, size_t width) { return v < (uint64_t{1} << (3 * (width - 1))); }

bool ascii(const std::string& s) {
  for (unsigned char c : s)
    if (c >= 0x80) return false;
  return true;
}

void put_str(char* field, size_t width, const std::string& s) {
  std::memcpy(field, s.data(), std::min(width, s.size()));
}

void add_record(std::string& recs, const std::string& key, const std::string& value) { add_pax_record(recs, key, value); }

std::string pax_time(int64_t sec, uint32_t nsec) {
  char frac[16];
  if (sec < 0 && nsec > 0) {
    std::snprintf(frac, sizeof frac, "%09u", 1000000000u - nsec);
    std::string s = "-";  // (not "-" + to_string(): GCC 12 warns -Wrestrict on it, wrongly)
    return s + std::to_string(-(sec + 1)) + "." + frac;
  }
  std::snprintf(frac, sizeof frac, "%09u", nsec);
  return std::to_string(sec) + (nsec ? std::string(".") + frac : "");
}

// Splits a name into ustar prefix/name; false if it cannot be done.
bool split_ustar(const std::string& full, std::string& prefix, std::string& name) {
  if (full.size() <= 100) {
    prefix.clear();
    name = full;
    return true;
  }
  for (size_t p = std::min<size_t>(full.size() - 1, 155) + 1; p-- > 0;) {
    if (full[p] != '/') continue;
    if (full.size() - p - 1 > 100 || full.size() - p - 1 == 0) return false;
    prefix = full.substr(0, p);
    name = full.substr(p + 1);
    return true;
  }
  return false;
}

void ustar(char* h, const std::string& name, const std::string& prefix, uint32_t mode,
           uint64_t uid, uint64_t gid, uint64_t size, int64_t mtime, char type,
           const std::string& link, const std::string& uname = "", const std::string& gname = "") {
  std::memset(h, 0, kTarBlock);
  put_str(h, 100, name);
  put_octal(h + 100, 8, mode & 07777);
  put_octal(h + 108, 8, fits_octal(uid, 8) ? uid : 0);
  put_octal(h + 116, 8, fits_octal(gid, 8) ? gid : 0);
  put_octal(h + 124, 12, fits_octal(size, 12) ? size : 0);
  put_octal(h + 136, 12, mtime >= 0 && fits_octal(mtime, 12) ? static_cast<uint64_t>(mtime) : 0);
  h[156] = type;
  put_str(h + 157, 100, link);
  std::memcpy(h + 257, "ustar", 6);
  std::memcpy(h + 263, "00", 2);
  put_str(h + 265, 31, uname);  // NUL-terminated, as GNU tar writes them
  put_str(h + 297, 31, gname);
  put_octal(h + 329, 8, 0);
  put_octal(h + 337, 8, 0);
  put_str(h + 345, 155, prefix);
  std::memset(h + 148, ' ', 8);
  unsigned sum = 0;
  for (size_t i = 0; i < kTarBlock; ++i) sum += static_cast<unsigned char>(h[i]);
  put_octal(h + 148, 7, sum);
  h[155] = ' ';
}

char typeflag(EntryType t) {
  switch (t) {
    case EntryType::File: return '0';
    case EntryType::Hardlink: return '1';
    case EntryType::Symlink: return '2';
    case EntryType::Dir: return '5';
    case EntryType::Fifo: return '6';
  }
  return '0';
}

}  // namespace

std::string tar_header(const Entry& e) {
  std::string full = e.path + (e.type == EntryType::Dir ? "/" : "");
  uint64_t size = tar_data_size(e);
  std::string recs, prefix, name;
  const bool sparse = e.type == EntryType::File && !e.sparse.empty();
  if (sparse) {  // GNU sparse 1.0 (sparse.h): the real name and size in pax records
    add_record(recs, "GNU.sparse.major", "1");
    add_record(recs, "GNU.sparse.minor", "0");
    add_record(recs, "GNU.sparse.name", full);
    add_record(recs, "GNU.sparse.realsize", std::to_string(e.size));
    auto slash = full.rfind('/');
    full = (slash == std::string::npos ? std::string(".") : full.substr(0, slash)) + "/GNUSparseFile.0/" +
           (slash == std::string::npos ? full : full.substr(slash + 1));
  }
  // Names that are not UTF-8 are byte strings: hdrcharset=BINARY says so (POSIX pax), or
  // readers that convert from UTF-8 (bsdtar) refuse the member. It covers path, linkpath, uname
  // and gname alike.
  auto [uname, gname] = owner_names(e);
  if (!valid_utf8(full) || !valid_utf8(e.link) || !valid_utf8(uname) || !valid_utf8(gname))
    add_record(recs, "hdrcharset", "BINARY");
  if (!ascii(full) || !split_ustar(full, prefix, name)) {
    add_record(recs, "path", full);
    prefix.clear();
    name = full.substr(0, 100);
  }
  if (!e.link.empty() && (!ascii(e.link) || e.link.size() > 100)) add_record(recs, "linkpath", e.link);
  if (e.mtime_nsec != 0 || e.mtime_sec < 0 || !fits_octal(static_cast<uint64_t>(e.mtime_sec), 12))
    add_record(recs, "mtime", pax_time(e.mtime_sec, e.mtime_nsec));
  if (!fits_octal(size, 12)) add_record(recs, "size", std::to_string(size));
  if (!fits_octal(e.uid, 8)) add_record(recs, "uid", std::to_string(e.uid));
  if (!fits_octal(e.gid, 8)) add_record(recs, "gid", std::to_string(e.gid));
  // Owner names as GNU tar stores them: in the ustar fields, in pax records when they do not fit.
  if (uname.size() > 31 || !ascii(uname)) add_record(recs, "uname", uname);
  if (gname.size() > 31 || !ascii(gname)) add_record(recs, "gname", gname);
  recs += e.xattrs;  // SCHILY.acl.* and SCHILY.xattr.* records, rendered at scan time

  std::string out;
  if (!recs.empty()) {
    auto slash = e.path.rfind('/');
    std::string base = slash == std::string::npos ? e.path : e.path.substr(slash + 1);
    std::string pax_name = ("PaxHeaders/" + base).substr(0, 100);
    uint64_t padded = (recs.size() + kTarBlock - 1) / kTarBlock * kTarBlock;
    out.resize(kTarBlock + padded + kTarBlock);
    ustar(out.data(), pax_name, "", 0644, 0, 0, recs.size(), e.mtime_sec < 0 ? 0 : e.mtime_sec, 'x', "");
    std::memcpy(out.data() + kTarBlock, recs.data(), recs.size());
  } else {
    out.resize(kTarBlock);
  }
  ustar(out.data() + out.size() - kTarBlock, name, prefix, e.mode, e.uid, e.gid, size, e.mtime_sec,
        typeflag(e.type), e.link.substr(0, 100), ascii(uname) ? uname : "", ascii(gname) ? gname : "");
  return out;
}

namespace {

class TarLayout final : public Layout {
 public:
  explicit TarLayout(const Codec& codec) : codec_(codec) {}
  void place(const std::vector<UnitInfo>& units, std::vector<uint64_t>& offsets,
             std::vector<Write>&) override {
    for (const auto& u : units) {
      offsets.push_back(pos_);
      pos_ += u.size;
    }
  }
  uint64_t settled() const override { return pos_; }
  uint64_t finish(std::vector<Write>& structural) override {
    Write w{pos_, {}};
    codec_.compress(std::string(2 * kTarBlock, '\0'), w.bytes);
    pos_ += w.bytes.size();
    structural.push_back(std::move(w));
    return pos_;
  }

 private:
  const Codec& codec_;
  uint64_t pos_ = 0;
};

class TarFormat final : public Format {
 public:
  explicit TarFormat(std::unique_ptr<Codec> codec) : codec_(std::move(codec)) {}
  std::string name() const override { return "tar"; }
  std::string extension() const override { return "tar." + codec_->extension(); }
  void adapt(EntryList&, Log&) const override {}

  void cut_more(const EntryList& entries, size_t from, uint64_t block_bytes, CutState& st,
                std::vector<Block>& out) const override {
    StreamShape shape;
    shape.header_bytes = [](const Entry& e) { return tar_header(e).size(); };
    shape.data_bytes = [](const Entry& e) { return tar_data_size(e); };
    shape.align = kTarBlock;
    pbackup::cut_more(entries, from, shape, block_bytes, st, out);
  }
  bool layout_needs_entries() const override { return false; }

  void encode_block(const BlockJob& job, DataSource& src, std::vector<Unit>& out) const override {
    // The block's tar stream, built in this thread's scratch buffer (sized by the plan).
    const uint64_t planned = job.block.raw_bytes;
    char* raw = scratch(Scratch::Block, planned);
    uint64_t n = 0;
    auto room = [&](uint64_t k) {
      if (k > planned - n) throw Fatal("internal: block " + std::to_string(job.block.id) + " is larger than planned");
    };
    for (size_t i = 0; i < job.block.pieces.size(); ++i) {
      const Piece& p = job.block.pieces[i];
      const Entry& e = job.entries[i];
      if (p.header) {
        std::string h = tar_header(e);
        room(h.size());
        std::memcpy(raw + n, h.data(), h.size());
        n += h.size();
      }
      if (p.length) {
        room(p.length);
        src.read(e, job.disk_paths[i], p.offset, p.length, p.last, raw + n);
        n += p.length;
      }
      if (p.last) {
        uint64_t pad = (n + kTarBlock - 1) / kTarBlock * kTarBlock - n;
        room(pad);
        std::memset(raw + n, 0, pad);
        n += pad;
      }
    }
    Unit u;
    u.block = job.block.id;
    u.entry = job.block.pieces.empty() ? 0 : job.block.pieces.front().entry;
    u.raw = n;
    codec_->compress(std::string_view(raw, n), u.data);
    out.push_back(std::move(u));
  }

  std::unique_ptr<Layout> make_layout(const EntryList&) const override {
    return std::make_unique<TarLayout>(*codec_);
  }

 private:
  std::unique_ptr<Codec> codec_;
};

}  // namespace

std::unique_ptr<Format> make_tar_format(std::unique_ptr<Codec> codec) {
  return std::make_unique<TarFormat>(std::move(codec));
}

}  // namespace pbackup
