// Block cutting and the wire encoding of jobs (see cut.h and format.h).
#include "format/cut.h"

namespace pbackup {

std::vector<Block> cut_blocks(const EntryList& entries, const StreamShape& shape,
                              uint64_t block_bytes) {
  const uint64_t A = shape.align;
  auto pad = [A](uint64_t n) { return (n + A - 1) / A * A; };
  std::vector<Block> blocks;
  Block cur;
  uint64_t cur_bytes = 0, stream_pos = 0;
  auto close = [&] {
    if (cur.pieces.empty()) return;
    cur.id = blocks.size();
    cur.raw_bytes = cur_bytes;
    cur.raw_offset = stream_pos - cur_bytes;
    blocks.push_back(std::move(cur));
    cur = Block{};
    cur_bytes = 0;
  };
  const uint64_t slack = block_bytes / 8;
  for (uint32_t i = 0; i < entries.size(); ++i) {
    const Entry& e = entries[i];
    uint64_t h = shape.header_bytes(e), d = shape.data_bytes(e);
    if (shape.skip_empty && h == 0 && d == 0) continue;
    // Many tiny files: cap the entries per block too, so a block job (which carries its
    // entries) stays small whatever the file sizes.
    if (cur_bytes >= block_bytes || cur.pieces.size() >= kMaxPiecesPerBlock) close();
    Piece p{i, h > 0, false, 0, 0};
    cur_bytes += h;
    stream_pos += h;
    uint64_t off = 0, remaining = d;
    while (true) {
      uint64_t room = block_bytes > cur_bytes ? block_bytes - cur_bytes : 0;
      if (remaining <= room + slack) {
        p.offset = off;
        p.length = remaining;
        p.last = true;
        cur_bytes += pad(remaining);
        stream_pos += pad(remaining);
        cur.pieces.push_back(p);
        break;
      }
      uint64_t take = room / A * A;
      if (take > 0 || p.header) {
        p.offset = off;
        p.length = take;
        cur.pieces.push_back(p);
        cur_bytes += take;
        stream_pos += take;
        off += take;
        remaining -= take;
      }
      close();
      p = Piece{i, false, false, 0, 0};
    }
  }
  close();
  return blocks;
}

}  // namespace pbackup
