// Block cutting and the wire encoding of jobs (see cut.h and format.h).
#include "format/cut.h"

#include <climits>
#include <stdexcept>

namespace pbackup {

void cut_close(CutState& st, std::vector<Block>& out) {
  if (st.cur.pieces.empty()) return;
  st.cur.id = st.next_id++;
  st.cur.raw_bytes = st.cur_bytes;
  st.cur.raw_offset = st.stream_pos - st.cur_bytes;
  out.push_back(std::move(st.cur));
  st.cur = Block{};
  st.cur_bytes = 0;
}

void cut_more(const EntryList& entries, size_t from, const StreamShape& shape, uint64_t block_bytes, CutState& st,
              std::vector<Block>& out) {
  const uint64_t A = shape.align;
  auto pad = [A](uint64_t n) { return (n + A - 1) / A * A; };
  if (entries.size() > UINT32_MAX) throw std::length_error("cut: more than 4G entries in one list");
  const uint64_t slack = block_bytes / 8;
  for (size_t i = from; i < entries.size(); ++i) {
    const Entry& e = entries[i];
    uint64_t h = shape.header_bytes(e), d = shape.data_bytes(e);
    if (shape.skip_empty && h == 0 && d == 0) continue;
    // Many tiny files: cap the entries per block too, so a block job (which carries its
    // entries) stays small whatever the file sizes.
    if (st.cur_bytes >= block_bytes || st.cur.pieces.size() >= kMaxPiecesPerBlock) cut_close(st, out);
    const auto index = static_cast<uint32_t>(i);
    Piece p{index, h > 0, false, 0, 0};
    st.cur_bytes += h;
    st.stream_pos += h;
    uint64_t off = 0, remaining = d;
    while (true) {
      uint64_t room = block_bytes > st.cur_bytes ? block_bytes - st.cur_bytes : 0;
      if (remaining <= room + slack) {
        p.offset = off;
        p.length = remaining;
        p.last = true;
        st.cur_bytes += pad(remaining);
        st.stream_pos += pad(remaining);
        st.cur.pieces.push_back(p);
        break;
      }
      uint64_t take = room / A * A;
      if (take > 0 || p.header) {
        p.offset = off;
        p.length = take;
        st.cur.pieces.push_back(p);
        st.cur_bytes += take;
        st.stream_pos += take;
        off += take;
        remaining -= take;
      }
      cut_close(st, out);
      p = Piece{index, false, false, 0, 0};
    }
  }
}

std::vector<Block> cut_blocks(const EntryList& entries, const StreamShape& shape, uint64_t block_bytes) {
  CutState st;
  std::vector<Block> blocks;
  cut_more(entries, 0, shape, block_bytes, st, blocks);
  cut_close(st, blocks);
  return blocks;
}

}  // namespace pbackup
