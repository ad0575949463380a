// Parallel restore (DESIGN §6): the driver that shares units out over ranks and threads and
// finishes on rank 0, and its tar units. For our own tar archives the manifest's block index
// lets every rank and thread take blocks on its own: read the compressed bytes, check their
// SHA-256, decompress, walk the tar members in the block and write them; a block that starts
// inside a big file writes its part at the right file offset. With --only, only the blocks that
// can hold the selected paths are read at all. (Zip units: parallel_restore_zip.cpp.)
#include "core/parallel_restore.h"

#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <ctime>
#include <numeric>
#include <set>

#include "core/parallel.h"
#include "format/tar_read.h"
#include "pbackup/codec.h"
#include "pbackup/error.h"
#include "pbackup/pipeline.h"
#include "pbackup/sha256.h"
#include "pbackup/source.h"

namespace pbackup {
namespace {

// Blocks (indexes into m.blocks, kind "block") that can hold a selected path. Entries are in
// path_less order and a path's subtree follows it directly, so block k can only hold paths
// between its first entry and the next block's first entry.
std::vector<size_t> select_blocks(const Manifest& m, const std::vector<std::string>& only) {
  std::vector<size_t> blocks;
  for (size_t i = 0; i < m.blocks.size(); ++i)
    if (m.blocks[i].kind == "block") blocks.push_back(i);
  if (only.empty()) return blocks;
  std::vector<size_t> out;
  for (size_t j = 0; j < blocks.size(); ++j) {
    const std::string& first = m.blocks[blocks[j]].first_entry;
    const std::string* next = j + 1 < blocks.size() ? &m.blocks[blocks[j + 1]].first_entry : nullptr;
    for (const auto& sel : only) {
      std::string end = sel + "/\xff";
      bool starts_before_end = !path_less(end, first);
      bool ends_after_start = !next || !path_less(*next, sel);
      if (starts_before_end && ends_after_start) {
        out.push_back(blocks[j]);
        break;
      }
    }
  }
  return out;
}

UnitResult restore_block(const ArchiveSource& src, const ManifestBlock& b, const Codec& codec, Extractor& x,
                          const std::vector<std::string>& only, Log& log) {
  UnitResult res;
  std::string where = "block at byte " + std::to_string(b.offset) +
                      (src.files.size() > 1 ? " (fragment " + quote(file_at(src, b.offset)) + ")" : "");
  std::string packed = read_range(src, b.offset, b.size);
  if (sha256_hex(packed) != b.sha256) throw Fatal("archive " + quote(src.name) + ": " + where + " is corrupted (checksum mismatch)");
  std::string raw = codec.decompress(packed);
  packed.clear();
  std::string_view buf(raw);
  size_t pos = 0;
  if (b.continues) {
    std::string path = b.first_entry, why;
    uint64_t remaining = b.cont_size - b.cont_offset;
    uint64_t n = std::min<uint64_t>(remaining, buf.size());
    if (sanitize_member(path, why) && path_selected(path, only)) {
      x.write_data(path, b.cont_offset, buf.substr(0, n));
      res.bytes += n;
    }
    pos = n == remaining ? tar_padded(n) : n;
  }
  TarMember m;
  while (pos + 512 <= buf.size() && read_tar_member(buf, pos, m)) {
    std::string path = m.path, why;
    bool ok = sanitize_member(path, why);
    uint64_t n = std::min<uint64_t>(m.size, buf.size() - pos);
    if (!ok) {
      if (!why.empty()) res.errors.push_back(quote(m.path) + ": " + why + "; not extracted");
    } else if (path_selected(path, only)) {
      RestoredEntry e{path, m.link, m.type, m.mode, m.uid, m.gid, m.mtime, m.mtime_nsec};
      try {
        if (e.type == '1') {
          std::string lwhy;
          if (!sanitize_member(e.link, lwhy)) throw Fatal(quote(m.path) + ": hard link target " + quote(m.link) + ": " + lwhy);
        }
        if (e.type == '5') x.make_dir(path);
        else if (e.type == '0' || e.type == '7') {
          e.type = '0';
          e.done = x.create_file(path, m.size, buf.substr(pos, n), n == m.size ? &e : nullptr);
          res.bytes += n;
        } else if (e.type != '1' && e.type != '2' && e.type != '6') {
          log.notice(quote(m.path) + ": member type '" + std::string(1, m.type) + "' not restored");
          e.path.clear();
        }
        if (!e.path.empty()) res.entries.push_back(std::move(e));
      } catch (const std::exception& ex) {
        res.errors.push_back(ex.what());
      }
    }
    pos += n == m.size ? tar_padded(m.size) : n;
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

int run_parallel_units(Comm& comm, const ParallelRestorePlan& plan, const RestoreOptions& opt, Log& log) {
  const auto t0 = std::chrono::steady_clock::now();
  std::string setup_error;
  std::unique_ptr<Extractor> x;
  try {
    x = std::make_unique<Extractor>(opt.restore_to);
  } catch (const std::exception& e) {
    setup_error = e.what();
  }
  if (!comm.all_ok(setup_error.empty())) {
    if (!setup_error.empty()) log.error(setup_error);
    return kExitFatal;
  }

  std::vector<size_t> mine = my_units(plan.sizes, comm.rank(), comm.size());
  const int threads = opt.threads > 0 ? opt.threads : default_threads();
  std::string fatal;
  std::vector<UnitResult> results;
  try {
    results = parallel_map(mine.size(), threads, [&](size_t i) {
      if (interrupted()) throw Fatal("interrupted");
      return plan.restore(mine[i], *x);
    });
  } catch (const std::exception& e) {
    fatal = e.what();
  }
  ByteWriter w;
  w.str(fatal);
  uint64_t bytes = 0;
  // Files that are complete with their metadata need nothing more from rank 0: only counted,
  // and for --only, which selectors they matched (rank 0 names a selector that matched
  // nothing). That keeps the gather and rank 0's sort small, with or without --only.
  uint64_t finished = 0;
  std::vector<std::vector<std::string>> selectors;
  for (const auto& o : opt.only) selectors.push_back({o});
  std::vector<bool> matched(opt.only.size(), false);
  for (auto& r : results) {
    bytes += r.bytes;
    for (auto& e : r.entries) {
      if (e.done) {
        ++finished;
        for (size_t k = 0; k < selectors.size(); ++k)
          if (!matched[k] && path_selected(e.path, selectors[k])) matched[k] = true;
        continue;
      }
      w.u8(1);
      encode(w, e);
    }
    for (auto& e : r.errors) {
      w.u8(2);
      w.str(e);
    }
  }
  for (const auto& d : x->implied_dirs()) {
    w.u8(3);
    w.str(d);
  }
  w.u8(4);
  w.u64(finished);
  for (size_t k = 0; k < matched.size(); ++k)
    if (matched[k]) {
      w.u8(5);
      w.u64(k);
    }
  w.u8(0);
  auto all = comm.gather(w.take(), 0);
  bytes = comm.sum(bytes);
  int rc = kExitOk;
  if (comm.rank() == 0) {
    std::vector<RestoredEntry> entries;
    std::vector<std::string> implied;
    uint64_t finished_everywhere = 0;
    std::vector<bool> found(opt.only.size(), false);
    size_t errors = 0;
    for (auto& msg : all) {
      ByteReader r(msg);
      std::string f = r.str();
      if (!f.empty()) {
        log.error(f);
        rc = kExitFatal;
      }
      for (uint8_t tag; (tag = r.u8()) != 0;) {
        if (tag == 1) entries.push_back(decode_restored(r));
        else if (tag == 3) implied.push_back(r.str());
        else if (tag == 4) finished_everywhere += r.u64();
        else if (tag == 5) {
          uint64_t k = r.u64();
          if (k < found.size()) found[k] = true;
        }
        else {
          log.error(r.str());
          ++errors;
        }
      }
    }
    if (rc == kExitOk) {
      const size_t listed = entries.size() + finished_everywhere;
      add_implied_dirs(entries, implied);
      std::sort(entries.begin(), entries.end(), [](const RestoredEntry& a, const RestoredEntry& b) { return path_less(a.path, b.path); });
      errors += x->finish(entries, log, threads);
      for (size_t k = 0; k < opt.only.size(); ++k) {
        const std::vector<std::string> sel{opt.only[k]};
        for (size_t i = 0; i < entries.size() && !found[k]; ++i) found[k] = path_selected(entries[i].path, sel);
        if (!found[k]) {
          log.error(quote(opt.only[k]) + ": not found in archive");
          ++errors;
        }
      }
      if (errors) rc = kExitFatal;
      double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      std::fprintf(stderr, "pbackup: restored %zu entries, %.1f MB in %.2f s (%.1f MB/s) from %zu of %zu %s on %d rank(s) into %s\n",
                   listed, bytes / 1e6, secs, bytes / 1e6 / std::max(secs, 1e-9), plan.selected_units, plan.total_units,
                   plan.unit_name.c_str(), comm.size(), quote(opt.restore_to).c_str());
    }
    if (rc == kExitOk && log.warnings()) rc = kExitWarnings;
  }
  std::string verdict = std::to_string(rc);
  comm.broadcast(verdict, 0);
  return std::stoi(verdict);
}

bool can_restore_in_parallel(const ArchiveSource& s) {
  return s.manifest && s.manifest->format == "tar" && !s.manifest->blocks.empty();
}

int run_parallel_restore(Comm& comm, const ArchiveSource& src, const RestoreOptions& opt, Log& log) {
  const Manifest& m = *src.manifest;
  std::unique_ptr<Codec> codec = make_codec(m.codec, -1);
  std::vector<size_t> blocks = select_blocks(m, opt.only);
  ParallelRestorePlan plan;
  for (size_t b : blocks) plan.sizes.push_back(m.blocks[b].size);
  plan.selected_units = blocks.size();
  plan.total_units = static_cast<size_t>(
      std::count_if(m.blocks.begin(), m.blocks.end(), [](const ManifestBlock& b) { return b.kind == "block"; }));
  plan.unit_name = "blocks";
  plan.restore = [&](size_t u, Extractor& x) { return restore_block(src, m.blocks[blocks[u]], *codec, x, opt.only, log); };
  return run_parallel_units(comm, plan, opt, log);
}

}  // namespace pbackup
