// Parallel restore of zip archives, ours or anyone's (no manifest needed): the central directory
// says where every member starts, so members are restored independently. Runs of small members
// are read with one range read and inflated in memory (libdeflate); big members are inflated as
// a stream (zlib) and written piece by piece. Every member's CRC-32 and size are checked, and a
// member that fails is removed and named. Zips this path does not handle (encryption, methods
// other than stored and deflate, duplicate names, data before the first member, multi-disk)
// are streamed through libarchive instead (restore.cpp). `verify` uses the same reading to check
// every member's CRC-32.
#include <libdeflate.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <memory>
#include <mutex>
#include <set>

#include "core/parallel_restore.h"
#include "format/zip_read.h"
#include "pbackup/error.h"
#include "pbackup/pipeline.h"
#include "pbackup/source.h"
#include "util/parallel.h"

namespace pbackup {
namespace {

constexpr uint64_t kRunSpan = 4 << 20;    // small members are read together up to this many bytes
constexpr uint64_t kInMemory = 16 << 20;  // members up to this size (packed and unpacked) inflate in memory
constexpr uint64_t kPiece = 4 << 20;      // big members: packed bytes read per step

uint64_t archive_size(const ArchiveSource& s) { return source_size(s); }

// The archive's central directory. Rank 0 reads it once to choose the restore path and again
// to restore, so the last one read is kept (per process; keyed by the archive's files and
// sizes): restoring one member of a 1.27 GB zip read 10.3 MB, twice its 5 MB directory.
std::optional<ZipDirectory> load_directory(const ArchiveSource& s) {
  static std::mutex mu;
  static std::string cached_key;
  static std::optional<ZipDirectory> cached;
  std::string key = s.bucket;
  for (size_t i = 0; i < s.files.size(); ++i) key += "\n" + s.files[i] + "\t" + std::to_string(s.sizes[i]);
  std::lock_guard<std::mutex> l(mu);
  if (key != cached_key) {
    cached = read_zip_directory(archive_size(s), [&](uint64_t off, uint64_t n) { return read_range(s, off, n); });
    cached_key = key;
  }
  return cached;
}

constexpr uint64_t kMaxLink = 64 << 10;  // longer symlink targets are left to libarchive

// Why these members are left to the streaming restore ("" when they are not): anything where
// restoring members independently could make two of them race for one path.
std::string obstacle(const std::vector<ZipMember>& members) {
  std::set<std::string> names, files;
  for (const auto& m : members) {
    if (m.flags & 0x0001) return "encrypted member " + quote(m.name);
    if (m.method != 0 && m.method != 8) return "member " + quote(m.name) + " uses method " + std::to_string(m.method);
    if (m.is_symlink() && (m.csize > kMaxLink || m.usize > kMaxLink)) return "symlink member " + quote(m.name) + " is too long";
    std::string path = m.name, why;
    if (!sanitize_member(path, why)) continue;
    if (!names.insert(path).second) return "more than one member is named " + quote(path);
    if (!m.is_dir()) files.insert(path);
  }
  for (const auto& path : names)  // a file (or link) that another member needs as a directory
    for (size_t slash = path.find('/'); slash != std::string::npos; slash = path.find('/', slash + 1))
      if (files.count(path.substr(0, slash))) return "member " + quote(path.substr(0, slash)) + " is both a file and a directory";
  return "";
}

struct Run {
  size_t first = 0, last = 0;  // members (in offset order) [first, last]
  bool stream = false;         // one big member, inflated piece by piece
};

struct ZipPlan {
  std::vector<ZipMember> members;  // in offset order
  std::vector<uint64_t> span_end;  // where the next member (or the directory) starts
  std::vector<Run> runs;
  size_t selected = 0;  // members in runs
};

bool big(const ZipMember& m) { return m.csize > kInMemory || m.usize > kInMemory; }

// Where member i's bytes surely end: the next member's start, but no further than its largest
// possible local header, data and data descriptor (a gap of other bytes is not read).
uint64_t member_end(const ZipPlan& p, size_t i) {
  const ZipMember& m = p.members[i];
  return std::min(p.span_end[i], m.header_offset + kZipLocalFixed + 2 * 65535 + m.csize + 24);
}

ZipPlan make_plan(ZipDirectory dir, const std::vector<std::string>& only) {
  ZipPlan p;
  p.members = std::move(dir.members);
  std::stable_sort(p.members.begin(), p.members.end(),
                   [](const ZipMember& a, const ZipMember& b) { return a.header_offset < b.header_offset; });
  for (size_t i = 0; i < p.members.size(); ++i)
    p.span_end.push_back(i + 1 < p.members.size() ? p.members[i + 1].header_offset : dir.offset);
  bool open = false;  // whether the last run may take the next member
  for (size_t i = 0; i < p.members.size(); ++i) {
    const ZipMember& m = p.members[i];
    std::string path = m.name, why;
    bool safe = sanitize_member(path, why);
    // With --only, unselected members are not read at all (and members with unsafe names are
    // reported only by a full restore, as in the tar path).
    if (!only.empty() && (!safe || !path_selected(path, only))) {
      open = false;
      continue;
    }
    ++p.selected;
    if (big(m) && !m.is_symlink()) {
      p.runs.push_back(Run{i, i, true});
      open = false;
    } else if (open && member_end(p, i) - p.members[p.runs.back().first].header_offset <= kRunSpan) {
      p.runs.back().last = i;
    } else {
      p.runs.push_back(Run{i, i, false});
      open = true;
    }
  }
  return p;
}

// Bytes [off, off+n) of the archive: from `buf` (which holds the archive from `buf_at`) when
// they are there, else read.
std::string_view bytes_at(const ArchiveSource& s, const std::string& buf, uint64_t buf_at, uint64_t off, uint64_t n,
                          std::string& spare) {
  if (off >= buf_at && off - buf_at <= buf.size() && n <= buf.size() - (off - buf_at))
    return std::string_view(buf).substr(off - buf_at, n);
  spare = read_range(s, off, n);
  return spare;
}

struct Deflater {  // one libdeflate decompressor per thread
  libdeflate_decompressor* d = libdeflate_alloc_decompressor();
  Deflater() = default;
  Deflater(const Deflater&) = delete;
  Deflater& operator=(const Deflater&) = delete;
  ~Deflater() { libdeflate_free_decompressor(d); }
};

// The member's whole content, checked against its size and CRC-32.
std::string inflate_whole(const ZipMember& m, std::string_view packed) {
  std::string out;
  if (m.usize > kInMemory) throw Fatal("too big to hold in memory");
  if (m.method == 0) {
    if (packed.size() != m.usize) throw Fatal("stored size differs from its size");
    out.assign(packed);
  } else {
    thread_local Deflater t;
    if (!t.d) throw Fatal("libdeflate: out of memory");
    out.resize(m.usize);
    size_t got = 0;
    auto rc = libdeflate_deflate_decompress(t.d, packed.data(), packed.size(), out.data(), out.size(), &got);
    if (rc != LIBDEFLATE_SUCCESS || got != m.usize) throw Fatal("deflate data is damaged");
  }
  if (libdeflate_crc32(0, out.data(), out.size()) != m.crc) throw Fatal("CRC-32 mismatch");
  return out;
}

struct Inflate {  // zlib raw inflate, for members too big for memory
  z_stream z{};
  bool ok = inflateInit2(&z, -MAX_WBITS) == Z_OK;
  Inflate() = default;
  Inflate(const Inflate&) = delete;
  Inflate& operator=(const Inflate&) = delete;
  ~Inflate() {
    if (ok) inflateEnd(&z);
  }
};

RestoredEntry entry_for(const ZipMember& m, const ZipLocal& l, const std::string& path) {
  char type = m.is_dir() ? '5' : m.is_symlink() ? '2' : S_ISREG(m.mode) ? '0' : '?';
  return RestoredEntry{path, "", type, m.mode & 07777, l.uid.value_or(::geteuid()), l.gid.value_or(::getegid()), m.mtime, 0};
}

// Inflates one big member piece by piece, handing each piece to sink(offset, bytes); checks
// its size and CRC-32 at the end.
template <class Sink>
uint64_t inflate_stream(const ArchiveSource& s, const ZipMember& m, const ZipLocal& l, Sink sink) {
  Inflate inf;
  if (!inf.ok) throw Fatal("zlib: cannot start inflating");
  std::string out(kPiece, '\0');
  uint64_t read = 0, written = 0;
  uint32_t crc = 0;
  bool ended = m.method == 0;
  auto emit = [&](std::string_view piece) {
    if (written + piece.size() > m.usize) throw Fatal("holds more than its size");
    sink(written, piece);
    crc = static_cast<uint32_t>(crc32_z(crc, reinterpret_cast<const Bytef*>(piece.data()), piece.size()));
    written += piece.size();
  };
  while (read < m.csize) {
    if (interrupted()) throw Fatal("interrupted");
    std::string packed = read_range(s, l.data_offset + read, std::min<uint64_t>(kPiece, m.csize - read));
    read += packed.size();
    if (m.method == 0) {
      emit(packed);
      continue;
    }
    inf.z.next_in = reinterpret_cast<Bytef*>(packed.data());
    inf.z.avail_in = static_cast<uInt>(packed.size());
    // Until the input is used up *and* zlib had room to spare: a full output buffer may mean
    // more output (or the end of the stream) is still held inside zlib.
    while (!ended) {
      inf.z.next_out = reinterpret_cast<Bytef*>(out.data());
      inf.z.avail_out = static_cast<uInt>(out.size());
      int rc = inflate(&inf.z, Z_NO_FLUSH);
      if (rc == Z_BUF_ERROR) break;  // no progress possible: it needs more input
      if (rc != Z_OK && rc != Z_STREAM_END) throw Fatal("deflate data is damaged");
      emit(std::string_view(out.data(), out.size() - inf.z.avail_out));
      ended = rc == Z_STREAM_END;
      if (inf.z.avail_in == 0 && inf.z.avail_out > 0) break;
    }
  }
  if (!ended || written != m.usize) throw Fatal("data end early");
  if (crc != m.crc) throw Fatal("CRC-32 mismatch");
  return written;
}

// The member's local header, from the run's buffer or read.
ZipLocal local_header(const ArchiveSource& s, const std::string& buf, uint64_t start, const ZipMember& m, std::string& spare) {
  uint64_t n = zip_local_header_size(bytes_at(s, buf, start, m.header_offset, kZipLocalFixed, spare), m);
  return parse_zip_local_header(bytes_at(s, buf, start, m.header_offset, n, spare), m);
}

std::string damaged(const ArchiveSource& s, const ZipMember& m, const std::string& why) {
  return "archive " + quote(s.name) + ": member " + quote(m.name) + " is damaged (" + why + ")";
}

UnitResult restore_run(const ArchiveSource& s, const ZipPlan& p, const Run& run, Extractor& x, Log& log) {
  UnitResult res;
  const uint64_t start = p.members[run.first].header_offset;
  std::string buf, spare;
  if (!run.stream) buf = read_range(s, start, member_end(p, run.last) - start);
  for (size_t i = run.first; i <= run.last; ++i) {
    const ZipMember& m = p.members[i];
    std::string path = m.name, why;
    bool safe = sanitize_member(path, why);
    if (!safe) {
      if (!why.empty()) res.errors.push_back(quote(m.name) + ": " + why + "; not extracted");
      continue;
    }
    if (!why.empty()) log.notice(quote(m.name) + ": " + why);
    bool written = false;
    try {
      ZipLocal l = local_header(s, buf, start, m, spare);
      RestoredEntry e = entry_for(m, l, path);
      if (e.type == '5') {
        x.make_dir(path);
      } else if (e.type == '?') {
        log.notice(quote(m.name) + ": special file (mode " + std::to_string(m.mode) + ") not restored");
        continue;
      } else if (run.stream) {
        e.type = '0';
        written = true;
        // One fd from creation to the last byte: the data goes only into the inode made here.
        Fd fd = x.create(path, m.usize);
        res.bytes += inflate_stream(s, m, l, [&](uint64_t at, std::string_view piece) { pwrite_all(fd.get(), piece, at, path); });
      } else {
        std::string data = inflate_whole(m, bytes_at(s, buf, start, l.data_offset, m.csize, spare));
        if (e.type == '2') {
          e.link = std::move(data);
        } else {
          written = true;
          e.done = x.create_file(path, m.usize, data, &e);
          res.bytes += m.usize;
        }
      }
      res.entries.push_back(std::move(e));
    } catch (const std::exception& ex) {
      if (interrupted()) throw;
      bool damage = dynamic_cast<const Fatal*>(&ex) != nullptr;
      std::string msg = damage ? damaged(s, m, ex.what()) + "; not restored" : quote(m.name) + ": " + ex.what();
      if (written) {  // no partial file may be left looking complete
        try {
          x.remove_file(path);
        } catch (const std::exception& rm) {
          msg += std::string("; ") + rm.what();
        }
      }
      res.errors.push_back(msg);
    }
  }
  return res;
}

}  // namespace

std::vector<std::string> check_zip_members(const ArchiveSource& s, int rank, int ranks, int threads) {
  std::optional<ZipDirectory> dir = load_directory(s);
  if (!dir) return {"archive " + quote(s.name) + ": cannot read the zip central directory"};
  ZipPlan p = make_plan(std::move(*dir), {});
  std::vector<uint64_t> sizes;
  for (const Run& r : p.runs)
    sizes.push_back(r.stream ? p.members[r.first].csize : member_end(p, r.last) - p.members[r.first].header_offset);
  std::vector<size_t> mine = my_units(sizes, rank, ranks);
  auto per_run = parallel_map(mine.size(), threads, [&](size_t i) {
    const Run& run = p.runs[mine[i]];
    std::vector<std::string> problems;
    const uint64_t start = p.members[run.first].header_offset;
    std::string buf, spare;
    if (!run.stream) buf = read_range(s, start, member_end(p, run.last) - start);
    for (size_t k = run.first; k <= run.last; ++k) {
      const ZipMember& m = p.members[k];
      try {
        ZipLocal l = local_header(s, buf, start, m, spare);
        if (run.stream) inflate_stream(s, m, l, [](uint64_t, std::string_view) {});
        else if (!m.is_dir()) inflate_whole(m, bytes_at(s, buf, start, l.data_offset, m.csize, spare));
      } catch (const Fatal& f) {
        problems.push_back(damaged(s, m, f.what()));
      }
    }
    return problems;
  });
  std::vector<std::string> out;
  for (auto& v : per_run) out.insert(out.end(), v.begin(), v.end());
  return out;
}

bool zip_restores_in_parallel(const ArchiveSource& s, std::string& why_not) {
  try {
    std::optional<ZipDirectory> dir = load_directory(s);
    if (!dir) {
      why_not = "no zip central directory this reader trusts";
      return false;
    }
    why_not = obstacle(dir->members);
  } catch (const ZipOverlap&) {
    throw;  // damage: streaming would silently drop members
  } catch (const std::exception& e) {
    why_not = e.what();
  }
  return why_not.empty();
}

int run_parallel_zip_restore(Comm& comm, const ArchiveSource& s, const RestoreOptions& opt, Log& log) {
  // Every rank reads the directory itself (a few MB at most); all go on only if all could.
  std::optional<ZipDirectory> dir;
  std::string err;
  try {
    dir = load_directory(s);
    if (!dir) err = "archive " + quote(s.name) + ": cannot read the zip central directory";
  } catch (const std::exception& e) {
    err = e.what();
  }
  if (!comm.all_ok(err.empty())) {
    if (!err.empty()) log.error(err);
    return kExitFatal;
  }
  size_t total = dir->members.size();
  ZipPlan p = make_plan(std::move(*dir), opt.only);
  ParallelRestorePlan plan;
  for (const Run& r : p.runs)
    plan.sizes.push_back(r.stream ? p.members[r.first].csize : member_end(p, r.last) - p.members[r.first].header_offset);
  plan.selected_units = p.selected;
  plan.total_units = total;
  plan.unit_name = "zip members";
  plan.restore = [&](size_t u, Extractor& x, const std::vector<uint64_t>&) { return restore_run(s, p, p.runs[u], x, log); };
  return run_parallel_units(comm, plan, opt, log);
}

}  // namespace pbackup
