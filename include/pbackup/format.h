// A container format (tar, zip) seen by the pipeline in three steps:
//   cut     (rank 0)     entries -> blocks of roughly block_bytes of input; big files span blocks
//   encode  (any rank)   one block -> compressed units (the bytes some rank will write)
//   Layout  (rank 0)     unit sizes -> unit offsets, plus the structural bytes rank 0 writes
//                        itself (zip local headers and central directory, the tar end marker)
// Everything here depends only on the entries and the options, never on who runs it, so the
// archive is byte-identical for any rank or thread count (DESIGN §2).
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "pbackup/wire.h"
#include "pbackup/entry.h"

namespace pbackup {

class Codec;
class Log;

// A slice of one entry inside a block: optionally its header, then data [offset, offset+length).
struct Piece {
  uint32_t entry = 0;  // index into the sorted entry list
  bool header = false;
  bool last = false;   // holds the end of the entry's data
  uint64_t offset = 0, length = 0;
  bool operator==(const Piece&) const = default;
};

struct Block {
  uint64_t id = 0;
  uint64_t raw_bytes = 0;  // container bytes before compression (for balancing)
  uint64_t raw_offset = 0; // where they start in the uncompressed container stream
  std::vector<Piece> pieces;
  bool operator==(const Block&) const = default;
};

// A block as shipped to the rank that compresses it: self-contained (carries its entries).
struct BlockJob {
  Block block;
  std::vector<Entry> entries;  // entries[i] belongs to block.pieces[i]
  std::vector<std::string> disk_paths;
  bool operator==(const BlockJob&) const = default;
};
// Wire field lists (pbackup/wire.h). A job's pieces, entries and disk paths are parallel lists;
// reading checks they have the same length.
template <class Ar>
void fields(Ar& a, Piece& p) {
  a(p.entry), a.flags(p.header, p.last), a(p.offset), a(p.length);
}
template <class Ar>
void fields(Ar& a, Block& b) {
  a(b.id), a(b.raw_bytes), a(b.raw_offset), a(b.pieces);
}
template <class Ar>
void fields(Ar& a, BlockJob& j) {
  a(j.block), a(j.entries), a(j.disk_paths);
  if constexpr (!Ar::kWriting)
    if (j.entries.size() != j.block.pieces.size() || j.disk_paths.size() != j.block.pieces.size())
      throw std::runtime_error("internal message: block job lists differ in length");
}

// The cut between two stretches of the ordered list (the ranks cut their slices in turn,
// core/file_list.h): the block being filled and where the stream stands.
struct CutState {
  Block cur;               // open: pieces so far (their entry indices are into the list cut last)
  uint64_t cur_bytes = 0;  // container bytes in `cur`
  uint64_t stream_pos = 0; // container bytes before the end of `cur`
  uint64_t next_id = 0;    // id of the next block closed
  bool operator==(const CutState&) const = default;
};
template <class Ar>
void fields(Ar& a, CutState& s) {
  a(s.cur), a(s.cur_bytes), a(s.stream_pos), a(s.next_id);
}
// Closes the open block (if it has pieces) onto `out` (format/cut.cpp).
void cut_close(CutState& st, std::vector<Block>& out);

// A compressed block ready to write.
struct Unit {
  uint64_t block = 0;
  uint32_t entry = 0;                // first entry it holds
  uint64_t raw = 0;                  // uncompressed bytes
  std::string data;                  // compressed bytes
  std::string extra;                 // format-specific facts rank 0's Layout needs (zip: CRCs)
  std::vector<std::string> damaged;  // archive paths of files stored as zeros (read.cpp)
};

// What rank 0 learns about a unit (no data).
struct UnitInfo {
  uint64_t block = 0;
  uint32_t entry = 0;
  uint64_t raw = 0, size = 0;
  std::string sha256;  // hex, of the compressed bytes
  std::string extra;
  bool operator==(const UnitInfo&) const = default;
};
template <class Ar>
void fields(Ar& a, UnitInfo& u) {
  a(u.block), a(u.entry), a(u.raw), a(u.size), a(u.sha256), a(u.extra);
}

struct Write {
  uint64_t offset = 0;
  std::string bytes;
  // Overwrites a placeholder (zeros) inside a block already written (zip local headers of
  // files spanning blocks); the block's own checksum covers the zeros.
  bool patch = false;
};

class Layout {
 public:
  virtual ~Layout() = default;
  // Called with the units of consecutive blocks, in block order then unit order; fills one
  // offset per unit and appends structural writes.
  virtual void place(const std::vector<UnitInfo>& units, std::vector<uint64_t>& offsets,
                     std::vector<Write>& structural) = 0;
  // After the last block: trailing structural bytes. Returns the archive's total size.
  virtual uint64_t finish(std::vector<Write>& structural) = 0;
  // Offset below which no later place() or finish() will write (zip: the header of a file
  // still being placed is rewritten when its last segment arrives).
  virtual uint64_t settled() const = 0;
};

// Reads file data for encode; reports unreadable or changed files as warnings.
class DataSource {
 public:
  virtual ~DataSource() = default;
  // Fills `out` with exactly `length` bytes of the file from `offset` (zero-padded if the file
  // shrank or failed; such problems are logged as warnings naming the file).
  virtual void read(const Entry& e, const std::string& disk_path, uint64_t offset,
                    uint64_t length, bool last, char* out) = 0;
};

class Format {
 public:
  virtual ~Format() = default;
  virtual std::string name() const = 0;       // "tar" / "zip"
  virtual std::string extension() const = 0;  // "tar.gz", "zip"
  // Rank 0: the entries as they will be stored (zip turns hard links into copies and drops
  // fifos, with a warning).
  virtual void adapt(EntryList& entries, Log& log) const = 0;
  // Cuts entries[from, end) onto `st`, appending the blocks it closes (format/cut.h cut_more).
  virtual void cut_more(const EntryList& entries, size_t from, uint64_t block_bytes, CutState& st,
                        std::vector<Block>& out) const = 0;
  // The whole list at once.
  std::vector<Block> cut(const EntryList& entries, uint64_t block_bytes) const {
    CutState st;
    std::vector<Block> out;
    cut_more(entries, 0, block_bytes, st, out);
    cut_close(st, out);
    return out;
  }
  // Whether rank 0 needs every entry for the layout (zip: the central directory). If not, the
  // list stays spread over the ranks from the scan to the commit.
  virtual bool layout_needs_entries() const = 0;
  virtual void encode_block(const BlockJob& job, DataSource& src, std::vector<Unit>& out) const = 0;
  virtual std::unique_ptr<Layout> make_layout(const EntryList& entries) const = 0;
};

// Registry: "zip" -> zip with deflate; "gzip"/"bzip2"/"zstd" -> tar with that codec.
std::unique_ptr<Format> make_format(const std::string& algo, int level);
std::vector<std::string> algo_names();

}  // namespace pbackup
