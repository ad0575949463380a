// list --long, find and compare, from catalogs (see query.h).
#include "core/query.h"

#include <archive_entry.h>
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <unordered_set>

#include "core/catalog.h"
#include "core/read.h"
#include "core/select.h"
#include "dest/s3_client.h"
#include "pbackup/error.h"
#include "pbackup/pipeline.h"
#include "pbackup/source.h"
#include "pbackup/store.h"
#include "util/file_util.h"

namespace pbackup {
namespace {

void out_line(const std::string& s) {
  std::fwrite(s.data(), 1, s.size(), stdout);
  std::fputc('\n', stdout);
}

// One difference compare found: a line on stdout, or with --json an item of the summary.
void diff_line(const std::string& path, const std::string& what) {
  RunSummary& sum = run_summary();
  if (!sum.collect_differences) return out_line(escape_name(path) + ": " + what);
  ++sum.differences_total;
  if (sum.differences.size() < 10000) sum.differences.emplace_back(path, what);
}

// Rank 0 computes the exit code; every rank returns it (others: 0), as run_list does.
template <class F>
int on_rank0(Comm& comm, Log& log, F body) {
  int rc = kExitOk;
  if (comm.rank() == 0) {
    try {
      rc = body();
    } catch (const Fatal& f) {
      std::fflush(stdout);
      log.error(f.what());
      rc = kExitFatal;
    }
    std::fflush(stdout);
  }
  std::string verdict = std::to_string(rc);
  comm.broadcast(verdict, 0);
  return comm.rank() == 0 ? rc : kExitOk;
}

bool ends_with(const std::string& s, const std::string& tail) {
  return s.size() > tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
}

// The archives a find --source names: an archive (file, fragment set or s3:// key), or a folder
// or s3:// prefix holding backups (every NAME.manifest.json in it, not below).
std::vector<std::string> archives_in(const std::string& src, const S3Flags& s3) {
  const std::string man = ".manifest.json";
  std::vector<std::string> out;
  if (is_s3_url(src)) {
    S3Url u = S3Url::parse(src);
    std::shared_ptr<Store> st = make_s3_store(u.bucket, s3);
    std::string prefix = u.key;
    if (!prefix.empty() && prefix.back() != '/' && st->size(prefix + man)) return {src};
    while (!prefix.empty() && prefix.back() == '/') prefix.pop_back();
    for (auto& rest : st->list(prefix))
      if (ends_with(rest, man))
        out.push_back("s3://" + u.bucket + "/" + (prefix.empty() ? "" : prefix + "/") + rest.substr(0, rest.size() - man.size()));
    return out;
  }
  struct stat st {};
  if (::stat(src.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) return {src};
  DIR* d = ::opendir(src.c_str());
  if (!d) throw Fatal(sys_message("cannot open directory", src, errno));
  std::unique_ptr<DIR, int (*)(DIR*)> guard(d, ::closedir);
  std::string dir = src;
  while (dir.size() > 1 && dir.back() == '/') dir.pop_back();
  while (struct dirent* de = ::readdir(d)) {
    std::string n = de->d_name;
    if (n[0] != '.' && ends_with(n, man)) out.push_back(dir + "/" + n.substr(0, n.size() - man.size()));
  }
  std::sort(out.begin(), out.end());
  if (out.empty()) throw Fatal("no backups (NAME.manifest.json) in " + quote(src));
  return out;
}

bool is_regular(EntryType t) { return t == EntryType::File || t == EntryType::Hardlink; }

// The base name a source root was stored under (as resolve_roots names it).
std::string root_name(std::string s) {
  while (s.size() > 1 && s.back() == '/') s.pop_back();
  std::string name = s.substr(s.rfind('/') == std::string::npos ? 0 : s.rfind('/') + 1);
  if (name.empty() || name == "." || name == "..") {
    char* real = ::realpath(s.c_str(), nullptr);
    if (real) {
      std::string r(real);
      std::free(real);
      name = r.substr(r.rfind('/') + 1);
    }
  }
  return name;
}

// Every path below the open directory `fd` (stored as `path`; the fd is taken over) that the
// catalog does not hold. Subdirectories are opened from their parent with O_NOFOLLOW: a
// directory swapped for a symlink while compare runs is not listed through.
void report_new(int fd, const std::string& path, const std::unordered_set<std::string>& known, uint64_t& diffs) {
  DIR* d = ::fdopendir(fd);
  if (!d) {
    ::close(fd);
    return;
  }
  std::unique_ptr<DIR, int (*)(DIR*)> guard(d, ::closedir);
  std::vector<std::string> names;
  while (struct dirent* de = ::readdir(d)) {
    std::string n = de->d_name;
    if (n != "." && n != "..") names.push_back(n);
  }
  std::sort(names.begin(), names.end());
  for (auto& n : names) {
    std::string p = path + "/" + n;
    if (!known.count(p)) {
      diff_line(p, "new (not in the archive)");
      ++diffs;
      continue;  // its contents are new too; one line says it
    }
    int sub = ::openat(::dirfd(d), n.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    if (sub >= 0) report_new(sub, p, known, diffs);
  }
}

// lstat of `disk`, the live file of archive path `path`, reached without following a symlink
// below the root (a directory swapped for a link to elsewhere is not compared through); the
// root itself is followed, as the backup follows a symlinked root. -1 and errno on failure.
int stat_below_root(const std::string& disk, const std::string& path, struct stat& st) {
  const bool root = path.find('/') == std::string::npos;
  Fd fd(open_below_root(disk, path, O_PATH | (root ? 0 : O_NOFOLLOW), false));
  if (!fd) return -1;
  return ::fstat(fd.get(), &st);
}

// What differs between one catalog record and the file at `disk`, as tar --compare says it.
std::vector<std::string> differences(const CatalogRecord& r, const std::string& disk, const std::string& link_disk) {
  struct stat st {};
  if (stat_below_root(disk, r.path, st) != 0) {
    if (errno == ENOENT) return {"missing on disk"};
    if (errno == ELOOP || errno == ENOTDIR) return {"missing on disk (a directory above it is now a symlink or no directory)"};
    return {std::string("cannot stat: ") + std::strerror(errno)};
  }
  bool type_ok = is_regular(r.type) ? S_ISREG(st.st_mode)
                 : r.type == EntryType::Dir     ? S_ISDIR(st.st_mode)
                 : r.type == EntryType::Symlink ? S_ISLNK(st.st_mode)
                                                : S_ISFIFO(st.st_mode);
  if (!type_ok) return {"file type differs"};
  std::vector<std::string> d;
  if (r.type != EntryType::Symlink && (st.st_mode & 07777) != r.mode) d.push_back("mode differs");
  if (st.st_uid != r.uid) d.push_back("uid differs");
  if (st.st_gid != r.gid) d.push_back("gid differs");
  if (r.type == EntryType::File) {
    if (static_cast<uint64_t>(st.st_size) != r.size) d.push_back("size differs");
    if (st.st_mtim.tv_sec != r.mtime_sec || static_cast<uint32_t>(st.st_mtim.tv_nsec) != r.mtime_nsec) d.push_back("mod time differs");
  }
  if (r.type == EntryType::Symlink) {
    std::string buf(PATH_MAX, '\0');
    Fd l(open_below_root(disk, r.path, O_PATH | O_NOFOLLOW, false));
    ssize_t n = l ? ::readlinkat(l.get(), "", buf.data(), buf.size()) : -1;
    if (n < 0 || std::string(buf.data(), static_cast<size_t>(n)) != r.link) d.push_back("symlink target differs");
  }
  if (r.type == EntryType::Hardlink) {
    struct stat t {};
    if (stat_below_root(link_disk, r.link, t) != 0 || t.st_ino != st.st_ino || t.st_dev != st.st_dev)
      d.push_back("not linked to " + escape_name(r.link));
  }
  return d;
}

// --checksum: the archive's bytes of each file in `paths` against the file on disk (one pass
// through the archive). Returns how many differ; each is named.
uint64_t compare_contents(const RestoreOptions& opt, const std::unordered_set<std::string>& paths,
                          const std::function<std::string(const std::string&)>& disk_of) {
  uint64_t diffs = 0;
  std::string mine;
  stream_members(opt, [&](archive_entry* e, const std::function<std::string_view(uint64_t&)>& next) {
    const char* p = archive_entry_pathname(e);
    std::string path = p ? p : "";
    if (!paths.count(path) || archive_entry_hardlink(e)) return;
    const std::string disk = disk_of(path);
    // no symlink followed below the root: a directory swapped for a link is not read through
    Fd fd(open_below_root(disk, path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY, false));
    bool same = static_cast<bool>(fd);
    uint64_t off = 0;
    for (std::string_view piece; same && !(piece = next(off)).empty();) {
      mine.resize(piece.size());
      ssize_t n = ::pread(fd.get(), mine.data(), mine.size(), static_cast<off_t>(off));
      same = n == static_cast<ssize_t>(piece.size()) && std::memcmp(mine.data(), piece.data(), piece.size()) == 0;
    }
    if (!same) {
      diff_line(path, "contents differ");
      ++diffs;
    }
  });
  return diffs;
}

}  // namespace

bool list_long_from_catalog(const ArchiveSource& s) {
  return read_archive_catalog(s, [](const CatalogRecord& r) { out_line(long_line(r)); });
}

CatalogRecord record_of(archive_entry* e) {
  CatalogRecord r;
  const char* p = archive_entry_pathname(e);
  r.path = p ? p : "";
  while (r.path.size() > 1 && r.path.back() == '/') r.path.pop_back();
  mode_t ft = archive_entry_filetype(e);
  const char* hl = archive_entry_hardlink(e);
  const char* sl = archive_entry_symlink(e);
  r.type = hl ? EntryType::Hardlink : ft == AE_IFDIR ? EntryType::Dir : ft == AE_IFLNK ? EntryType::Symlink
           : ft == AE_IFIFO ? EntryType::Fifo : EntryType::File;
  r.link = hl ? hl : sl ? sl : "";
  r.mode = archive_entry_perm(e) & 07777;
  r.uid = static_cast<uint32_t>(archive_entry_uid(e));
  r.gid = static_cast<uint32_t>(archive_entry_gid(e));
  const char* u = archive_entry_uname(e);
  const char* g = archive_entry_gname(e);
  r.uname = u ? u : "";
  r.gname = g ? g : "";
  r.size = archive_entry_size_is_set(e) && archive_entry_size(e) > 0 ? static_cast<uint64_t>(archive_entry_size(e)) : 0;
  r.mtime_sec = archive_entry_mtime(e);
  r.mtime_nsec = static_cast<uint32_t>(archive_entry_mtime_nsec(e));
  return r;
}

int run_find(Comm& comm, const RestoreOptions& opt, Log& log) {
  return on_rank0(comm, log, [&] {
    int rc = kExitOk;
    uint64_t matches = 0;
    for (const std::string& src : opt.find_sources) {
      std::vector<std::string> archives;
      try {
        archives = archives_in(src, {opt.s3_endpoint, opt.s3_region, opt.s3_addressing});
      } catch (const Fatal& f) {
        log.error(f.what());
        rc = kExitFatal;
        continue;
      }
      for (const std::string& a : archives) {
        try {
          ArchiveSource s = resolve_source(a, "", {opt.s3_endpoint, opt.s3_region, opt.s3_addressing}, false, opt.keys);
          bool had = read_archive_catalog(s, [&](const CatalogRecord& r) {
            if (pattern_matches_path(opt.pattern, r.path, r.type == EntryType::Dir)) {
              out_line(escape_name(a) + "\t" + escape_name(r.path));
              ++matches;
            }
          });
          if (!had) {
            log.warn(quote(a) + ": has no catalog (a foreign archive, or made before catalogs); not searched", a);
            rc = std::max<int>(rc, kExitWarnings);
          }
        } catch (const Fatal& f) {
          log.error(f.what());
          rc = kExitFatal;
        }
      }
    }
    if (matches == 0 && rc == kExitOk) rc = kExitWarnings;  // as grep: nothing found
    return rc;
  });
}

int run_compare(Comm& comm, const RestoreOptions& opt, Log& log) {
  auto t0 = std::chrono::steady_clock::now();
  RunSummary& sum = run_summary();
  sum.collect_differences = opt.json;
  sum.archive = opt.source;
  return on_rank0(comm, log, [&] {
    ArchiveSource s = resolve_source(opt.source, opt.original_base_filename, {opt.s3_endpoint, opt.s3_region, opt.s3_addressing}, false, opt.keys);
    // where each stored root lives now
    std::vector<Root> roots;
    if (s.manifest)
      for (auto& src : s.manifest->sources) {
        std::string name = root_name(src);
        roots.push_back({opt.against.empty() ? src : opt.against + "/" + name, name});
      }
    auto disk_of = [&](const std::string& path) -> std::string {
      std::string first = path.substr(0, path.find('/'));
      for (const Root& r : roots)
        if (r.name == first) return disk_path(r, path);
      return opt.against.empty() ? "" : opt.against + "/" + path;
    };
    std::unordered_set<std::string> known, to_check;  // to_check: --checksum, files alike so far
    uint64_t diffs = 0;
    bool had = read_archive_catalog(s, [&](const CatalogRecord& r) {
      known.insert(r.path);
      std::string disk = disk_of(r.path);
      if (disk.empty()) throw Fatal("manifest of " + quote(s.name) + " names no source for " + quote(r.path) + "; give --against DIR");
      std::vector<std::string> d = differences(r, disk, r.type == EntryType::Hardlink ? disk_of(r.link) : "");
      for (auto& why : d) diff_line(r.path, why);
      if (!d.empty()) ++diffs;
      else if (opt.checksum && r.type == EntryType::File && r.size > 0) to_check.insert(r.path);
    });
    if (!had) throw Fatal("archive " + quote(s.name) + " has no catalog (a foreign archive, or made before catalogs): compare needs one");
    sum.entries = known.size();
    if (!to_check.empty()) diffs += compare_contents(opt, to_check, disk_of);
    for (const Root& r : roots) {
      if (!known.count(r.name)) continue;
      // the root is followed, as the backup followed a symlinked root
      int fd = open_long_path(r.disk, O_RDONLY | O_DIRECTORY | O_NONBLOCK);
      if (fd >= 0) report_new(fd, r.name, known, diffs);
    }
    sum.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    return diffs ? kExitWarnings : kExitOk;
  });
}

}  // namespace pbackup
