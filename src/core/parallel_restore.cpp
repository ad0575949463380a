// Parallel restore (DESIGN §6): the driver that shares units out over ranks and threads and
// finishes on rank 0, and its tar units. For our own tar archives the manifest's block index
// lets every rank and thread take blocks on its own: read the compressed bytes, check their
// SHA-256, decompress, walk the tar members in the block and write them; a block that starts
// inside a big file writes its part at the right file offset. With --only, only the blocks that
// can hold the selected paths are read at all. (Zip units: parallel_restore_zip.cpp.)
#include "core/parallel_restore.h"
#include "core/select.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <numeric>
#include <set>

#include "core/messages.h"
#include "format/sparse.h"
#include "format/tar_read.h"
#include "pbackup/codec.h"
#include "pbackup/error.h"
#include "pbackup/pipeline.h"
#include "pbackup/sha256.h"
#include "pbackup/source.h"
#include "core/progress.h"
#include "util/parallel.h"
#include "util/units.h"

namespace pbackup {
namespace {

// What the manifest says about one data block and about the block after it in the stream:
// whether that one continues a member this one leaves open.
struct TarUnit {
  const ManifestBlock* b = nullptr;
  const ManifestBlock* next = nullptr;  // the next data block in the stream (selected or not)
  int64_t file = -1;                    // the spanning file b continues (-1: none, or not restored)
  int64_t next_file = -1;               // the spanning file `next` continues
};

struct TarPlan {
  std::vector<TarUnit> units;  // the selected blocks, in stream order
  std::vector<SpanningFile> spanning;
  std::vector<size_t> span_first;            // per spanning file: its first continuation block in `data`
  std::vector<const ManifestBlock*> data;    // every data block, in stream order
  size_t total = 0;
};

// The data blocks in stream order; the big files spanning them (a run of blocks continuing the
// same member); and, with --only, just the blocks that can hold a selected path. Entries are in
// path_less order and a path's subtree follows it directly, so block k can only hold paths
// between its first entry and the next block's first entry.
// The path member `p` is restored under: itself, or its new name in a chain restore.
const std::string& renamed(const std::vector<std::pair<std::string, std::string>>& rename, const std::string& p) {
  auto it = std::lower_bound(rename.begin(), rename.end(), p, [](const auto& e, const std::string& k) { return e.first < k; });
  return it != rename.end() && it->first == p ? it->second : p;
}

TarPlan make_tar_plan(const Manifest& m, const std::vector<std::string>& only, const std::vector<std::string>& leave,
                      const std::vector<std::pair<std::string, std::string>>& rename) {
  std::vector<const ManifestBlock*> data;
  for (const auto& b : m.blocks)
    if (b.kind == "block") data.push_back(&b);
  std::stable_sort(data.begin(), data.end(), [](const ManifestBlock* x, const ManifestBlock* y) { return x->raw_offset < y->raw_offset; });
  TarPlan p;
  p.total = data.size();
  p.data = data;
  std::vector<int64_t> file_of(data.size(), -1);
  for (size_t k = 0; k < data.size(); ++k) {
    const ManifestBlock& b = *data[k];
    if (!b.continues) continue;
    const ManifestBlock* prev = k ? data[k - 1] : nullptr;
    if (prev && prev->continues && prev->first_entry == b.first_entry && prev->cont_size == b.cont_size &&
        prev->cont_offset <= b.cont_offset && b.cont_offset - prev->cont_offset == prev->raw_size) {
      file_of[k] = file_of[k - 1];
      continue;
    }
    std::string path = b.first_entry, why;
    if (!sanitize_member(path, why) || !path_selected(path, only) || std::binary_search(leave.begin(), leave.end(), path)) continue;
    file_of[k] = static_cast<int64_t>(p.spanning.size());
    p.spanning.push_back(SpanningFile{renamed(rename, path), b.cont_size, b.cont_sparse});
    p.span_first.push_back(k);
  }
  for (size_t k = 0; k < data.size(); ++k) {
    const std::string& first = data[k]->first_entry;
    const std::string* next = k + 1 < data.size() ? &data[k + 1]->first_entry : nullptr;
    bool selected = only.empty();
    for (const auto& sel : only) {
      if (has_glob(sel)) selected = true;  // a glob may match in any block
      std::string end = sel + "/\xff";
      bool starts_before_end = !path_less(end, first);
      bool ends_after_start = !next || !path_less(*next, sel);
      selected = selected || (starts_before_end && ends_after_start);
    }
    if (!selected) continue;
    TarUnit u{data[k], k + 1 < data.size() ? data[k + 1] : nullptr, file_of[k], k + 1 < data.size() ? file_of[k + 1] : -1};
    p.units.push_back(u);
  }
  return p;
}

// The walk of a block disagrees with what the manifest says about it.
struct Mismatch : Fatal {
  using Fatal::Fatal;
};

struct TarContext {
  const ArchiveSource& src;
  const Codec& codec;
  const TarPlan& plan;
  const std::vector<std::string>& only;
  const std::vector<std::string>& leave;  // existing files kept (--keep-old-files & co), sorted
  const std::vector<std::pair<std::string, std::string>>& rename;  // member -> path (chain restore)
  Log& log;
  bool numeric_owner = false;
};

// Whether the manifest says the block after `t` continues member `path` at data offset `at`
// of `size` bytes: what the walk of `t` leaves open at its end.
bool next_continues(const TarUnit& t, const std::string& path, uint64_t at, uint64_t size) {
  return t.next && t.next->continues && t.next->first_entry == path && t.next->cont_offset == at && t.next->cont_size == size;
}

// Writes stored bytes [at, at + data.size()) of spanning file `s` (inode `ino`): as they are,
// or for a sparse file only the bytes of its regions, at the offsets its map gives.
void write_stored(const SpanningFile& s, uint64_t ino, uint64_t at, std::string_view data, Extractor& x) {
  if (!s.sparse) return x.write_part(s.path, ino, at, data);
  std::vector<SparsePiece> pieces;
  try {
    pieces = sparse_pieces(s.layout, at, data.size());
  } catch (const Fatal& e) {
    throw Fatal(quote(s.path) + ": " + e.what());
  }
  std::vector<std::pair<uint64_t, std::string_view>> w;
  for (const auto& p : pieces) w.emplace_back(p.file_offset, data.substr(p.pos, p.len));
  x.write_parts(s.path, ino, w);
}

// Restores one member whose header the walk just read; `data` is its bytes in this block.
void restore_member(const TarContext& c, const TarUnit& t, const TarMember& m, std::string path, std::string_view data,
                    Extractor& x, const std::vector<uint64_t>& inodes, UnitResult& res) {
  RestoredEntry e{path, m.link, m.type, m.mode, m.uid, m.gid, m.mtime, m.mtime_nsec};
  owner_ids(m, c.numeric_owner, e.uid, e.gid);
  e.xattrs = m.xattrs;
  if (e.type == '1') {
    std::string lwhy;
    if (!sanitize_member(e.link, lwhy)) throw Fatal(quote(m.path) + ": hard link target " + quote(m.link) + ": " + lwhy);
  }
  if (e.type == '5') {
    x.make_dir(path);
  } else if (e.type == '0' || e.type == '7') {
    e.type = '0';
    if (data.size() < m.size) {  // the head of a spanning file: rank 0 created it
      if (t.next_file < 0) throw Fatal(quote(m.path) + ": spans blocks but was not created");
      const auto f = static_cast<uint64_t>(t.next_file);
      res.heads.push_back(f);
      if (!inodes[f]) return;  // its creation failed, and was reported
      const SpanningFile& s = c.plan.spanning[f];
      if (m.sparse != s.sparse || (m.sparse && m.realsize != s.layout.realsize))
        throw Fatal(quote(m.path) + (m.sparse ? ": a sparse member spans blocks, but the manifest does not say so"
                                              : ": the manifest says it is sparse, but it is not"));
      write_stored(s, inodes[f], 0, data, x);
      res.parts.emplace_back(f, data.size());
    } else {
      try {
        e.done = m.sparse ? x.create_sparse_file(path, m.realsize, data, &e) : x.create_file(path, m.size, data, &e);
      } catch (...) {  // no partial file may be left looking complete
        try {
          x.remove_file(path);
        } catch (...) {
        }
        throw;
      }
    }
    res.bytes += data.size();
  } else if (e.type != '1' && e.type != '2' && e.type != '6') {
    c.log.notice(quote(m.path) + ": member type '" + std::string(1, m.type) + "' not restored");
    return;
  }
  res.entries.push_back(std::move(e));
}

// Walks the tar members of one decompressed block, restoring the selected ones, and checks at
// every step that the block is what the manifest says: it starts with first_entry (or inside
// it, as `continues` says), headers and padding lie inside it, and a member running past its
// end is the one the next block continues, at the right offset. Throws Mismatch otherwise.
void walk_block(const TarContext& c, const TarUnit& t, std::string_view buf, Extractor& x,
                const std::vector<uint64_t>& inodes, UnitResult& res) {
  const ManifestBlock& b = *t.b;
  size_t pos = 0;
  bool open = false;  // a member's data goes on past the end of the block
  if (b.continues) {
    if (b.cont_offset > b.cont_size)
      throw Mismatch("continues " + quote(b.first_entry) + " at byte " + std::to_string(b.cont_offset) + " of " + std::to_string(b.cont_size));
    uint64_t remaining = b.cont_size - b.cont_offset;
    uint64_t n = std::min<uint64_t>(remaining, buf.size());
    if (t.file >= 0 && inodes[static_cast<size_t>(t.file)]) {
      write_stored(c.plan.spanning[static_cast<size_t>(t.file)], inodes[static_cast<size_t>(t.file)], b.cont_offset, buf.substr(0, n), x);
      res.parts.emplace_back(static_cast<uint64_t>(t.file), n);
      res.bytes += n;
    }
    open = n < remaining;
    if (open && !next_continues(t, b.first_entry, b.cont_offset + n, b.cont_size))
      throw Mismatch(quote(b.first_entry) + " goes on past the block's end, but the next block does not continue it");
    pos = open ? buf.size() : tar_padded(n);
    if (pos > buf.size()) throw Mismatch("the end of " + quote(b.first_entry) + " is cut by the block's end");
  }
  std::string prev;
  while (pos < buf.size()) {
    if (buf.size() - pos < 512) throw Mismatch("ends inside a tar header");
    const size_t at = pos;
    TarMember m;
    if (!read_tar_member(buf, pos, m)) throw Mismatch("holds an end-of-archive marker");
    if (at == 0 && !b.continues && m.path != b.first_entry) throw Mismatch("starts with " + quote(m.path) + ", not " + quote(b.first_entry));
    const uint64_t n = std::min<uint64_t>(m.size, buf.size() - pos);
    if (n < m.size) {
      if (!next_continues(t, m.path, n, m.size))
        throw Mismatch(quote(m.path) + " declares " + std::to_string(m.size) + " bytes; the block holds " + std::to_string(n) +
                       " and the next block does not continue it");
      open = true;
    }
    std::string path = m.path, why;
    bool ok = sanitize_member(path, why);
    if (ok) {
      if (!prev.empty() && !path_less(prev, path)) res.ordered = false;
      if (res.first_path.empty()) res.first_path = path;
      res.last_path = prev = path;
    }
    if (!ok) {
      if (!why.empty()) res.errors.push_back(quote(m.path) + ": " + why + "; not extracted");
    } else if (path_selected(path, c.only) && !std::binary_search(c.leave.begin(), c.leave.end(), path)) {
      try {
        restore_member(c, t, m, renamed(c.rename, path), buf.substr(pos, n), x, inodes, res);
      } catch (const std::exception& ex) {
        res.errors.push_back(ex.what());
      }
    }
    pos += open ? n : tar_padded(m.size);
    if (pos > buf.size()) throw Mismatch("the padding of " + quote(m.path) + " is cut by the block's end");
  }
  if (!open && t.next && t.next->continues)
    throw Mismatch("the next block continues " + quote(t.next->first_entry) + ", but no member is open at this block's end");
}

// What a damaged or mismatched block loses besides the spanning files (which the final count
// names): its members from `from` (or after it) up to the next block's first entry. Nothing
// when the block lies wholly inside one spanning file's data.
void add_lost(UnitResult& res, const TarUnit& t, const std::string& from, bool after, const std::string& where) {
  const ManifestBlock& b = *t.b;
  if (!after && b.continues && b.cont_offset <= b.cont_size && b.cont_size - b.cont_offset >= b.raw_size) return;
  if (!after && b.continues) after = true;  // the file it continues is counted on its own
  res.lost.push_back(std::string(after ? "the members after " : "the members from ") + quote(from) +
                     (t.next ? " up to (not including) " + quote(t.next->first_entry) : std::string(" to the end of the archive")) +
                     " (" + where + ")");
}

// A block's bytes, checked against its SHA-256, decompressed. Throws.
std::string read_block(const TarContext& c, const ManifestBlock& b) {
  std::string packed = read_range(c.src, b.offset, b.size);
  if (sha256_hex(packed) != b.sha256) throw Fatal("is corrupted (checksum mismatch)");
  return c.codec.decompress(packed, b.raw_size);
}

UnitResult restore_block(const TarContext& c, const TarUnit& t, Extractor& x, const std::vector<uint64_t>& inodes) {
  const ManifestBlock& b = *t.b;
  UnitResult res;
  std::string where = "block at byte " + std::to_string(b.offset) +
                      (c.src.files.size() > 1 ? " (fragment " + quote(file_at(c.src, b.offset)) + ")" : "");
  std::string raw;
  try {
    raw = read_block(c, b);
  } catch (const std::exception& e) {
    if (interrupted()) throw;
    res.errors.push_back("archive " + quote(c.src.name) + ": " + where + " " + e.what());
    add_lost(res, t, b.first_entry, false, where);
    return res;
  }
  try {
    if (raw.size() != b.raw_size) throw Mismatch("holds " + std::to_string(raw.size()) + " bytes, not " + std::to_string(b.raw_size));
    walk_block(c, t, raw, x, inodes, res);
  } catch (const std::exception& e) {
    if (interrupted()) throw;
    bool mismatch = dynamic_cast<const Mismatch*>(&e) != nullptr;
    res.errors.push_back((mismatch ? "manifest " + quote(c.src.manifest_path) + " does not match archive " + quote(c.src.name) + ": "
                                   : "archive " + quote(c.src.name) + ": ") +
                         where + (mismatch ? ": " : " is damaged: ") + e.what());
    bool any = !res.last_path.empty();
    add_lost(res, t, any ? res.last_path : b.first_entry, any, where);
  }
  return res;
}

}  // namespace

std::vector<size_t> my_units(const std::vector<uint64_t>& sizes, int rank, int ranks) {
  std::vector<size_t> order(sizes.size());
  std::iota(order.begin(), order.end(), size_t{0});
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return sizes[a] > sizes[b]; });
  std::vector<uint64_t> load(static_cast<size_t>(ranks), 0);
  std::vector<size_t> mine;
  for (size_t u : order) {
    size_t r = static_cast<size_t>(std::min_element(load.begin(), load.end()) - load.begin());
    load[r] += sizes[u] + 1;
    if (r == static_cast<size_t>(rank)) mine.push_back(u);
  }
  return mine;
}

namespace {

// Directories created only because members lay below them (zips often list none) get 0755
// and the current time, as unzip and tar give them; directories that existed before the
// restore are left alone.
void add_implied_dirs(std::vector<RestoredEntry>& entries, const std::vector<std::string>& implied) {
  std::set<std::string> have;
  for (const auto& e : entries) have.insert(e.path);
  const int64_t now = static_cast<int64_t>(std::time(nullptr));
  for (const auto& d : implied)
    if (have.insert(d).second) entries.push_back(RestoredEntry{d, "", '5', 0755, ::geteuid(), ::getegid(), now, 0});
}

}  // namespace

namespace {

// Rank 0 creates every spanning file (replacing whatever was at its name) before any unit is
// restored, so each has exactly one creator; every rank learns their inode numbers, and writes
// only into those inodes. A failure is logged on rank 0 and leaves inode 0.
std::vector<uint64_t> create_spanning(Comm& comm, const std::vector<SpanningFile>& files, Extractor& x, int threads, Log& log) {
  std::string bytes;
  if (comm.rank() == 0) {
    std::vector<std::string> errors(files.size());
    std::vector<uint64_t> inodes = parallel_map(files.size(), threads, [&](size_t i) -> uint64_t {
      try {
        const SpanningFile& s = files[i];
        Fd fd = x.create(s.path, s.sparse ? s.layout.realsize : s.size);  // sparse: all hole
        if (!s.error.empty()) throw Fatal(s.error);  // its name cleared as any restored file's; removed as lost
        struct stat st {};
        if (::fstat(fd.get(), &st) != 0) throw_sys("cannot stat", files[i].path, errno);
        return static_cast<uint64_t>(st.st_ino);
      } catch (const std::exception& e) {
        errors[i] = e.what();
        return 0;
      }
    });
    for (const auto& e : errors)
      if (!e.empty()) log.error(e);
    bytes = to_wire(inodes);
  }
  comm.broadcast(bytes, 0);
  std::vector<uint64_t> inodes = from_wire<std::vector<uint64_t>>(bytes);
  if (inodes.size() != files.size()) throw std::runtime_error("internal message: spanning file count differs");
  return inodes;
}

// Everything rank 0 learns from the units of all ranks.
struct Gathered {
  std::vector<RestoredEntry> entries;
  std::vector<std::string> implied, lost;
  std::vector<uint64_t> span_bytes, span_heads;
  std::vector<UnitOrder> order;
  uint64_t finished = 0;
  std::vector<bool> found;  // per --only selector: matched by a file finished on its rank
  size_t errors = 0;
  int signal = 0;
  bool fatal = false;
};

RankResults collect_results(const std::vector<size_t>& mine, std::vector<UnitResult>& results, const std::string& fatal,
                            const ParallelRestorePlan& plan, const RestoreOptions& opt, const Extractor& x, uint64_t& bytes) {
  RankResults out;
  out.fatal = fatal;
  out.signal = static_cast<uint32_t>(interrupt_signal());
  // Files that are complete with their metadata need nothing more from rank 0: only counted,
  // and for --only, which selectors they matched (rank 0 names a selector that matched
  // nothing). That keeps the gather and rank 0's sort small, with or without --only.
  std::vector<std::vector<std::string>> selectors;
  for (const auto& o : opt.only) selectors.push_back({o});
  std::vector<bool> matched(opt.only.size(), false);
  for (size_t i = 0; i < results.size(); ++i) {
    UnitResult& r = results[i];
    bytes += r.bytes;
    for (auto& e : r.entries) {
      if (e.done) {
        ++out.finished;
        for (size_t k = 0; k < selectors.size(); ++k)
          if (!matched[k] && path_selected(e.path, selectors[k])) matched[k] = true;
        continue;
      }
      out.entries.push_back(std::move(e));
    }
    for (auto& e : r.errors) out.errors.push_back(std::move(e));
    for (auto& l : r.lost) out.lost.push_back(std::move(l));
    for (auto [f, n] : r.parts) out.parts.push_back({f, n});
    for (uint64_t f : r.heads) out.heads.push_back(f);
    if (plan.check_order) out.order.push_back({mine[i], r.first_path, r.last_path, r.ordered});
  }
  for (const auto& d : x.implied_dirs()) out.implied.push_back(d);
  for (size_t k = 0; k < matched.size(); ++k)
    if (matched[k]) out.matched.push_back(k);
  return out;
}

Gathered gather_results(const std::vector<std::string>& all, const ParallelRestorePlan& plan, size_t selectors, Log& log) {
  Gathered g;
  g.found.assign(selectors, false);
  g.span_bytes.assign(plan.spanning.size(), 0);
  g.span_heads.assign(plan.spanning.size(), 0);
  for (const auto& msg : all) {
    RankResults r = from_wire<RankResults>(msg);
    const int sig = static_cast<int>(r.signal);
    g.signal = std::max(g.signal, sig);
    if (!r.fatal.empty() && !sig) {
      log.error(r.fatal);
      g.fatal = true;
    }
    for (auto& e : r.entries) g.entries.push_back(std::move(e));
    for (auto& e : r.errors) log.error(e);
    g.errors += r.errors.size();
    for (auto& l : r.lost) g.lost.push_back(std::move(l));
    for (auto& d : r.implied) g.implied.push_back(std::move(d));
    for (auto& p : r.parts) g.span_bytes.at(p.file) += p.bytes;
    for (uint64_t f : r.heads) ++g.span_heads.at(f);
    for (auto& o : r.order) g.order.push_back(std::move(o));
    g.finished += r.finished;
    for (uint64_t k : r.matched)
      if (k < g.found.size()) g.found[k] = true;
  }
  return g;
}

// Whether the member paths rose strictly through all units (no name twice).
bool in_order(std::vector<UnitOrder>& order) {
  std::sort(order.begin(), order.end(), [](const UnitOrder& a, const UnitOrder& b) { return a.unit < b.unit; });
  const std::string* last = nullptr;
  for (const auto& o : order) {
    if (!o.ordered) return false;
    if (o.first.empty()) continue;
    if (last && !path_less(*last, o.first)) return false;
    last = &o.last;
  }
  return true;
}

// A spanning file is kept only if its header was read once and it received exactly its size in
// bytes over all units; otherwise it is removed (and its entry dropped) and listed as lost.
void check_spanning(const ParallelRestorePlan& plan, Gathered& g, Extractor& x) {
  std::set<std::string> gone;
  for (size_t f = 0; f < plan.spanning.size(); ++f) {
    const SpanningFile& s = plan.spanning[f];
    if (g.span_heads[f] == 1 && g.span_bytes[f] == s.size) continue;
    std::string what = quote(s.path) + ": " + std::to_string(g.span_bytes[f]) + " of " + std::to_string(s.size) + " bytes restored" +
                       (g.span_heads[f] == 1 ? "" : g.span_heads[f] ? ", its header read more than once" : ", its header not read");
    try {
      x.remove_file(s.path);
      what += "; removed";
    } catch (const std::exception& e) {
      what += std::string("; ") + e.what();
    }
    g.lost.push_back(what);
    gone.insert(s.path);
  }
  if (gone.empty()) return;
  std::erase_if(g.entries, [&](const RestoredEntry& e) { return e.type == '0' && gone.count(e.path); });
}

}  // namespace

namespace {

// This rank's units, restored by its threads; what they found, for rank 0. A throw (an
// interrupt) stops them and travels as `fatal`.
std::string restore_my_units(Comm& comm, const ParallelRestorePlan& plan, const RestoreOptions& opt, Extractor& x,
                             const std::vector<uint64_t>& inodes, int threads, uint64_t& bytes, PhaseProgress& progress) {
  std::vector<size_t> mine = my_units(plan.sizes, comm.rank(), comm.size());
  std::string fatal;
  std::vector<UnitResult> results;
  try {
    results = progress.run([&] {
      return parallel_map(mine.size(), threads, [&](size_t i) {
        if (interrupted()) throw Fatal("interrupted");
        UnitResult r = plan.restore(mine[i], x, inodes);
        progress.done += plan.sizes[mine[i]];
        return r;
      });
    });
  } catch (const std::exception& e) {
    fatal = e.what();
    results.clear();
  }
  return to_wire(collect_results(mine, results, fatal, plan, opt, x, bytes));
}

// Rank 0, with every unit restored and nothing fatal: links and metadata (directories last),
// the spanning files checked, --only selectors that matched nothing named, the summary line.
int final_pass(Gathered& g, const ParallelRestorePlan& plan, const RestoreOptions& opt, Extractor& x, int threads, Log& log,
               uint64_t bytes, int ranks, std::chrono::steady_clock::time_point t0) {
  size_t errors = g.errors;
  check_spanning(plan, g, x);
  std::vector<RestoredEntry>& entries = g.entries;
  const size_t listed = entries.size() + g.finished;
  add_implied_dirs(entries, g.implied);
  std::sort(entries.begin(), entries.end(), [](const RestoredEntry& a, const RestoredEntry& b) { return path_less(a.path, b.path); });
  errors += x.finish(entries, log, threads);
  for (size_t k = 0; k < opt.only.size(); ++k) {
    const std::vector<std::string> sel{opt.only[k]};
    for (size_t i = 0; i < entries.size() && !g.found[k]; ++i) g.found[k] = path_selected(entries[i].path, sel);
    if (!g.found[k]) {
      log.error(quote(opt.only[k]) + ": not found in archive");
      ++errors;
    }
  }
  if (!g.lost.empty()) {
    log.error(std::to_string(g.lost.size()) + " part(s) of the archive were not restored:");
    for (const auto& l : g.lost) log.error("not restored: " + l);
  }
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::fprintf(stderr, "pbackup: restored %zu entries, %s in %.2f s (%s/s) from %zu of %zu %s on %d rank(s) into %s\n",
               listed, human_bytes(bytes).c_str(), secs, human_bytes(static_cast<uint64_t>(bytes / std::max(secs, 1e-9))).c_str(),
               plan.selected_units, plan.total_units, plan.unit_name.c_str(), ranks, quote(opt.restore_to).c_str());
  RunSummary& sum = run_summary();
  sum.archive = opt.source;
  sum.entries = listed;
  sum.files = g.finished;  // finished on their rank: files whose data was all in one block
  sum.dirs = 0;
  for (const auto& e : entries) {
    if (e.type == '0' || e.type == '1') ++sum.files;
    else if (e.type == '5') ++sum.dirs;
  }
  sum.bytes_out = bytes;
  sum.seconds = secs;
  return errors || !g.lost.empty() ? kExitFatal : kExitOk;
}

// Rank 0: the verdict from what every rank's units found.
int conclude(std::vector<std::string>& all, const ParallelRestorePlan& plan, const RestoreOptions& opt, Extractor& x, int threads,
             Log& log, uint64_t bytes, int ranks, std::chrono::steady_clock::time_point t0) {
  Gathered g = gather_results(all, plan, opt.only.size(), log);
  all.clear();
  int rc = kExitOk;
  if (g.signal) {
    log.error("interrupted by signal " + std::to_string(g.signal) + "; the restore is incomplete");
    rc = 128 + g.signal;
  } else if (g.fatal) {
    rc = kExitFatal;
  } else if (plan.check_order && !in_order(g.order)) {
    // Duplicate names (or members out of order): tar's rule is that the last member wins,
    // which units restored in any order cannot promise. Directories made along the way get
    // their usual mode, and the archive is streamed again from the start.
    log.notice("archive members are not in the manifest's path order (a name appears twice?); restoring it as a stream");
    std::vector<RestoredEntry> implied;
    add_implied_dirs(implied, g.implied);
    x.finish(implied, log, threads);
    rc = kExitRestream;
  } else {
    rc = final_pass(g, plan, opt, x, threads, log, bytes, ranks, t0);
  }
  if (rc == kExitOk && log.warnings()) rc = kExitWarnings;
  return rc;
}

}  // namespace

int run_parallel_units(Comm& comm, const ParallelRestorePlan& plan, const RestoreOptions& opt, Log& log) {
  const auto t0 = std::chrono::steady_clock::now();
  std::string setup_error;
  std::unique_ptr<Extractor> x;
  try {
    x = std::make_unique<Extractor>(opt.restore_to, &log);
  } catch (const std::exception& e) {
    setup_error = e.what();
  }
  if (!comm.all_ok(setup_error.empty())) {
    if (!setup_error.empty()) log.error(setup_error);
    return kExitFatal;
  }
  const int threads = opt.threads > 0 ? opt.threads : default_threads(comm.local_size());
  const std::vector<uint64_t> inodes = create_spanning(comm, plan.spanning, *x, threads, log);
  uint64_t bytes = 0, total = 0;
  for (uint64_t s : plan.sizes) total += s;
  std::vector<std::string> all;
  {
    PhaseProgress progress(comm, "restore (archive bytes read)", total, opt.progress);
    all = comm.gather(restore_my_units(comm, plan, opt, *x, inodes, threads, bytes, progress), 0);
  }
  bytes = comm.sum(bytes);
  int rc = kExitOk;
  if (comm.rank() == 0) rc = conclude(all, plan, opt, *x, threads, log, bytes, comm.size(), t0);
  std::string verdict = std::to_string(rc);
  comm.broadcast(verdict, 0);
  return std::stoi(verdict);
}

bool can_restore_in_parallel(const ArchiveSource& s) {
  return s.manifest && s.manifest->format == "tar" && !s.manifest->blocks.empty();
}

namespace {

// A sparse spanning file's map as rank 0 read it, or why it could not.
struct SparseWire {
  std::string map, error;  // map: encode_sparse_map
  uint64_t start = 0, realsize = 0;
};
template <class Ar>
void fields(Ar& a, SparseWire& w) {
  a(w.map), a(w.error), a(w.start), a(w.realsize);
}

// The map at the start of sparse spanning file f's data: in its head block (after the member's
// header, the last thing the block opens), and in the blocks continuing it while the map goes
// on, up to kMaxSparseMapBytes. Throws.
SparseWire read_sparse_map(const TarContext& c, const TarPlan& tp, size_t f) {
  const SpanningFile& s = tp.spanning[f];
  const size_t k = tp.span_first[f];
  if (k == 0) throw Fatal("no block holds its header");
  const ManifestBlock& hb = *tp.data[k - 1];
  const std::string& name = tp.data[k]->first_entry;
  auto read = [&](const ManifestBlock& b) {
    try {
      return read_block(c, b);
    } catch (const std::exception& e) {
      throw Fatal("block at byte " + std::to_string(b.offset) + " " + e.what());
    }
  };
  std::string buf = read(hb);
  if (buf.size() != hb.raw_size) throw Fatal("its head block holds " + std::to_string(buf.size()) + " bytes, not " + std::to_string(hb.raw_size));
  size_t pos = 0;
  if (hb.continues) {
    if (hb.cont_offset > hb.cont_size || tar_padded(hb.cont_size - hb.cont_offset) >= buf.size()) throw Fatal("its head block holds no header");
    pos = tar_padded(hb.cont_size - hb.cont_offset);
  }
  TarMember m;
  for (;;) {  // to the member running past the block's end
    if (buf.size() - pos < 512 || !read_tar_member(buf, pos, m)) throw Fatal("its head block does not leave it open");
    if (m.size > buf.size() - pos) break;
    pos += tar_padded(m.size);
    if (pos >= buf.size()) throw Fatal("its head block does not leave it open");
  }
  if (m.path != name || m.size != s.size) throw Fatal("its head block leaves " + quote(m.path) + " open, not it");
  if (!m.sparse) throw Fatal("the manifest says it is sparse, but its member is not");
  std::string head = buf.substr(pos);
  buf.clear();
  SparseWire w;
  SparseMap map;
  for (size_t j = k; !parse_sparse_map(head, s.size, m.realsize, map, w.start); ++j) {
    if (head.size() >= kMaxSparseMapBytes) throw Fatal("its sparse map is longer than " + std::to_string(kMaxSparseMapBytes) + " bytes");
    const ManifestBlock* b = j < tp.data.size() ? tp.data[j] : nullptr;
    if (!b || !b->continues || b->first_entry != name || b->cont_size != s.size || b->cont_offset != head.size())
      throw Fatal("its sparse map is cut short");
    std::string more = read(*b);
    head += more.substr(0, std::min<uint64_t>(more.size(), s.size - head.size()));
  }
  w.map = encode_sparse_map(map);
  w.realsize = m.realsize;
  return w;
}

// Every sparse spanning file's map, read by rank 0 before anything is created and shared with
// every rank, which checks it again as it makes its layout. A file whose map cannot be had
// gets an error and is lost.
void load_sparse_maps(Comm& comm, const TarContext& c, TarPlan& tp, int threads) {
  if (std::none_of(tp.spanning.begin(), tp.spanning.end(), [](const SpanningFile& s) { return s.sparse; })) return;
  std::string bytes;
  if (comm.rank() == 0) {
    std::vector<SparseWire> ws = parallel_map(tp.spanning.size(), threads, [&](size_t f) {
      SparseWire w;
      if (!tp.spanning[f].sparse) return w;
      try {
        w = read_sparse_map(c, tp, f);
      } catch (const std::exception& e) {
        w.error = "archive " + quote(c.src.name) + ": " + quote(tp.spanning[f].path) + ": sparse map not read: " + e.what();
      }
      return w;
    });
    bytes = to_wire(ws);
  }
  comm.broadcast(bytes, 0);
  auto ws = from_wire<std::vector<SparseWire>>(bytes);
  if (ws.size() != tp.spanning.size()) throw std::runtime_error("internal message: sparse map count differs");
  for (size_t f = 0; f < ws.size(); ++f) {
    SpanningFile& s = tp.spanning[f];
    if (!s.sparse) continue;
    s.error = ws[f].error;
    if (!s.error.empty()) continue;
    try {
      s.layout = make_sparse_layout(decode_sparse_map(ws[f].map), ws[f].start, ws[f].realsize, s.size);
    } catch (const std::exception& e) {
      s.error = quote(s.path) + ": " + e.what();
    }
  }
}

}  // namespace

int run_parallel_restore(Comm& comm, const ArchiveSource& src, const RestoreOptions& opt, Log& log) {
  const Manifest& m = *src.manifest;
  std::unique_ptr<Codec> codec = make_codec(m.codec, -1);
  TarPlan tp = make_tar_plan(m, opt.only, opt.leave, opt.rename);
  TarContext c{src, *codec, tp, opt.only, opt.leave, opt.rename, log, opt.numeric_owner};
  load_sparse_maps(comm, c, tp, opt.threads > 0 ? opt.threads : default_threads(comm.local_size()));
  ParallelRestorePlan plan;
  for (const auto& u : tp.units) plan.sizes.push_back(u.b->size);
  plan.selected_units = tp.units.size();
  plan.total_units = tp.total;
  plan.unit_name = "blocks";
  plan.spanning = tp.spanning;
  plan.check_order = true;
  plan.restore = [&](size_t u, Extractor& x, const std::vector<uint64_t>& inodes) { return restore_block(c, tp.units[u], x, inodes); };
  return run_parallel_units(comm, plan, opt, log);
}

}  // namespace pbackup
