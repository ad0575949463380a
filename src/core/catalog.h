// The per-archive catalog (issue 13, docs/format.md "Catalog"): every entry of a backup (path,
// type, size, mode, owner ids and names, mtime with ns, link target, block and offset) as
// zstd-compressed length-prefixed records sorted by path, in BASE.EXT.catalog.zst beside the
// archive, listed with its size and SHA-256 in the manifest. list --long, find and compare read
// it instead of the archive. The reader treats the file as hostile: every length is checked,
// allocations are bounded by kMaxRecord, and loaders check the SHA-256 against the manifest.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "pbackup/entry.h"
#include "pbackup/format.h"
#include "pbackup/manifest.h"
#include "pbackup/source.h"

namespace pbackup {

constexpr uint64_t kCatalogNone = ~uint64_t{0};
constexpr uint32_t kCatalogVersion = 2;  // 1 is still read (no ctime, dev, ino, level)
constexpr size_t kCatalogHeader = 32;
constexpr uint32_t kMaxCatalogRecord = 4u << 20;  // a record (names up to 1 MiB each) fits

// Record flags. Damaged: could not be read in full at backup (zeros in the archive, DESIGN §7);
// the others say what else the archive holds for the entry (issue 12), so compare can check it.
enum : uint8_t { kCatalogDamaged = 1, kCatalogXattrs = 2, kCatalogAcls = 4, kCatalogSparse = 8 };

struct CatalogRecord {
  std::string path, link, uname, gname;
  EntryType type = EntryType::File;
  uint8_t flags = 0;  // kCatalog* bits
  uint32_t mode = 0, uid = 0, gid = 0;
  uint64_t size = 0;
  int64_t mtime_sec = 0;
  uint32_t mtime_nsec = 0;
  uint64_t block = kCatalogNone;   // index of the block (manifest records of kind "block", in order)
  uint64_t offset = kCatalogNone;  // uncompressed bytes from that block's start to the entry's header
  // version 2 (issue 15, incremental backups): what decides "unchanged", and which archive of the
  // chain holds the entry (an index into the manifest's "chain"; its size is this archive).
  // Version 1 records read as zeros here: nothing matches them, so a level after one stores all.
  int64_t ctime_sec = 0;
  uint32_t ctime_nsec = 0;
  uint64_t dev = 0, ino = 0;
  uint32_t level = 0;
  std::string member;  // the member name in that archive when it differs from `path` (a renamed entry)
};

// "BASE.EXT" -> "BASE.EXT.catalog.zst"
std::string catalog_name(const std::string& archive);

// Streams records into a zstd compressor; memory is the compressed output plus zstd's window.
class CatalogWriter {
 public:
  explicit CatalogWriter(uint64_t count);
  ~CatalogWriter();
  CatalogWriter(const CatalogWriter&) = delete;
  CatalogWriter& operator=(const CatalogWriter&) = delete;
  void add(const CatalogRecord& r);
  // One record as encode_catalog_record made it (the ranks encode their own; rank 0 merges).
  void add_encoded(std::string_view record);
  std::string finish();  // the whole file; throws Fatal if fewer or more records than `count` came

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Appends `r` to `out` as the catalog stores it (its u32 length first, docs/format.md). Throws
// Fatal for a name over 1 MiB.
void encode_catalog_record(const CatalogRecord& r, std::string& out);
// The length of the encoded record at the start of `bytes` (its length field included) and
// its path, from a list of records encode_catalog_record made (an internal message: checked
// only against running past `bytes`, throws std::runtime_error).
size_t encoded_record_size(std::string_view bytes);
std::string_view encoded_record_path(std::string_view record);

// Rank 0 at commit: the catalog of `entries` (sorted, as stored) cut into `blocks` by `fmt`
// ("tar" gets header offsets inside blocks; "zip" the block only); damaged paths flagged, and
// entries with xattrs, ACLs or holes (tar only: zip stores none of them).
std::string build_catalog(const EntryList& entries, const std::vector<Block>& blocks, const std::string& fmt,
                          const std::vector<std::string>& damaged);

// One entry's record: `tar` adds the xattr/ACL/sparse flags, `block`/`offset` where its header is.
CatalogRecord catalog_record(const Entry& e, bool tar, bool damaged, uint64_t block, uint64_t offset);

// The records of a tar list's slice (core/file_list.h), pulled one at a time: one per header
// piece of `blocks`, in order, with the block and the header's offset in it; `damaged` sorted.
// The lists must outlive the cursor.
class TarRecordCursor {
 public:
  TarRecordCursor(const EntryList& entries, const std::vector<Block>& blocks, const std::vector<std::string>& damaged)
      : entries_(entries), blocks_(blocks), damaged_(damaged) {}
  bool next(CatalogRecord& out);  // false at the end

 private:
  const EntryList& entries_;
  const std::vector<Block>& blocks_;
  const std::vector<std::string>& damaged_;
  size_t block_ = 0, piece_ = 0;
  uint64_t pos_ = 0;  // uncompressed bytes into the block before piece_
};

// Parses a catalog pulled chunk by chunk (`next` returns an empty view at the end), calling
// `each` per record in order. Throws Fatal ("catalog: ...") on anything malformed: bad magic or
// version, a record length out of range, fields that do not add up, a count that differs from
// the header's, bytes after the last record.
void read_catalog(const std::function<std::string_view()>& next, const std::function<void(const CatalogRecord&)>& each);
void read_catalog(std::string_view bytes, const std::function<void(const CatalogRecord&)>& each);
// The same, with each record also as the catalog stores it (encode_catalog_record's form, its
// length first; valid during the call): a version-2 record can be copied into a new catalog as
// it is. Empty for a version-1 record (those lack fields a new catalog must have).
using CatalogVisit = std::function<void(const CatalogRecord&, std::string_view encoded)>;
void read_catalog_encoded(const std::function<std::string_view()>& next, const CatalogVisit& each);
void read_catalog_encoded(std::string_view bytes, const CatalogVisit& each);

// The catalog of an archive found by resolve_source (beside its manifest, under the set's name
// on disk), checked against the manifest's size and SHA-256 before any record is trusted.
// False when the archive has none (a foreign archive, or one made before catalogs); throws
// Fatal when it is listed but missing, of another size or SHA-256, or malformed.
bool read_archive_catalog(const ArchiveSource& s, const std::function<void(const CatalogRecord&)>& each);
bool read_archive_catalog_encoded(const ArchiveSource& s, const CatalogVisit& each);

// The catalog file of an archive (as read_archive_catalog finds and checks it), decrypted when
// the archive is encrypted: the zstd catalog read_catalog parses. Throws Fatal.
std::string archive_catalog_bytes(const ArchiveSource& s);

// One `tar tvf` line: "-rw-r--r-- user/group   size YYYY-MM-DD HH:MM path[ -> target]".
std::string long_line(const CatalogRecord& r);

}  // namespace pbackup
