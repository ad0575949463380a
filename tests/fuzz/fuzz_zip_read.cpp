// libFuzzer target: the zip central-directory reader (end record, zip64 locator and record,
// central records, extra fields) and the local-header parser, over an archive held in memory.
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>

#include "format/zip_read.h"
#include "pbackup/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view archive(reinterpret_cast<const char*>(data), size);
  auto read = [&](uint64_t off, uint64_t n) -> std::string {
    if (off > archive.size() || n > archive.size() - off) throw std::out_of_range("read past the end");
    return std::string(archive.substr(off, n));
  };
  try {
    auto dir = pbackup::read_zip_directory(archive.size(), read);
    if (!dir) return 0;
    for (const auto& m : dir->members) {
      if (m.header_offset > archive.size() || archive.size() - m.header_offset < pbackup::kZipLocalFixed) continue;
      std::string fixed = read(m.header_offset, pbackup::kZipLocalFixed);
      try {
        uint64_t n = pbackup::zip_local_header_size(fixed, m);
        if (n > archive.size() - m.header_offset) continue;
        pbackup::ZipLocal l = pbackup::parse_zip_local_header(read(m.header_offset, n), m);
        if (l.data_offset != m.header_offset + n) __builtin_trap();
      } catch (const pbackup::Fatal&) {
      }
    }
  } catch (const std::out_of_range&) {  // the reader asked for bytes the archive does not have
  } catch (const pbackup::ZipOverlap&) {  // members overlap: damage
  }
  return 0;
}
