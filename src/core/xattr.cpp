// Extended attributes, POSIX ACLs and owner names (see xattr.h).
#include "core/xattr.h"

#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <map>
#include <mutex>
#include <unordered_map>

#include "core/read.h"
#include "util/file_util.h"
#include "format/pax.h"
#include "pbackup/entry.h"
#include "pbackup/error.h"
#include "pbackup/log.h"

namespace pbackup {
namespace {

// Kernel ACL xattr layout (include/uapi/linux/posix_acl_xattr.h), little-endian.
constexpr uint32_t kAclVersion = 2;
constexpr uint16_t kUserObj = 0x01, kUser = 0x02, kGroupObj = 0x04, kGroup = 0x08, kMask = 0x10, kOther = 0x20;
constexpr uint32_t kUndefinedId = 0xffffffffu;
constexpr size_t kMaxRecords = 512 * 1024;  // stays well inside the 1 MiB pax header limit
constexpr std::string_view kAclAccessXattr = "system.posix_acl_access";
constexpr std::string_view kAclDefaultXattr = "system.posix_acl_default";

uint32_t le32(const char* p) {
  const auto* u = reinterpret_cast<const unsigned char*>(p);
  return u[0] | (u[1] << 8) | (u[2] << 16) | (static_cast<uint32_t>(u[3]) << 24);
}
uint16_t le16(const char* p) {
  const auto* u = reinterpret_cast<const unsigned char*>(p);
  return static_cast<uint16_t>(u[0] | (u[1] << 8));
}
void put_le(std::string& s, uint32_t v, int bytes) {
  for (int i = 0; i < bytes; ++i) s += static_cast<char>((v >> (8 * i)) & 0xff);
}

std::mutex g_names_mu;
std::unordered_map<uint32_t, std::string> g_users, g_groups;
std::unordered_map<std::string, std::optional<uint32_t>> g_uids, g_gids;
// Names come from archives too (uname, gname, ACL qualifiers): a hostile one holds millions of
// distinct ones, so each cache is emptied when it reaches this many (real hosts have far fewer).
constexpr size_t kMaxCachedNames = 1u << 16;
// The cached answer for `key` in `m`, asking `lookup(buf)` (a get*_r call into `buf`) only
// the first time; the cache is bounded as said above.
template <class Map, class Lookup>
typename Map::mapped_type cached(Map& m, const typename Map::key_type& key, Lookup lookup) {
  std::lock_guard<std::mutex> l(g_names_mu);
  auto it = m.find(key);
  if (it != m.end()) return it->second;
  std::vector<char> buf(16384);
  typename Map::mapped_type value = lookup(buf);
  if (m.size() >= kMaxCachedNames) m.clear();
  return m.emplace(key, value).first->second;
}

// listxattr / getxattr on a path without following a symlink; paths at or over PATH_MAX through
// an fd (opened O_NOFOLLOW, so the result is the same object's).
struct XattrSource {
  const std::string& disk;
  Fd fd;
  explicit XattrSource(const std::string& d) : disk(d) {
    if (d.size() >= PATH_MAX) fd = Fd(open_long_path(d, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY));
  }
  ssize_t list(char* buf, size_t n) {
    return fd ? ::flistxattr(fd.get(), buf, n) : ::llistxattr(disk.c_str(), buf, n);
  }
  ssize_t get(const char* name, char* buf, size_t n) {
    return fd ? ::fgetxattr(fd.get(), name, buf, n) : ::lgetxattr(disk.c_str(), name, buf, n);
  }
};

// The whole value of one attribute (retrying if it grows between the size query and the read).
bool get_value(XattrSource& src, const char* name, std::string& out, int& err) {
  for (int attempt = 0; attempt < 4; ++attempt) {
    ssize_t n = src.get(name, nullptr, 0);
    if (n < 0) break;
    out.resize(static_cast<size_t>(n));
    ssize_t got = src.get(name, out.data(), out.size());
    if (got >= 0) {
      out.resize(static_cast<size_t>(got));
      return true;
    }
    if (errno != ERANGE) break;
  }
  err = errno;
  return false;
}

}  // namespace

std::string user_name(uint32_t uid) {
  return cached(g_users, uid, [&](std::vector<char>& buf) -> std::string {
    struct passwd pw {}, *res = nullptr;
    return ::getpwuid_r(uid, &pw, buf.data(), buf.size(), &res) == 0 && res ? res->pw_name : "";
  });
}

std::string group_name(uint32_t gid) {
  return cached(g_groups, gid, [&](std::vector<char>& buf) -> std::string {
    struct group gr {}, *res = nullptr;
    return ::getgrgid_r(gid, &gr, buf.data(), buf.size(), &res) == 0 && res ? res->gr_name : "";
  });
}

std::optional<uint32_t> user_id(const std::string& name) {
  if (name.empty()) return std::nullopt;
  return cached(g_uids, name, [&](std::vector<char>& buf) -> std::optional<uint32_t> {
    struct passwd pw {}, *res = nullptr;
    if (::getpwnam_r(name.c_str(), &pw, buf.data(), buf.size(), &res) == 0 && res) return res->pw_uid;
    return std::nullopt;
  });
}

std::optional<uint32_t> group_id(const std::string& name) {
  if (name.empty()) return std::nullopt;
  return cached(g_gids, name, [&](std::vector<char>& buf) -> std::optional<uint32_t> {
    struct group gr {}, *res = nullptr;
    if (::getgrnam_r(name.c_str(), &gr, buf.data(), buf.size(), &res) == 0 && res) return res->gr_gid;
    return std::nullopt;
  });
}

size_t cached_names() {
  std::lock_guard<std::mutex> l(g_names_mu);
  return g_users.size() + g_groups.size() + g_uids.size() + g_gids.size();
}

std::string acl_xattr_to_text(std::string_view v) {
  if (v.size() < 4 || (v.size() - 4) % 8 != 0 || le32(v.data()) != kAclVersion) throw Fatal("malformed ACL attribute");
  std::string text;
  for (size_t at = 4; at < v.size(); at += 8) {
    uint16_t tag = le16(v.data() + at), perm = le16(v.data() + at + 2);
    uint32_t id = le32(v.data() + at + 4);
    std::string qual;
    switch (tag) {
      case kUserObj: text += "user:"; break;
      case kUser: text += "user:"; qual = user_name(id); if (qual.empty()) qual = std::to_string(id); break;
      case kGroupObj: text += "group:"; break;
      case kGroup: text += "group:"; qual = group_name(id); if (qual.empty()) qual = std::to_string(id); break;
      case kMask: text += "mask:"; break;
      case kOther: text += "other:"; break;
      default: throw Fatal("ACL entry with unknown tag " + std::to_string(tag));
    }
    text += qual + ":";
    text += (perm & 4) ? 'r' : '-';
    text += (perm & 2) ? 'w' : '-';
    text += (perm & 1) ? 'x' : '-';
    text += '\n';
  }
  return text;
}

std::string acl_text_to_xattr(std::string_view text, std::string& why) {
  struct E {
    uint16_t tag, perm;
    uint32_t id;
  };
  std::vector<E> entries;
  size_t start = 0;
  while (start <= text.size()) {
    size_t end = text.find_first_of(",\n", start);
    if (end == std::string_view::npos) end = text.size();
    std::string_view ent = text.substr(start, end - start);
    start = end + 1;
    if (size_t hash = ent.find('#'); hash != std::string_view::npos) ent = ent.substr(0, hash);
    while (!ent.empty() && (ent.front() == ' ' || ent.front() == '\t')) ent.remove_prefix(1);
    while (!ent.empty() && (ent.back() == ' ' || ent.back() == '\t' || ent.back() == '\r')) ent.remove_suffix(1);
    if (ent.empty()) continue;
    std::vector<std::string> f;
    for (size_t p = 0;;) {
      size_t c = ent.find(':', p);
      f.emplace_back(ent.substr(p, c == std::string_view::npos ? std::string_view::npos : c - p));
      if (c == std::string_view::npos) break;
      p = c + 1;
    }
    const std::string& tag = f[0];
    bool user = tag == "user" || tag == "u", group = tag == "group" || tag == "g";
    bool mask = tag == "mask" || tag == "m", other = tag == "other" || tag == "o";
    if ((mask || other) && f.size() == 2) f.insert(f.begin() + 1, "");
    if (!(user || group || mask || other) || f.size() < 3 || f.size() > 4) {
      why = "bad ACL entry " + quote(std::string(ent));
      return "";
    }
    uint16_t perm = 0;
    for (char c : f[2]) {
      if (c == 'r') perm |= 4;
      else if (c == 'w') perm |= 2;
      else if (c == 'x') perm |= 1;
      else if (c != '-') {
        why = "bad ACL permissions in " + quote(std::string(ent));
        return "";
      }
    }
    E e{0, perm, kUndefinedId};
    const std::string& q = f[1];
    if (mask) e.tag = kMask;
    else if (other) e.tag = kOther;
    else if (q.empty()) e.tag = user ? kUserObj : kGroupObj;
    else {
      e.tag = user ? kUser : kGroup;
      std::optional<uint32_t> id = user ? user_id(q) : group_id(q);
      auto numeric = [](const std::string& s) -> std::optional<uint32_t> {
        if (s.empty() || s.size() > 10 || s.find_first_not_of("0123456789") != std::string::npos) return std::nullopt;
        uint64_t v = std::stoull(s);
        if (v >= kUndefinedId) return std::nullopt;
        return static_cast<uint32_t>(v);
      };
      if (!id) id = numeric(q);                      // a number, or a name unknown here...
      if (!id && f.size() == 4) id = numeric(f[3]);  // ...with the id libarchive adds
      if (!id) {
        why = std::string("unknown ") + (user ? "user " : "group ") + quote(q) + " in ACL";
        return "";
      }
      e.id = *id;
    }
    entries.push_back(e);
  }
  std::stable_sort(entries.begin(), entries.end(), [](const E& a, const E& b) { return a.tag != b.tag ? a.tag < b.tag : a.id < b.id; });
  std::string out;
  put_le(out, kAclVersion, 4);
  for (const E& e : entries) {
    put_le(out, e.tag, 2);
    put_le(out, e.perm, 2);
    put_le(out, e.id, 4);
  }
  return out;
}

std::string read_xattr_records(const std::string& disk, Log& log) {
  XattrSource src(disk);
  std::string names;
  for (int attempt = 0; attempt < 4; ++attempt) {
    ssize_t n = src.list(nullptr, 0);
    if (n <= 0) {
      if (n < 0 && errno != ENOTSUP && errno != ENOENT)
        log.warn(sys_message("cannot list extended attributes of", disk, errno) + " (stored without them)", disk);
      return "";
    }
    names.resize(static_cast<size_t>(n));
    ssize_t got = src.list(names.data(), names.size());
    if (got >= 0) {
      names.resize(static_cast<size_t>(got));
      break;
    }
    if (errno != ERANGE || attempt == 3) {
      log.warn(sys_message("cannot list extended attributes of", disk, errno) + " (stored without them)", disk);
      return "";
    }
  }
  std::map<std::string, std::string> xattrs;  // name order: the archive must not depend on the file system's
  std::string acl_access, acl_default;
  for (size_t p = 0; p < names.size();) {
    size_t z = names.find('\0', p);
    if (z == std::string::npos) z = names.size();
    std::string name = names.substr(p, z - p);
    p = z + 1;
    if (name.empty()) continue;
    bool access = name == kAclAccessXattr, deflt = name == kAclDefaultXattr;
    if (name.rfind("system.", 0) == 0 && !access && !deflt) continue;
    std::string value;
    int err = 0;
    if (!get_value(src, name.c_str(), value, err)) {
      if (err != ENODATA)  // removed since the list
        log.warn(sys_message("cannot read extended attribute " + quote(name) + " of", disk, err) + " (stored without it)", disk);
      continue;
    }
    try {
      if (access) acl_access = acl_xattr_to_text(value);
      else if (deflt) acl_default = acl_xattr_to_text(value);
      else xattrs.emplace(std::move(name), std::move(value));
    } catch (const Fatal& f) {
      log.warn(quote(disk) + ": " + f.what() + " in " + quote(name) + " (stored without it)", disk);
    }
  }
  std::string recs;
  if (!acl_access.empty()) add_pax_record(recs, kAclAccessKey, acl_access);
  if (!acl_default.empty()) add_pax_record(recs, kAclDefaultKey, acl_default);
  for (auto& [name, value] : xattrs) add_pax_record(recs, std::string(kXattrKey) + encode_xattr_name(name), value);
  if (recs.size() > kMaxRecords) {
    log.warn(quote(disk) + ": extended attributes and ACLs of " + std::to_string(recs.size()) + " bytes exceed " +
             std::to_string(kMaxRecords) + "; stored without them", disk);
    return "";
  }
  return recs;
}

void apply_xattr_records(int fd, std::string_view records, bool is_dir, const std::string& path, std::vector<std::string>& warnings) {
  if (records.empty()) return;
  constexpr uint64_t kMaxWarningsPerFile = 8;
  uint64_t refused = 0;
  bool have_access = false, have_default = false;
  for_each_pax_record(records, [&](std::string_view k, std::string_view) {
    have_access |= k == kAclAccessKey;
    have_default |= k == kAclDefaultKey;
  });
  for_each_pax_record(records, [&](std::string_view key, std::string_view value) {
    std::string name, bin, what;
    if (key == kAclAccessKey || key == kAclDefaultKey) {
      bool access = key == kAclAccessKey;
      if (!access && !is_dir) return;
      what = access ? "access ACL" : "default ACL";
      std::string why;
      bin = acl_text_to_xattr(value, why);
      if (bin.empty()) {
        warnings.push_back(quote(path) + ": cannot restore " + what + ": " + why);
        return;
      }
      name = access ? kAclAccessXattr : kAclDefaultXattr;
      value = bin;
    } else if (key.substr(0, kXattrKey.size()) == kXattrKey) {
      name = decode_xattr_name(key.substr(kXattrKey.size()));
      // GNU tar --xattrs-include='*' stores the ACLs twice; the text form wins.
      if ((name == kAclAccessXattr && have_access) || (name == kAclDefaultXattr && have_default)) return;
      if (name == kAclDefaultXattr && !is_dir) return;
      what = "extended attribute " + quote(name);
    } else {
      return;
    }
    if (::fsetxattr(fd, name.c_str(), value.data(), value.size(), 0) != 0) {
      if (++refused <= kMaxWarningsPerFile) warnings.push_back(sys_message("cannot restore " + what + " of", path, errno));
    }
  });
  // a hostile header holds tens of thousands of attributes: one line for the rest, not one each
  if (refused > kMaxWarningsPerFile)
    warnings.push_back(quote(path) + ": " + std::to_string(refused - kMaxWarningsPerFile) +
                       " more extended attributes not restored (warnings above for the first " +
                       std::to_string(kMaxWarningsPerFile) + ")");
}

bool DeferredXattrs::add(const std::string& path, std::string records) {
  const size_t n = path.size() + records.size();
  if (n > limit_ - std::min(limit_, bytes_)) return false;
  bytes_ += n;
  items_.emplace_back(path, std::move(records));
  return true;
}

XattrKinds xattr_kinds(std::string_view records) {
  XattrKinds k;
  if (records.empty()) return k;
  for_each_pax_record(records, [&](std::string_view key, std::string_view) {
    if (key == kAclAccessKey || key == kAclDefaultKey) k.acls = true;
    else k.xattrs = true;
  });
  return k;
}

void count_xattr_entries(const std::deque<Entry>& entries, uint64_t& xattrs, uint64_t& acls, uint64_t& sparse) {
  xattrs = acls = sparse = 0;
  for (const Entry& e : entries) {
    sparse += !e.sparse.empty();
    XattrKinds k = xattr_kinds(e.xattrs.str());
    xattrs += k.xattrs;
    acls += k.acls;
  }
}

}  // namespace pbackup
