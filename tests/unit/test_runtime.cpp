// Pieces of the runtime that need no mpirun: the chunking arithmetic that keeps MPI counts
// below INT_MAX (src/mpi/chunks.h), and parallel_map stopping at its first error.
#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <climits>
#include <random>
#include <stdexcept>
#include <string>
#include <thread>

#include "mpi/chunks.h"
#include "util/parallel.h"

using namespace pbackup;

TEST_CASE("chunks: gather rounds reassemble every rank's bytes, counts and displacements stay int") {
  std::mt19937_64 rng(7);
  for (int trial = 0; trial < 200; ++trial) {
    const int ranks = 1 + static_cast<int>(rng() % 9);
    const uint64_t chunk = 1 + rng() % 50;
    std::vector<uint64_t> sizes;
    std::vector<std::string> data;
    for (int r = 0; r < ranks; ++r) {
      sizes.push_back(rng() % 300);
      std::string s(sizes.back(), '\0');
      for (auto& ch : s) ch = static_cast<char>(rng());
      data.push_back(s);
    }
    const uint64_t c = chunks::per_rank_chunk(chunk, ranks);
    std::vector<std::string> out(ranks);
    for (int r = 0; r < ranks; ++r) out[r].assign(sizes[r], '\0');
    std::vector<int> counts, displs;
    for (uint64_t k = 0, n = chunks::rounds(sizes, c); k < n; ++k) {
      uint64_t total = chunks::round_layout(sizes, c, k, counts, displs);
      REQUIRE(total <= static_cast<uint64_t>(INT_MAX));
      std::string flat;  // what MPI_Igatherv would assemble at the root
      for (int r = 0; r < ranks; ++r) flat += data[r].substr(std::min<uint64_t>(k * c, sizes[r]), counts[r]);
      REQUIRE(flat.size() == total);
      for (int r = 0; r < ranks; ++r)
        if (counts[r]) out[r].replace(k * c, counts[r], flat.substr(displs[r], counts[r]));
    }
    CHECK(out == data);
  }
}

TEST_CASE("chunks: sizes past 2 GiB split into int counts whatever the rank count") {
  const uint64_t big = 5ull << 30;  // 5 GiB from one rank, 8 GiB manifest-sized from another
  for (int ranks : {1, 2, 3, 1000, 100000}) {
    const uint64_t c = chunks::per_rank_chunk(1ull << 30, ranks);
    CHECK(c * static_cast<uint64_t>(ranks) <= static_cast<uint64_t>(INT_MAX));
    CHECK(c >= 1);
    std::vector<uint64_t> sizes(std::min(ranks, 3), 0);
    sizes[0] = big;
    if (sizes.size() > 1) sizes[1] = 8ull << 30;
    uint64_t rounds = chunks::rounds(sizes, c), moved0 = 0;
    for (uint64_t k = 0; k < rounds; ++k) {
      int n = chunks::in_round(sizes[0], c, k);
      CHECK(n >= 0);
      moved0 += static_cast<uint64_t>(n);
    }
    CHECK(moved0 == big);
  }
  CHECK(chunks::rounds({0, 0}, 10) == 1);  // an empty exchange still takes one round on every rank
  CHECK(chunks::in_round(0, 10, 0) == 0);
  CHECK(chunks::in_round((3ull << 30) + 5, 1ull << 30, 3) == 5);
}

TEST_CASE("parallel_map: the first error stops the pool, no further index starts") {
  std::atomic<int> calls{0};
  CHECK_THROWS_AS(parallel_map(1000, 1, [&](size_t i) -> int {
                    ++calls;
                    if (i == 2) throw std::runtime_error("boom");
                    return 0;
                  }),
                  std::runtime_error);
  CHECK(calls == 3);
  calls = 0;
  // Which thread takes index 0 is up to the scheduler: the other calls wait until it has
  // started, then take 20 ms each, so the pool must notice the failure within a few calls
  // (1000 calls would be 5 s), however loaded the machine is.
  std::atomic<bool> zero_started{false};
  CHECK_THROWS_AS(parallel_map(100000, 4, [&](size_t i) -> int {
                    ++calls;
                    if (i == 0) {
                      zero_started = true;
                      throw std::runtime_error("boom");
                    }
                    for (int w = 0; w < 5000 && !zero_started; ++w) std::this_thread::sleep_for(std::chrono::milliseconds(1));
                    std::this_thread::sleep_for(std::chrono::milliseconds(20));
                    return 0;
                  }),
                  std::runtime_error);
  CHECK(calls < 1000);
  auto v = parallel_map(10, 3, [](size_t i) { return static_cast<int>(i * i); });
  CHECK(v[9] == 81);
}

// ---- restore --only: rank 0 is sent what it needs, not every restored entry ----
#include <filesystem>

#include "helpers.h"
#include "pbackup/pipeline.h"

namespace {
// One rank, recording how many bytes each gather carries.
class RecordingComm final : public Comm {
 public:
  int rank() const override { return 0; }
  int size() const override { return 1; }
  void barrier() override {}
  void broadcast(std::string&, int) override {}
  std::vector<std::string> gather(const std::string& mine, int) override {
    gathered += mine.size();
    return {mine};
  }
  std::string scatter(const std::vector<std::string>& parts, int) override { return parts.at(0); }
  bool all_ok(bool ok) override { return ok; }
  uint64_t sum(uint64_t v) override { return v; }
  uint64_t max(uint64_t v) override { return v; }
  uint64_t exscan(uint64_t) override { return 0; }
  std::vector<std::string> exchange(const std::vector<std::string>& to_each) override { return to_each; }
  void send(int, int, const std::string&) override { throw std::logic_error("one rank"); }
  std::pair<int, std::string> recv_any(int) override { throw std::logic_error("one rank"); }
  std::optional<std::pair<int, std::string>> try_recv_any(int) override { return std::nullopt; }
  std::string recv(int, int) override { throw std::logic_error("one rank"); }
  uint64_t gathered = 0;
};
}  // namespace

TEST_CASE("restore --only: the gather to rank 0 does not carry every restored file") {
  testutil::TempDir t;
  const auto src = t.path / "src";
  for (int i = 0; i < 400; ++i) testutil::write_file(src / "sel" / ("file_number_" + std::to_string(i)), "x");
  testutil::write_file(src / "other" / "y", "y");
  std::filesystem::create_directories(t.path / "out");
  LocalComm local;
  Log log(0, LogLevel::Error);
  BackupOptions o;
  o.sources = {src.string()};
  o.output_dir = (t.path / "out").string();
  o.algo = "gzip";
  o.dest_type = "hdd";
  o.name = "a";
  o.threads = 1;
  o.progress = 0;
  BackupStats stats;
  REQUIRE(run_backup(local, o, log, stats) == 0);

  RecordingComm rec;
  RestoreOptions r;
  r.source = (t.path / "out" / "a.tar.gz").string();
  r.restore_to = (t.path / "r").string();
  r.only = {"src/sel", "src/missing"};
  r.threads = 1;
  CHECK(run_restore(rec, r, log) == 2);  // src/missing: not found
  CHECK(std::filesystem::exists(t.path / "r" / "src" / "sel" / "file_number_399"));
  CHECK(!std::filesystem::exists(t.path / "r" / "src" / "other" / "y"));
  // 400 files of ~40 bytes each went to rank 0 before; now a count and the matched selectors
  CHECK(rec.gathered < 1000);
  rec.gathered = 0;
  r.only = {"src/sel"};
  CHECK(run_restore(rec, r, log) == 0);
  CHECK(rec.gathered < 1000);
}
