// libFuzzer target: the manifest parser (manifest_from_json), through its public function only,
// so the target keeps working whatever the parser is built on. Its contract: Fatal on malformed
// input, nothing else; a manifest it accepts must write back and parse again. Then the structure
// checks restore, list and verify run before trusting it (validate_manifest).
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
  }
  return 0;
}
