// Parallel restore of our own tar archives (DESIGN §6): the manifest's block index lets every
// rank and thread take blocks on its own: read the compressed bytes, check their SHA-256,
// decompress, walk the tar members in the block and write them; a block that starts inside a
// big file writes its part at the right file offset. Links, fifos and metadata are applied by
// rank 0 once every writer is done (directories last). With --only, only the blocks that can
// hold the selected paths are read at all.
#include <chrono>
#include <cstdio>

#include "core/extract.h"
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

struct BlockResult {
  std::vector<RestoredEntry> entries;
  std::vector<std::string> errors;
  uint64_t bytes = 0;
};

BlockResult restore_block(const ArchiveSource& src, const ManifestBlock& b, const Codec& codec, Extractor& x,
                          const std::vector<std::string>& only, Log& log) {
  BlockResult res;
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

bool can_restore_in_parallel(const ArchiveSource& s) {
  return s.manifest && s.manifest->format == "tar" && !s.manifest->blocks.empty();
}

int run_parallel_restore(Comm& comm, const ArchiveSource& src, const RestoreOptions& opt, Log& log) {
  const auto t0 = std::chrono::steady_clock::now();
  const Manifest& m = *src.manifest;
  std::unique_ptr<Codec> codec = make_codec(m.codec, -1);
  std::vector<size_t> blocks = select_blocks(m, opt.only);

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

  // Blocks dealt round-robin to ranks, then to threads.
  std::vector<size_t> mine;
  for (size_t i = static_cast<size_t>(comm.rank()); i < blocks.size(); i += static_cast<size_t>(comm.size())) mine.push_back(blocks[i]);
  const int threads = opt.threads > 0 ? opt.threads : default_threads();
  std::string fatal;
  std::vector<BlockResult> results;
  try {
    results = parallel_map(mine.size(), threads, [&](size_t i) {
      if (interrupted()) throw Fatal("interrupted");
      return restore_block(src, m.blocks[mine[i]], *codec, *x, opt.only, log);
    });
  } catch (const std::exception& e) {
    fatal = e.what();
  }
  ByteWriter w;
  w.str(fatal);
  uint64_t bytes = 0;
  for (auto& r : results) {
    bytes += r.bytes;
    for (auto& e : r.entries) {
      w.u8(1);
      encode(w, e);
    }
    for (auto& e : r.errors) {
      w.u8(2);
      w.str(e);
    }
  }
  w.u8(0);
  auto all = comm.gather(w.take(), 0);
  bytes = comm.sum(bytes);
  int rc = kExitOk;
  if (comm.rank() == 0) {
    std::vector<RestoredEntry> entries;
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
        else {
          log.error(r.str());
          ++errors;
        }
      }
    }
    if (rc == kExitOk) {
      std::sort(entries.begin(), entries.end(), [](const RestoredEntry& a, const RestoredEntry& b) { return path_less(a.path, b.path); });
      errors += x->finish(entries, log, threads);
      for (const auto& o : opt.only) {
        bool found = false;
        for (const auto& e : entries) found = found || path_selected(e.path, {o});
        if (!found) {
          log.error(quote(o) + ": not found in archive");
          ++errors;
        }
      }
      if (errors) rc = kExitFatal;
      double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      std::fprintf(stderr, "pbackup: restored %zu entries, %.1f MB in %.2f s (%.1f MB/s) from %zu of %zu blocks on %d rank(s) into %s\n",
                   entries.size(), bytes / 1e6, secs, bytes / 1e6 / std::max(secs, 1e-9), blocks.size(),
                   static_cast<size_t>(std::count_if(m.blocks.begin(), m.blocks.end(), [](const ManifestBlock& b) { return b.kind == "block"; })),
                   comm.size(), quote(opt.restore_to).c_str());
    }
    if (rc == kExitOk && log.warnings()) rc = kExitWarnings;
  }
  std::string verdict = std::to_string(rc);
  comm.broadcast(verdict, 0);
  return std::stoi(verdict);
}

}  // namespace pbackup
