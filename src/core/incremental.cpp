// Incremental levels (see incremental.h). Memory: every rank reads PREV's catalog itself, one
// record at a time (plus zstd's window; an s3:// catalog is fetched whole first), beside its own
// slice of the sorted list, and keeps the records of its unchanged entries (about 1/N of the
// tree, fewer bytes than the Entry each replaces). Rank 0 holds nothing more than in a full backup.
#include "core/incremental.h"

#include <algorithm>

#include "core/messages.h"
#include "pbackup/error.h"
#include "pbackup/sha256.h"
#include "pbackup/wire.h"

namespace pbackup {
namespace {

const std::string kManifestSuffix = ".manifest.json";

// "dir/NAME.manifest.json" -> "dir" ("" without a '/')
std::string chain_dir(const std::string& p) {
  const size_t slash = p.rfind('/');
  return slash == std::string::npos ? "" : p.substr(0, slash);
}
std::string base_of(const std::string& p) {
  const size_t slash = p.rfind('/');
  return slash == std::string::npos ? p : p.substr(slash + 1);
}

// Rank 0 to all: PREV resolved, or why not.
struct PrevInfo {
  std::string error;
  ArchiveSource prev;
  std::vector<Fragment> chain;
};
template <class Ar>
void fields(Ar& a, PrevInfo& p) {
  a(p.error), a(p.prev), a(p.chain);
}

}  // namespace

bool open_previous(Comm& comm, const BackupOptions& opt, const std::string& fmt_name, Incremental& inc, Log& log) {
  inc.on = !opt.incremental_from.empty();
  if (!inc.on) return true;
  std::string bytes;
  PrevInfo info;
  if (comm.rank() == 0) {
    try {
      const S3Flags s3{opt.s3_endpoint, opt.s3_region, opt.s3_addressing};
      ArchiveSource prev = resolve_source(opt.incremental_from, "", s3);
      const std::string shown = quote(opt.incremental_from);
      if (fmt_name != "tar") throw Fatal("--incremental-from needs a tar format (--algo gzip, bzip2 or zstd)");
      if (opt.keys.encrypting()) throw Fatal("--incremental-from cannot be combined with encryption yet");
      if (!prev.manifest || !prev.store) throw Fatal("--incremental-from " + shown + ": no pbackup manifest beside it (only its catalog is read)");
      if (!prev.manifest->encryption.empty()) throw Fatal("--incremental-from " + shown + ": an encrypted level cannot be the base of another yet");
      if (prev.manifest->catalog.name.empty()) throw Fatal("--incremental-from " + shown + ": it has no catalog (made before catalogs)");
      std::string man = prev.store->read_all(prev.manifest_path);
      inc.chain = prev.manifest->chain;
      inc.chain.push_back({base_of(prev.manifest_path), man.size(), sha256_hex(man)});
      if (inc.chain.size() >= 0xffffffffu) throw Fatal("--incremental-from " + shown + ": chain too long");
      inc.prev = std::move(prev);
    } catch (const std::exception& e) {
      info.error = e.what();
    }
    info.prev = inc.prev;
    info.chain = inc.chain;
    bytes = to_wire(info);
  }
  comm.broadcast(bytes, 0);
  info = from_wire<PrevInfo>(bytes);
  if (!info.error.empty()) {
    if (comm.rank() == 0) log.error(info.error);
    return false;
  }
  inc.prev = std::move(info.prev);
  inc.chain = std::move(info.chain);
  if (comm.rank() != 0) {
    try {
      attach_store(inc.prev, {opt.s3_endpoint, opt.s3_region, opt.s3_addressing});
    } catch (const std::exception& e) {
      log.error(e.what());
      return comm.all_ok(false);
    }
  }
  return comm.all_ok(true);
}

bool unchanged(const Entry& e, const CatalogRecord& r) {
  if (e.type != r.type || r.ino == 0 || (r.flags & kCatalogDamaged)) return false;
  if (e.type == EntryType::Dir || e.type == EntryType::Hardlink) return false;  // directories: always stored
  if (e.type == EntryType::File && (e.nlink > 1 || e.size != r.size)) return false;  // links: stored together
  return e.mtime_sec == r.mtime_sec && e.mtime_nsec == r.mtime_nsec && e.ctime_sec == r.ctime_sec &&
         e.ctime_nsec == r.ctime_nsec && e.dev == r.dev && e.ino == r.ino && e.mode == r.mode && e.uid == r.uid &&
         e.gid == r.gid && e.link == r.link;
}

void drop_unchanged(Incremental& inc, EntryList& mine) {
  if (!inc.on) return;
  std::vector<bool> drop(mine.size(), false);
  size_t i = 0;
  read_archive_catalog(inc.prev, [&](const CatalogRecord& r) {
    while (i < mine.size() && path_less(mine[i].path, r.path)) ++i;
    if (i < mine.size() && mine[i].path == r.path && unchanged(mine[i], r)) {
      drop[i] = true;
      inc.kept.push_back(r);  // its level, block and offset: where the chain holds it
    }
  });
  EntryList stay;
  for (size_t k = 0; k < mine.size(); ++k)
    if (!drop[k]) stay.push_back(std::move(mine[k]));
  mine.swap(stay);
}

void place_kept(Comm& comm, Incremental& inc, const std::string& first) {
  std::string all = to_wire(comm.gather(first, 0));
  comm.broadcast(all, 0);
  const auto firsts = from_wire<std::vector<std::string>>(all);
  const int n = comm.size();
  int lowest = 0;  // the first rank storing anything (the roots are directories: always stored)
  while (lowest + 1 < n && firsts[static_cast<size_t>(lowest)].empty()) ++lowest;
  std::vector<std::vector<CatalogRecord>> out(static_cast<size_t>(n));
  std::vector<CatalogRecord> stay;
  for (auto& r : inc.kept) {
    int owner = lowest;
    for (int s = n - 1; s >= 0; --s) {
      const std::string& f = firsts[static_cast<size_t>(s)];
      if (!f.empty() && !path_less(r.path, f)) {
        owner = s;
        break;
      }
    }
    if (owner == comm.rank()) stay.push_back(std::move(r));
    else out[static_cast<size_t>(owner)].push_back(std::move(r));
  }
  // Only the records past a cut boundary move (at most about one block's entries per rank).
  std::vector<std::string> to_each;
  for (auto& v : out) to_each.push_back(to_wire(v));
  for (const auto& bytes : comm.exchange(to_each))
    for (auto& r : from_wire<std::vector<CatalogRecord>>(bytes)) stay.push_back(std::move(r));
  std::sort(stay.begin(), stay.end(), [](const CatalogRecord& a, const CatalogRecord& b) { return path_less(a.path, b.path); });
  inc.kept.swap(stay);
  inc.kept_total = comm.sum(inc.kept.size());
}

std::vector<ArchiveSource> resolve_chain(const ArchiveSource& newest, const S3Flags& s3, const AgeKeys& keys) {
  std::vector<ArchiveSource> out;
  if (!newest.manifest || !newest.store) return out;
  const std::string dir = chain_dir(newest.manifest_path);
  const auto& chain = newest.manifest->chain;
  for (size_t k = 0; k < chain.size(); ++k) {
    const Fragment& link = chain[k];
    const std::string& name = link.name;
    const std::string what = "chain of " + quote(newest.name) + ": level " + std::to_string(k) + " " + quote(name);
    if (name.size() <= kManifestSuffix.size() || name.find('/') != std::string::npos || name == "." || name == ".." ||
        name.compare(name.size() - kManifestSuffix.size(), kManifestSuffix.size(), kManifestSuffix) != 0)
      throw Fatal(what + ": not a manifest name");
    const std::string key = dir.empty() ? name : dir + "/" + name;
    const std::optional<uint64_t> size = newest.store->size(key);
    if (!size) throw Fatal(what + ": missing (expected beside the newest level as " + quote(newest.store->display(key)) + ")");
    if (*size != link.size) throw Fatal(what + ": altered (" + std::to_string(*size) + " bytes, the chain records " + std::to_string(link.size) + ")");
    if (sha256_hex(newest.store->read_all(key)) != link.sha256) throw Fatal(what + ": altered (its SHA-256 differs from the one the chain records)");
    const std::string archive = key.substr(0, key.size() - kManifestSuffix.size());
    ArchiveSource s = resolve_source(newest.bucket.empty() ? archive : "s3://" + newest.bucket + "/" + archive, "", s3, false, keys);
    if (!s.manifest || s.manifest->chain.size() != k)
      throw Fatal(what + ": its manifest does not make it level " + std::to_string(k) + " of this chain");
    out.push_back(std::move(s));
  }
  return out;
}

}  // namespace pbackup
