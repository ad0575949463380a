// The structural checks of a manifest (see manifest.h), run by every command right after the
// manifest is read, before anything trusts its block index. The rules are what backup writes
// (src/core/backup.cpp, src/format/cut.cpp, the tar and zip layouts):
//  - records of kind "block" and "structure", in the order listed, tile the archive: each starts
//    where the previous one ended, from byte 0 to archive_size, none empty; blocks come first,
//    rank 0's structure (tar end marker, zip central directory) last;
//  - "block" records tile the uncompressed container stream the same way (raw_offset);
//    structure and patch records have no raw bytes and no first entry;
//  - "patch" records (zip only) lie inside one block and do not overlap;
//  - blocks' first entries follow the archive's path order; a block that continues a file
//    starts inside it (cont_offset < cont_size), never the first block, and a block that
//    continues the same file as the block before starts where that one ended;
//  - fragments are plain names, add up to archive_size, and are split_bytes long but the last;
//  - entries > 0 exactly when there are blocks. Every sum is checked for overflow;
//  - chain links (an incremental level's earlier levels) are manifest file names beside this
//    one (manifest_file_name), each once, with a size and a SHA-256 in hex.
#include <algorithm>
#include <set>

#include "core/select.h"
#include "crypto/age.h"
#include "pbackup/entry.h"
#include "pbackup/error.h"
#include "pbackup/manifest.h"

namespace pbackup {
namespace {

bool add(uint64_t a, uint64_t b, uint64_t& out) { return !__builtin_add_overflow(a, b, &out); }

bool sha_hex(const std::string& s) {
  return s.size() == 64 && std::all_of(s.begin(), s.end(), [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}

bool plain_name(const std::string& s) {
  return !s.empty() && s != "." && s != ".." && s.find('/') == std::string::npos && s.find('\0') == std::string::npos;
}

std::string num(uint64_t v) { return std::to_string(v); }

void check_header(const Manifest& m, const std::string& name) {
  auto bad = [&](const std::string& why) { return Fatal("manifest " + quote(name) + ": " + why); };
  if (m.format == "tar") {
    if (m.codec != "gzip" && m.codec != "bzip2" && m.codec != "zstd")
      throw bad("codec " + quote(m.codec) + " is not one of gzip, bzip2, zstd (format tar)");
  } else if (m.format == "zip") {
    if (m.codec != "deflate") throw bad("codec " + quote(m.codec) + " is not deflate (format zip)");
  } else {
    throw bad("format " + quote(m.format) + " is not tar or zip");
  }
  if (!plain_name(m.archive)) throw bad("archive " + quote(m.archive) + " is not a plain file name");
  if (!m.catalog.name.empty() || !m.catalog.sha256.empty()) {
    if (!plain_name(m.catalog.name)) throw bad("catalog.name " + quote(m.catalog.name) + " is not a plain file name");
    if (!sha_hex(m.catalog.sha256)) throw bad("catalog.sha256 is not a SHA-256 in hex");
  }
  if (!m.sealed_manifest.name.empty() || !m.sealed_manifest.sha256.empty()) {
    if (m.encryption.empty()) throw bad("sealed_manifest given, but the archive is not encrypted");
    if (!plain_name(m.sealed_manifest.name)) throw bad("sealed_manifest.name " + quote(m.sealed_manifest.name) + " is not a plain file name");
    if (!sha_hex(m.sealed_manifest.sha256)) throw bad("sealed_manifest.sha256 is not a SHA-256 in hex");
  }
  if (!m.encryption.empty()) {
    if (m.encryption != "age") throw bad("encryption " + quote(m.encryption) + " is not age");
    if (m.format != "tar") throw bad("encryption is only written for tar archives");
    // the header and nonce sit before the payload: more than 16 bytes, at most 1 MiB
    const uint64_t payload = age::sealed_size(m.archive_size);
    if (payload < m.archive_size || m.encrypted_size <= payload + age::kNonceBytes ||
        m.encrypted_size - payload > age::kMaxHeaderBytes + age::kNonceBytes)
      throw bad("encrypted_size " + num(m.encrypted_size) + " does not fit an age file of a " + num(m.archive_size) + "-byte payload");
  }
  // informational only (nothing reads a path from them), but they must add up
  if (!m.encryption.empty() && !m.sealed_manifest.name.empty() && !m.warnings.empty())
    throw bad("warnings name files, but the manifest of an encrypted archive holds no names");
  if (m.warnings.size() > m.warnings_total)
    throw bad("warnings lists " + std::to_string(m.warnings.size()) + " warning(s) but warnings_total is " + std::to_string(m.warnings_total));
}

void check_chain(const Manifest& m, const std::string& name) {
  auto bad = [&](const std::string& why) { return Fatal("manifest " + quote(name) + ": " + why); };
  // catalog records name a level in 32 bits, and the level after the chain is this archive
  if (m.chain.size() >= 0xffffffffu) throw bad("chain: " + num(m.chain.size()) + " levels listed, more than a catalog can name");
  std::set<std::string> seen;
  for (size_t i = 0; i < m.chain.size(); ++i) {
    const Fragment& f = m.chain[i];
    const std::string label = "chain[" + num(i) + "]";
    if (!manifest_file_name(f.name)) throw bad(label + ": name " + quote(escape_name(f.name)) + " is not a manifest file name (NAME.manifest.json)");
    if (!seen.insert(f.name).second) throw bad(label + ": name " + quote(escape_name(f.name)) + " is listed twice");
    if (!sha_hex(f.sha256)) throw bad(label + ".sha256: not a SHA-256 in hex");
    if (f.size == 0) throw bad(label + ".size: 0 (a manifest is never empty)");
    if (f.size > static_cast<uint64_t>(INT64_MAX)) throw bad(label + ".size: " + num(f.size) + " is larger than any file");
  }
}

void check_fragments(const Manifest& m, const std::string& name) {
  auto bad = [&](const std::string& why) { return Fatal("manifest " + quote(name) + ": " + why); };
  const size_t n = m.fragments.size();
  if (n == 0) throw bad("fragments: none listed");
  if (m.split_bytes == 0 && n != 1) throw bad("fragments: " + num(n) + " listed, but split_bytes is 0 (one file)");
  std::set<std::string> seen;
  uint64_t total = 0;
  for (size_t i = 0; i < n; ++i) {
    const Fragment& f = m.fragments[i];
    std::string label = "fragments[" + num(i) + "]";
    if (!plain_name(f.name)) throw bad(label + ": name " + quote(f.name) + " is not a plain file name");
    if (!seen.insert(f.name).second) throw bad(label + ": name " + quote(f.name) + " is listed twice");
    if (!f.sha256.empty() && !sha_hex(f.sha256)) throw bad(label + ".sha256: not a SHA-256 in hex");
    if (f.size == 0) throw bad(label + ".size: 0 (fragments are never empty)");
    if (m.split_bytes && (i + 1 < n ? f.size != m.split_bytes : f.size > m.split_bytes))
      throw bad(label + ".size: " + num(f.size) + " bytes, but split_bytes is " + num(m.split_bytes) +
                (i + 1 < n ? " (every fragment but the last has exactly that)" : " (the last fragment has at most that)"));
    if (!add(total, f.size, total)) throw bad(label + ".size: fragment sizes add up past 2^64");
  }
  if (!m.encryption.empty() && total != m.encrypted_size)
    throw bad("fragments add up to " + num(total) + " bytes, but encrypted_size is " + num(m.encrypted_size));
  if (m.encryption.empty() && total != m.archive_size)
    throw bad("fragments add up to " + num(total) + " bytes, but archive_size is " + num(m.archive_size));
}

// Patches (zip placeholders rewritten by rank 0) must each lie inside one block and not overlap.
void check_patches(const Manifest& m, const std::string& name, const std::vector<size_t>& blocks,
                   std::vector<size_t>& patches) {
  auto bad = [&](size_t i, const std::string& why) {
    return Fatal("manifest " + quote(name) + ": blocks[" + num(i) + "] (patch at byte " + num(m.blocks[i].offset) + "): " + why);
  };
  std::sort(patches.begin(), patches.end(), [&](size_t a, size_t b) { return m.blocks[a].offset < m.blocks[b].offset; });
  uint64_t prev_end = 0;
  for (size_t k = 0; k < patches.size(); ++k) {
    const ManifestBlock& p = m.blocks[patches[k]];
    uint64_t end;
    if (!add(p.offset, p.size, end)) throw bad(patches[k], "offset + size is past 2^64");
    if (k > 0 && p.offset < prev_end) throw bad(patches[k], "overlaps the patch before it");
    prev_end = end;
    // the last block starting at or before the patch
    auto it = std::upper_bound(blocks.begin(), blocks.end(), p.offset,
                               [&](uint64_t off, size_t b) { return off < m.blocks[b].offset; });
    if (it == blocks.begin()) throw bad(patches[k], "lies in no block");
    const ManifestBlock& b = m.blocks[*(it - 1)];
    if (end > b.offset + b.size)  // b's end was checked when the records were tiled
      throw bad(patches[k], "runs past the end of its block (bytes " + num(b.offset) + ".." + num(b.offset + b.size) + ")");
  }
}

bool is_redacted(const Manifest& m) { return !m.encryption.empty() && !m.sealed_manifest.name.empty(); }

// One "block" record against the one before it (nullptr for the first).
void check_block(const Manifest& m, size_t i, const ManifestBlock* prev, const std::string& name) {
  const ManifestBlock& b = m.blocks[i];
  auto bad = [&](const std::string& why) {
    return Fatal("manifest " + quote(name) + ": blocks[" + num(i) + "] (block at byte " + num(b.offset) + "): " + why);
  };
  const bool tar = m.format == "tar";
  if (is_redacted(m)) {  // the plaintext manifest of an encrypted archive holds no names (its sealed copy does)
    if (!b.first_entry.empty() || b.continues) throw bad("names a member, but the manifest of an encrypted archive holds no names");
    if (b.raw_size == 0) throw bad("raw_size is 0");
    return;
  }
  if (b.first_entry.empty()) throw bad("first_entry is empty");
  if (b.raw_size == 0) throw bad("raw_size is 0");
  if (tar && b.raw_size % 512) throw bad("raw_size " + num(b.raw_size) + " is not a multiple of 512 (tar)");
  if (b.continues) {
    if (!prev) throw bad("the first block cannot continue a file");
    if (b.cont_offset >= b.cont_size)
      throw bad("continues at data byte " + num(b.cont_offset) + " of a file of " + num(b.cont_size) + " bytes");
    if (tar && b.cont_offset % 512) throw bad("continues at data byte " + num(b.cont_offset) + ", not a multiple of 512 (tar)");
  }
  if (!prev) return;
  if (path_less(b.first_entry, prev->first_entry))
    throw bad("first_entry " + quote(b.first_entry) + " sorts before the previous block's " + quote(prev->first_entry));
  if (b.first_entry == prev->first_entry && !b.continues)
    throw bad("starts with " + quote(b.first_entry) + " again, but does not continue it");
  if (b.continues && prev->continues && b.first_entry == prev->first_entry) {
    uint64_t expect;
    if (b.cont_size != prev->cont_size)
      throw bad("continues " + quote(b.first_entry) + " of " + num(b.cont_size) + " bytes, the previous block says " +
                num(prev->cont_size));
    if (!add(prev->cont_offset, prev->raw_size, expect) || b.cont_offset != expect)
      throw bad("continues " + quote(b.first_entry) + " at data byte " + num(b.cont_offset) + ", but the previous block ends at " +
                num(prev->cont_offset + prev->raw_size));
  }
}

}  // namespace

bool manifest_file_name(std::string_view name) {
  constexpr std::string_view suffix = ".manifest.json";
  return plain_name(std::string(name)) && name.size() > suffix.size() && name.substr(name.size() - suffix.size()) == suffix;
}

void validate_manifest(const Manifest& m, const std::string& name) {
  check_header(m, name);
  check_fragments(m, name);
  check_chain(m, name);
  uint64_t pos = 0, raw = 0;
  bool in_structure = false;
  const ManifestBlock* prev = nullptr;
  std::vector<size_t> blocks, patches;
  for (size_t i = 0; i < m.blocks.size(); ++i) {
    const ManifestBlock& b = m.blocks[i];
    auto bad = [&](const std::string& why) {
      return Fatal("manifest " + quote(name) + ": blocks[" + num(i) + "] (" + b.kind + " at byte " + num(b.offset) + "): " + why);
    };
    if (b.kind != "block" && b.kind != "structure" && b.kind != "patch")
      throw Fatal("manifest " + quote(name) + ": blocks[" + num(i) + "].kind: " + quote(b.kind) + " is not block, structure or patch");
    // the plaintext manifest of an encrypted archive has none (they would confirm known content)
    if (!sha_hex(b.sha256) && !(is_redacted(m) && b.sha256.empty())) throw bad("sha256 is not a SHA-256 in hex");
    if (b.size == 0) throw bad("size is 0");
    if (b.kind != "block" && (b.raw_offset || b.raw_size || b.continues || !b.first_entry.empty()))
      throw bad("a " + b.kind + " record has no raw bytes, first entry or continuation");
    if (b.kind == "patch") {
      if (m.format != "zip") throw bad("patch records exist only in zip archives");
      patches.push_back(i);
      continue;
    }
    if (b.offset != pos)
      throw bad(std::string(b.offset > pos ? "leaves a gap" : "overlaps the record before it") + ": records must tile the archive, this one should start at byte " + num(pos));
    if (!add(pos, b.size, pos)) throw bad("offset + size is past 2^64");
    if (b.kind == "structure") {
      in_structure = true;
      continue;
    }
    if (in_structure) throw bad("a block after rank 0's structure records");
    if (b.raw_offset != raw)
      throw bad("raw_offset " + num(b.raw_offset) + ", but the blocks before end at raw byte " + num(raw) +
                " (blocks must tile the uncompressed stream)");
    if (!add(raw, b.raw_size, raw)) throw bad("raw_offset + raw_size is past 2^64");
    check_block(m, i, prev, name);
    prev = &b;
    blocks.push_back(i);
  }
  auto bad = [&](const std::string& why) { return Fatal("manifest " + quote(name) + ": " + why); };
  if (pos != m.archive_size)
    throw bad("the records end at byte " + num(pos) + ", but archive_size is " + num(m.archive_size));
  if (!in_structure) throw bad("no structure record (tar end marker or zip central directory) at the end");
  if (blocks.empty() && m.entries > 0) throw bad(num(m.entries) + " entries, but no block records hold them");
  if (!blocks.empty() && m.entries == 0) throw bad("entries is 0, but there are " + num(blocks.size()) + " block records");
  check_patches(m, name, blocks, patches);
}

}  // namespace pbackup
