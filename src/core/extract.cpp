// Safe extraction below a restore directory (see extract.h).
#include "core/extract.h"
#include "core/select.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>

#include "core/xattr.h"
#include "format/sparse.h"
#include "format/tar_read.h"
#include "pbackup/error.h"
#include "util/file_util.h"
#include "util/parallel.h"

namespace pbackup {

void owner_ids(const TarMember& m, bool numeric, uint32_t& uid, uint32_t& gid) {
  uid = m.uid;
  gid = m.gid;
  if (numeric || ::geteuid() != 0) return;
  if (auto u = user_id(m.uname)) uid = *u;
  if (auto g = group_id(m.gname)) gid = *g;
}

bool sanitize_member(std::string& name, std::string& why) {
  if (name.find('\0') != std::string::npos) {
    why = "member name contains a NUL byte";
    return false;
  }
  size_t strip = 0;
  while (strip < name.size() && name[strip] == '/') ++strip;
  if (strip) why = "removing leading '/' from member name";
  // One canonical spelling per path: empty and "." components go, so "a//b", "a/./b" and
  // "a/b/" all name "a/b" (different spellings would otherwise escape the duplicate checks).
  std::string clean;
  size_t start = strip;
  while (start <= name.size()) {
    size_t end = name.find('/', start);
    if (end == std::string::npos) end = name.size();
    std::string_view comp(name.data() + start, end - start);
    if (comp == "..") {
      why = "member name contains '..'";
      return false;
    }
    if (!comp.empty() && comp != ".") {
      if (!clean.empty()) clean += '/';
      clean += comp;
    }
    start = end + 1;
  }
  name = std::move(clean);
  return !name.empty();
}

bool path_selected(const std::string& path, const std::vector<std::string>& only) {
  if (only.empty()) return true;
  for (const auto& s : only) {
    if (path == s) return true;
    if (has_glob(s)) {  // a glob selects what it matches and everything below that
      for (size_t end = path.find('/'); end != std::string::npos; end = path.find('/', end + 1))
        if (pattern_matches_path(s, path.substr(0, end), true)) return true;
      if (pattern_matches_path(s, path, s.back() == '/')) return true;
      continue;
    }
    if (path.size() > s.size() && path.compare(0, s.size(), s) == 0 && path[s.size()] == '/') return true;
  }
  return false;
}

Extractor::Extractor(const std::string& dir, Log* log) : dir_(dir), log_(log) {
  make_dirs(dir, "cannot create restore directory");
  root_ = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (root_ < 0) throw Fatal(sys_message("cannot open restore directory", dir, errno));
}

Extractor::~Extractor() {
  if (root_ >= 0) ::close(root_);
}

namespace {
struct ParentCache {
  const void* owner = nullptr;
  uint64_t generation = 0;
  std::string dir;
  int fd = -1;
  ~ParentCache() {
    if (fd >= 0) ::close(fd);
  }
};
thread_local ParentCache t_parent;
std::atomic<uint64_t> g_generation{1};
}  // namespace

void Extractor::forget_cached_dirs() { ++g_generation; }

int Extractor::open_parent(const std::string& path, std::string& leaf) {
  size_t slash = path.rfind('/');
  std::string dir = slash == std::string::npos ? "" : path.substr(0, slash);
  leaf = slash == std::string::npos ? path : path.substr(slash + 1);
  ParentCache& c = t_parent;
  if (c.fd >= 0 && c.owner == this && c.generation == g_generation.load() && c.dir == dir) return c.fd;
  int fd = walk(dir);
  if (c.fd >= 0) ::close(c.fd);
  c.owner = this;
  c.generation = g_generation.load();
  c.dir = dir;
  c.fd = fd;
  return fd;
}

// Walks `dir_path` from the restore directory without following symlinks, creating missing
// directories if `create`.
int Extractor::walk(const std::string& path, bool create, bool* missing) {
  int fd = ::dup(root_);
  if (fd < 0) throw_sys("cannot open", dir_, errno);
  size_t start = 0;
  while (start < path.size()) {
    size_t slash = path.find('/', start);
    if (slash == std::string::npos) slash = path.size();
    std::string comp = path.substr(start, slash - start);
    start = slash + 1;
    if (comp.empty() || comp == ".") continue;
    int next = ::openat(fd, comp.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (next < 0 && errno == ENOENT && create) {
      if (::mkdirat(fd, comp.c_str(), 0700) == 0) {
        std::lock_guard<std::mutex> l(implied_mu_);
        implied_.push_back(path.substr(0, slash));
      } else if (errno != EEXIST) {
        int err = errno;
        ::close(fd);
        throw_sys("cannot create directory", dir_ + "/" + path.substr(0, slash), err);
      }
      next = ::openat(fd, comp.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    }
    if (next < 0) {
      int err = errno;
      ::close(fd);
      if (missing && err == ENOENT) {
        *missing = true;
        return -1;
      }
      if (err == ELOOP || err == ENOTDIR)
        throw Fatal(quote(path) + ": " + quote(path.substr(0, slash)) + " is a symlink or not a directory; nothing is extracted through it");
      throw_sys("cannot open directory", dir_ + "/" + path.substr(0, slash), err);
    }
    ::close(fd);
    fd = next;
  }
  return fd;
}

Fd Extractor::create(const std::string& path, uint64_t size) {
  std::string leaf;
  int parent = open_parent(path, leaf);
  for (int attempt = 0; attempt < 4; ++attempt) {
    Fd fd(::openat(parent, leaf.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
    if (fd) {
      if (size > 0 && ::ftruncate(fd.get(), static_cast<off_t>(size)) != 0) {
        int err = errno;
        ::unlinkat(parent, leaf.c_str(), 0);
        throw_sys("cannot size", dir_ + "/" + path, err);
      }
      return fd;
    }
    if (errno != EEXIST) throw_sys("cannot create", dir_ + "/" + path, errno);
    // Something is there: a file from before the restore (perhaps a hard link to a file
    // outside), a symlink, a fifo, an empty directory. It is replaced, never written through.
    if (::unlinkat(parent, leaf.c_str(), 0) == 0 || errno == ENOENT) continue;
    if (errno != EISDIR && errno != EPERM) throw_sys("cannot replace", dir_ + "/" + path, errno);
    forget_cached_dirs();
    if (::unlinkat(parent, leaf.c_str(), AT_REMOVEDIR) != 0 && errno != ENOENT) throw_sys("cannot replace directory", dir_ + "/" + path, errno);
  }
  throw Fatal("cannot create " + quote(dir_ + "/" + path) + ": it keeps changing");
}

bool Extractor::create_file(const std::string& path, uint64_t size, std::string_view head, const RestoredEntry* meta) {
  Fd fd = create(path, size == head.size() ? 0 : size);
  pwrite_all(fd.get(), head, 0, dir_ + "/" + path);
  return finish_file(fd.get(), path, meta);
}

bool Extractor::create_sparse_file(const std::string& path, uint64_t realsize, std::string_view data, const RestoredEntry* meta) {
  size_t start = 0;
  SparseMap map;
  try {
    map = parse_sparse_member(data, realsize, start);
  } catch (const Fatal& f) {
    throw Fatal(quote(dir_ + "/" + path) + ": " + f.what());
  }
  Fd fd = create(path, realsize);  // ftruncate: all hole until the regions are written
  for (const auto& [off, len] : map) {
    pwrite_all(fd.get(), data.substr(start, len), off, dir_ + "/" + path);
    start += len;
  }
  return finish_file(fd.get(), path, meta);
}

bool Extractor::finish_file(int fd, const std::string& path, const RestoredEntry* meta) {
  if (!meta) return false;
  // The whole file is here: its owner, mode and time go on now, on this thread, by fd.
  if (::geteuid() == 0 && ::fchown(fd, meta->uid, meta->gid) != 0) throw_sys("cannot set owner of", dir_ + "/" + path, errno);
  set_xattrs(fd, *meta);
  if (::fchmod(fd, meta->mode & 07777) != 0) throw_sys("cannot set mode of", dir_ + "/" + path, errno);
  struct timespec ts[2];
  ts[0].tv_sec = ts[1].tv_sec = meta->mtime;
  ts[0].tv_nsec = ts[1].tv_nsec = meta->mtime_nsec;
  if (::futimens(fd, ts) != 0) throw_sys("cannot set time of", dir_ + "/" + path, errno);
  return true;
}

void Extractor::write_part(const std::string& path, uint64_t ino, uint64_t offset, std::string_view data) {
  write_parts(path, ino, {{offset, data}});
}

void Extractor::write_parts(const std::string& path, uint64_t ino, const std::vector<std::pair<uint64_t, std::string_view>>& pieces) {
  if (std::all_of(pieces.begin(), pieces.end(), [](const auto& p) { return p.second.empty(); })) return;
  std::string leaf;
  int parent = open_parent(path, leaf);
  Fd fd(::openat(parent, leaf.c_str(), O_WRONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC));
  if (!fd) {
    if (errno == ENOENT)
      throw Fatal(quote(dir_ + "/" + path) + " is missing (removed while the restore ran, or the restore directory is not shared by all ranks)");
    if (errno == ELOOP || errno == EISDIR || errno == ENXIO)
      throw Fatal(quote(dir_ + "/" + path) + " was replaced while the restore ran; nothing written through it");
    throw_sys("cannot open", dir_ + "/" + path, errno);
  }
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) throw_sys("cannot stat", dir_ + "/" + path, errno);
  if (!S_ISREG(st.st_mode) || static_cast<uint64_t>(st.st_ino) != ino)
    throw Fatal(quote(dir_ + "/" + path) + " is no longer the file this restore created; nothing written through it");
  for (const auto& [offset, data] : pieces)
    if (!data.empty()) pwrite_all(fd.get(), data, offset, dir_ + "/" + path);
}

void Extractor::set_xattrs(int fd, const RestoredEntry& e) {
  if (e.xattrs.empty()) return;
  std::vector<std::string> warnings;
  try {
    apply_xattr_records(fd, e.xattrs, e.type == '5', dir_ + "/" + e.path, warnings);
  } catch (const std::exception& ex) {  // records are checked when read; this is a guard
    warnings.push_back(quote(dir_ + "/" + e.path) + ": extended attributes not restored: " + ex.what());
  }
  if (log_)
    for (auto& w : warnings) log_->warn(w);
}

void Extractor::apply_xattrs(const std::string& path, char type, std::string_view records) {
  if (records.empty() || type == '1' || type == '2') return;
  RestoredEntry e;
  e.path = path;
  e.type = type;
  e.xattrs = records;
  std::string leaf;
  int parent = open_parent(path, leaf);
  Fd fd(::openat(parent, leaf.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC));
  struct stat st {};
  bool same = fd && ::fstat(fd.get(), &st) == 0 &&
              (type == '5' ? S_ISDIR(st.st_mode) : type == '6' ? S_ISFIFO(st.st_mode) : S_ISREG(st.st_mode));
  if (!same) {
    if (log_) log_->warn(quote(dir_ + "/" + path) + ": not what the archive holds (or cannot be opened); extended attributes not restored");
    return;
  }
  // libarchive has set the mode already: a read-only file would refuse user.* to its owner,
  // so it is made writable for the moment (by fd, as the parallel paths set xattrs before the mode).
  const bool lift = ::geteuid() != 0 && !(st.st_mode & S_IWUSR) && ::fchmod(fd.get(), (st.st_mode & 07777) | S_IWUSR) == 0;
  set_xattrs(fd.get(), e);
  if (lift && ::fchmod(fd.get(), st.st_mode & 07777) != 0 && log_)
    log_->warn(sys_message("cannot set mode of", dir_ + "/" + path, errno));
}

std::vector<std::string> Extractor::implied_dirs() const {
  std::lock_guard<std::mutex> l(implied_mu_);
  return implied_;
}

void Extractor::remove_file(const std::string& path) {
  std::string leaf;
  int parent = open_parent(path, leaf);
  if (::unlinkat(parent, leaf.c_str(), 0) != 0 && errno != ENOENT) throw_sys("cannot remove damaged", dir_ + "/" + path, errno);
}

bool Extractor::remove_damaged(const std::string& path, const struct timespec& since) {
  size_t slash = path.rfind('/');
  std::string leaf = slash == std::string::npos ? path : path.substr(slash + 1);
  bool missing = false;
  Fd parent(walk(slash == std::string::npos ? "" : path.substr(0, slash), false, &missing));
  if (missing) return false;
  struct stat st {};
  if (::fstatat(parent.get(), leaf.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
    if (errno == ENOENT) return false;
    throw_sys("cannot stat", dir_ + "/" + path, errno);
  }
  bool ours = st.st_ctim.tv_sec > since.tv_sec || (st.st_ctim.tv_sec == since.tv_sec && st.st_ctim.tv_nsec >= since.tv_nsec);
  if (!S_ISREG(st.st_mode) || !ours) return false;
  if (::unlinkat(parent.get(), leaf.c_str(), 0) != 0 && errno != ENOENT) throw_sys("cannot remove damaged", dir_ + "/" + path, errno);
  forget_cached_dirs();
  return true;
}

void Extractor::make_dir(const std::string& path) {
  std::string leaf;
  int parent = open_parent(path, leaf);
  if (::mkdirat(parent, leaf.c_str(), 0700) == 0 || errno != EEXIST) return;
  struct stat st {};
  if (::fstatat(parent, leaf.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0 && !S_ISDIR(st.st_mode)) {
    forget_cached_dirs();
    ::unlinkat(parent, leaf.c_str(), 0);
    ::mkdirat(parent, leaf.c_str(), 0700);
  }
}

size_t Extractor::finish(std::vector<RestoredEntry>& entries, Log& log, int threads) {
  const bool root = ::geteuid() == 0;
  std::vector<std::string> errors(entries.size());
  auto apply_meta = [&](const RestoredEntry& e, int parent, const std::string& leaf) -> std::string {
    struct timespec ts[2];
    ts[0].tv_sec = ts[1].tv_sec = e.mtime;
    ts[0].tv_nsec = ts[1].tv_nsec = e.mtime_nsec;
    if (e.type == '2') {  // the link itself, never what it points to
      if (root && ::fchownat(parent, leaf.c_str(), e.uid, e.gid, AT_SYMLINK_NOFOLLOW) != 0)
        return sys_message("cannot set owner of", e.path, errno);
      if (::utimensat(parent, leaf.c_str(), ts, AT_SYMLINK_NOFOLLOW) != 0) return sys_message("cannot set time of", e.path, errno);
      return "";
    }
    // Everything else through an fd opened without following a symlink, and only if it is
    // still what the archive said: a member that put a symlink (or anything else) at this
    // name must not make us change a file outside the restore directory.
    Fd fd(::openat(parent, leaf.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC));
    if (!fd) {
      if (errno == ELOOP) return quote(e.path) + ": is a symlink now (another member?); its owner, mode and time were not applied";
      return sys_message("cannot open", e.path, errno);
    }
    struct stat st {};
    if (::fstat(fd.get(), &st) != 0) return sys_message("cannot stat", e.path, errno);
    bool same = e.type == '5' ? S_ISDIR(st.st_mode) : e.type == '6' ? S_ISFIFO(st.st_mode) : S_ISREG(st.st_mode);
    if (!same) return quote(e.path) + ": is no longer what the archive holds (another member?); its owner, mode and time were not applied";
    if (root && ::fchown(fd.get(), e.uid, e.gid) != 0) return sys_message("cannot set owner of", e.path, errno);
    set_xattrs(fd.get(), e);
    if (::fchmod(fd.get(), e.mode & 07777) != 0) return sys_message("cannot set mode of", e.path, errno);
    if (::futimens(fd.get(), ts) != 0) return sys_message("cannot set time of", e.path, errno);
    return "";
  };
  auto replace = [](int parent, const std::string& leaf) {
    if (::unlinkat(parent, leaf.c_str(), 0) != 0 && errno == EISDIR) ::unlinkat(parent, leaf.c_str(), AT_REMOVEDIR);
  };
  // 1. fifos and hard links (targets are all in place now), then symlinks last of all, so no
  //    archive symlink exists while anything else is still being created.
  for (char kind : {'6', '1', '2'}) {
    for (size_t i = 0; i < entries.size(); ++i) {
      const RestoredEntry& e = entries[i];
      if (e.type != kind) continue;
      try {
        std::string leaf;
        int parent = open_parent(e.path, leaf);
        forget_cached_dirs();
        replace(parent, leaf);
        if (kind == '6' && ::mkfifoat(parent, leaf.c_str(), 0600) != 0) errors[i] = sys_message("cannot create fifo", e.path, errno);
        if (kind == '2' && ::symlinkat(e.link.c_str(), parent, leaf.c_str()) != 0) errors[i] = sys_message("cannot create symlink", e.path, errno);
        if (kind == '1') {
          size_t slash = e.link.rfind('/');
          // The target is looked up, never created: a missing one makes no directories.
          Fd tparent(walk(slash == std::string::npos ? "" : e.link.substr(0, slash), false));
          std::string tleaf = slash == std::string::npos ? e.link : e.link.substr(slash + 1);
          if (::linkat(tparent.get(), tleaf.c_str(), parent, leaf.c_str(), 0) != 0)
            errors[i] = sys_message("cannot create hard link to " + quote(e.link) + " at", e.path, errno);
        }
      } catch (const std::exception& ex) {
        errors[i] = ex.what();
      }
    }
  }
  // 2. metadata of everything but directories, in parallel
  parallel_map(entries.size(), threads, [&](size_t i) {
    const RestoredEntry& e = entries[i];
    if (e.type == '5' || e.type == '1' || e.done || !errors[i].empty()) return 0;
    try {
      std::string leaf;
      int parent = open_parent(e.path, leaf);
      errors[i] = apply_meta(e, parent, leaf);
    } catch (const std::exception& ex) {
      errors[i] = ex.what();
    }
    return 0;
  });
  // 3. directories, deepest first, so a read-only directory is closed only after its contents
  std::vector<size_t> dirs;
  for (size_t i = 0; i < entries.size(); ++i)
    if (entries[i].type == '5') dirs.push_back(i);
  auto depth = [&](size_t i) { return std::count(entries[i].path.begin(), entries[i].path.end(), '/'); };
  std::stable_sort(dirs.begin(), dirs.end(), [&](size_t a, size_t b) { return depth(a) > depth(b); });
  for (size_t i : dirs) {
    try {
      std::string leaf;
      int parent = open_parent(entries[i].path, leaf);
      errors[i] = apply_meta(entries[i], parent, leaf);
    } catch (const std::exception& ex) {
      errors[i] = ex.what();
    }
  }
  size_t n = 0;
  for (auto& e : errors)
    if (!e.empty()) {
      log.error(e);
      ++n;
    }
  return n;
}

}  // namespace pbackup
