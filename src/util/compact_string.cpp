// RareString and InternedString (see pbackup/compact_string.h).
#include "pbackup/compact_string.h"

#include <mutex>
#include <unordered_set>

namespace pbackup {

const std::string& RareString::empty_string() {
  static const std::string empty;
  return empty;
}

// Node-based: a pointer to an element stays valid while others are added. Owner strings come
// from the scan (a few distinct per run) and from other ranks' scans; they are never removed.
const std::string* InternedString::intern(const std::string& s) {
  if (s.empty()) return nullptr;
  static std::mutex mu;
  static std::unordered_set<std::string>* set = new std::unordered_set<std::string>();  // never destroyed
  std::lock_guard<std::mutex> l(mu);
  return &*set->insert(s).first;
}

}  // namespace pbackup
