// verify: is the archive exactly what the manifest says? Every fragment present with its size
// and SHA-256; no extra fragments; every block's SHA-256 (with zip's rewritten placeholders put
// back to zeros) and, for tar, every block decompressing with its codec's own check (gzip CRC,
// bzip2 block CRCs, zstd checksum) to the recorded size; for zip, every member inflating to its
// size and CRC-32. Work is shared over ranks and threads;
// rank 0 prints every problem and a one-line summary.
#include <fcntl.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <set>

#include "core/parallel.h"
#include "core/parallel_restore.h"
#include "dest/file_util.h"
#include "pbackup/codec.h"
#include "pbackup/error.h"
#include "pbackup/pipeline.h"
#include "pbackup/sha256.h"
#include "pbackup/source.h"

namespace pbackup {
namespace {

struct Plan {
  std::string error;
  ArchiveSource source;
  std::vector<std::string> extra;  // problems found while resolving (extra fragments)
};

std::string encode(const Plan& p) {
  ByteWriter w;
  w.str(p.error);
  w.str(p.error.empty() ? encode_source(p.source) : "");
  return w.take();
}

Plan decode_plan(const std::string& b) {
  ByteReader r(b);
  Plan p;
  p.error = r.str();
  std::string src = r.str();
  if (p.error.empty()) p.source = decode_source(src);
  return p;
}

Plan make_plan(const RestoreOptions& opt) {
  Plan p;
  try {
    ArchiveSource s = resolve_source(opt.source, opt.original_base_filename, true);
    if (!s.manifest) throw Fatal("no manifest " + quote(s.name + ".manifest.json") + " beside " + quote(opt.source) +
                                 ": verify needs the manifest pbackup writes (restore and list work without)");
    p.source = s;
    // fragments on disk that the manifest does not list
    std::set<std::string> listed;
    for (auto& f : s.manifest->fragments) listed.insert(f.name);
    if (s.manifest->fragments.size() > 1) {
      std::string dir = s.files.front().substr(0, s.files.front().rfind('/'));
      for (size_t k = s.manifest->fragments.size(); k < s.manifest->fragments.size() + 4; ++k) {
        for (int width = 4; width <= 6; ++width) {
          char b[32];
          std::snprintf(b, sizeof b, ".part%0*zu", width, k + 1);
          std::string name = s.manifest->archive + b;
          ArchiveSource probe;
          probe.bucket = s.bucket;
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

std::string where(const ArchiveSource& s, uint64_t offset) {
  return s.files.size() == 1 ? "" : " in fragment " + quote(file_at(s, offset));
}

}  // namespace

int run_verify(Comm& comm, const RestoreOptions& opt, Log& log) {
  const auto t0 = std::chrono::steady_clock::now();
  std::string plan_bytes;
  std::vector<std::string> early;
  if (comm.rank() == 0) {
    Plan p = make_plan(opt);
    early = p.extra;
    plan_bytes = encode(p);
  }
  comm.broadcast(plan_bytes, 0);
  Plan plan = decode_plan(plan_bytes);
  if (!plan.error.empty()) {
    if (comm.rank() == 0) log.error(plan.error);
    return kExitFatal;
  }
  ArchiveSource& src = plan.source;
  const Manifest& m = *src.manifest;
  std::unique_ptr<Codec> codec;
  if (m.format == "tar") codec = make_codec(m.codec, -1);

  const int threads = opt.threads > 0 ? opt.threads : default_threads();
  auto share = [&](size_t n) {  // task i is rank (i mod size)'s
    std::vector<size_t> mine;
    for (size_t i = static_cast<size_t>(comm.rank()); i < n; i += static_cast<size_t>(comm.size())) mine.push_back(i);
    return mine;
  };

  // Phase 1: fragments (presence, size, SHA-256).
  const size_t nfrag = m.fragments.size();
  std::vector<size_t> mine = share(nfrag);
  std::vector<std::string> problems = parallel_map(mine.size(), threads, [&](size_t j) -> std::string {
    const Fragment& f = m.fragments[mine[j]];
    const std::string path = display(src, mine[j]);
    try {
      if (!file_exists(src, mine[j])) return "fragment " + quote(path) + " is missing";
      uint64_t size = src.sizes[mine[j]];
      if (size != f.size)
        return "fragment " + quote(path) + " has " + std::to_string(size) + " bytes, expected " + std::to_string(f.size) +
               (size < f.size ? " (truncated)" : " (too long)");
      if (f.sha256.empty()) return "";
      Sha256 h;
      for (uint64_t off = 0; off < f.size;) {
        std::string chunk = read_file_range(src, mine[j], off, std::min<uint64_t>(8 << 20, f.size - off));
        h.update(chunk);
        off += chunk.size();
      }
      if (h.hex() != f.sha256) return "fragment " + quote(path) + " is corrupted (SHA-256 mismatch)";
      return "";
    } catch (const std::exception& e) {
      return "fragment " + quote(path) + ": " + e.what();
    }
  });
  // Every rank learns which fragments are bad; blocks inside them are not checked again.
  std::vector<char> bad_frag(nfrag, 0);
  {
    ByteWriter w;
    for (size_t j = 0; j < mine.size(); ++j)
      if (!problems[j].empty()) w.u64(mine[j]);
    auto all = comm.gather(w.take(), 0);
    std::string flat;
    for (auto& a : all) flat += a;
    comm.broadcast(flat, 0);
    ByteReader r(flat);
    while (!r.done()) bad_frag.at(r.u64()) = 1;
  }
  auto touches_bad = [&](uint64_t off, uint64_t size) {
    uint64_t base = 0;
    for (size_t i = 0; i < nfrag; ++i) {
      uint64_t end = base + m.fragments[i].size;
      if (bad_frag[i] && off < end && off + size > base) return true;
      base = end;
    }
    return false;
  };

  // Blocks are located by the sizes the fragments should have (bad ones are skipped).
  for (size_t i = 0; i < nfrag && i < src.sizes.size(); ++i) src.sizes[i] = m.fragments[i].size;

  // Phase 2: every block record (SHA-256, and decompression for tar blocks).
  std::vector<size_t> mine_blocks = share(m.blocks.size());
  std::vector<std::string> block_problems = parallel_map(mine_blocks.size(), threads, [&](size_t j) -> std::string {
    const ManifestBlock& b = m.blocks[mine_blocks[j]];
    std::string label = b.kind + " at byte " + std::to_string(b.offset) + where(src, b.offset) +
                        (b.first_entry.empty() ? "" : " (from " + quote(b.first_entry) + ")");
    if (touches_bad(b.offset, b.size)) return "";
    try {
      std::string bytes = read_range(src, b.offset, b.size);
      if (b.kind == "block") {
        for (const auto& p : m.blocks)  // placeholders rank 0 filled in later
          if (p.kind == "patch" && p.offset >= b.offset && p.offset + p.size <= b.offset + b.size)
            std::fill_n(bytes.begin() + static_cast<long>(p.offset - b.offset), p.size, '\0');
      }
      if (sha256_hex(bytes) != b.sha256) return label + ": checksum mismatch (corrupted)";
      if (b.kind == "block" && codec) {
        std::string raw = codec->decompress(bytes);
        if (raw.size() != b.raw_size)
          return label + ": decompresses to " + std::to_string(raw.size()) + " bytes, expected " + std::to_string(b.raw_size);
      }
      return "";
    } catch (const std::exception& e) {
      return label + ": " + e.what();
    }
  });
  problems.insert(problems.end(), block_problems.begin(), block_problems.end());

  // Phase 3 (zip, when everything above was sound): every member inflated and checked against
  // its size and CRC-32, as tar blocks are checked by their codec above.
  if (m.format == "zip") {
    bool sound = true;
    for (auto& p : problems) sound = sound && p.empty();
    if (comm.all_ok(sound)) {
      try {
        for (auto& p : check_zip_members(src, comm.rank(), comm.size(), threads)) problems.push_back(std::move(p));
      } catch (const std::exception& e) {
        problems.push_back(e.what());
      }
    }
  }
  ByteWriter w;
  for (auto& p : problems)
    if (!p.empty()) w.str(p);
  auto all = comm.gather(w.take(), 0);
  int rc = kExitOk;
  if (comm.rank() == 0) {
    size_t bad = early.size();
    for (auto& e : early) log.error(e);
    for (auto& msg : all) {
      ByteReader r(msg);
      while (!r.done()) {
        log.error(r.str());
        ++bad;
      }
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
                   m.archive.c_str(), bad, nfrag, m.blocks.size());
      rc = kExitFatal;
    } else {
      std::fprintf(stderr, "pbackup: verify %s: OK: %zu fragment(s), %zu block record(s), %.1f MB checked in %.2f s\n",
                   m.archive.c_str(), nfrag, m.blocks.size(), m.archive_size / 1e6, secs);
    }
  }
  std::string verdict = std::to_string(rc);
  comm.broadcast(verdict, 0);
  return std::stoi(verdict);
}

}  // namespace pbackup
