// One file-system object found by the scan, as it will be stored in the archive.
// `path` is the archive path ('/'-separated, starting with the source root's base name);
// `root` indexes the list of source roots so the on-disk path can be rebuilt without
// storing it twice (rank 0 keeps one Entry per file, so every byte here counts).
#pragma once
#include <cstdint>
#include <deque>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "pbackup/compact_string.h"
#include "pbackup/wire.h"

namespace pbackup {

enum class EntryType : uint8_t { File = 0, Dir = 1, Symlink = 2, Hardlink = 3, Fifo = 4 };

struct Entry {
  std::string path;  // archive path, no leading or trailing '/'
  std::string link;  // symlink target, or the archive path a hard link points to
  InternedString owner;  // "uname:gname" (':' occurs in neither); a side empty when unknown
  RareString xattrs;     // SCHILY.acl.* / SCHILY.xattr.* pax records (format/pax.h); mostly ""
  RareString sparse;     // data regions of a file with holes (format/sparse.h); mostly ""
  uint64_t size = 0;
  int64_t mtime_sec = 0;
  uint32_t mtime_nsec = 0;
  uint32_t ctime_nsec = 0;  // status change time: incremental backups (issue 15) compare it
  int64_t ctime_sec = 0;    // (here, after the 4-byte fields, Entry stays 160 bytes)
  uint32_t mode = 0;  // permission bits (07777)
  uint32_t uid = 0, gid = 0;
  uint32_t nlink = 1;
  uint64_t dev = 0, ino = 0;
  uint32_t root = 0;
  EntryType type = EntryType::File;
  bool operator==(const Entry&) const = default;
};

// Rank 0 keeps one Entry per file. A deque grows without the vector's copy-and-double peak, so
// the peak stays one Entry (plus its path) per file.
using EntryList = std::deque<Entry>;

// A source root: where it lives on disk and the name it gets in the archive.
struct Root {
  std::string disk;  // as given by the user
  std::string name;  // base name used as the first archive path component
  bool operator==(const Root&) const = default;
};

// The user and group names of `e.owner` ("uname:gname"; either side may be empty).
inline std::pair<std::string, std::string> owner_names(const Entry& e) {
  const std::string& o = e.owner.str();
  const size_t colon = o.find(':');
  return {o.substr(0, colon), colon == std::string::npos ? "" : o.substr(colon + 1)};
}

// Path on disk of an entry: the root's disk path plus everything after the first component.
std::string disk_path(const Entry& e, const std::vector<Root>& roots);
// The same for an archive path stored under the root `r` (its first component is r.name).
std::string disk_path(const Root& r, std::string_view path);

// Ordering used everywhere: component by component, so a directory's contents stay together.
bool path_less(std::string_view a, std::string_view b);

template <class Ar>
void fields(Ar& a, Entry& e) {
  a(e.path), a(e.link), a(e.owner), a(e.xattrs), a(e.sparse), a(e.size), a(e.mtime_sec), a(e.mtime_nsec), a(e.ctime_sec), a(e.ctime_nsec), a(e.mode), a(e.uid), a(e.gid), a(e.nlink);
  a(e.dev), a(e.ino), a(e.root), a(e.type);
}
template <class Ar>
void fields(Ar& a, Root& r) {
  a(r.disk), a(r.name);
}

}  // namespace pbackup
