// The manifest written beside every archive (DESIGN §4): what was backed up, how, and where
// every block lies, with a SHA-256 per block and per fragment. Written last: its presence
// means the backup is complete.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "pbackup/destination.h"

namespace pbackup {

struct ManifestBlock {
  uint64_t raw_offset = 0, raw_size = 0;  // in the uncompressed container stream
  uint64_t offset = 0, size = 0;          // in the archive
  std::string sha256;
  std::string first_entry;
  // "block": compressed by a rank; "structure": written by rank 0; "patch": written by rank 0
  // over a placeholder of zeros inside a block (verify puts the zeros back before hashing).
  std::string kind = "block";
  // The block starts inside first_entry's data (a big file spanning blocks): at data offset
  // cont_offset of a file of cont_size bytes. Lets restore start at any block.
  bool continues = false;
  uint64_t cont_offset = 0, cont_size = 0;
};

struct Manifest {
  std::string tool_version;
  std::string command;
  std::string created;  // ISO 8601 UTC
  std::string format, codec, archive;
  std::vector<std::string> sources;
  uint64_t archive_size = 0;
  uint64_t split_bytes = 0;
  uint64_t entries = 0;
  std::vector<Fragment> fragments;
  std::vector<ManifestBlock> blocks;
  // Files that could not be read in full at backup time (vanished, unreadable, replaced by a
  // non-file, shrank): the archive holds zeros for (part of) them. Restore does not create
  // them and exits 2; verify reports them. Sorted archive paths.
  std::vector<std::string> damaged;
};

std::string manifest_to_json(const Manifest& m);
// Throws Fatal with a reason on malformed input.
Manifest manifest_from_json(const std::string& text);
// "sha256  name" lines, as sha256sum -c reads them.
std::string checksum_file(const Manifest& m);

}  // namespace pbackup
