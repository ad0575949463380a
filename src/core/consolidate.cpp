// Consolidation of an incremental chain into a full backup (core/consolidate.h, DESIGN §2).
#include "core/consolidate.h"

#include <algorithm>
#include <cstring>

#include "core/catalog.h"
#include "core/incremental.h"
#include "core/select.h"
#include "format/sparse.h"
#include "format/tar_read.h"
#include "pbackup/error.h"
#include "pbackup/sha256.h"
#include "pbackup/wire.h"

namespace pbackup {

namespace {

struct Opened {
  std::string error;
  std::vector<ArchiveSource> levels;
};
template <class Ar>
void fields(Ar& a, Opened& o) {
  a(o.error), a(o.levels);
}

std::string member_name(const Consolidation& con, uint32_t level, const std::string& member) {
  return "level " + std::to_string(level) + " (" + quote(con.levels[level].name) + "), member " + quote(escape_name(member));
}

// The decompressed block k of `level`, checked against its SHA-256; this thread keeps the last one.
const std::string& block_bytes(const Consolidation& con, uint32_t level, const ManifestBlock& b) {
  thread_local const Consolidation* c_con = nullptr;
  thread_local const ManifestBlock* c_block = nullptr;
  thread_local std::string c_raw;
  if (c_con == &con && c_block == &b) return c_raw;
  c_con = nullptr;
  std::string packed = read_range(con.levels[level], b.offset, b.size);
  if (sha256_hex(packed) != b.sha256)
    throw Fatal("level " + std::to_string(level) + " (" + quote(con.levels[level].name) + "): block at byte " + std::to_string(b.offset) + " is corrupted (checksum mismatch)");
  c_raw = con.codecs[level]->decompress(packed, b.raw_size);
  c_con = &con, c_block = &b;
  return c_raw;
}

// Bytes [pos, pos + n) of `level`'s uncompressed tar stream, across its blocks.
void stream_read(const Consolidation& con, uint32_t level, uint64_t pos, uint64_t n, char* out) {
  const auto& v = con.by_raw[level];
  while (n > 0) {
    auto it = std::upper_bound(v.begin(), v.end(), pos, [](uint64_t p, const ManifestBlock* b) { return p < b->raw_offset; });
    if (it == v.begin()) throw Fatal("level " + std::to_string(level) + ": stream offset " + std::to_string(pos) + " before its first block");
    const ManifestBlock& b = **(it - 1);
    if (pos - b.raw_offset >= b.raw_size) throw Fatal("level " + std::to_string(level) + ": stream offset " + std::to_string(pos) + " outside its blocks");
    const std::string& raw = block_bytes(con, level, b);
    const uint64_t at = pos - b.raw_offset, k = std::min<uint64_t>(n, raw.size() - at);
    std::memcpy(out, raw.data() + at, k);
    out += k, pos += k, n -= k;
  }
}

}  // namespace

bool open_consolidation(Comm& comm, const BackupOptions& opt, Consolidation& con, Log& log) {
  std::string bytes;
  if (comm.rank() == 0) {
    Opened o;
    try {
      const S3Flags s3{opt.s3_endpoint, opt.s3_region, opt.s3_addressing};
      ArchiveSource newest = resolve_source(opt.consolidate_from, "", s3, false, opt.keys);
      if (!newest.manifest || newest.manifest->format != "tar")
        throw Fatal(quote(newest.name) + ": consolidate needs a pbackup tar backup (with its manifest)");
      if (newest.cipher) throw Fatal(quote(newest.name) + ": consolidating an encrypted chain is not supported yet");
      o.levels = newest.manifest->chain.empty() ? std::vector<ArchiveSource>{} : resolve_chain(newest, s3, opt.keys);
      o.levels.push_back(newest);
      for (const ArchiveSource& s : o.levels)
        if (s.cipher) throw Fatal(quote(s.name) + ": consolidating an encrypted chain is not supported yet");
    } catch (const std::exception& e) {
      o.error = e.what();
    }
    bytes = to_wire(o);
  }
  comm.broadcast(bytes, 0);
  Opened o = from_wire<Opened>(bytes);
  if (!o.error.empty()) {
    if (comm.rank() == 0) log.error(o.error);
    return false;
  }
  con.on = true;
  con.levels = std::move(o.levels);
  const S3Flags s3{opt.s3_endpoint, opt.s3_region, opt.s3_addressing};
  for (ArchiveSource& s : con.levels) {
    if (!s.store) attach_store(s, s3);
    const Manifest& m = *s.manifest;
    con.codecs.push_back(make_codec(m.codec, -1));
    con.blocks.emplace_back();
    for (const auto& b : m.blocks)
      if (b.kind == "block") con.blocks.back().push_back(&b);
    con.by_raw.push_back(con.blocks.back());
    std::stable_sort(con.by_raw.back().begin(), con.by_raw.back().end(),
                     [](const ManifestBlock* x, const ManifestBlock* y) { return x->raw_offset < y->raw_offset; });
  }
  con.sources = con.levels.back().manifest->sources;
  return true;
}

EntryList consolidation_entries(Comm& comm, const Consolidation& con) {
  EntryList out;
  uint64_t i = 0;
  const uint64_t n = con.levels.size(), me = static_cast<uint64_t>(comm.rank()), size = static_cast<uint64_t>(comm.size());
  const ArchiveSource& newest = con.levels.back();
  if (!read_archive_catalog(newest, [&](const CatalogRecord& r) {
        if (r.level >= n)
          throw Fatal("catalog of " + quote(newest.name) + ": " + quote(escape_name(r.path)) + " names level " + std::to_string(r.level) + " of a chain of " + std::to_string(n));
        if (i++ % size != me) return;
        Entry e;
        e.path = r.path, e.link = r.link, e.owner = r.uname + ":" + r.gname;
        e.size = r.size, e.mtime_sec = r.mtime_sec, e.mtime_nsec = r.mtime_nsec;
        e.ctime_sec = r.ctime_sec, e.ctime_nsec = r.ctime_nsec, e.mode = r.mode, e.uid = r.uid, e.gid = r.gid;
        e.dev = r.dev, e.ino = r.ino, e.type = r.type, e.nlink = 1, e.root = 0;
        out.push_back(std::move(e));
      }))
    throw Fatal(quote(newest.name) + ": no catalog: consolidate needs a pbackup backup with its catalog");
  return out;
}

void locate(Consolidation& con, EntryList& mine) {
  if (mine.empty()) return;
  // the records of this rank's slice, in path order beside the sorted slice (a merge)
  size_t i = 0;
  read_archive_catalog(con.levels.back(), [&](const CatalogRecord& r) {
    while (i < mine.size() && path_less(mine[i].path, r.path)) ++i;
    if (i == mine.size() || mine[i].path != r.path) return;
    Entry& e = mine[i];
    const bool flagged = r.flags & (kCatalogXattrs | kCatalogAcls | kCatalogSparse);
    if ((e.type != EntryType::File || con.where.count(e.path)) && !flagged) return;
    const std::string& member = r.member.empty() ? r.path : r.member;
    const auto& blocks = con.blocks[r.level];
    if (r.block >= blocks.size() || r.offset == kCatalogNone)
      throw Fatal(member_name(con, r.level, member) + ": its catalog record names block " + std::to_string(r.block) + " of " + std::to_string(blocks.size()));
    const ManifestBlock& b = *blocks[r.block];
    const std::string* raw_p = nullptr;
    try {
      raw_p = &block_bytes(con, r.level, b);
    } catch (const Fatal& f) {
      throw Fatal(std::string(f.what()) + " (reading " + quote(escape_name(member)) + ")");
    }
    const std::string& raw = *raw_p;
    if (r.offset >= raw.size()) throw Fatal(member_name(con, r.level, member) + ": header offset past its block");
    size_t pos = r.offset;
    TarMember m;
    try {
      if (!read_tar_member(raw, pos, m)) throw Fatal("end of archive where its header should be");
    } catch (const Fatal& f) {
      throw Fatal(member_name(con, r.level, member) + ": " + f.what());
    }
    if (m.path != member) throw Fatal(member_name(con, r.level, member) + ": the header there is " + quote(escape_name(m.path)));
    e.xattrs = m.xattrs;
    if (e.type == EntryType::File) {
      const uint64_t size = m.sparse ? m.realsize : m.size;
      if (size != e.size) throw Fatal(member_name(con, r.level, member) + ": size " + std::to_string(size) + " where the catalog says " + std::to_string(e.size));
      if (m.sparse) {  // GNU sparse 1.0: the map heads the member's data; the stored bytes are copied as they are
        std::string head(std::min<uint64_t>(m.size, kMaxSparseMapBytes + 512), '\0');
        SparseMap map;
        uint64_t start = 0;
        try {
          stream_read(con, r.level, b.raw_offset + pos, head.size(), head.data());
          if (!parse_sparse_map(head, m.size, m.realsize, map, start)) throw Fatal("its sparse map runs past " + std::to_string(head.size()) + " bytes");
        } catch (const Fatal& f) {
          throw Fatal(member_name(con, r.level, member) + ": " + f.what());
        }
        e.sparse = encode_sparse_map(map);
        if (tar_data_size(e) != m.size)
          throw Fatal(member_name(con, r.level, member) + ": its sparse map is not laid out as pbackup lays it out (stored size " + std::to_string(m.size) + ")");
      }
      con.where[e.path] = Consolidation::Where{r.level, b.raw_offset + pos, (r.flags & kCatalogDamaged) != 0};
    }
  });
}

std::string chain_location(const Consolidation& con, const Entry& e) {
  if (e.type != EntryType::File) return "";
  auto it = con.where.find(e.path);
  if (it == con.where.end()) throw Fatal(quote(escape_name(e.path)) + ": not located in the chain (internal)");
  const Consolidation::Where& w = it->second;
  return std::to_string(w.level) + ":" + std::to_string(w.start) + ":" + (w.damaged ? "d" : "-");
}

void ChainData::read(const Entry& e, const std::string& disk, uint64_t offset, uint64_t length, bool, char* out) {
  Consolidation::Where w;
  {  // "LEVEL:START:d|-" (chain_location)
    const size_t a = disk.find(':'), b = a == std::string::npos ? a : disk.find(':', a + 1);
    if (b == std::string::npos || b + 2 != disk.size()) throw Fatal(quote(escape_name(e.path)) + ": no chain location (internal)");
    try {
      const unsigned long long lv = std::stoull(disk.substr(0, a)), st = std::stoull(disk.substr(a + 1, b - a - 1));
      if (lv >= con_.levels.size()) throw Fatal("");
      w.level = static_cast<uint32_t>(lv), w.start = st, w.damaged = disk[b + 1] == 'd';
    } catch (const std::exception&) {
      throw Fatal(quote(escape_name(e.path)) + ": bad chain location " + quote(disk) + " (internal)");
    }
  }
  const uint64_t stored = tar_data_size(e);  // a sparse member's map block and regions
  if (offset > stored || length > stored - offset) throw Fatal(quote(escape_name(e.path)) + ": read past its size (internal)");
  try {
    stream_read(con_, w.level, w.start + offset, length, out);
  } catch (const Fatal& f) {
    throw Fatal(quote(escape_name(e.path)) + " (level " + std::to_string(w.level) + ", " + quote(con_.levels[w.level].name) + "): " + f.what());
  }
  if (w.damaged && offset == 0) {
    log_.warn("damaged in the chain (zeros); stays listed as damaged", e.path);
    damaged_.push_back(e.path);
  }
}

}  // namespace pbackup
