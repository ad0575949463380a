// The encrypting destination (core/age_dest.h) with thread-ranks: blocks of odd sizes written
// round-robin by 1 or 3 ranks, settled in two steps, give the same age file (fixed test seed),
// which decrypts to the archive bytes -- also when the archive ends on a chunk boundary (the
// last chunk full) or inside the first chunk.
#include <doctest/doctest.h>

#include <mutex>

#include "test_destination.h"
#include "core/age_dest.h"
#include "pbackup/error.h"
#include "thread_comm.h"

using namespace pbackup;

namespace {
struct Sheet {  // the ciphertext every rank wrote, shared by the thread-ranks
  std::mutex mu;
  std::string bytes;
};

class SheetDestination final : public testing::TestDestination {
 public:
  explicit SheetDestination(Sheet& s) : s_(s) {}
  std::string archive_name() const override { return "x.tar.gz.age"; }
  std::string prepare() override { return "inner"; }
  void open(const std::string& p) override { CHECK(p == "inner"); }
  void write_at(uint64_t off, std::string_view b) override {
    std::lock_guard<std::mutex> l(s_.mu);
    if (s_.bytes.size() < off + b.size()) s_.bytes.resize(off + b.size());
    s_.bytes.replace(off, b.size(), b);
  }

 private:
  Sheet& s_;
};

std::string archive_bytes(size_t n) {
  std::string a(n, '\0');
  for (size_t i = 0; i < n; ++i) a[i] = static_cast<char>((i * 131 + i / 7) & 0xff);
  return a;
}

// Encrypts `a`, cut into blocks of the given sizes (cycled), block i written by rank i % n.
std::string encrypt_with(int n, const std::string& a, const std::vector<uint64_t>& sizes, const std::vector<age::Recipient>& rs) {
  Sheet sheet;
  age::set_test_seed("unit seed");
  testutil::run_ranks<int>(n, [&](Comm& c) {
    auto d = with_age_encryption(std::make_unique<SheetDestination>(sheet), c.rank() == 0 ? rs : std::vector<age::Recipient>{},
                                 c.rank() == 0);
    std::string prepared;
    if (c.rank() == 0) prepared = d->prepare();
    c.broadcast(prepared, 0);
    d->open(prepared);
    uint64_t at = 0, half = a.size() / 2;
    bool settled_half = false;
    for (size_t i = 0; at < a.size(); ++i) {
      uint64_t len = std::min<uint64_t>(sizes[i % sizes.size()], a.size() - at);
      if (!settled_half && at >= half) {
        d->settle(c, at, false);  // everything below `at` is written
        settled_half = true;
      }
      if (static_cast<int>(i % static_cast<size_t>(n)) == c.rank()) d->write_at(at, std::string_view(a).substr(at, len));
      at += len;
    }
    if (!settled_half) d->settle(c, 0, false);
    d->settle(c, a.size(), true);
    d->close();
    return 0;
  });
  age::set_test_seed("");
  return sheet.bytes;
}
}  // namespace

TEST_CASE("age destination: 1 and 3 ranks write the same age file, which decrypts to the archive") {
  auto ids = age::parse_identity_file("AGE-SECRET-KEY-1XMWWC06LY3EE5RYTXM9MFLAZ2U56JJJ36S0MYPDRWSVLUL66MV4QX3S7F6\n", "t");
  std::vector<age::Recipient> rs = {age::parse_recipient(age::public_key_of(ids[0]))};
  struct Case {
    size_t total;
    std::vector<uint64_t> sizes;
  };
  for (const Case& k : {Case{350000, {50000, 70001, 65536, 131072, 3}}, Case{4 * 65536, {65536}},
                        Case{4 * 65536, {100000, 31072}}, Case{1000, {10, 500}}, Case{65537, {65536, 1}}}) {
    CAPTURE(k.total);
    const std::string a = archive_bytes(k.total);
    std::string one = encrypt_with(1, a, k.sizes, rs);
    std::string three = encrypt_with(3, a, k.sizes, rs);
    CHECK(one == three);
    CHECK(age::decrypt_buffer(three, ids) == a);
  }
}
