// Incremental levels (see incremental.h). Memory: every rank reads PREV's catalog itself, one
// record at a time (plus zstd's window; an s3:// catalog is fetched by rank 0 and broadcast), beside its own
// slice of the sorted list, and keeps the records of its unchanged entries (about 1/N of the
// tree, fewer bytes than the Entry each replaces). Rank 0 holds nothing more than in a full backup.
#include "core/incremental.h"

#include <fcntl.h>
#include <sys/stat.h>

#include <algorithm>
#include <bit>
#include <iterator>
#include <cstdio>

#include "core/extract.h"
#include "core/read.h"
#include "core/messages.h"
#include "core/select.h"
#include "pbackup/pipeline.h"
#include "pbackup/error.h"
#include "pbackup/sha256.h"
#include "pbackup/wire.h"
#include "util/fd.h"

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
  std::string catalog;  // an encrypted PREV's catalog, decrypted
};
template <class Ar>
void fields(Ar& a, PrevInfo& p) {
  a(p.error), a(p.prev), a(p.chain), a(p.catalog);
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
      ArchiveSource prev = resolve_source(opt.incremental_from, "", s3, false, opt.keys);  // an encrypted PREV: --identity
      const std::string shown = quote(opt.incremental_from);
      if (fmt_name != "tar") throw Fatal("--incremental-from needs a tar format (--algo gzip, bzip2 or zstd)");
      if (!prev.manifest || !prev.store) throw Fatal("--incremental-from " + shown + ": no pbackup manifest beside it (only its catalog is read)");
      // this level's catalog lists the whole tree, PREV's names too: it must be sealed as PREV's is
      if (prev.cipher && !opt.keys.encrypting())
        throw Fatal("--incremental-from " + shown + " is encrypted: this level must be encrypted too (--encrypt-to, --encrypt-to-file or "
                    "--passphrase-file), or its plaintext catalog would list every name of the encrypted level");
      // decrypted here: the identities stay on rank 0; an s3:// catalog is fetched once, not by
      // every rank (the ranks then hold it compressed, as they would have after their own GET)
      if (prev.cipher || !prev.bucket.empty()) info.catalog = archive_catalog_bytes(prev);
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
  inc.prev_catalog = std::move(info.catalog);
  try {  // every rank, rank 0 too: the store does not travel
    attach_store(inc.prev, {opt.s3_endpoint, opt.s3_region, opt.s3_addressing});
  } catch (const std::exception& e) {
    log.error(e.what());
    return comm.all_ok(false);
  }
  return comm.all_ok(true);
}

void EncodedRecords::add(std::string_view record) {
  if (chunks_.empty() || chunks_.back().size() + record.size() > kChunk) chunks_.emplace_back().reserve(std::max(kChunk, record.size()));
  chunks_.back() += record;
  ++count_;
}

std::string_view EncodedRecords::front() const {
  if (chunks_.empty()) return {};
  const std::string_view rest = std::string_view(chunks_.front()).substr(at_);
  return rest.substr(0, encoded_record_size(rest));
}

void EncodedRecords::pop() {
  if (chunks_.empty()) return;
  at_ += front().size();
  --count_;
  if (at_ == chunks_.front().size()) {
    chunks_.pop_front();
    at_ = 0;
  }
}

bool unchanged(const Entry& e, const CatalogRecord& r) {
  if (e.type != r.type || r.ino == 0 || (r.flags & kCatalogDamaged)) return false;
  if (e.type == EntryType::Dir || e.type == EntryType::Hardlink) return false;  // directories: always stored
  if (e.type == EntryType::File && (e.nlink > 1 || e.size != r.size)) return false;  // links: stored together
  return e.mtime_sec == r.mtime_sec && e.mtime_nsec == r.mtime_nsec && e.ctime_sec == r.ctime_sec &&
         e.ctime_nsec == r.ctime_nsec && e.dev == r.dev && e.ino == r.ino && e.mode == r.mode && e.uid == r.uid &&
         e.gid == r.gid && e.link == r.link;
}

// PREV's catalog, streamed: from its file, or from the copy rank 0 sent (decrypted, or fetched
// from S3). A record naming a level past PREV itself is refused: carried, it would point outside
// the chain.
void read_previous(const Incremental& inc, const CatalogVisit& each) {
  const uint64_t prev_level = inc.chain.size() - 1;  // PREV is the chain's last
  auto checked = [&](const CatalogRecord& r, std::string_view encoded) {
    if (r.level > prev_level)
      throw Fatal("catalog of " + quote(inc.prev.name) + ": " + quote(escape_name(r.path)) + " names level " + std::to_string(r.level) +
                  " of a chain of " + std::to_string(prev_level + 1));
    each(r, encoded);
  };
  if (!inc.prev_catalog.empty()) read_catalog_encoded(inc.prev_catalog, checked);
  else read_archive_catalog_encoded(inc.prev, checked);
}

// One pass over PREV's catalog beside this rank's sorted slice. A record at an entry's own path
// that is unchanged is kept as PREV's catalog stores it (its level, block and offset: where the
// chain holds it; the new catalog copies those bytes). Entries moved inside the tree (a renamed
// directory's files keep their inode, size, mtime and ctime) are found in the same pass by (dev,
// ino): the record under the old path is carried under the new one, with the member name the
// data has in its archive. Only this rank's entries are looked up (a sorted (ino, entry) table).
namespace {
// Is PREV's `path` still on disk as the inode `e` (one inode at two paths: a bind mount, a source
// given inside another)? Then it is no rename: its record stays at its own path (kept by
// whichever rank holds it), and a restore puts a member under one path only.
bool still_there(const std::string& path, const Entry& e, const std::vector<Root>& roots) {
  const std::string root = path.substr(0, path.find('/'));
  for (const Root& r : roots) {
    if (r.name != root) continue;
    Fd fd(open_below_root(disk_path(r, path), path, O_PATH | O_NOFOLLOW, false));
    struct stat st {};
    if (fd && ::fstat(fd.get(), &st) == 0 && st.st_ino == e.ino && st.st_dev == e.dev) return true;
  }
  return false;
}
}  // namespace

void drop_unchanged(Incremental& inc, EntryList& mine, const std::vector<Root>& roots) {
  if (!inc.on) return;
  std::vector<bool> drop(mine.size(), false);
  std::vector<std::pair<uint64_t, size_t>> by_ino;
  for (size_t k = 0; k < mine.size(); ++k)
    if (mine[k].type != EntryType::Dir && mine[k].nlink <= 1 && mine[k].ino) by_ino.emplace_back(mine[k].ino, k);
  std::sort(by_ino.begin(), by_ino.end());
  // Every record is looked up by inode (below); most inodes are no entry's here. A bitmap of the
  // entries' inodes (16 bits an entry: about 6% false hits) answers those in one memory access.
  size_t bits = 1u << 16;
  while (bits < 16 * by_ino.size()) bits <<= 1;
  const int shift = 64 - std::countr_zero(bits);
  auto bit_of = [&](uint64_t ino) { return static_cast<size_t>((ino * 0x9E3779B97F4A7C15ull) >> shift); };
  std::vector<uint64_t> may_hold(bits / 64, 0);
  for (const auto& [ino, k] : by_ino) may_hold[bit_of(ino) / 64] |= uint64_t{1} << (bit_of(ino) % 64);
  std::vector<std::pair<size_t, CatalogRecord>> moved;  // entry, its record under another path
  std::vector<bool> has_moved(mine.size(), false);
  size_t i = 0;
  read_previous(inc, [&](const CatalogRecord& r, std::string_view encoded) {
    while (i < mine.size() && path_less(mine[i].path, r.path)) ++i;
    // (a version-1 record has no inode: never unchanged, and no encoded form to copy)
    if (i < mine.size() && mine[i].path == r.path && !encoded.empty() && unchanged(mine[i], r)) {
      drop[i] = true;
      inc.kept.add(encoded);
    }
    // Every record is looked up: what an entry gets depends only on it, PREV's catalog (the first
    // record of its inode under another path) and the disk (still_there), never on which other
    // entries share its rank (one inode at two paths: a bind mount, a source inside another).
    if (!(may_hold[bit_of(r.ino) / 64] >> (bit_of(r.ino) % 64) & 1)) return;  // no entry here has that inode
    auto it = std::lower_bound(by_ino.begin(), by_ino.end(), std::make_pair(r.ino, size_t{0}));
    for (; it != by_ino.end() && it->first == r.ino; ++it) {
      const size_t k = it->second;
      if (has_moved[k] || mine[k].path == r.path || !unchanged(mine[k], r)) continue;
      has_moved[k] = true;
      moved.emplace_back(k, r);
    }
  });
  std::vector<std::string> carried;  // the moved entries' records under their new paths, encoded
  for (auto& [k, r] : moved) {
    if (drop[k]) continue;  // unchanged at its own path as well: that record is kept
    if (still_there(r.path, mine[k], roots)) continue;  // not moved: a second path to it, stored
    drop[k] = true;
    if (r.member.empty()) r.member = r.path;  // where its archive holds the data
    r.path = mine[k].path;
    encode_catalog_record(r, carried.emplace_back());
  }
  if (!carried.empty()) {  // into their places among the kept records (both in path order)
    auto path_of = [](const std::string& e) { return encoded_record_path(e); };
    std::sort(carried.begin(), carried.end(), [&](const std::string& a, const std::string& b) { return path_less(path_of(a), path_of(b)); });
    EncodedRecords all;
    size_t c = 0;
    for (; !inc.kept.empty(); inc.kept.pop()) {
      const std::string_view k = inc.kept.front();
      for (; c < carried.size() && path_less(path_of(carried[c]), encoded_record_path(k)); ++c) all.add(carried[c]);
      all.add(k);
    }
    for (; c < carried.size(); ++c) all.add(carried[c]);
    inc.kept = std::move(all);
  }
  size_t w = 0;  // compacted in place: no second list at the peak
  for (size_t k = 0; k < mine.size(); ++k)
    if (!drop[k]) {
      if (w != k) mine[w] = std::move(mine[k]);
      ++w;
    }
  mine.resize(w);
}

std::vector<ArchiveSource> resolve_chain(const ArchiveSource& newest, const S3Flags& s3, const AgeKeys& keys) {
  std::vector<ArchiveSource> out;
  if (!newest.manifest || !newest.store) throw Fatal("internal: chain of " + quote(newest.name) + " without a manifest or store");
  const std::string dir = chain_dir(newest.manifest_path);
  const auto& chain = newest.manifest->chain;
  for (size_t k = 0; k < chain.size(); ++k) {
    const Fragment& link = chain[k];
    const std::string& name = link.name;
    const std::string what = "chain of " + quote(newest.name) + ": level " + std::to_string(k) + " " + quote(name);
    if (!manifest_file_name(name)) throw Fatal(what + ": not a manifest name");  // validate_manifest checked it already
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

namespace pbackup {
namespace {

// Rank 0 to all: the archives of a chain, oldest first, and per archive the paths to leave.
struct ChainPlan {
  std::string error;
  std::vector<ArchiveSource> levels;
  std::vector<std::vector<std::string>> leave;
  std::vector<std::vector<std::pair<std::string, std::string>>> rename;  // per archive: member -> path
};
template <class Ar>
void fields(Ar& a, ChainPlan& p) {
  a(p.error), a(p.levels), a(p.leave);
  for (auto* v : {&p.rename}) {  // pairs travel as two lists
    std::vector<std::vector<std::string>> from, to;
    if constexpr (Ar::kWriting)
      for (auto& level : *v) {
        from.emplace_back(), to.emplace_back();
        for (auto& [m, path] : level) from.back().push_back(m), to.back().push_back(path);
      }
    a(from), a(to);
    if constexpr (!Ar::kWriting) {
      if (from.size() != to.size()) throw Fatal("internal message: chain plan renames do not pair");
      v->assign(from.size(), {});
      for (size_t k = 0; k < from.size(); ++k) {
        if (from[k].size() != to[k].size()) throw Fatal("internal message: chain plan renames do not pair");
        for (size_t i = 0; i < from[k].size(); ++i) (*v)[k].emplace_back(std::move(from[k][i]), std::move(to[k][i]));
      }
    }
  }
}

ChainPlan plan_chain(ArchiveSource newest, const RestoreOptions& opt) {
  ChainPlan plan;
  const S3Flags s3{opt.s3_endpoint, opt.s3_region, opt.s3_addressing};
  // it came over the wire, without its store or (encrypted) the identities: resolved again here
  if (newest.cipher) newest = resolve_source(opt.source, opt.original_base_filename, s3, false, opt.keys);
  if (!newest.store) attach_store(newest, s3);
  plan.levels = resolve_chain(newest, s3, opt.keys);
  plan.levels.push_back(newest);
  const size_t n = plan.levels.size();
  for (const ArchiveSource& s : plan.levels)
    if (!can_restore_in_parallel(s)) throw Fatal("chain of " + quote(newest.name) + ": " + quote(s.name) + " cannot be restored by blocks");
  if (opt.existing != RestoreOptions::Existing::Overwrite)
    throw Fatal("restoring an incremental level into existing files (--keep-old-files & co.) is not supported yet");
  // the tree at level N: per archive, the paths it must restore (sorted for binary search)
  std::vector<std::vector<std::string>> wanted(n);  // member names
  plan.rename.resize(n);
  std::vector<bool> matched(opt.only.size(), false);
  if (!read_archive_catalog(newest, [&](const CatalogRecord& r) {
        if (r.level >= n) throw Fatal("catalog of " + quote(newest.name) + ": " + quote(escape_name(r.path)) + " names level " + std::to_string(r.level) + " of a chain of " + std::to_string(n));
        if (!path_selected(r.path, opt.only)) return;
        for (size_t k = 0; k < opt.only.size(); ++k)
          if (!matched[k] && path_selected(r.path, {opt.only[k]})) matched[k] = true;
        wanted[r.level].push_back(r.member.empty() ? r.path : r.member);
        if (!r.member.empty()) plan.rename[r.level].emplace_back(r.member, r.path);
      }))
    throw Fatal(quote(newest.name) + ": an incremental level without its catalog");
  for (size_t k = 0; k < opt.only.size(); ++k)
    if (!matched[k]) throw Fatal(quote(opt.only[k]) + ": not found in the tree at this level");
  for (auto& w : wanted) std::sort(w.begin(), w.end());
  for (auto& r : plan.rename) std::sort(r.begin(), r.end());
  plan.leave.resize(n);
  for (size_t k = 0; k < n; ++k) {
    read_archive_catalog(plan.levels[k], [&](const CatalogRecord& r) {
      if (r.level == plan.levels[k].manifest->chain.size() && !std::binary_search(wanted[k].begin(), wanted[k].end(), r.path))
        plan.leave[k].push_back(r.path);
    });
    std::sort(plan.leave[k].begin(), plan.leave[k].end());
  }
  return plan;
}

}  // namespace

int restore_chain(Comm& comm, const ArchiveSource& newest, const RestoreOptions& opt, Log& log) {
  std::string bytes;
  if (comm.rank() == 0) {
    ChainPlan plan;
    try {
      plan = plan_chain(newest, opt);
    } catch (const std::exception& e) {
      plan = ChainPlan{e.what(), {}, {}, {}};
    }
    bytes = to_wire(plan);
  }
  comm.broadcast(bytes, 0);
  ChainPlan plan = from_wire<ChainPlan>(bytes);
  bytes.clear();
  if (!plan.error.empty()) {
    if (comm.rank() == 0) log.error(plan.error);
    return comm.rank() == 0 ? kExitFatal : kExitOk;
  }
  int rc = kExitOk;
  RunSummary total;  // every level's restore counts, summed (--json): each entry is in one level
  total.entries = total.files = total.dirs = total.bytes_out = 0;
  for (size_t k = 0; k < plan.levels.size() && rc < kExitFatal; ++k) {
    ArchiveSource& s = plan.levels[k];
    RestoreOptions o = opt;
    o.only.clear();  // applied to the leave lists above
    o.leave = std::move(plan.leave[k]);
    o.rename = std::move(plan.rename[k]);
    int r = kExitOk;
    try {
      attach_store(s, {opt.s3_endpoint, opt.s3_region, opt.s3_addressing});
      log.debug("restoring level " + std::to_string(k) + " of the chain: " + s.name + " (" + std::to_string(o.leave.size()) + " paths left to other levels)");
      r = run_parallel_restore(comm, s, o, log);
    } catch (const Fatal& f) {
      log.error(f.what());
      r = interrupted() ? 128 + interrupt_signal() : kExitFatal;
    }
    std::string agreed = std::to_string(comm.max(static_cast<uint64_t>(r)));
    rc = std::max(rc, std::stoi(agreed));
    const RunSummary& one = run_summary();
    for (auto [sum, add] : {std::pair{&total.entries, one.entries}, {&total.files, one.files}, {&total.dirs, one.dirs}, {&total.bytes_out, one.bytes_out}})
      if (add != RunSummary::kUnknown) *sum += add;
    total.seconds += one.seconds;
  }
  RunSummary& sum = run_summary();
  sum.archive = opt.source;
  sum.entries = total.entries, sum.files = total.files, sum.dirs = total.dirs, sum.bytes_out = total.bytes_out;
  sum.seconds = total.seconds;
  return rc;
}

bool list_chain_from_catalog(const ArchiveSource& s) {
  if (!s.manifest || s.manifest->chain.empty()) return false;
  if (!read_archive_catalog(s, [](const CatalogRecord& r) {
        std::string line = escape_name(r.path) + (r.type == EntryType::Dir ? "/" : "") + "\n";
        std::fwrite(line.data(), 1, line.size(), stdout);
      }))
    throw Fatal(quote(s.name) + ": an incremental level without its catalog");
  return true;
}

}  // namespace pbackup
