// pax extended-header records ("LEN KEY=VALUE\n", LEN counting the whole record) and the
// keys for extended attributes and POSIX ACLs as GNU tar and libarchive write them:
//   SCHILY.xattr.NAME=<raw bytes>       (GNU tar, star, libarchive; '%' and '=' in NAME are
//                                        written %25 and %3D, as GNU tar does)
//   LIBARCHIVE.xattr.NAME=<base64>      (libarchive; NAME %-encoded; read only)
//   SCHILY.acl.access / SCHILY.acl.default = ACL text (acl_to_text: entries separated by
//                                        newlines or commas, optionally a 4th field with the id)
// An entry's xattrs and ACLs travel through the pipeline as their SCHILY records, rendered once.
#pragma once
#include <functional>
#include <string>
#include <string_view>

namespace pbackup {

void add_pax_record(std::string& recs, std::string_view key, std::string_view value);

// Calls f(key, value) for each record; throws Fatal on a malformed record.
void for_each_pax_record(std::string_view data, const std::function<void(std::string_view, std::string_view)>& f);

constexpr std::string_view kXattrKey = "SCHILY.xattr.";
constexpr std::string_view kLibarchiveXattrKey = "LIBARCHIVE.xattr.";
constexpr std::string_view kAclAccessKey = "SCHILY.acl.access";
constexpr std::string_view kAclDefaultKey = "SCHILY.acl.default";

// An xattr name as a pax key suffix ('%' -> %25, '=' -> %3D) and back (any %XX decoded).
std::string encode_xattr_name(std::string_view name);
std::string decode_xattr_name(std::string_view key);
// base64 (RFC 4648, padding optional, as libarchive writes it); false on a bad character.
bool decode_base64(std::string_view in, std::string& out);

// Whether `s` is valid UTF-8 (strict: no overlong forms, no surrogates, nothing past U+10FFFF).
// Names that are not get pax's hdrcharset=BINARY and no zip UTF-8 flag.
bool valid_utf8(std::string_view s);

}  // namespace pbackup
