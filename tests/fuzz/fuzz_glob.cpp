// libFuzzer target: the glob matcher of --exclude, find and restore --only (glob_match,
// pattern_matches_path). Input: PATTERN NUL TEXT. Contract: no crash, and time linear in
// pattern x text (run with -timeout=2: a backtracking matcher is exponential on
// "*a*a*a*...b"); a pattern without glob characters or escapes matches only itself.
#include <cstddef>
#include <cstdint>
#include <string>

#include "core/select.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string in(reinterpret_cast<const char*>(data), size);
  size_t z = in.find('\0');
  if (z == std::string::npos) return 0;
  std::string pattern = in.substr(0, z), text = in.substr(z + 1);
  bool m = pbackup::glob_match(pattern, text);
  if (pattern.find_first_of("*?[\\") == std::string::npos && m != (pattern == text)) __builtin_trap();
  if (pbackup::glob_match("**", text) != true) __builtin_trap();
  (void)pbackup::pattern_matches_path(pattern, text, true);
  (void)pbackup::pattern_matches_path(pattern, text, false);
  return 0;
}
