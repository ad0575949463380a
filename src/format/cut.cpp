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

void encode(ByteWriter& w, const Piece& p) {
  w.u32(p.entry);
  w.u8(static_cast<uint8_t>(p.header | (p.last << 1)));
  w.u64(p.offset);
  w.u64(p.length);
}

Piece decode_piece(ByteReader& r) {
  Piece p;
  p.entry = r.u32();
  uint8_t f = r.u8();
  p.header = f & 1;
  p.last = f & 2;
  p.offset = r.u64();
  p.length = r.u64();
  return p;
}

void encode(ByteWriter& w, const BlockJob& j) {
  w.u64(j.block.id);
  w.u64(j.block.raw_bytes);
  w.u64(j.block.raw_offset);
  w.u64(j.block.pieces.size());
  for (size_t i = 0; i < j.block.pieces.size(); ++i) {
    encode(w, j.block.pieces[i]);
    encode(w, j.entries[i]);
    w.str(j.disk_paths[i]);
  }
}

BlockJob decode_job(ByteReader& r) {
  BlockJob j;
  j.block.id = r.u64();
  j.block.raw_bytes = r.u64();
  j.block.raw_offset = r.u64();
  uint64_t n = r.u64();
  for (uint64_t i = 0; i < n; ++i) {
    j.block.pieces.push_back(decode_piece(r));
    j.entries.push_back(decode_entry(r));
    j.disk_paths.push_back(r.str());
  }
  return j;
}

void encode(ByteWriter& w, const UnitInfo& u) {
  w.u64(u.block);
  w.u32(u.entry);
  w.u64(u.raw);
  w.u64(u.size);
  w.str(u.sha256);
  w.str(u.extra);
}

UnitInfo decode_unit_info(ByteReader& r) {
  UnitInfo u;
  u.block = r.u64();
  u.entry = r.u32();
  u.raw = r.u64();
  u.size = r.u64();
  u.sha256 = r.str();
  u.extra = r.str();
  return u;
}

}  // namespace pbackup
