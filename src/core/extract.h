// Writing restored entries below a restore directory, safely and from many threads: every
// path is walked component by component with O_NOFOLLOW from the restore directory's fd, so
// nothing is ever written through a symlink, whatever the archive or the existing tree holds.
// Regular files are filled in by whichever thread holds each part of their data; links, fifos
// and all metadata (owners, modes, times; directories deepest first) are applied at the end.
#pragma once
#include <cstdint>
#include <ctime>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "pbackup/bytes.h"
#include "pbackup/wire.h"
#include "pbackup/log.h"
#include "util/file_util.h"

namespace pbackup {

// An entry's metadata, applied in the final pass.
struct RestoredEntry {
  std::string path, link;  // sanitized, relative to the restore directory
  char type = '0';         // tar typeflag: '0' file, '1' hard link, '2' symlink, '5' dir, '6' fifo
  uint32_t mode = 0, uid = 0, gid = 0;
  int64_t mtime = 0;
  uint32_t mtime_nsec = 0;
  bool done = false;  // metadata already applied (a file whose data was all in one block)
  std::string xattrs{};  // SCHILY.acl.* / SCHILY.xattr.* pax records (format/pax.h)
  bool operator==(const RestoredEntry&) const = default;
};
template <class Ar>
void fields(Ar& a, RestoredEntry& e) {
  a(e.path), a(e.link), a(e.type), a(e.mode), a(e.uid), a(e.gid), a(e.mtime), a(e.mtime_nsec), a(e.done), a(e.xattrs);
}

class Extractor {
 public:
  // Creates `restore_dir` if missing. Attributes the target refuses are warnings to `log`.
  explicit Extractor(const std::string& restore_dir, Log* log = nullptr);
  ~Extractor();
  Extractor(const Extractor&) = delete;
  Extractor& operator=(const Extractor&) = delete;

  // Creates `path` as a new regular file of `size` bytes (mode 0600 until the final pass):
  // whatever was at that name (a file, a hard link that predates the restore, perhaps to a file
  // outside, a symlink, an empty directory) is removed first and the file is made with O_EXCL,
  // so restored data only ever goes into an inode this restore created.
  Fd create(const std::string& path, uint64_t size);
  // create() and writes `head` at offset 0. With `meta` (all of the file's data is in `head`),
  // also applies owner, mode and time; returns whether it did.
  bool create_file(const std::string& path, uint64_t size, std::string_view head, const RestoredEntry* meta = nullptr);
  // The same for a whole GNU sparse 1.0 member (`data`: map and regions): a file of `realsize`
  // bytes whose holes are never written. Throws Fatal on a bad map.
  bool create_sparse_file(const std::string& path, uint64_t realsize, std::string_view data, const RestoredEntry* meta);
  // Writes data at `offset` into a file that create() made (on any rank), whose inode number
  // is `ino`: opened without O_CREAT and without following symlinks, and written only if it is
  // still that regular file; otherwise throws, naming the file.
  void write_part(const std::string& path, uint64_t ino, uint64_t offset, std::string_view data);
  // The same for several pieces (file offset, bytes) through one open: a sparse file's regions.
  void write_parts(const std::string& path, uint64_t ino, const std::vector<std::pair<uint64_t, std::string_view>>& pieces);
  void make_dir(const std::string& path);
  // Applies xattr/ACL records to `path` (walked without following symlinks; `type` as in
  // RestoredEntry: the object must still be that); for the streaming restore. Refusals and
  // mismatches are warnings.
  void apply_xattrs(const std::string& path, char type, std::string_view records);
  // Removes a file whose data turned out damaged, so nothing partial is left looking complete.
  void remove_file(const std::string& path);
  // remove_file for a name the manifest lists as damaged, after the restore: looked up without
  // creating directories, and removed only if it is a regular file changed at or after `since`
  // (so this restore made it); a file that was in the restore directory before is no business
  // of the damaged list. Returns whether it removed one.
  bool remove_damaged(const std::string& path, const struct timespec& since);
  // Directories this extractor created because a member lay below them (not make_dir's).
  std::vector<std::string> implied_dirs() const;
  // Creates links and fifos, then applies metadata; directories last, deepest first.
  // Problems are reported through `log.error`; returns how many.
  size_t finish(std::vector<RestoredEntry>& entries, Log& log, int threads);

 private:
  // The directory holding `path`, walked without following symlinks; the fd stays owned by a
  // per-thread cache (consecutive entries mostly share a parent) and is valid until the next
  // call on the same thread.
  int open_parent(const std::string& path, std::string& leaf);
  // A new fd the caller closes; missing directories are created (and remembered as implied)
  // unless `create` is false.
  // With `missing`, a missing directory (create false) sets it and returns -1 instead of throwing.
  int walk(const std::string& dir_path, bool create = true, bool* missing = nullptr);
  void forget_cached_dirs();
  // xattrs and ACLs through `fd`, after the owner and before the mode (a read-only mode would
  // refuse user.* attributes); refusals are warnings naming the file and the attribute.
  void set_xattrs(int fd, const RestoredEntry& e);
  bool finish_file(int fd, const std::string& path, const RestoredEntry* meta);
  int root_ = -1;
  std::string dir_;
  Log* log_ = nullptr;
  mutable std::mutex implied_mu_;
  std::vector<std::string> implied_;
};

// The owner to restore: as root, the ids of the member's user and group names where they
// exist on this host (as GNU tar), else its ids; `numeric` uses the ids only.
struct TarMember;
void owner_ids(const TarMember& m, bool numeric, uint32_t& uid, uint32_t& gid);

// Sanitizes a member name for extraction (see restore.cpp): strips leading '/', refuses '..'.
bool sanitize_member(std::string& name, std::string& why);

// True if `path` is `sel` or lies below it; a `sel` with glob characters (select.h's rules)
// selects the paths it matches and everything below them.
bool path_selected(const std::string& path, const std::vector<std::string>& only);

}  // namespace pbackup
