// Extended attributes, POSIX ACLs and owner names: read at scan time into an entry's pax
// records (format/pax.h), applied at restore through the O_NOFOLLOW fd the other metadata goes
// through. Hand-written over flistxattr/fgetxattr/fsetxattr and the kernel's ACL xattr format
// (system.posix_acl_access/default), not libarchive's archive_read_disk/archive_write_disk: the
// scan already has lstat data and needs only one llistxattr per entry (no open for the common
// case of no attributes), and restore applies them through our own fds (parallel paths create
// files themselves, without a libarchive entry). See DESIGN §6.
#pragma once
#include <cstdint>
#include <deque>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace pbackup {

class Log;

// The SCHILY.acl.* and SCHILY.xattr.* records of `disk` (not following a symlink): ACLs as
// acl_to_text writes them, the other xattrs in name order (system.* left out: the ACLs are
// stored as text). "" when there are none. Unreadable attributes are warnings naming the file.
std::string read_xattr_records(const std::string& disk, Log& log);

// Applies the records to the open file `fd` (`is_dir`: default ACLs apply). Each attribute or
// ACL the file system refuses adds a message naming `path` and the attribute to `warnings`.
void apply_xattr_records(int fd, std::string_view records, bool is_dir, const std::string& path,
                         std::vector<std::string>& warnings);

// Kernel ACL xattr value <-> ACL text. to_text throws Fatal on a malformed value; from_text
// returns "" and sets `why` when the text cannot be applied (bad entry, unknown name).
std::string acl_xattr_to_text(std::string_view value);
std::string acl_text_to_xattr(std::string_view text, std::string& why);

// Directory records held back until the whole archive is restored (streaming restore: a
// default ACL applied early would be inherited by members that had none, and a later chmod
// would rewrite the ACL mask), bounded: a compressed archive of repeated ~1 MiB headers is
// ~750 times smaller than its records, so past `limit` bytes add() refuses and the caller
// applies that directory's records at once.
class DeferredXattrs {
 public:
  explicit DeferredXattrs(size_t limit) : limit_(limit) {}
  bool add(const std::string& path, std::string records);
  const std::vector<std::pair<std::string, std::string>>& items() const { return items_; }

 private:
  size_t limit_, bytes_ = 0;
  std::vector<std::pair<std::string, std::string>> items_;
};
constexpr size_t kMaxDeferredXattrBytes = 64u << 20;

// Which kinds of metadata the records hold (zip warnings, manifest counts).
struct XattrKinds {
  bool xattrs = false, acls = false;
};
XattrKinds xattr_kinds(std::string_view records);
// The manifest's counts: entries with xattrs, with ACLs, stored sparse.
struct Entry;
void count_xattr_entries(const std::deque<Entry>& entries, uint64_t& xattrs, uint64_t& acls, uint64_t& sparse);

// Cached name lookups ("" / nullopt when unknown). Thread-safe.
std::string user_name(uint32_t uid);
std::string group_name(uint32_t gid);
std::optional<uint32_t> user_id(const std::string& name);
std::optional<uint32_t> group_id(const std::string& name);
// Entries in those caches (each bounded; for tests).
size_t cached_names();

}  // namespace pbackup
