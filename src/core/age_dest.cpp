// See age_dest.h.
#include "core/age_dest.h"

#include <algorithm>
#include <map>
#include <mutex>

#include "pbackup/bytes.h"
#include "pbackup/comm.h"
#include "pbackup/error.h"

namespace pbackup {
namespace {

using age::kChunk;
using age::kSealedChunk;

class AgeDestination final : public Destination {
 public:
  AgeDestination(std::unique_ptr<Destination> inner, std::vector<age::Recipient> recipients, bool root)
      : d_(std::move(inner)), recipients_(std::move(recipients)), root_(root) {}

  std::string archive_name() const override { return d_->archive_name(); }

  // Rank 0: the inner destination's temporary storage, a new file key and the header. The
  // payload key travels to the other ranks inside the result (never logged).
  std::string prepare() override {
    std::string inner = d_->prepare();
    age::Encryption e = age::encrypt_to(recipients_);
    ByteWriter w;
    w.str(inner);
    w.str(e.prefix);
    w.str(e.payload_key->view());
    return w.take();
  }
  void open(const std::string& prepared) override {
    ByteReader r(prepared);
    std::string inner = r.str();
    prefix_ = r.str();
    std::string key = r.str();
    key_ = std::make_shared<age::Secret>(key.data(), key.size());
    age::wipe(key);
    if (key_->size() != age::kKeyBytes) throw Fatal("internal: bad payload key in the destination's setup");
    d_->open(inner);
    if (root_) d_->write_at(0, prefix_);
  }

  void write_at(uint64_t offset, std::string_view bytes) override {
    std::lock_guard<std::mutex> lock(mu_);
    uint64_t pos = offset;
    const uint64_t end = offset + bytes.size();
    auto sub = [&](uint64_t from, uint64_t to) { return bytes.substr(from - offset, to - from); };
    if (pos % kChunk && pos < end) {  // the head of a chunk an earlier write began
      uint64_t h = std::min(end, (pos / kChunk + 1) * kChunk);
      hold(pos, sub(pos, h));
      pos = h;
    }
    const uint64_t run = pos;
    while (pos + kChunk < end) pos += kChunk;  // whole chunks with more bytes after them: not the last
    if (pos > run) seal_and_write(run / kChunk, (pos - run) / kChunk, sub(run, pos), false, 0);
    if (pos < end) hold(pos, sub(pos, end));  // the tail: maybe the last chunk, maybe continued elsewhere
  }

  void settle(Comm& comm, uint64_t settled, bool last) override {
    const uint64_t end = last ? age::chunk_count(settled) : settled ? (settled - 1) / kChunk : 0;
    std::string error;
    if (end > done_) {
      ByteWriter w;
      {
        std::lock_guard<std::mutex> lock(mu_);
        for (auto it = held_.begin(); it != held_.end() && it->first < end;) {
          for (auto& [off, piece] : it->second) {
            w.u64(off);
            w.str(piece);
          }
          it = held_.erase(it);
        }
      }
      std::vector<std::string> all = comm.gather(w.take(), 0);
      if (root_) {
        try {
          seal_boundaries(all, end, last, settled);
        } catch (const std::exception& e) {
          error = e.what();
        }
      }
      done_ = end;
    }
    // every rank takes part in the inner settle (a collective for an object store)
    d_->settle(comm, last ? cipher(settled) : prefix_.size() + done_ * kSealedChunk, last);
    if (!error.empty()) throw Fatal(error);
  }

  void close() override {
    if (!held_.empty()) throw Fatal("internal: encrypted archive bytes were never sealed");
    d_->close();
  }
  size_t fragment_count(uint64_t total) const override { return d_->fragment_count(cipher(total)); }
  std::string hash_fragment(size_t k, uint64_t total) override { return d_->hash_fragment(k, cipher(total)); }
  std::vector<Fragment> fragments(uint64_t total, const std::vector<std::string>& hashes) override {
    return d_->fragments(cipher(total), hashes);
  }
  void commit(uint64_t total, const std::vector<SideFile>& side_files) override { d_->commit(cipher(total), side_files); }
  void abort() noexcept override { d_->abort(); }
  std::vector<std::string> temp_paths() const override { return d_->temp_paths(); }

 private:
  uint64_t cipher(uint64_t plain) const { return prefix_.size() + age::sealed_size(plain); }

  void hold(uint64_t off, std::string_view piece) { held_[off / kChunk].emplace_back(off, std::string(piece)); }

  // Seals `count` chunks from chunk `first` (all full, but the last when `last_n` > 0 is its
  // size and it is the archive's last) and writes them in one piece.
  void seal_and_write(uint64_t first, uint64_t count, std::string_view plain, bool final_chunk, size_t last_n) {
    std::string out(plain.size() + count * age::kTag, '\0');
    for (uint64_t i = 0; i < count; ++i) {
      const bool is_last = final_chunk && i + 1 == count;
      const size_t n = is_last ? last_n : kChunk;
      age::seal_chunk(*key_, first + i, is_last, reinterpret_cast<const uint8_t*>(plain.data()) + i * kChunk, n,
                      reinterpret_cast<uint8_t*>(out.data()) + i * kSealedChunk);
    }
    d_->write_at(prefix_.size() + first * kSealedChunk, out);
  }

  // Rank 0: the chunks below `end` that no single write covered, put together from every
  // rank's pieces, sealed and written. Each must be tiled exactly by its pieces.
  void seal_boundaries(const std::vector<std::string>& all, uint64_t end, bool last, uint64_t total) {
    std::map<uint64_t, std::vector<std::pair<uint64_t, std::string>>> chunks;
    for (const auto& msg : all) {
      ByteReader r(msg);
      while (!r.done()) {
        uint64_t off = r.u64();
        std::string piece = r.str();
        chunks[off / kChunk].emplace_back(off, std::move(piece));
      }
    }
    const uint64_t final_index = last ? age::chunk_count(total) - 1 : ~uint64_t{0};
    if (last && total == 0) chunks[0];  // an empty payload is one empty last chunk
    for (auto& [c, pieces] : chunks) {
      if (c >= end) throw Fatal("internal: encrypted chunk " + std::to_string(c) + " sent before it was settled");
      std::sort(pieces.begin(), pieces.end());
      const uint64_t start = c * kChunk;
      const uint64_t size = c == final_index ? total - start : kChunk;
      std::string plain;
      plain.reserve(size);
      for (auto& [off, piece] : pieces) {
        if (off != start + plain.size()) throw Fatal("internal: encrypted chunk " + std::to_string(c) + " has a gap or overlap");
        plain += piece;
      }
      if (plain.size() != size) throw Fatal("internal: encrypted chunk " + std::to_string(c) + " is incomplete");
      seal_and_write(c, 1, plain, c == final_index, size);
    }
  }

  std::unique_ptr<Destination> d_;
  std::vector<age::Recipient> recipients_;
  const bool root_;
  std::string prefix_;
  std::shared_ptr<const age::Secret> key_;
  std::mutex mu_;
  std::map<uint64_t, std::vector<std::pair<uint64_t, std::string>>> held_;  // by chunk index
  uint64_t done_ = 0;  // chunks below this are sealed and written
};

}  // namespace

std::unique_ptr<Destination> with_age_encryption(std::unique_ptr<Destination> inner, std::vector<age::Recipient> recipients,
                                                 bool root) {
  return std::make_unique<AgeDestination>(std::move(inner), std::move(recipients), root);
}

}  // namespace pbackup
