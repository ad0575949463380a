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
  std::string catalog;
};
template <class Ar>
void fields(Ar& a, Opened& o) {
  a(o.error), a(o.levels), a(o.catalog);
}

std::string member_name(const Consolidation& con, uint32_t level, const std::string& member) {
  return "level " + std::to_string(level) + " (" + quote(con.levels[level].name) + "), member " + quote(escape_name(member));
}

// The decompressed block `b` of `level`, checked against its SHA-256. This thread keeps the last
// two (a big member's header block and the block its data is read from).
const std::string& block_bytes(const Consolidation& con, uint32_t level, const ManifestBlock& b) {
  struct Cached {
    const Consolidation* con = nullptr;
    const ManifestBlock* block = nullptr;
    std::string raw;
  };
  thread_local Cached c[2];  // c[1] the most recently used; a reference returned is used before the next call
  if (c[1].con == &con && c[1].block == &b) return c[1].raw;
  if (c[0].con == &con && c[0].block == &b) {
    std::swap(c[0], c[1]);
    return c[1].raw;
  }
  c[0].con = nullptr;  // the least recently used one is replaced
  std::string packed = read_range(con.levels[level], b.offset, b.size);
  if (sha256_hex(packed) != b.sha256)
    throw Fatal("level " + std::to_string(level) + " (" + quote(con.levels[level].name) + "): block at byte " + std::to_string(b.offset) + " is corrupted (checksum mismatch)");
  c[0].raw = con.codecs[level]->decompress(packed, b.raw_size);
  c[0].con = &con, c[0].block = &b;
  std::swap(c[0], c[1]);
  return c[1].raw;
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

// Level N's catalog, record by record, from the copy rank 0 read and checked: its own
// complaints ("catalog: ...") name it; what `each` throws passes as it is.
void each_record(const Consolidation& con, const std::function<void(const CatalogRecord&)>& each) {
  try {
    read_catalog(con.catalog, each);
  } catch (const Fatal& f) {
    const std::string what = f.what();
    if (what.rfind("catalog: ", 0) != 0) throw;
    throw Fatal("catalog of " + quote(con.levels.back().name) + ": " + what.substr(9));
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
      if (newest.manifest->catalog.name.empty())
        throw Fatal(quote(newest.name) + ": no catalog: consolidate needs a pbackup backup with its catalog");
      o.catalog = archive_catalog_bytes(newest);  // checked against the manifest's size and SHA-256
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
  con.catalog = std::move(o.catalog);
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
  each_record(con, [&](const CatalogRecord& r) {
    if (r.level >= n)
      throw Fatal("catalog of " + quote(newest.name) + ": " + quote(escape_name(r.path)) + " names level " + std::to_string(r.level) + " of a chain of " + std::to_string(n));
    if (i++ % size != me) return;
    Entry e;
    e.path = r.path, e.link = r.link, e.owner = r.uname + ":" + r.gname;
    e.size = r.size, e.mtime_sec = r.mtime_sec, e.mtime_nsec = r.mtime_nsec;
    e.ctime_sec = r.ctime_sec, e.ctime_nsec = r.ctime_nsec, e.mode = r.mode, e.uid = r.uid, e.gid = r.gid;
    e.dev = r.dev, e.ino = r.ino, e.type = r.type, e.nlink = 1, e.root = 0;
    out.push_back(std::move(e));
  });
  return out;
}

namespace {

// The header of `member` at `offset` of block `block` of `level`: checks it is that member and
// returns where its data starts in the level's uncompressed stream. Throws Fatal naming both.
uint64_t member_header(const Consolidation& con, uint32_t level, uint64_t block, uint64_t offset, const std::string& member, TarMember& m) {
  const auto& blocks = con.blocks[level];
  if (block >= blocks.size() || offset == kCatalogNone)
    throw Fatal(member_name(con, level, member) + ": its catalog record names block " + std::to_string(block) + " of " + std::to_string(blocks.size()));
  const ManifestBlock& b = *blocks[block];
  try {
    const std::string& raw = block_bytes(con, level, b);
    if (offset >= raw.size()) throw Fatal("header offset past its block");
    size_t pos = offset;
    if (!read_tar_member(raw, pos, m)) throw Fatal("end of archive where its header should be");
    if (m.path != member) throw Fatal("the header there is " + quote(escape_name(m.path)));
    return b.raw_offset + pos;
  } catch (const Fatal& f) {
    throw Fatal(member_name(con, level, member) + ": " + f.what());
  }
}

// The bytes of `level`'s uncompressed tar stream: where its last block (by raw offset) ends.
uint64_t stream_bytes(const Consolidation& con, uint32_t level) {
  const auto& v = con.by_raw[level];
  if (v.empty()) return 0;
  const ManifestBlock& b = *v.back();
  return b.raw_size > UINT64_MAX - b.raw_offset ? UINT64_MAX : b.raw_offset + b.raw_size;
}

}  // namespace

void locate(Consolidation& con, EntryList& mine) {
  if (mine.empty()) return;
  // the records of this rank's slice, in path order beside the sorted slice (a merge)
  size_t i = 0;
  each_record(con, [&](const CatalogRecord& r) {
    while (i < mine.size() && path_less(mine[i].path, r.path)) ++i;
    if (i == mine.size() || mine[i].path != r.path) return;
    Entry& e = mine[i];
    if (r.level >= con.levels.size())  // checked on the first pass too
      throw Fatal(quote(escape_name(r.path)) + ": its catalog record names level " + std::to_string(r.level) + " of a chain of " + std::to_string(con.levels.size()));
    const std::string& member = r.member.empty() ? r.path : r.member;
    if (e.type == EntryType::File)
      con.where[e.path] = Consolidation::Where{r.level, r.block, r.offset, (r.flags & kCatalogDamaged) != 0, member};
    // the header only where it holds more than the catalog: xattrs, ACLs, a sparse map (they
    // size the headers the cut lays out); the other members' headers are read by ChainData
    if (!(r.flags & (kCatalogXattrs | kCatalogAcls | kCatalogSparse))) return;
    TarMember m;
    const uint64_t start = member_header(con, r.level, r.block, r.offset, member, m);
    e.xattrs = m.xattrs;
    if (e.type != EntryType::File || !m.sparse) return;
    // GNU sparse 1.0: the map heads the member's data; the stored bytes are copied as they are
    std::string head(std::min<uint64_t>(m.size, kMaxSparseMapBytes + 512), '\0');
    SparseMap map;
    uint64_t at = 0;
    try {
      stream_read(con, r.level, start, head.size(), head.data());
      if (!parse_sparse_map(head, m.size, m.realsize, map, at)) throw Fatal("its sparse map runs past " + std::to_string(head.size()) + " bytes");
    } catch (const Fatal& f) {
      throw Fatal(member_name(con, r.level, member) + ": " + f.what());
    }
    e.sparse = encode_sparse_map(map);
    if (m.realsize != e.size || tar_data_size(e) != m.size)
      throw Fatal(member_name(con, r.level, member) + ": its sparse map or size is not the catalog's (stored size " + std::to_string(m.size) + ")");
  });
  // a forged catalog (re-hashed in its manifest) must not size the plan: a file's stored bytes
  // lie in its level's stream, so they cannot be more than that stream holds
  for (const Entry& e : mine) {
    if (e.type != EntryType::File) continue;
    auto it = con.where.find(e.path);
    if (it == con.where.end()) continue;
    const Consolidation::Where& w = it->second;
    const uint64_t have = stream_bytes(con, w.level), stored = tar_data_size(e);
    if (stored > have)
      throw Fatal(member_name(con, w.level, w.member) + ": the catalog says it stores " + std::to_string(stored) + " bytes, more than the " +
                  std::to_string(have) + " of that level's archive");
  }
}

std::string chain_location(const Consolidation& con, const Entry& e) {
  if (e.type != EntryType::File) return "";
  auto it = con.where.find(e.path);
  if (it == con.where.end()) throw Fatal(quote(escape_name(e.path)) + ": not located in the chain (internal)");
  const Consolidation::Where& w = it->second;
  return std::to_string(w.level) + ":" + std::to_string(w.block) + ":" + std::to_string(w.offset) + ":" + (w.damaged ? "d" : "-") + ":" + w.member;
}

void ChainData::read(const Entry& e, const std::string& disk, uint64_t offset, uint64_t length, bool, char* out) {
  Consolidation::Where w;
  {  // "LEVEL:BLOCK:OFFSET:d|-:MEMBER" (chain_location; the member name last: it may hold ':')
    size_t at[4];
    size_t from = 0;
    for (size_t& x : at) {
      x = disk.find(':', from);
      if (x == std::string::npos) throw Fatal(quote(escape_name(e.path)) + ": no chain location (internal)");
      from = x + 1;
    }
    try {
      const unsigned long long lv = std::stoull(disk.substr(0, at[0]));
      if (lv >= con_.levels.size() || at[3] != at[2] + 2) throw Fatal("");
      w.level = static_cast<uint32_t>(lv);
      w.block = std::stoull(disk.substr(at[0] + 1, at[1] - at[0] - 1));
      w.offset = std::stoull(disk.substr(at[1] + 1, at[2] - at[1] - 1));
      w.damaged = disk[at[2] + 1] == 'd';
      w.member = disk.substr(at[3] + 1);
    } catch (const std::exception&) {
      throw Fatal(quote(escape_name(e.path)) + ": bad chain location " + quote(disk) + " (internal)");
    }
  }
  const uint64_t stored = tar_data_size(e);  // a sparse member's map block and regions
  if (offset > stored || length > stored - offset) throw Fatal(quote(escape_name(e.path)) + ": read past its size (internal)");
  TarMember m;
  const uint64_t start = member_header(con_, w.level, w.block, w.offset, w.member, m);
  if (m.size != stored)
    throw Fatal(member_name(con_, w.level, w.member) + ": " + std::to_string(m.size) + " bytes stored where the catalog says " + std::to_string(stored));
  try {
    stream_read(con_, w.level, start + offset, length, out);
  } catch (const Fatal& f) {
    throw Fatal(member_name(con_, w.level, w.member) + ": " + f.what());
  }
  if (w.damaged && offset == 0) {
    log_.warn(quote(escape_name(e.path)) + ": damaged at backup time in " + member_name(con_, w.level, w.member) +
                  " (zeros); stored as zeros and listed as damaged again", e.path);
    damaged_.push_back(e.path);
  }
}

}  // namespace pbackup
