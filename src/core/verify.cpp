// verify: is the archive exactly what the manifest says? The manifest's structure is checked
// when it is read (validate_manifest). Then: every fragment present with its size and SHA-256,
// the archive's real size; no extra fragments; every block's SHA-256 (with zip's rewritten
// placeholders put back to zeros) and, for tar, every block decompressing with its codec's own
// check (gzip CRC, bzip2 block CRCs, zstd checksum) to the recorded size, its tar headers
// walked and chained to the next block record (first_entry, continues), the end marker all
// zeros; for zip, every member inflating to its size and CRC-32. Work is shared over ranks and
// threads;
// rank 0 prints every problem and a one-line summary.
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <new>
#include <set>

#include "core/parallel_restore.h"
#include "format/tar_read.h"
#include "pbackup/codec.h"
#include "pbackup/error.h"
#include "pbackup/pipeline.h"
#include "pbackup/sha256.h"
#include "pbackup/source.h"
#include "util/file_util.h"
#include "util/units.h"
#include "core/progress.h"
#include "util/parallel.h"

namespace pbackup {
namespace {

struct Plan {
  std::string error;
  ArchiveSource source;
  std::vector<std::string> extra;  // problems found while resolving (extra fragments)
};

template <class Ar>
void fields(Ar& a, Plan& p) {  // `extra` stays on rank 0
  a(p.error), a(p.source);
}

Plan make_plan(const RestoreOptions& opt) {
  Plan p;
  try {
    ArchiveSource s = resolve_source(opt.source, opt.original_base_filename, {opt.s3_endpoint, opt.s3_region, opt.s3_addressing}, true, opt.keys);
    if (!s.manifest) throw Fatal("no manifest " + quote(s.name + ".manifest.json") + " beside " + quote(opt.source) +
                                 ": verify needs the manifest pbackup writes (restore and list work without)");
    p.source = s;
    uint64_t real = 0;
    for (uint64_t size : s.sizes) real += size;  // each below 2^63 (stat/HEAD sizes)
    const uint64_t stored = s.cipher ? s.manifest->encrypted_size : s.manifest->archive_size;
    if (real != stored)
      p.extra.push_back("archive " + quote(s.name) + " has " + std::to_string(real) + " bytes on disk, the manifest's " +
                        (s.cipher ? "encrypted_size" : "archive_size") + " is " + std::to_string(stored));
    // fragments on disk that the manifest does not list
    // (by the set's name on disk, which may differ from the manifest's if the set was renamed)
    std::set<std::string> listed;
    for (auto& f : s.files) listed.insert(f.substr(f.rfind('/') + 1));
    const bool parts = !s.files.empty() && s.files.front() != s.files.front().substr(0, s.files.front().rfind('/') + 1) + s.name;
    if (parts) {
      std::string dir = s.files.front().substr(0, s.files.front().rfind('/'));
      for (size_t k = s.manifest->fragments.size(); k < s.manifest->fragments.size() + 4; ++k) {
        for (int width = 4; width <= 6; ++width) {
          char b[32];
          std::snprintf(b, sizeof b, ".part%0*zu", width, k + 1);
          std::string name = s.name + b;
          ArchiveSource probe;
          probe.bucket = s.bucket;
          probe.store = s.store;
          probe.files = {dir + "/" + name};
          if (!listed.count(name) && file_exists(probe, 0))
            p.extra.push_back("extra fragment " + quote(display(probe, 0)) + " is not in the manifest");
        }
      }
    }
  } catch (const Fatal& f) {
    p.error = f.what();
  }
  return p;
}

constexpr size_t kNone = ~size_t{0};

// A tar structure record is the end-of-archive marker: two or more 512-byte blocks of zeros.
std::string end_marker_problem(std::string_view raw) {
  if (raw.size() < 1024 || raw.size() % 512 || raw.find_first_not_of('\0') != std::string_view::npos)
    return "is not a tar end-of-archive marker (1024 zero bytes or more)";
  return "";
}

// Walks the tar members of one decompressed block (the tar reader checks every header) and
// checks the block against its record and the next block record: a block that does not
// continue a file starts with first_entry's header; a block that ends inside a member's data
// is followed by a record that continues that member at that data offset, and a block that
// ends at a member boundary by one that does not continue anything.
std::string walk_problem(std::string_view buf, const ManifestBlock& b, const ManifestBlock* next) {
  size_t pos = 0;
  bool open = false;  // the block ends inside open_path's data, at data byte open_done of open_size
  std::string open_path;
  uint64_t open_done = 0, open_size = 0;
  if (b.continues) {  // cont_offset < cont_size (validate_manifest)
    uint64_t remaining = b.cont_size - b.cont_offset;
    if (remaining > buf.size()) {
      open = true;
      open_path = b.first_entry;
      open_size = b.cont_size;
      open_done = b.cont_offset + buf.size();
    } else if (tar_padded(remaining) > buf.size()) {
      return "the rest of " + quote(b.first_entry) + " and its padding run past the block end";
    } else {
      pos = static_cast<size_t>(tar_padded(remaining));
    }
  }
  bool first = !b.continues;
  TarMember tm;
  while (!open && pos < buf.size()) {
    const size_t at = pos;
    if (buf.size() - pos < 512) return "ends with a partial tar header at raw byte " + std::to_string(b.raw_offset + at);
    if (!read_tar_member(buf, pos, tm)) return "holds an end-of-archive marker at raw byte " + std::to_string(b.raw_offset + at);
    if (first && tm.path != b.first_entry)
      return "starts with member " + quote(tm.path) + ", but the manifest's first_entry is " + quote(b.first_entry);
    first = false;
    const uint64_t left = buf.size() - pos;
    if (tm.size > left) {
      open = true;
      open_path = tm.path;
      open_size = tm.size;
      open_done = left;
    } else if (tar_padded(tm.size) > left) {
      return "the padding of " + quote(tm.path) + " runs past the block end";
    } else {
      pos += static_cast<size_t>(tar_padded(tm.size));
    }
  }
  if (first) return "holds no tar member";
  if (open) {
    std::string ends = "ends inside " + quote(open_path) + " at data byte " + std::to_string(open_done) + " of " + std::to_string(open_size);
    if (!next) return ends + ", but it is the last block";
    if (!next->continues) return ends + ", but the next block record does not continue it";
    if (next->first_entry != open_path || next->cont_offset != open_done || next->cont_size != open_size)
      return ends + ", but the next block record continues " + quote(next->first_entry) + " at data byte " +
             std::to_string(next->cont_offset) + " of " + std::to_string(next->cont_size);
  } else if (next && next->continues) {
    return "ends at a member boundary, but the next block record continues " + quote(next->first_entry);
  }
  return "";
}

std::string where(const ArchiveSource& s, uint64_t offset) {
  return s.files.size() == 1 ? "" : " in fragment " + quote(file_at(s, offset));
}

// The checks, each rank on its share (task i is rank i mod size's), with its threads.
class Verifier {
 public:
  Verifier(Comm& comm, ArchiveSource& src, int threads, bool progress)
      : comm_(comm), src_(src), m_(*src.manifest), threads_(threads), nfrag_(m_.fragments.size()), progress_(progress) {
    if (m_.format == "tar") codec_ = make_codec(m_.codec, -1);
  }

  // Fragments: presence, size, SHA-256. Every rank learns which are bad; blocks inside them
  // are not checked again.
  std::vector<std::string> fragments() {
    std::vector<size_t> mine = share(nfrag_);
    uint64_t total = 0;
    for (const auto& f : m_.fragments) total += f.size;
    std::vector<std::string> problems;
    {
      PhaseProgress progress(comm_, "verify: fragments (SHA-256)", total, progress_);
      problems = progress.run([&] {
        return parallel_map(mine.size(), threads_, [&](size_t j) -> std::string {
          std::string p = fragment_problem(mine[j]);
          progress.done += m_.fragments[mine[j]].size;
          return p;
        });
      });
    }
    share_bad_fragments(mine, problems);
    // Blocks are located by the sizes the fragments should have (bad ones are skipped).
    for (size_t i = 0; i < nfrag_ && i < src_.sizes.size(); ++i) src_.sizes[i] = m_.fragments[i].size;
    return problems;
  }

  // Every block record: SHA-256; for tar, decompression and a walk of the tar headers,
  // chained to the next block record.
  std::vector<std::string> blocks() {
    std::vector<size_t> next_block(m_.blocks.size(), kNone);
    for (size_t i = m_.blocks.size(), next = kNone; i-- > 0;) {
      if (m_.blocks[i].kind == "patch") patches_.push_back(i);
      if (m_.blocks[i].kind != "block") continue;
      next_block[i] = next;
      next = i;
    }
    std::sort(patches_.begin(), patches_.end(), [&](size_t a, size_t b) { return m_.blocks[a].offset < m_.blocks[b].offset; });
    std::vector<size_t> mine = share(m_.blocks.size());
    uint64_t total = 0;
    for (const auto& b : m_.blocks) total += b.size;
    PhaseProgress progress(comm_, "verify: blocks", total, progress_);
    return progress.run([&] {
      return parallel_map(mine.size(), threads_, [&](size_t j) -> std::string {
        const size_t next = next_block[mine[j]];
        std::string p = block_problem(m_.blocks[mine[j]], next == kNone ? nullptr : &m_.blocks[next]);
        progress.done += m_.blocks[mine[j]].size;
        return p;
      });
    });
  }

  // zip, when everything above was sound: every member inflated and checked against its size
  // and CRC-32, as tar blocks are checked by their codec above.
  void zip_members(std::vector<std::string>& problems) {
    if (m_.format != "zip") return;
    bool sound = true;
    for (auto& p : problems) sound = sound && p.empty();
    if (!comm_.all_ok(sound)) return;
    try {
      for (auto& p : check_zip_members(src_, comm_.rank(), comm_.size(), threads_)) problems.push_back(std::move(p));
    } catch (const std::exception& e) {
      problems.push_back(e.what());
    }
  }

 private:
  std::vector<size_t> share(size_t n) const {
    std::vector<size_t> mine;
    for (size_t i = static_cast<size_t>(comm_.rank()); i < n; i += static_cast<size_t>(comm_.size())) mine.push_back(i);
    return mine;
  }

  std::string fragment_problem(size_t k) const {
    const Fragment& f = m_.fragments[k];
    const std::string path = display(src_, k);
    try {
      if (!file_exists(src_, k)) return "fragment " + quote(path) + " is missing";
      uint64_t size = src_.sizes[k];
      if (size != f.size)
        return "fragment " + quote(path) + " has " + std::to_string(size) + " bytes, expected " + std::to_string(f.size) +
               (size < f.size ? " (truncated)" : " (too long)");
      if (f.sha256.empty()) return "";
      Sha256 h;
      for (uint64_t off = 0; off < f.size;) {
        std::string chunk = read_file_range(src_, k, off, std::min<uint64_t>(8 << 20, f.size - off));
        h.update(chunk);
        off += chunk.size();
      }
      if (h.hex() != f.sha256) return "fragment " + quote(path) + " is corrupted (SHA-256 mismatch)";
      return "";
    } catch (const std::exception& e) {
      return "fragment " + quote(path) + ": " + e.what();
    }
  }

  void share_bad_fragments(const std::vector<size_t>& mine, const std::vector<std::string>& problems) {
    std::vector<uint64_t> bad;
    for (size_t j = 0; j < mine.size(); ++j)
      if (!problems[j].empty()) bad.push_back(mine[j]);
    std::string all_bad;
    auto all = comm_.gather(to_wire(bad), 0);
    if (comm_.rank() == 0) {
      std::vector<uint64_t> merged;
      for (auto& a : all)
        for (uint64_t k : from_wire<std::vector<uint64_t>>(a)) merged.push_back(k);
      all_bad = to_wire(merged);
    }
    comm_.broadcast(all_bad, 0);
    bad_frag_.assign(nfrag_, 0);
    for (uint64_t k : from_wire<std::vector<uint64_t>>(all_bad)) bad_frag_.at(k) = 1;
    // Fragment i holds archive bytes [frag_start[i], frag_start[i + 1]) (validate_manifest:
    // the sizes add up to archive_size without overflow, and every record lies inside it).
    frag_start_.assign(nfrag_ + 1, 0);
    for (size_t i = 0; i < nfrag_; ++i) frag_start_[i + 1] = frag_start_[i] + m_.fragments[i].size;
  }

  bool touches_bad(uint64_t off, uint64_t size) const {
    size_t i = static_cast<size_t>(std::upper_bound(frag_start_.begin(), frag_start_.end(), off) - frag_start_.begin()) - 1;
    for (; i < nfrag_ && frag_start_[i] < off + size; ++i)
      if (bad_frag_[i]) return true;
    return false;
  }

  // Zip's placeholders that rank 0 filled in later, put back to zeros.
  std::string unpatch(const ManifestBlock& b, std::string& bytes) const {
    auto it = std::lower_bound(patches_.begin(), patches_.end(), b.offset,
                               [&](size_t p, uint64_t off) { return m_.blocks[p].offset < off; });
    for (; it != patches_.end() && m_.blocks[*it].offset - b.offset < b.size; ++it) {
      const ManifestBlock& p = m_.blocks[*it];
      uint64_t at = p.offset - b.offset;
      if (p.size > b.size - at) return "a patch record runs past the block";  // validated already
      std::fill_n(bytes.begin() + static_cast<std::ptrdiff_t>(at), static_cast<std::ptrdiff_t>(p.size), '\0');
    }
    return "";
  }

  std::string block_problem(const ManifestBlock& b, const ManifestBlock* next) const {
    std::string label = b.kind + " at byte " + std::to_string(b.offset) + where(src_, b.offset) +
                        (b.first_entry.empty() ? "" : " (from " + quote(b.first_entry) + ")");
    if (touches_bad(b.offset, b.size)) return "";
    try {
      std::string bytes = read_range(src_, b.offset, b.size);
      if (b.kind == "block")
        if (std::string p = unpatch(b, bytes); !p.empty()) return label + ": " + p;
      if (sha256_hex(bytes) != b.sha256) return label + ": checksum mismatch (corrupted)";
      if (!codec_ || b.kind == "patch") return "";
      // our structure block is the tar end marker: 1024 zero bytes (src/format/tar.cpp)
      std::string raw = codec_->decompress(bytes, b.kind == "structure" ? 1024 : b.raw_size);
      bytes.clear();
      if (b.kind == "structure") return end_marker_problem(raw).empty() ? "" : label + ": " + end_marker_problem(raw);
      if (raw.size() != b.raw_size)
        return label + ": decompresses to " + std::to_string(raw.size()) + " bytes, expected " + std::to_string(b.raw_size);
      std::string walk = walk_problem(raw, b, next);
      return walk.empty() ? "" : label + ": " + walk;
    } catch (const Fatal& e) {
      return label + ": " + e.what();
    } catch (const std::bad_alloc&) {
      return label + ": out of memory";
    } catch (const std::exception& e) {
      return label + ": damaged (" + e.what() + ")";
    }
  }

  Comm& comm_;
  ArchiveSource& src_;
  const Manifest& m_;
  const int threads_;
  const size_t nfrag_;
  const bool progress_;  // --no-progress: false
  std::unique_ptr<Codec> codec_;
  std::vector<char> bad_frag_;
  std::vector<uint64_t> frag_start_;
  std::vector<size_t> patches_;  // sorted by offset, each inside one block (validate_manifest)
};

// Rank 0 resolves the archive; every rank learns the plan. False: rank 0 logged why.
bool share_plan(Comm& comm, const RestoreOptions& opt, Log& log, Plan& plan, std::vector<std::string>& early) {
  std::string plan_bytes;
  if (comm.rank() == 0) {
    Plan p = make_plan(opt);
    early = p.extra;
    plan_bytes = to_wire(p);
  }
  comm.broadcast(plan_bytes, 0);
  plan = from_wire<Plan>(plan_bytes);
  if (plan.error.empty()) attach_store(plan.source, {opt.s3_endpoint, opt.s3_region, opt.s3_addressing});
  if (!plan.error.empty()) {
    if (comm.rank() == 0) log.error(plan.error);
    return false;
  }
  return true;
}

// Rank 0 prints every problem and the one-line summary; every rank returns its verdict.
int report(Comm& comm, Log& log, const Manifest& m, const std::vector<std::string>& early, const std::vector<std::string>& problems,
           std::chrono::steady_clock::time_point t0) {
  std::vector<std::string> mine;
  for (auto& p : problems)
    if (!p.empty()) mine.push_back(p);
  auto all = comm.gather(to_wire(mine), 0);
  int rc = kExitOk;
  if (comm.rank() == 0) {
    size_t bad = early.size();
    for (auto& e : early) log.error(e);
    for (auto& msg : all)
      for (auto& p : from_wire<std::vector<std::string>>(msg)) {
        log.error(p);
        ++bad;
      }
    double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    // Files the backup could not read in full (zeros in the archive): the archive is intact,
    // but it does not hold them.
    for (const auto& d : m.damaged) {
      log.error(quote(d) + ": damaged at backup time (could not be read in full; the archive holds zeros for it)");
      ++bad;
    }
    if (bad) {
      std::fprintf(stderr, "pbackup: verify %s: FAILED: %zu problem(s) in %zu fragment(s), %zu block record(s)\n",
                   m.archive.c_str(), bad, m.fragments.size(), m.blocks.size());
      rc = kExitFatal;
    } else {
      std::fprintf(stderr, "pbackup: verify %s: OK: %zu fragment(s), %zu block record(s), %s checked in %.2f s\n",
                   m.archive.c_str(), m.fragments.size(), m.blocks.size(), human_bytes(m.archive_size).c_str(), secs);
    }
    RunSummary& sum = run_summary();
    sum.archive = m.archive;
    sum.entries = m.entries;
    sum.bytes_in = m.archive_size;
    sum.seconds = secs;
  }
  std::string verdict = std::to_string(rc);
  comm.broadcast(verdict, 0);
  return std::stoi(verdict);
}

}  // namespace

int run_verify(Comm& comm, const RestoreOptions& opt, Log& log) {
  const auto t0 = std::chrono::steady_clock::now();
  Plan plan;
  std::vector<std::string> early;  // rank 0: problems found while resolving
  if (!share_plan(comm, opt, log, plan, early)) return kExitFatal;
  Verifier v(comm, plan.source, opt.threads > 0 ? opt.threads : default_threads(comm.local_size()), opt.progress);
  std::vector<std::string> problems = v.fragments();
  std::vector<std::string> block_problems = v.blocks();
  problems.insert(problems.end(), block_problems.begin(), block_problems.end());
  v.zip_members(problems);
  return report(comm, log, *plan.source.manifest, early, problems, t0);
}

}  // namespace pbackup
