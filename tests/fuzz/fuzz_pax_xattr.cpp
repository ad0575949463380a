// libFuzzer target: the pax record parser and what restore does with xattr/ACL records
// (for_each_pax_record, decode_xattr_name, decode_base64, acl_text_to_xattr, xattr_kinds).
// Contract: Fatal on a malformed record list, nothing else; an ACL text that converts must
// convert back; a record list written by add_pax_record must parse to the same records.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "core/xattr.h"
#include "format/pax.h"
#include "pbackup/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  std::vector<std::pair<std::string, std::string>> recs;
  try {
    pbackup::for_each_pax_record(in, [&](std::string_view k, std::string_view v) { recs.emplace_back(k, v); });
  } catch (const pbackup::Fatal&) {
    recs.clear();
    // treat the input as one record's key and value instead
    size_t eq = in.find('=');
    if (eq == std::string_view::npos) return 0;
    recs.emplace_back(in.substr(0, eq), in.substr(eq + 1));
  }
  std::string again;
  for (auto& [k, v] : recs) {
    if (k.find('=') == std::string::npos) pbackup::add_pax_record(again, k, v);
    std::string name = pbackup::decode_xattr_name(k);
    if (pbackup::decode_xattr_name(pbackup::encode_xattr_name(name)) != name) __builtin_trap();
    std::string bin;
    if (pbackup::decode_base64(v, bin) && bin.size() > v.size()) __builtin_trap();
    if (v.size() < 4096) {  // each unknown name is a passwd lookup
      std::string why;
      std::string x = pbackup::acl_text_to_xattr(v, why);
      if (x.empty() == why.empty()) __builtin_trap();
      if (!x.empty()) (void)pbackup::acl_xattr_to_text(x);  // must not throw
    }
  }
  size_t n = 0;
  pbackup::for_each_pax_record(again, [&](std::string_view, std::string_view) { ++n; });
  (void)pbackup::xattr_kinds(again);
  return 0;
}
