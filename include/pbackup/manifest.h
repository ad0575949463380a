// The manifest written beside every archive (DESIGN §4): what was backed up, how, and where
// every block lies, with a SHA-256 per block and per fragment. Written last: its presence
// means the backup is complete.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "pbackup/destination.h"

namespace pbackup {

struct ManifestWarning {
  std::string path, reason;
};

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
  // first_entry is a sparse member (GNU sparse 1.0): its stored bytes are not file offsets, so
  // such an archive is restored as a stream.
  bool cont_sparse = false;
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
  // The catalog beside the archive (BASE.EXT.catalog.zst, docs/format.md): name, size, SHA-256.
  // Optional: empty name when there is none (manifests from before catalogs).
  Fragment catalog;
  // How many entries carry extended attributes / POSIX ACLs in the archive (tar: SCHILY pax
  // records; zip cannot hold them and says so). Written only when non-zero.
  uint64_t xattr_entries = 0, acl_entries = 0;
  // Files stored sparse (GNU sparse 1.0).
  uint64_t sparse_entries = 0;
  // "age" when the archive is age-encrypted (issue 16): archive_size and the block records are
  // then plaintext (STREAM payload) offsets, and the fragments add up to encrypted_size. The
  // manifest beside such an archive holds no names (no command, sources, first entries,
  // damaged list); the whole manifest is in the age-encrypted side file `sealed_manifest`.
  std::string encryption;
  uint64_t encrypted_size = 0;
  Fragment sealed_manifest;
  // An incremental level (issue 15): the manifests of the levels before it, oldest first (name,
  // size and SHA-256 of each BASE.EXT.manifest.json, beside this one). Empty for a full backup.
  // Catalog records say which archive holds each entry: an index into this list, or its size
  // for this archive.
  std::vector<Fragment> chain;
  // The backup's warnings (files skipped, changed while read, ...; the exit status 1), the first
  // Log::kMaxKeptWarnings of each rank, and how many there were in all. Written only when any.
  std::vector<ManifestWarning> warnings;
  uint64_t warnings_total = 0;
  // Written as "timeline" (a JSON object: every rank's phases and the throughput, for `pbackup
  // report`); the strict reader skips it, the report parses it on its own, defensively.
  std::string timeline_json;
};

// The name-free copy of an encrypted archive's manifest that is stored in plaintext.
Manifest redact_manifest(const Manifest& m);

// Always valid JSON (RFC 8259, UTF-8): strings that are not UTF-8 (names are byte strings) are
// written in the escaped form docs/format.md describes, and read back byte for byte.
std::string manifest_to_json(const Manifest& m);
// Strict: numbers must be unsigned integers that fit 64 bits, every field has its type, known
// fields appear once (unknown ones are skipped, so newer manifests stay readable). Streamed
// (SAX), never held as a JSON tree. Throws Fatal naming the field and the reason.
Manifest manifest_from_json(std::string_view text);
// The structural checks every command relies on before it trusts the block index: records
// tile the archive and the uncompressed stream exactly, patches lie inside their block,
// fragments add up to archive_size, ... Throws Fatal naming the manifest `name` and the record.
void validate_manifest(const Manifest& m, const std::string& name);
// A chain link's name (Manifest::chain): a plain file name (no '/', NUL, "." or "..") that
// ends in ".manifest.json" after at least one byte; the level's archive is the name without it.
bool manifest_file_name(std::string_view name);
// Parses and validates; every error (a Fatal, never a bare library exception) names `name`.
Manifest read_manifest(std::string_view text, const std::string& name);
// "sha256  name" lines, as sha256sum -c reads them.
std::string checksum_file(const Manifest& m);

}  // namespace pbackup
