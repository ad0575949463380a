// Catalog writing and reading (see catalog.h; the byte layout is in docs/format.md).
#include "core/catalog.h"

#include "core/age_source.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zstd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <span>
#include <stdexcept>
#include <ctime>
#include <optional>
#include <tuple>

#include "core/select.h"
#include "core/xattr.h"
#include "format/tar.h"
#include "pbackup/error.h"
#include "pbackup/sha256.h"
#include "util/file_util.h"

namespace pbackup {
namespace {

constexpr char kMagic[8] = {'P', 'B', 'K', 'C', 'A', 'T', 'L', 'G'};
constexpr size_t kFixedV1 = 52;  // fixed part of a record after its length (docs/format.md)
constexpr size_t kFixed = kFixedV1 + 32;  // version 2 adds ctime (12), dev, ino (16), level (4)
constexpr uint32_t kMaxName = 1u << 20;

void put32(std::string& o, uint32_t v) {
  for (int i = 0; i < 4; ++i) o.push_back(static_cast<char>(v >> (8 * i)));
}
void put64(std::string& o, uint64_t v) {
  for (int i = 0; i < 8; ++i) o.push_back(static_cast<char>(v >> (8 * i)));
}
uint32_t get32(const unsigned char* p) {
  return p[0] | (uint32_t{p[1]} << 8) | (uint32_t{p[2]} << 16) | (uint32_t{p[3]} << 24);
}
uint64_t get64(const unsigned char* p) { return get32(p) | (uint64_t{get32(p + 4)} << 32); }

// Owner names, looked up once per id.
}  // namespace

std::string catalog_name(const std::string& archive) { return archive + ".catalog.zst"; }

struct CatalogWriter::Impl {
  std::unique_ptr<ZSTD_CCtx, size_t (*)(ZSTD_CCtx*)> cctx{ZSTD_createCCtx(), ZSTD_freeCCtx};
  std::string out, rec, pending;
  uint64_t count = 0, added = 0, raw = 0;
  void push(std::string_view in, ZSTD_EndDirective end) {
    ZSTD_inBuffer ib{in.data(), in.size(), 0};
    char buf[1 << 16];
    while (true) {
      ZSTD_outBuffer ob{buf, sizeof buf, 0};
      size_t left = ZSTD_compressStream2(cctx.get(), &ob, &ib, end);
      if (ZSTD_isError(left)) throw Fatal(std::string("catalog: zstd: ") + ZSTD_getErrorName(left));
      out.append(buf, ob.pos);
      if (end == ZSTD_e_end ? left == 0 : ib.pos == ib.size) break;
    }
  }
};

CatalogWriter::CatalogWriter(uint64_t count) : impl_(std::make_unique<Impl>()) {
  if (!impl_->cctx) throw Fatal("catalog: zstd: out of memory");
  // level 1: on a 240,000-entry catalog 4x faster than level 6 for 9% more bytes; a level of an
  // unchanged tree is mostly this (rank 0, serially)
  ZSTD_CCtx_setParameter(impl_->cctx.get(), ZSTD_c_compressionLevel, 1);
  // One worker thread: zstd compresses while rank 0 merges the ranks' records (the other ranks
  // wait then). Streamed output with workers does not depend on their number, and the input is
  // fed in the same 256 KiB pieces whatever the rank count, so the bytes stay the same; a libzstd
  // built without threads refuses the setting and compresses inline.
  ZSTD_CCtx_setParameter(impl_->cctx.get(), ZSTD_c_nbWorkers, 1);
  ZSTD_CCtx_setParameter(impl_->cctx.get(), ZSTD_c_checksumFlag, 1);
  impl_->count = count;
  impl_->out.assign(kMagic, sizeof kMagic);
  put32(impl_->out, kCatalogVersion);
  put32(impl_->out, 0);
  put64(impl_->out, count);
  put64(impl_->out, 0);  // uncompressed record bytes, patched by finish()
}

CatalogWriter::~CatalogWriter() = default;

void encode_catalog_record(const CatalogRecord& r, std::string& o) {
  for (const std::string* s : {&r.path, &r.link, &r.uname, &r.gname, &r.member})
    if (s->size() > kMaxName) throw Fatal("catalog: name of " + std::to_string(s->size()) + " bytes is too long: " + quote(r.path.substr(0, 200)));
  const size_t start = o.size();
  put32(o, 0);
  o.push_back(static_cast<char>(r.type));
  o.push_back(static_cast<char>(r.flags));
  o.push_back(0);
  o.push_back(0);
  put32(o, r.mode);
  put32(o, r.uid);
  put32(o, r.gid);
  put64(o, r.size);
  put64(o, static_cast<uint64_t>(r.mtime_sec));
  put32(o, r.mtime_nsec);
  put64(o, r.block);
  put64(o, r.offset);
  put64(o, static_cast<uint64_t>(r.ctime_sec));
  put32(o, r.ctime_nsec);
  put64(o, r.dev);
  put64(o, r.ino);
  put32(o, r.level);
  for (const std::string* s : {&r.path, &r.link, &r.uname, &r.gname, &r.member}) {
    put32(o, static_cast<uint32_t>(s->size()));
    o += *s;
  }
  const auto len = static_cast<uint32_t>(o.size() - start - 4);
  for (int i = 0; i < 4; ++i) o[start + static_cast<size_t>(i)] = static_cast<char>(len >> (8 * i));
}

size_t encoded_record_size(std::string_view bytes) {
  if (bytes.size() < 4) throw std::runtime_error("internal message: catalog record cut short");
  const uint64_t len = get32(reinterpret_cast<const unsigned char*>(bytes.data()));
  if (len < kFixed + 20 || len > bytes.size() - 4) throw std::runtime_error("internal message: catalog record runs past its batch");
  return static_cast<size_t>(len) + 4;
}

std::string_view encoded_record_path(std::string_view record) {
  if (record.size() < 8 + kFixed) throw std::runtime_error("internal message: catalog record cut short");
  const uint32_t n = get32(reinterpret_cast<const unsigned char*>(record.data()) + 4 + kFixed);
  if (n > record.size() - 8 - kFixed) throw std::runtime_error("internal message: catalog record path runs past it");
  return record.substr(8 + kFixed, n);
}

void CatalogWriter::add(const CatalogRecord& r) {
  std::string& o = impl_->rec;
  o.clear();
  encode_catalog_record(r, o);
  add_encoded(o);
}

void CatalogWriter::add_encoded(std::string_view record) {
  impl_->raw += record.size();
  ++impl_->added;
  impl_->pending += record;  // compressed 256 KiB at a time: one zstd call per record cost more than zstd
  if (impl_->pending.size() >= (1u << 18)) {
    impl_->push(impl_->pending, ZSTD_e_continue);
    impl_->pending.clear();
  }
}

std::string CatalogWriter::finish() {
  if (impl_->added != impl_->count)
    throw Fatal("catalog: internal: " + std::to_string(impl_->added) + " records for " + std::to_string(impl_->count) + " entries");
  impl_->push(impl_->pending, ZSTD_e_end);
  impl_->pending.clear();
  std::string out = std::move(impl_->out);
  for (int i = 0; i < 8; ++i) out[24 + i] = static_cast<char>(impl_->raw >> (8 * i));
  return out;
}

// What the tar stream holds for `e` beside its data and ustar fields (format/pax.h, sparse.h).
static uint8_t metadata_flags(const Entry& e) {
  XattrKinds k = xattr_kinds(e.xattrs.str());
  return static_cast<uint8_t>((k.xattrs ? kCatalogXattrs : 0) | (k.acls ? kCatalogAcls : 0) |
                              (!e.sparse.empty() && e.type == EntryType::File ? kCatalogSparse : 0));
}

CatalogRecord catalog_record(const Entry& e, bool tar, bool damaged, uint64_t block, uint64_t offset) {
  CatalogRecord r;
  r.path = e.path;
  r.link = e.link;
  r.type = e.type;
  r.flags = damaged ? kCatalogDamaged : 0;
  if (tar) r.flags |= metadata_flags(e);
  r.mode = e.mode;
  r.uid = e.uid;
  r.gid = e.gid;
  std::tie(r.uname, r.gname) = owner_names(e);  // as the tar header stores them
  r.size = e.type == EntryType::File ? e.size : 0;
  r.mtime_sec = e.mtime_sec;
  r.mtime_nsec = e.mtime_nsec;
  r.ctime_sec = e.ctime_sec;
  r.ctime_nsec = e.ctime_nsec;
  r.dev = e.dev;
  r.ino = e.ino;
  r.block = block;
  r.offset = offset;
  return r;
}

bool TarRecordCursor::next(CatalogRecord& out) {
  while (block_ < blocks_.size()) {
    const Block& b = blocks_[block_];
    if (piece_ == b.pieces.size()) {
      ++block_, piece_ = 0, pos_ = 0;
      continue;
    }
    const Piece& p = b.pieces[piece_++];
    if (p.entry >= entries_.size()) throw Fatal("catalog: internal: piece of entry " + std::to_string(p.entry));
    const Entry& e = entries_[p.entry];
    const uint64_t at = pos_;
    if (p.header) pos_ += tar_header(e).size();
    pos_ += p.last ? (p.length + kTarBlock - 1) / kTarBlock * kTarBlock : p.length;
    if (p.header) {
      out = catalog_record(e, true, std::binary_search(damaged_.begin(), damaged_.end(), e.path), b.id, at);
      return true;
    }
  }
  return false;
}

std::string build_catalog(const EntryList& entries, const std::vector<Block>& blocks, const std::string& fmt,
                          const std::vector<std::string>& damaged) {
  // where each entry's header lies: its block and (tar) the offset inside it
  std::vector<uint64_t> block_of(entries.size(), kCatalogNone), offset_of(entries.size(), kCatalogNone);
  const bool tar = fmt == "tar";
  for (const Block& b : blocks) {
    uint64_t pos = 0;
    for (const Piece& p : b.pieces) {
      if (p.entry >= entries.size()) throw Fatal("catalog: internal: piece of entry " + std::to_string(p.entry));
      if (block_of[p.entry] == kCatalogNone) block_of[p.entry] = b.id;
      if (!tar) continue;
      if (p.header) {
        offset_of[p.entry] = pos;
        pos += tar_header(entries[p.entry]).size();
      }
      pos += p.last ? (p.length + kTarBlock - 1) / kTarBlock * kTarBlock : p.length;
    }
  }
  CatalogWriter w(entries.size());
  for (size_t i = 0; i < entries.size(); ++i) {
    const Entry& e = entries[i];
    w.add(catalog_record(e, tar, std::binary_search(damaged.begin(), damaged.end(), e.path), block_of[i], offset_of[i]));
  }
  return w.finish();
}

namespace {
bool stored_path_ok(const std::string& p) {
  if (p.empty() || p[0] == '/') return false;
  for (size_t at = 0; at <= p.size();) {
    size_t slash = p.find('/', at);
    if (slash == std::string::npos) slash = p.size();
    if (p.compare(at, slash - at, "..") == 0) return false;
    at = slash + 1;
  }
  return true;
}
}  // namespace

void read_catalog_encoded(const std::function<std::string_view()>& next, const CatalogVisit& each) {
  std::string head;
  std::string_view chunk;
  // the header: 32 plain bytes
  while (head.size() < kCatalogHeader) {
    chunk = next();
    if (chunk.empty()) throw Fatal("catalog: shorter than its header");
    size_t take = std::min(chunk.size(), kCatalogHeader - head.size());
    head.append(chunk.data(), take);
    chunk.remove_prefix(take);
  }
  const auto* h = reinterpret_cast<const unsigned char*>(head.data());
  if (std::memcmp(h, kMagic, sizeof kMagic) != 0) throw Fatal("catalog: not a pbackup catalog (bad magic)");
  const uint32_t version = get32(h + 8);
  if (version != 1 && version != kCatalogVersion)
    throw Fatal("catalog: version " + std::to_string(version) + " is not one this pbackup reads (1, 2)");
  const size_t fixed = version == 1 ? kFixedV1 : kFixed;
  if (get32(h + 12) != 0) throw Fatal("catalog: unknown header flags");
  const uint64_t count = get64(h + 16), raw_total = get64(h + 24);

  std::unique_ptr<ZSTD_DCtx, size_t (*)(ZSTD_DCtx*)> dctx(ZSTD_createDCtx(), ZSTD_freeDCtx);
  if (!dctx) throw Fatal("catalog: zstd: out of memory");
  ZSTD_DCtx_setParameter(dctx.get(), ZSTD_d_windowLogMax, 27);  // bounded memory whatever the frame says
  std::string pending;  // decompressed bytes not yet parsed (less than one record + 64 KiB)
  CatalogRecord r;      // one record, its strings' buffers reused from record to record
  std::string last;     // the path of the record before it
  uint64_t seen = 0, raw = 0;
  size_t zrc = 1;
  bool any_input = false;
  auto parse = [&](bool at_end) {
    size_t pos = 0;
    while (pending.size() - pos >= 4) {
      const auto* p = reinterpret_cast<const unsigned char*>(pending.data() + pos);
      uint32_t len = get32(p);
      if (len < fixed + (version == 1 ? 16 : 20) || len > kMaxCatalogRecord)
        throw Fatal("catalog: record " + std::to_string(seen) + " has an impossible length " + std::to_string(len));
      if (pending.size() - pos - 4 < len) break;
      if (seen == count) throw Fatal("catalog: more records than the " + std::to_string(count) + " its header announces");
      const unsigned char* q = p + 4;
      if (q[0] > static_cast<uint8_t>(EntryType::Fifo)) throw Fatal("catalog: record " + std::to_string(seen) + ": unknown type " + std::to_string(q[0]));
      // (a level copies an unchanged entry's record bytes from PREV's catalog: nothing unchecked)
      if (q[2] != 0 || q[3] != 0) throw Fatal("catalog: record " + std::to_string(seen) + ": reserved bytes are not zero");
      if (q[1] & ~(kCatalogDamaged | kCatalogXattrs | kCatalogAcls | kCatalogSparse))
        throw Fatal("catalog: record " + std::to_string(seen) + ": unknown flags " + std::to_string(q[1]));
      r.type = static_cast<EntryType>(q[0]);
      r.flags = q[1];
      r.mode = get32(q + 4);
      r.uid = get32(q + 8);
      r.gid = get32(q + 12);
      r.size = get64(q + 16);
      r.mtime_sec = static_cast<int64_t>(get64(q + 24));
      r.mtime_nsec = get32(q + 32);
      r.block = get64(q + 36);
      r.offset = get64(q + 44);
      if (version >= 2) {
        r.ctime_sec = static_cast<int64_t>(get64(q + 52));
        r.ctime_nsec = get32(q + 60);
        r.dev = get64(q + 64);
        r.ino = get64(q + 72);
        r.level = get32(q + 80);
      } else {
        r.ctime_sec = 0, r.ctime_nsec = 0, r.dev = 0, r.ino = 0, r.level = 0;
        r.member.clear();
      }
      if (r.mtime_nsec >= 1000000000u || r.ctime_nsec >= 1000000000u)
        throw Fatal("catalog: record " + std::to_string(seen) + ": nanoseconds out of range");
      size_t at = fixed;
      std::string* const names[] = {&r.path, &r.link, &r.uname, &r.gname, &r.member};
      for (std::string* s : std::span(names, version >= 2 ? 5 : 4)) {
        if (len - at < 4) throw Fatal("catalog: record " + std::to_string(seen) + ": fields run past its length");
        uint32_t n = get32(q + at);
        at += 4;
        if (n > len - at) throw Fatal("catalog: record " + std::to_string(seen) + ": a name runs past the record");
        if (n > kMaxName) throw Fatal("catalog: record " + std::to_string(seen) + ": a name of " + std::to_string(n) + " bytes (at most 1 MiB)");
        s->assign(reinterpret_cast<const char*>(q + at), n);
        at += n;
      }
      if (at != len) throw Fatal("catalog: record " + std::to_string(seen) + ": " + std::to_string(len - at) + " bytes left over");
      if (r.path.empty()) throw Fatal("catalog: record " + std::to_string(seen) + ": empty path");
      // a backup stores relative paths without ".." (scan makes them so): anything else is a
      // forged catalog whose paths compare and --keep-old-files would look up outside the tree
      if (!r.member.empty() && !stored_path_ok(r.member))
        throw Fatal("catalog: record " + std::to_string(seen) + ": member name " + quote(escape_name(r.member)) + " is absolute or has a '..' component");
      if (!stored_path_ok(r.path) || (r.type == EntryType::Hardlink && !stored_path_ok(r.link)))
        throw Fatal("catalog: record " + std::to_string(seen) + ": path " + quote(escape_name(r.type == EntryType::Hardlink && stored_path_ok(r.path) ? r.link : r.path)) +
                    " is absolute or has a '..' component");
      // in path order, each path once (as the writers make them): a level carries PREV's records
      // by walking them beside its sorted list, and would copy a repeated one twice
      if (seen > 0 && !path_less(last, r.path))
        throw Fatal("catalog: record " + std::to_string(seen) + ": path " + quote(escape_name(r.path)) +
                    " is not after the record before it (records are sorted by path, each path once)");
      last.assign(r.path);
      each(r, version >= 2 ? std::string_view(reinterpret_cast<const char*>(p), size_t{len} + 4) : std::string_view());
      ++seen;
      pos += 4 + size_t{len};
    }
    pending.erase(0, pos);
    if (at_end && !pending.empty()) throw Fatal("catalog: ends inside a record");
  };
  char buf[1 << 16];
  while (true) {
    if (chunk.empty()) {
      chunk = next();
      if (chunk.empty()) break;
    }
    any_input = true;
    ZSTD_inBuffer ib{chunk.data(), chunk.size(), 0};
    while (ib.pos < ib.size) {
      ZSTD_outBuffer ob{buf, sizeof buf, 0};
      zrc = ZSTD_decompressStream(dctx.get(), &ob, &ib);
      if (ZSTD_isError(zrc)) throw Fatal(std::string("catalog: damaged (zstd: ") + ZSTD_getErrorName(zrc) + ")");
      raw += ob.pos;
      if (raw > raw_total) throw Fatal("catalog: holds more bytes than its header says");
      pending.append(buf, ob.pos);
      parse(false);
    }
    chunk = {};
  }
  // the decoder may still hold output after the input ran out
  while (any_input && zrc != 0) {
    ZSTD_inBuffer ib{nullptr, 0, 0};
    ZSTD_outBuffer ob{buf, sizeof buf, 0};
    zrc = ZSTD_decompressStream(dctx.get(), &ob, &ib);
    if (ZSTD_isError(zrc)) throw Fatal(std::string("catalog: damaged (zstd: ") + ZSTD_getErrorName(zrc) + ")");
    if (ob.pos == 0 && zrc != 0) throw Fatal("catalog: truncated");
    raw += ob.pos;
    if (raw > raw_total) throw Fatal("catalog: holds more bytes than its header says");
    pending.append(buf, ob.pos);
    parse(false);
  }
  parse(true);
  if (!any_input && count != 0) throw Fatal("catalog: no records after its header");
  if (raw != raw_total) throw Fatal("catalog: holds " + std::to_string(raw) + " bytes, its header says " + std::to_string(raw_total));
  if (seen != count) throw Fatal("catalog: holds " + std::to_string(seen) + " records, its header says " + std::to_string(count));
}

void read_catalog(const std::function<std::string_view()>& next, const std::function<void(const CatalogRecord&)>& each) {
  read_catalog_encoded(next, [&](const CatalogRecord& r, std::string_view) { each(r); });
}

void read_catalog_encoded(std::string_view bytes, const CatalogVisit& each) {
  bool given = false;
  read_catalog_encoded([&]() -> std::string_view {
    if (given) return {};
    given = true;
    return bytes;
  }, each);
}

void read_catalog(std::string_view bytes, const std::function<void(const CatalogRecord&)>& each) {
  read_catalog_encoded(bytes, [&](const CatalogRecord& r, std::string_view) { each(r); });
}

namespace {
// "BASE.EXT.catalog.zst" beside the manifest of `s`
std::string catalog_path(const ArchiveSource& s) {
  const std::string suffix = ".manifest.json";
  const std::string& mp = s.manifest_path;
  if (mp.size() <= suffix.size() || mp.compare(mp.size() - suffix.size(), suffix.size(), suffix) != 0)
    throw Fatal("internal: manifest path " + quote(mp));
  return catalog_name(mp.substr(0, mp.size() - suffix.size()));
}
}  // namespace

std::string archive_catalog_bytes(const ArchiveSource& s) {
  if (!s.manifest || s.manifest->catalog.name.empty()) throw Fatal(quote(s.name) + ": no catalog");
  if (!s.store) throw Fatal("internal: archive source without a store");
  const std::string path = catalog_path(s);
  const std::string shown = s.bucket.empty() ? path : "s3://" + s.bucket + "/" + path;
  const Fragment& want = s.manifest->catalog;
  auto wrap = [&](const std::string& why) { return Fatal("catalog " + quote(shown) + ": " + why); };
  std::optional<uint64_t> size = s.store->size(path);  // the size first: no unbounded download
  if (!size) throw wrap("missing (the manifest lists it)");
  if (*size != want.size) throw wrap("has " + std::to_string(*size) + " bytes, the manifest says " + std::to_string(want.size));
  std::string bytes = s.store->read_all(path);
  if (bytes.size() != want.size) throw wrap("has " + std::to_string(bytes.size()) + " bytes, the manifest says " + std::to_string(want.size));
  if (sha256_hex(bytes) != want.sha256) throw wrap("SHA-256 differs from the manifest's (damaged or replaced)");
  if (!s.cipher) return bytes;
  try {
    if (s.cipher->identities.empty()) throw Fatal("encrypted, and no identity to open it here");
    return age::decrypt_buffer(bytes, s.cipher->identities);
  } catch (const age::Error& e) {
    throw wrap(e.what());
  } catch (const Fatal& f) {
    throw wrap(f.what());
  }
}

bool read_archive_catalog(const ArchiveSource& s, const std::function<void(const CatalogRecord&)>& each) {
  return read_archive_catalog_encoded(s, [&](const CatalogRecord& r, std::string_view) { each(r); });
}

bool read_archive_catalog_encoded(const ArchiveSource& s, const CatalogVisit& each) {
  if (!s.manifest || s.manifest->catalog.name.empty()) return false;
  const std::string suffix = ".manifest.json";
  const std::string& mp = s.manifest_path;
  if (mp.size() <= suffix.size() || mp.compare(mp.size() - suffix.size(), suffix.size(), suffix) != 0)
    throw Fatal("internal: manifest path " + quote(mp));
  const std::string path = catalog_name(mp.substr(0, mp.size() - suffix.size()));
  const std::string shown = s.bucket.empty() ? path : "s3://" + s.bucket + "/" + path;
  const Fragment& want = s.manifest->catalog;
  auto wrap = [&](const std::string& why) { return Fatal("catalog " + quote(shown) + ": " + why); };
  if (!s.bucket.empty() || s.cipher) {  // an encrypted catalog is read whole and decrypted
    const std::string bytes = archive_catalog_bytes(s);
    try {
      read_catalog_encoded(bytes, each);
    } catch (const Fatal& f) {
      throw wrap(f.what());
    }
    return true;
  }
  Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
  if (!fd) throw Fatal(sys_message("cannot open catalog", path, errno));
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) throw Fatal(sys_message("cannot stat catalog", path, errno));
  if (!S_ISREG(st.st_mode)) throw wrap("not a regular file");
  if (static_cast<uint64_t>(st.st_size) != want.size)
    throw wrap("has " + std::to_string(st.st_size) + " bytes, the manifest says " + std::to_string(want.size));
  std::vector<char> buf(1 << 20);
  uint64_t at = 0;
  auto chunk = [&]() -> std::string_view {
    if (at >= want.size) return {};
    ssize_t n;
    do n = ::pread(fd.get(), buf.data(), std::min<uint64_t>(buf.size(), want.size - at), static_cast<off_t>(at));
    while (n < 0 && errno == EINTR);
    if (n < 0) throw Fatal(sys_message("cannot read catalog", path, errno));
    if (n == 0) throw wrap("shrank while read");
    at += static_cast<uint64_t>(n);
    return {buf.data(), static_cast<size_t>(n)};
  };
  // first pass: the SHA-256, so no record of a damaged or replaced catalog is ever used
  Sha256 h;
  for (std::string_view c; !(c = chunk()).empty();) h.update(c);
  if (h.hex() != want.sha256) throw wrap("SHA-256 differs from the manifest's (damaged or replaced)");
  at = 0;
  try {
    read_catalog_encoded(chunk, each);
  } catch (const Fatal& f) {
    std::string w = f.what();
    if (w.rfind("catalog " + quote(shown), 0) == 0) throw;
    throw wrap(w);
  }
  return true;
}

namespace {
std::string mode_string(EntryType t, uint32_t m) {
  std::string s = "----------";
  s[0] = t == EntryType::Dir ? 'd' : t == EntryType::Symlink ? 'l' : t == EntryType::Hardlink ? 'h' : t == EntryType::Fifo ? 'p' : '-';
  const char* rwx = "rwxrwxrwx";
  for (int i = 0; i < 9; ++i)
    if (m & (1u << (8 - i))) s[1 + i] = rwx[i];
  if (m & 04000) s[3] = (m & 0100) ? 's' : 'S';
  if (m & 02000) s[6] = (m & 010) ? 's' : 'S';
  if (m & 01000) s[9] = (m & 01) ? 't' : 'T';
  return s;
}
}  // namespace

std::string long_line(const CatalogRecord& r) {
  // names come from the archive: escaped like paths (a newline or an escape sequence in a
  // uname must not start a line of its own or drive the terminal), any length
  std::string owner = escape_name(r.uname.empty() ? std::to_string(r.uid) : r.uname) + "/" +
                      escape_name(r.gname.empty() ? std::to_string(r.gid) : r.gname);
  char date[32] = "?";
  time_t t = static_cast<time_t>(r.mtime_sec);
  struct tm tm {};
  if (localtime_r(&t, &tm)) std::strftime(date, sizeof date, "%Y-%m-%d %H:%M", &tm);
  char num[64];
  std::snprintf(num, sizeof num, "%*llu", static_cast<int>(owner.size() < 18 ? 18 - owner.size() : 1),
                static_cast<unsigned long long>(r.size));
  std::string head = mode_string(r.type, r.mode) + " " + owner + " " + num + " " + date + " ";
  std::string line = head + escape_name(r.path);
  if (r.type == EntryType::Dir) line += '/';
  if (r.type == EntryType::Symlink) line += " -> " + escape_name(r.link);
  if (r.type == EntryType::Hardlink) line += " link to " + escape_name(r.link);
  return line;
}

}  // namespace pbackup
