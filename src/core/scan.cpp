// Scan: turn the source roots into entries with lstat (links are stored, never followed).
// With one rank, rank 0 walks everything. With several, rank 0 hands out directories to the
// ranks that ask for work: a rank scans what it was given and keeps walking below it until it
// has seen a batch of entries, then sends the directories it has not opened yet back, so one
// huge root is spread over every rank instead of pinning one. Each rank keeps the entries it
// found (file_list.h orders them across the ranks).
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <iterator>
#include <set>
#include <unordered_map>

#include "core/file_list.h"
#include "core/messages.h"
#include "core/read.h"
#include "core/select.h"
#include "core/xattr.h"
#include "format/sparse.h"
#include "pbackup/error.h"
#include "pbackup/pipeline.h"

namespace pbackup {
namespace {

constexpr int kTagWork = 11, kTagResult = 12;
constexpr size_t kBatchEntries = 4096;
constexpr size_t kLocalStepEntries = 64;  // rank 0 scans this many between looks at its inbox

// The data regions of a file with fewer blocks than its size (SEEK_DATA/SEEK_HOLE), as the
// tar format stores them (format/sparse.h); "" when it has no holes or cannot be asked (then it
// is stored whole, which is always right). A file ending in a hole gets GNU tar's closing
// (size, 0) region.
std::string find_holes(const std::string& disk, const struct stat& st) {
  const auto size = static_cast<uint64_t>(st.st_size);
  if (size < 4096 || static_cast<uint64_t>(st.st_blocks) * 512 >= size) return "";
  Fd fd(open_long_path(disk, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY));
  struct stat now {};
  if (!fd || ::fstat(fd.get(), &now) != 0 || now.st_ino != st.st_ino || now.st_dev != st.st_dev) return "";
  SparseMap map;
  off_t pos = 0;
  while (static_cast<uint64_t>(pos) < size) {
    off_t data = ::lseek(fd.get(), pos, SEEK_DATA);
    if (data < 0) {
      if (errno == ENXIO) break;  // only a hole from here on
      return "";                  // SEEK_DATA unsupported: store whole
    }
    if (static_cast<uint64_t>(data) >= size) break;
    off_t hole = ::lseek(fd.get(), data, SEEK_HOLE);
    if (hole < 0) return "";
    uint64_t end = std::min<uint64_t>(static_cast<uint64_t>(hole), size);
    map.emplace_back(static_cast<uint64_t>(data), end - static_cast<uint64_t>(data));
    if (map.size() >= kMaxSparseRegions) return "";  // too fragmented: stored whole
    pos = static_cast<off_t>(end);
  }
  if (map.size() == 1 && map[0].first == 0 && map[0].second == size) return "";  // no hole after all
  if (map.empty() || map.back().first + map.back().second < size) map.emplace_back(size, 0);
  return encode_sparse_map(map);
}

// A file that cannot be read (errno says why) is left out of the list with a warning: a scan
// or read_file_details found it so.
void not_stored_unreadable(Log& log, const std::string& disk) { log.warn(sys_message("cannot read", disk, errno) + " (not stored)", disk); }

// Builds an entry from lstat data; false (with a message) for types we do not store.
// `details`: also a file's extended attributes and holes (read_file_details() reads them later
// for the entries an incremental level keeps; a directory's are always read here).
bool make_entry(const struct stat& st, Entry& e, Log& log, const std::string& disk, bool details) {
  e.size = 0;
  if (S_ISREG(st.st_mode)) {
    e.type = EntryType::File;
    e.size = static_cast<uint64_t>(st.st_size);
  } else if (S_ISDIR(st.st_mode)) {
    e.type = EntryType::Dir;
  } else if (S_ISLNK(st.st_mode)) {
    e.type = EntryType::Symlink;
  } else if (S_ISFIFO(st.st_mode)) {
    e.type = EntryType::Fifo;
  } else {
    log.warn(quote(disk) + ": " + (S_ISSOCK(st.st_mode) ? "socket" : "device") + " not stored (skipped)", disk);
    return false;
  }
  e.mtime_sec = st.st_mtim.tv_sec;
  e.mtime_nsec = static_cast<uint32_t>(st.st_mtim.tv_nsec);
  e.ctime_sec = st.st_ctim.tv_sec;
  e.ctime_nsec = static_cast<uint32_t>(st.st_ctim.tv_nsec);
  e.mode = st.st_mode & 07777;
  e.uid = st.st_uid;
  e.gid = st.st_gid;
  e.nlink = static_cast<uint32_t>(st.st_nlink);
  e.dev = st.st_dev;
  e.ino = st.st_ino;
  e.owner = user_name(e.uid) + ":" + group_name(e.gid);
  // One llistxattr per entry; a link's own attributes are not stored (as GNU tar).
  if (e.type != EntryType::Symlink && (details || e.type == EntryType::Dir)) e.xattrs = read_xattr_records(disk, log);
  if (e.type == EntryType::File && details) e.sparse = find_holes(disk, st);
  return true;
}

bool read_link(int dirfd, const char* name, const std::string& disk, std::string& out, Log& log) {
  std::string buf(PATH_MAX, '\0');
  ssize_t n = ::readlinkat(dirfd, name, buf.data(), buf.size());
  if (n < 0) {
    log.warn(sys_message("cannot read link", disk, errno), disk);
    return false;
  }
  buf.resize(static_cast<size_t>(n));
  out = std::move(buf);
  return true;
}

// Scans one directory: its children become entries, subdirectories become tasks.
void scan_dir(const DirTask& t, EntryList& out, std::vector<DirTask>& subdirs, Log& log, const Selection* sel) {
  int fd = open_below_root(t.disk, t.path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW, false);
  if (fd < 0) {
    log.warn(sys_message("cannot open directory", t.disk, errno), t.disk);
    return;
  }
  DIR* d = ::fdopendir(fd);
  if (!d) {
    log.warn(sys_message("cannot open directory", t.disk, errno), t.disk);
    ::close(fd);
    return;
  }
  std::unique_ptr<DIR, int (*)(DIR*)> guard(d, ::closedir);
  const bool details = !sel || !sel->defer_file_details;
  while (true) {
    errno = 0;
    struct dirent* de = ::readdir(d);
    if (!de) {
      if (errno) log.warn(sys_message("cannot read directory", t.disk, errno), t.disk);
      break;
    }
    const char* name = de->d_name;
    if (!std::strcmp(name, ".") || !std::strcmp(name, "..")) continue;
    std::string disk = t.disk + "/" + name;
    struct stat st {};
    if (::fstatat(fd, name, &st, AT_SYMLINK_NOFOLLOW) != 0) {
      log.warn(sys_message("cannot stat", disk, errno), disk);  // vanished since readdir, or worse
      continue;
    }
    Entry e;
    e.root = t.root;
    e.path = t.path + "/" + name;
    if (sel && sel->excluded(e.path, S_ISDIR(st.st_mode))) continue;  // not descended either
    if (!make_entry(st, e, log, disk, details)) continue;
    if (e.type == EntryType::Symlink && !read_link(fd, name, disk, e.link, log)) continue;
    if (details && e.type == EntryType::File && ::faccessat(fd, name, R_OK, AT_EACCESS) != 0) {
      not_stored_unreadable(log, disk);
      continue;
    }
    if (e.type == EntryType::Dir) {
      // --one-file-system: a mount point is stored, its contents are not (as GNU tar)
      if (sel && sel->one_file_system && st.st_dev != t.dev)
        log.info(quote(disk) + ": on another file system; its contents are not stored");
      else
        subdirs.push_back({t.root, e.path, disk, t.dev});
    }
    out.push_back(std::move(e));
  }
}

// Scans from `todo` until about `limit` entries were found (0: everything); what is left stays
// in `todo`.
void scan_some(std::deque<DirTask>& todo, EntryList& out, Log& log, size_t limit, const Selection* sel) {
  std::vector<DirTask> subdirs;
  const size_t stop = limit ? out.size() + limit : SIZE_MAX;
  while (!todo.empty() && out.size() < stop) {
    DirTask t = std::move(todo.front());
    todo.pop_front();
    subdirs.clear();
    scan_dir(t, out, subdirs, log, sel);
    // Depth first keeps the local walk near where it is; the rest goes back to rank 0.
    for (auto it = subdirs.rbegin(); it != subdirs.rend(); ++it) todo.push_front(std::move(*it));
    if (interrupted()) return;
  }
}

// Entries of the roots themselves, and the first directory tasks.
// One named path (a root, or a path of a --files-from list) as an entry; a directory becomes a
// task when `descend`. False when it is not stored.
// `follow`: a symlink to a directory is stored as that directory (the parents of a
// --files-from path, which lie below it on disk).
bool scan_one(uint32_t root, const std::string& path, const std::string& disk, uint64_t dev, bool descend,
              EntryList& out, std::deque<DirTask>& todo, Log& log, const Selection* sel, bool follow = false) {
  struct stat st {};
  if (follow && ::stat(disk.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) {
  } else if (::lstat(disk.c_str(), &st) != 0) {
    log.warn(sys_message("cannot stat", disk, errno), disk);
    return false;
  }
  if (sel && sel->excluded(path, S_ISDIR(st.st_mode))) return false;
  Entry e;
  e.root = root;
  e.path = path;
  const bool details = !sel || !sel->defer_file_details;
  if (!make_entry(st, e, log, disk, details)) return false;
  if (e.type == EntryType::Symlink && !read_link(AT_FDCWD, disk.c_str(), disk, e.link, log)) return false;
  if (details && e.type == EntryType::File && ::access(disk.c_str(), R_OK) != 0) {
    not_stored_unreadable(log, disk);
    return false;
  }
  if (e.type == EntryType::Dir && descend) {
    if (sel && sel->one_file_system && dev != ~uint64_t{0} && st.st_dev != dev)
      log.info(quote(disk) + ": on another file system; its contents are not stored");
    else
      todo.push_back({root, path, disk, dev == ~uint64_t{0} ? st.st_dev : dev});
  }
  out.push_back(std::move(e));
  return true;
}

// "/a/./b//c/" -> "/a/b/c", relative paths made absolute from the working directory (lexically:
// symlinks are not resolved, so a listed path matches the root it was found under).
std::string lexical_absolute(const std::string& p) {
  std::string full = p;
  if (full.empty() || full[0] != '/') {
    char* cwd = ::getcwd(nullptr, 0);
    if (!cwd) throw Fatal(sys_message("cannot resolve", p, errno));
    full = std::string(cwd) + "/" + p;
    std::free(cwd);
  }
  std::vector<std::string> parts;
  size_t start = 0;
  while (start <= full.size()) {
    size_t end = full.find('/', start);
    if (end == std::string::npos) end = full.size();
    std::string c = full.substr(start, end - start);
    if (c == "..") {
      if (!parts.empty()) parts.pop_back();
    } else if (!c.empty() && c != ".") {
      parts.push_back(c);
    }
    start = end + 1;
  }
  std::string out;
  for (auto& c : parts) out += "/" + c;
  return out.empty() ? "/" : out;
}

// --files-from: each listed path is stored under the name its root gives it, with the
// directories between the root and it (so a restore recreates them); a listed directory is
// stored with everything below it (as GNU tar -T). Paths under no root are skipped with a warning.
void scan_listed(const std::vector<Root>& roots, const Selection& sel, EntryList& out, std::deque<DirTask>& todo, Log& log) {
  std::vector<std::string> root_abs, root_real;
  std::vector<uint64_t> root_dev;
  auto real = [](const std::string& p) {  // "" when it cannot be resolved
    char* r = ::realpath(p.c_str(), nullptr);
    std::string out = r ? r : "";
    std::free(r);
    return out;
  };
  for (auto& r : roots) {
    root_abs.push_back(lexical_absolute(r.disk));
    root_real.push_back(real(r.disk));
    struct stat st {};
    root_dev.push_back(::stat(r.disk.c_str(), &st) == 0 ? st.st_dev : ~uint64_t{0});  // through a symlinked root
  }
  struct Item {
    std::string path, disk;
    uint32_t root;
  };
  std::vector<Item> items;
  // Which root holds `abs` (by name): its index and the rest of the path after the root.
  auto match = [&](const std::string& abs, const std::vector<std::string>& bases, std::string& rest) -> int64_t {
    for (uint32_t i = 0; i < roots.size(); ++i) {
      const std::string& ra = bases[i];
      if (ra.empty()) continue;
      if (abs == ra) rest = "";
      else if (abs.size() > ra.size() && abs.compare(0, ra.size(), ra) == 0 && (ra == "/" || abs[ra.size()] == '/'))
        rest = abs.substr(ra == "/" ? 0 : ra.size());
      else continue;
      return i;
    }
    return -1;
  };
  for (const std::string& listed : sel.files) {
    std::string abs = lexical_absolute(listed), rest;
    int64_t i = match(abs, root_abs, rest);
    if (i < 0) {
      // the listing tool may print resolved paths (a root given through a symlink): the listed
      // path's directory resolved, against the roots resolved (only when names do not match)
      size_t slash = abs.rfind('/');
      std::string dir = real(slash ? abs.substr(0, slash) : "/");
      if (!dir.empty()) i = match((dir == "/" ? "" : dir) + abs.substr(slash), root_real, rest);
    }
    const bool found = i >= 0;
    if (found) items.push_back({roots[i].name + rest, roots[i].disk + rest, static_cast<uint32_t>(i)});
    if (!found) log.warn(quote(listed) + ": listed in --files-from but under none of the --sources roots; not stored", listed);
  }
  std::sort(items.begin(), items.end(), [](const Item& a, const Item& b) { return path_less(a.path, b.path); });
  std::set<std::string> stored;      // archive paths already made entries
  std::vector<std::string> scanned;  // listed directories walked whole (sorted as visited)
  auto under = [](const std::string& p, const std::string& dir) {
    return p.size() > dir.size() && p.compare(0, dir.size(), dir) == 0 && p[dir.size()] == '/';
  };
  for (const Item& it : items) {
    if (stored.count(it.path)) continue;
    if (!scanned.empty() && under(it.path, scanned.back())) continue;  // inside a walked directory
    // the directories from the root down to it, each once
    bool parents_ok = true;
    for (size_t slash = it.path.find('/'); slash != std::string::npos && parents_ok; slash = it.path.find('/', slash + 1)) {
      std::string p = it.path.substr(0, slash);
      if (stored.count(p)) continue;
      std::string d = roots[it.root].disk + it.path.substr(roots[it.root].name.size(), slash - roots[it.root].name.size());
      parents_ok = scan_one(it.root, p, d, root_dev[it.root], false, out, todo, log, &sel, true);
      if (parents_ok) stored.insert(p);
    }
    if (!parents_ok) continue;  // an excluded or unreadable parent: nothing below it is stored
    size_t before = todo.size();
    if (scan_one(it.root, it.path, it.disk, root_dev[it.root], true, out, todo, log, &sel)) {
      stored.insert(it.path);
      if (todo.size() > before) scanned.push_back(it.path);
    }
  }
}

// Entries of the roots themselves (or of the --files-from list), and the first directory tasks.
void scan_roots(const std::vector<Root>& roots, EntryList& out, std::deque<DirTask>& todo, Log& log, const Selection* sel) {
  if (sel && !sel->files.empty()) return scan_listed(roots, *sel, out, todo, log);
  for (uint32_t i = 0; i < roots.size(); ++i)
    scan_one(i, roots[i].name, roots[i].disk, ~uint64_t{0}, true, out, todo, log, sel);
}

// A worker keeps what it finds; only the directories it did not open go back.
EntryList scan_worker(Comm& comm, Log& log, const Selection* sel) {
  EntryList mine;
  comm.send(0, kTagResult, to_wire(ScanResult{}));  // ask for work
  while (true) {
    ScanResult res;
    res.left = from_wire<std::deque<DirTask>>(comm.recv(0, kTagWork));
    if (res.left.empty()) return mine;  // done
    scan_some(res.left, mine, log, kBatchEntries, sel);
    if (interrupted()) res.left.clear();
    res.found = mine.size();
    comm.send(0, kTagResult, to_wire(res));
  }
}

EntryList scan_coordinator(Comm& comm, const std::vector<Root>& roots, Log& log, const Selection* sel, std::atomic<uint64_t>* found) {
  EntryList all;
  std::deque<DirTask> queue;
  scan_roots(roots, all, queue, log, sel);
  const int workers = comm.size() - 1;
  std::vector<int> idle;
  int busy = workers;  // every worker starts by asking
  std::vector<uint64_t> held(static_cast<size_t>(comm.size()), 0);  // entries each worker keeps (progress)
  uint64_t held_total = 0;
  while (true) {
    while (!queue.empty() && !idle.empty()) {
      int w = idle.back();
      idle.pop_back();
      // Share the queue out: a few directories each, at least one.
      size_t k = std::clamp<size_t>(queue.size() / (2 * workers), 1, 64);
      std::deque<DirTask> batch(std::make_move_iterator(queue.begin()), std::make_move_iterator(queue.begin() + static_cast<std::ptrdiff_t>(k)));
      queue.erase(queue.begin(), queue.begin() + static_cast<std::ptrdiff_t>(k));
      comm.send(w, kTagWork, to_wire(batch));
      ++busy;
    }
    if (busy == 0 && (queue.empty() || interrupted())) break;
    // Rank 0 scans too while directories are waiting and no worker is asking: in small steps,
    // so a worker that asks is served within a fraction of a millisecond.
    std::optional<std::pair<int, std::string>> got;
    if (found) *found = all.size() + held_total;
    if (!queue.empty() && !interrupted()) {
      got = comm.try_recv_any(kTagResult);
      if (!got) {
        scan_some(queue, all, log, kLocalStepEntries, sel);
        continue;
      }
    } else {
      got = comm.recv_any(kTagResult);
    }
    auto& [src, bytes] = *got;
    --busy;
    idle.push_back(src);
    ScanResult res = from_wire<ScanResult>(bytes);
    for (auto& t : res.left) queue.push_back(std::move(t));
    if (src > 0 && static_cast<size_t>(src) < held.size() && res.found >= held[static_cast<size_t>(src)]) {
      held_total += res.found - held[static_cast<size_t>(src)];
      held[static_cast<size_t>(src)] = res.found;
    }
  }
  std::string d = to_wire(std::deque<DirTask>{});
  for (int w = 1; w <= workers; ++w) comm.send(w, kTagWork, d);
  return all;
}

}  // namespace

std::vector<Root> resolve_roots(const std::vector<std::string>& sources, Log* log) {
  if (sources.empty()) throw Fatal("no --sources given");
  std::vector<Root> roots;
  std::set<std::string> names;
  for (std::string s : sources) {
    while (s.size() > 1 && s.back() == '/') s.pop_back();
    struct stat st {};
    if (::lstat(s.c_str(), &st) != 0) throw Fatal(sys_message("source", s, errno));
    std::string name = s.substr(s.rfind('/') == std::string::npos ? 0 : s.rfind('/') + 1);
    if (name.empty() || name == "." || name == "..") {
      char* real = ::realpath(s.c_str(), nullptr);
      if (!real) throw Fatal(sys_message("source", s, errno));
      std::string r(real);
      std::free(real);
      name = r.substr(r.rfind('/') + 1);
      if (name.empty()) throw Fatal("source " + quote(s) + ": cannot store '/' under a base name; give its subdirectories");
    }
    if (!names.insert(name).second)
      throw Fatal("two sources have the same base name " + quote(name) + " (" + s +
                  "): each root is stored under its base name, so they would collide");
    // A symlink named as a source is followed (tar -h for this operand only, find -H): its
    // target is read from its real path and stored under the link's name. Links inside the
    // tree stay links. A dangling one is stored as the link it is.
    if (S_ISLNK(st.st_mode)) {
      struct stat target {};
      char* real = ::stat(s.c_str(), &target) == 0 ? ::realpath(s.c_str(), nullptr) : nullptr;
      if (real) {
        std::string r(real);
        std::free(real);
        if (log) log->notice("source " + quote(s) + " is a symlink: following it to " + quote(r) + ", stored as " + quote(name));
        s = r;
      } else if (log) {
        log->notice(sys_message("source is a dangling symlink, stored as a link:", s, errno));
      }
    }
    roots.push_back({s, name});
  }
  return roots;
}

EntryList scan(Comm& comm, const std::vector<Root>& roots, Log& log, const Selection* sel, std::atomic<uint64_t>* found) {
  if (comm.size() == 1) {
    EntryList all;
    std::deque<DirTask> todo;
    scan_roots(roots, all, todo, log, sel);
    while (!todo.empty() && !interrupted()) {  // in batches, counting for the progress lines
      scan_some(todo, all, log, kBatchEntries, sel);
      if (found) *found = all.size();
    }
    return all;
  }
  if (comm.rank() == 0) return scan_coordinator(comm, roots, log, sel, found);
  return scan_worker(comm, log, sel);
}

void read_file_details(EntryList& mine, const std::vector<Root>& roots, Log& log) {
  // As the scan does: the file is looked at from its directory, opened below the root without
  // following a symlink (a path past PATH_MAX works; a directory swapped for a link fails), and
  // one directory fd serves its files (the list is in path order).
  Fd dir;
  std::string dir_path;  // archive path of `dir`
  size_t w = 0;          // compacted in place
  for (size_t k = 0; k < mine.size(); ++k) {
    Entry& e = mine[k];
    if (e.type != EntryType::Dir) {
      const std::string disk = disk_path(e, roots);
      const size_t slash = e.path.rfind('/');
      const size_t disk_slash = disk.rfind('/');
      if (slash == std::string::npos || disk_slash == std::string::npos)
        throw Fatal("internal: read_file_details: " + quote(e.path) + " is a root");
      const std::string_view parent(e.path.data(), slash);
      if (!dir || dir_path != parent) {
        dir = Fd(open_below_root(disk.substr(0, disk_slash), std::string(parent), O_RDONLY | O_DIRECTORY | O_NOFOLLOW, false));
        dir_path = parent;
      }
      const std::string name = disk.substr(disk_slash + 1);
      struct stat st {};
      const bool found = dir && ::fstatat(dir.get(), name.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0;
      if (!found && e.type == EntryType::File) {  // gone since the scan (another type is stored as scanned)
        not_stored_unreadable(log, disk);
        continue;
      }
      // replaced since the scan (another inode or type): the read stage sees it; no details
      const bool same = found && st.st_ino == e.ino && st.st_dev == e.dev &&
                        (e.type == EntryType::File ? S_ISREG(st.st_mode) : e.type != EntryType::Symlink || S_ISLNK(st.st_mode));
      if (same && e.type == EntryType::File && ::faccessat(dir.get(), name.c_str(), R_OK, AT_EACCESS) != 0) {
        not_stored_unreadable(log, disk);
        continue;
      }
      if (same && e.type != EntryType::Symlink) e.xattrs = read_xattr_records(disk, log);
      if (same && e.type == EntryType::File) e.sparse = find_holes(disk, st);  // checks the inode again
    }
    if (w != k) mine[w] = std::move(e);
    ++w;
  }
  mine.resize(w);
}

void order_entries(EntryList& entries) {
  sort_entries(entries);
  mark_hardlinks(entries);
}

}  // namespace pbackup
