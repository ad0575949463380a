// libFuzzer target: the manifest parser (manifest_from_json), through its public function only,
// so the target keeps working whatever the parser is built on. Its contract: Fatal on malformed
// input, nothing else; a manifest it accepts must write back and parse again. Then the structure
// checks restore, list and verify run before trusting it (validate_manifest): what they accept
// has chain links (an incremental level's earlier levels, opened beside it by name) that are
// plain manifest file names with a SHA-256 in hex and a size.
#include <cstddef>
#include <cstdint>
#include <string>

#include "pbackup/error.h"
#include "pbackup/manifest.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string text(reinterpret_cast<const char*>(data), size);
  pbackup::Manifest m;
  try {
    m = pbackup::manifest_from_json(text);
  } catch (const pbackup::Fatal&) {
    return 0;
  }
  try {
    pbackup::manifest_from_json(pbackup::manifest_to_json(m));
  } catch (const pbackup::Fatal&) {
    __builtin_trap();  // what we accept, we must be able to write and read back
  }
  // The structure checks (offsets, sizes, tiling, fragments) do arithmetic on hostile numbers.
  try {
    pbackup::validate_manifest(m, "fuzz.manifest.json");
  } catch (const pbackup::Fatal&) {
    return 0;
  }
  const std::string suffix = ".manifest.json";
  for (const pbackup::Fragment& link : m.chain) {
    const std::string& n = link.name;
    if (n.size() <= suffix.size() || n.compare(n.size() - suffix.size(), suffix.size(), suffix) != 0) __builtin_trap();
    if (n.find('/') != std::string::npos || n.find('\0') != std::string::npos || n == "." || n == "..") __builtin_trap();
    if (link.sha256.size() != 64 || link.sha256.find_first_not_of("0123456789abcdef") != std::string::npos) __builtin_trap();
    if (link.size == 0 || link.size > static_cast<uint64_t>(INT64_MAX)) __builtin_trap();
  }
  return 0;
}
