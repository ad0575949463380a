// See part_exchange.h.
#include "core/part_exchange.h"

#include <openssl/sha.h>

#include <algorithm>
#include <cstring>
#include <exception>
#include <map>
#include <thread>

#include "util/parallel.h"
#include "pbackup/bytes.h"
#include "pbackup/comm.h"
#include "pbackup/error.h"
#include "pbackup/sha256.h"

namespace pbackup {
namespace {

constexpr int kTagPart = 31;
constexpr int kTagHashState = 32;

// SHA-256 whose running state can travel between ranks (OpenSSL's SHA256_CTX is a plain struct
// of integers and the buffered partial block; both sides run the same binary).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
struct ChainHash {
  SHA256_CTX ctx;
  ChainHash() { SHA256_Init(&ctx); }
  void update(std::string_view d) { SHA256_Update(&ctx, d.data(), d.size()); }
  std::string state() const { return std::string(reinterpret_cast<const char*>(&ctx), sizeof ctx); }
  void set_state(const std::string& s) {
    if (s.size() != sizeof ctx) throw Fatal("part exchange: malformed SHA-256 state from another rank");
    std::memcpy(&ctx, s.data(), sizeof ctx);
  }
  std::string hex() {
    unsigned char md[SHA256_DIGEST_LENGTH];
    SHA256_Final(md, &ctx);
    static const char* digits = "0123456789abcdef";
    std::string out;
    for (unsigned char c : md) {
      out.push_back(digits[c >> 4]);
      out.push_back(digits[c & 15]);
    }
    return out;
  }
};
#pragma GCC diagnostic pop
constexpr int kStoreThreads = 4;  // parts a rank stores at once

struct PartDone {  // what rank 0 learns about a part an owner stored
  StoredPart part;
  std::string error;
};

void encode(ByteWriter& w, const PartDone& d) {
  w.u64(d.part.k);
  w.u64(d.part.size);
  w.str(d.part.sha256);
  w.str(d.part.receipt);
  w.str(d.error);
}
PartDone decode_done(ByteReader& r) {
  PartDone d;
  d.part.k = r.u64();
  d.part.size = r.u64();
  d.part.sha256 = r.str();
  d.part.receipt = r.str();
  d.error = r.str();
  return d;
}

class PartExchange final : public Destination {
 public:
  explicit PartExchange(std::unique_ptr<Destination> d)
      : d_(std::move(d)), part_(d_->part_bytes()), chain_(d_->fragment_count(2 * part_) == 1) {}

  std::string archive_name() const override { return d_->archive_name(); }
  std::string prepare() override { return d_->prepare(); }
  void expect_size(uint64_t bytes) override { d_->expect_size(bytes); }
  void open(const std::string& prepared) override {
    d_->open(prepared);
    part_ = d_->part_bytes();  // the destination may have grown it for a large archive
    if (part_ == 0) throw std::logic_error("part exchange: the destination's part size became 0");
    chain_ = d_->fragment_count(2 * part_) == 1;  // one fragment over many parts: hash it whole
  }
  void write_at(uint64_t offset, std::string_view bytes) override {
    while (!bytes.empty()) {
      uint64_t k = offset / part_;
      uint64_t n = std::min<uint64_t>(bytes.size(), (k + 1) * part_ - offset);
      held_[k].emplace_back(offset, std::string(bytes.substr(0, n)));
      bytes.remove_prefix(n);
      offset += n;
    }
  }
  void settle(Comm& comm, uint64_t settled, bool last) override {
    const uint64_t end = last ? settled / part_ + (settled % part_ != 0) : settled / part_;
    if (end <= done_) return;  // the same on every rank: no collective at all
    d_->check_part_count(end);
    move_to_owners(comm, transfer_plan(comm, end));
    report(comm, store_mine(comm, end, last ? settled : end * part_, last));
    for (uint64_t k = done_; k < end; ++k) held_.erase(k);
    done_ = end;
  }
  void close() override { d_->close(); }
  size_t fragment_count(uint64_t total) const override { return d_->fragment_count(total); }
  // One fragment made of many parts: the SHA-256 the ranks chained over the parts, in order
  // (every rank has it after the last settle); else the destination's.
  std::string hash_fragment(size_t k, uint64_t total) override {
    if (chain_ && k == 0 && !whole_sha_.empty()) return whole_sha_;
    return d_->hash_fragment(k, total);
  }
  std::vector<Fragment> fragments(uint64_t total, const std::vector<std::string>& hashes) override {
    return d_->fragments(total, hashes);
  }
  void commit(uint64_t total, const std::vector<SideFile>& side_files) override { d_->commit(total, side_files); }
  void abort() noexcept override { d_->abort(); }
  std::vector<std::string> temp_paths() const override { return d_->temp_paths(); }

 private:
  int owner(uint64_t k, int size) const { return static_cast<int>(k % static_cast<uint64_t>(size)); }

  // 1. who holds bytes of which finished part: every rank learns the transfer list (part, from).
  std::string transfer_plan(Comm& comm, uint64_t end) {
    ByteWriter have;
    for (auto it = held_.lower_bound(done_); it != held_.end() && it->first < end; ++it) have.u64(it->first);
    auto all = comm.gather(have.take(), 0);
    std::string plan;
    if (comm.rank() == 0) {
      ByteWriter w;
      for (int r = 0; r < comm.size(); ++r) {
        ByteReader rr(all[static_cast<size_t>(r)]);
        while (!rr.done()) {
          uint64_t k = rr.u64();
          if (owner(k, comm.size()) != r) {
            w.u64(k);
            w.u32(static_cast<uint32_t>(r));
          }
        }
      }
      plan = w.take();
    }
    comm.broadcast(plan, 0);
    return plan;
  }

  // 2. moves the bytes to the owners, in the plan's order (the same everywhere).
  void move_to_owners(Comm& comm, const std::string& plan) {
    const int me = comm.rank();
    ByteReader pr(plan);
    while (!pr.done()) {
      uint64_t k = pr.u64();
      int from = static_cast<int>(pr.u32()), to = owner(k, comm.size());
      if (me == from) {
        ByteWriter w;
        for (auto& [off, bytes] : held_[k]) {
          w.u64(off);
          w.str(bytes);
        }
        held_.erase(k);
        comm.send(to, kTagPart, w.take());
      } else if (me == to) {
        std::string msg = comm.recv(from, kTagPart);
        ByteReader r(msg);
        while (!r.done()) {
          uint64_t off = r.u64();
          held_[k].emplace_back(off, r.str());
        }
      }
    }
  }

  // 3. owners assemble and store their parts [done_, end), a few at a time; meanwhile (one
  // fragment over many parts) this thread chains the whole archive's SHA-256 through the parts
  // in order, passing the running state from each part's owner to the next one's (a few hundred
  // bytes per part instead of the part: no rank reads the archive back).
  std::vector<PartDone> store_mine(Comm& comm, uint64_t end, uint64_t limit, bool last) {
    std::vector<uint64_t> mine;
    for (uint64_t k = done_; k < end; ++k)
      if (owner(k, comm.size()) == comm.rank()) mine.push_back(k);
    std::vector<std::string> parts(mine.size());
    std::vector<std::string> errors(mine.size());
    for (size_t i = 0; i < mine.size(); ++i) {
      try {
        parts[i] = assemble(mine[i], limit);
        held_.erase(mine[i]);  // the pieces are in the part now
      } catch (const std::exception& e) {
        errors[i] = e.what();
      }
    }
    std::vector<PartDone> out;
    std::exception_ptr upload_failed;
    std::thread uploads([&] {
      try {
        out = parallel_map(mine.size(), kStoreThreads, [&](size_t i) {
          PartDone d;
          d.part.k = mine[i];
          d.error = errors[i];
          if (!d.error.empty()) return d;
          try {
            d.part.size = parts[i].size();
            d.part.sha256 = sha256_hex(parts[i]);
            d.part.receipt = d_->store_part(d.part.k, parts[i], d.part.sha256);
          } catch (const std::exception& e) {
            d.error = e.what();
          }
          return d;
        });
      } catch (...) {
        upload_failed = std::current_exception();
      }
    });
    try {
      if (chain_) chain(comm, end, mine, parts, last);
    } catch (...) {
      uploads.join();
      throw;
    }
    uploads.join();
    if (upload_failed) std::rethrow_exception(upload_failed);
    return out;
  }

  // The running SHA-256 visits parts [done_, end) in order: part k's owner gets the state from
  // part k-1's owner (kept from the previous settle when that was this rank), adds part k and
  // keeps it. After the last part every rank learns the digest. Sends and receives follow k, so
  // no two ranks wait on each other.
  void chain(Comm& comm, uint64_t end, const std::vector<uint64_t>& mine, const std::vector<std::string>& parts, bool last) {
    const int me = comm.rank(), n = comm.size();
    size_t i = 0;
    for (uint64_t k = done_; k < end; ++k) {
      int o = owner(k, n), p = k > 0 ? owner(k - 1, n) : o;
      if (p != o && me == p) comm.send(o, kTagHashState, hash_.state());
      if (p != o && me == o) hash_.set_state(comm.recv(p, kTagHashState));
      if (me == o) hash_.update(parts.at(i++));
    }
    (void)mine;
    if (!last || end == 0) return;
    const int holder = owner(end - 1, n);
    std::string hex = me == holder ? hash_.hex() : std::string();
    comm.broadcast(hex, holder);
    whole_sha_ = hex;
  }

  // 4. rank 0 learns the stored parts; everyone learns whether all went well.
  void report(Comm& comm, const std::vector<PartDone>& done) {
    ByteWriter rep;
    for (auto& d : done) encode(rep, d);
    auto reps = comm.gather(rep.take(), 0);
    std::string first_error;
    if (comm.rank() == 0) {
      std::vector<StoredPart> stored;
      for (auto& m : reps) {
        ByteReader r(m);
        while (!r.done()) {
          PartDone d = decode_done(r);
          if (!d.error.empty()) {
            if (first_error.empty()) first_error = d.error;
          } else {
            stored.push_back(std::move(d.part));
          }
        }
      }
      try {
        d_->parts_stored(stored);
      } catch (const std::exception& e) {
        if (first_error.empty()) first_error = e.what();
      }
    }
    comm.broadcast(first_error, 0);
    if (!first_error.empty()) throw Fatal(first_error);
  }

  // Part k's bytes, which must cover [k*part, min((k+1)*part, limit)) exactly.
  std::string assemble(uint64_t k, uint64_t limit) {
    auto& pieces = held_[k];
    // By offset; at one offset the longer write first, so a header patch lands on its block.
    std::sort(pieces.begin(), pieces.end(), [](auto& a, auto& b) {
      return a.first != b.first ? a.first < b.first : a.second.size() > b.second.size();
    });
    uint64_t start = k * part_, stop = std::min((k + 1) * part_, limit);
    std::string out;
    out.reserve(stop - start);
    for (auto& [off, bytes] : pieces) {
      if (off < start + out.size()) {  // a later write over earlier bytes (zip header patch)
        uint64_t at = off - start;
        out.replace(at, std::min<uint64_t>(bytes.size(), out.size() - at), bytes.substr(0, out.size() - at));
        if (bytes.size() > out.size() - at) out.append(bytes.substr(out.size() - at));
        continue;
      }
      if (off != start + out.size()) throw Fatal("cloud: part " + std::to_string(k + 1) + " has a gap at byte " + std::to_string(start + out.size()));
      out += bytes;
    }
    if (out.size() != stop - start)
      throw Fatal("cloud: part " + std::to_string(k + 1) + " has " + std::to_string(out.size()) + " bytes, expected " + std::to_string(stop - start));
    return out;
  }

  std::unique_ptr<Destination> d_;
  uint64_t part_;
  uint64_t done_ = 0;  // parts below this one are stored
  bool chain_;  // one fragment over many parts
  ChainHash hash_;          // the whole archive's SHA-256 so far (on the rank that added the last part)
  std::string whole_sha_;   // after the last settle, on every rank
  std::map<uint64_t, std::vector<std::pair<uint64_t, std::string>>> held_;
};

}  // namespace

std::unique_ptr<Destination> with_part_exchange(std::unique_ptr<Destination> dest) {
  if (!dest || dest->part_bytes() == 0) return dest;
  return std::make_unique<PartExchange>(std::move(dest));
}

}  // namespace pbackup
