// The part exchange (core/part_exchange.h) with 3 thread-ranks and a destination that only
// stores whole parts: every part reaches its owner rank complete (patches applied), is stored
// once, rank 0 learns every stored part, and a failure on one rank fails the settle everywhere.
#include <doctest/doctest.h>

#include <map>
#include <mutex>

#include "test_destination.h"
#include "core/part_exchange.h"
#include "pbackup/error.h"
#include "pbackup/sha256.h"
#include "thread_comm.h"

using namespace pbackup;

namespace {
struct Shelf {  // what every rank's PartStore stored, shared by the thread-ranks
  std::mutex mu;
  std::map<uint64_t, std::pair<int, std::string>> parts;  // k -> (rank, bytes)
  int stored_twice = 0;
  std::vector<StoredPart> reported;  // rank 0's parts_stored
  uint64_t fail_part = UINT64_MAX;
};

class PartStore final : public testing::TestDestination {
 public:
  PartStore(Shelf& s, int rank, uint64_t part) : s_(s), rank_(rank), part_(part) {}
  std::string archive_name() const override { return "parts"; }
  std::string prepare() override { return ""; }
  void open(const std::string&) override {}
  void write_at(uint64_t, std::string_view) override { throw std::logic_error("PartStore: write_at"); }
  uint64_t part_bytes() const override { return part_; }
  void check_part_count(uint64_t parts) const override {
    if (parts > 50) throw Fatal("too many parts");
  }
  std::string store_part(uint64_t k, std::string_view bytes, const std::string& sha) override {
    CHECK(sha == sha256_hex(bytes));
    if (k == s_.fail_part) throw Fatal("upload of part " + std::to_string(k) + " failed");
    std::lock_guard<std::mutex> l(s_.mu);
    if (s_.parts.count(k)) ++s_.stored_twice;
    s_.parts[k] = {rank_, std::string(bytes)};
    return "receipt" + std::to_string(k);
  }
  void parts_stored(const std::vector<StoredPart>& parts) override {
    CHECK(rank_ == 0);
    std::lock_guard<std::mutex> l(s_.mu);
    s_.reported.insert(s_.reported.end(), parts.begin(), parts.end());
  }

 private:
  Shelf& s_;
  int rank_;
  uint64_t part_;
};

std::string archive_bytes(size_t n) {
  std::string a(n, '\0');
  for (size_t i = 0; i < n; ++i) a[i] = static_cast<char>('a' + (i * 7 + i / 13) % 26);
  return a;
}

// Rank r writes the 37-byte stripes i with i % 3 == r of [from, to); rank 0 first writes zeros
// at [5, 15) and patches them later (like a zip header), as the backup's rank 0 does.
void write_stripes(Destination& d, int rank, const std::string& a, uint64_t from, uint64_t to) {
  for (uint64_t at = from; at < to; at += 37)
    if ((at / 37) % 3 == static_cast<uint64_t>(rank))
      d.write_at(at, std::string_view(a).substr(at, std::min<uint64_t>(37, to - at)));
}
}  // namespace

TEST_CASE("part exchange: 3 thread-ranks, each part complete on its owner, stored once") {
  const std::string a = archive_bytes(1050);
  Shelf shelf;
  std::vector<std::string> whole;
  testutil::run_ranks<int>(3, [&](Comm& c) {
    auto d = with_part_exchange(std::make_unique<PartStore>(shelf, c.rank(), 100));
    write_stripes(*d, c.rank(), a, 0, 700);
    if (c.rank() == 0) d->write_at(5, std::string_view(a).substr(5, 10));  // the patch over stripe 0
    d->settle(c, 620, false);  // parts 0..5
    {
      std::lock_guard<std::mutex> l(shelf.mu);
      CHECK(shelf.parts.size() == 6);
    }
    c.barrier();
    d->settle(c, 650, false);  // nothing new is complete: no part stored
    write_stripes(*d, c.rank(), a, 700, 1050);
    d->settle(c, 1050, true);  // parts 6..10, the last one 50 bytes
    std::string h = d->hash_fragment(0, 1050);
    std::lock_guard<std::mutex> l(shelf.mu);
    whole.push_back(h);
    return 0;
  });
  CHECK(whole.size() == 3);
  CHECK(shelf.stored_twice == 0);
  REQUIRE(shelf.parts.size() == 11);
  for (auto& [k, got] : shelf.parts) {
    CAPTURE(k);
    CHECK(got.first == static_cast<int>(k % 3));
    CHECK(got.second == a.substr(k * 100, 100));
  }
  // the whole archive's SHA-256, chained through the parts by their owners, on every rank
  for (const std::string& h : whole) CHECK(h == sha256_hex(a));
  REQUIRE(shelf.reported.size() == 11);
  std::sort(shelf.reported.begin(), shelf.reported.end(), [](auto& x, auto& y) { return x.k < y.k; });
  for (uint64_t k = 0; k < 11; ++k) {
    CHECK(shelf.reported[k].k == k);
    CHECK(shelf.reported[k].size == (k == 10 ? 50u : 100u));
    CHECK(shelf.reported[k].sha256 == sha256_hex(a.substr(k * 100, 100)));
    CHECK(shelf.reported[k].receipt == "receipt" + std::to_string(k));
  }
}

TEST_CASE("part exchange: a part that fails to store fails the settle on every rank") {
  const std::string a = archive_bytes(600);
  Shelf shelf;
  shelf.fail_part = 4;  // owned by rank 1
  auto errors = testutil::run_ranks<std::string>(3, [&](Comm& c) {
    auto d = with_part_exchange(std::make_unique<PartStore>(shelf, c.rank(), 100));
    write_stripes(*d, c.rank(), a, 0, 600);
    try {
      d->settle(c, 600, true);
    } catch (const Fatal& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  });
  for (auto& e : errors) CHECK(e == "upload of part 4 failed");
  CHECK(shelf.reported.size() == 5);  // the others were stored and reported (abort removes them)
}

TEST_CASE("part exchange: a missing piece is a gap, and too many parts are refused before any move") {
  const std::string a = archive_bytes(300);
  Shelf shelf;
  auto errors = testutil::run_ranks<std::string>(2, [&](Comm& c) {
    auto d = with_part_exchange(std::make_unique<PartStore>(shelf, c.rank(), 100));
    if (c.rank() == 1) d->write_at(0, std::string_view(a).substr(0, 50));  // [50, 100) never written
    try {
      d->settle(c, 100, false);
    } catch (const Fatal& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  });
  CHECK(errors[0] == "cloud: part 1 has 50 bytes, expected 100");
  CHECK(errors[1] == errors[0]);
  auto refused = testutil::run_ranks<std::string>(2, [&](Comm& c) {
    auto d = with_part_exchange(std::make_unique<PartStore>(shelf, c.rank(), 1));
    try {
      d->settle(c, 51, false);
    } catch (const Fatal& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  });
  CHECK(refused == std::vector<std::string>{"too many parts", "too many parts"});
}
