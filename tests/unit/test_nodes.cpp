// Multi-node output on thread-ranks (issue 14): which ranks see a directory (sight.cpp, with a
// fake probe standing in for nodes), blind ranks' blocks forwarded to writers (forward.cpp),
// and a whole backup whose output two of three ranks cannot see.
#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>

#include "test_destination.h"
#include "core/forward.h"
#include "core/sight.h"
#include "helpers.h"
#include "pbackup/error.h"
#include "pbackup/pipeline.h"
#include "thread_comm.h"

using namespace pbackup;
namespace fs = std::filesystem;

namespace {

// Records what reaches it; shared by all thread-ranks, keyed by rank.
struct Recorder {
  std::mutex mu;
  std::map<int, std::vector<std::pair<uint64_t, std::string>>> writes;
  std::map<int, bool> opened;
};

class RecordingDestination final : public testing::TestDestination {
 public:
  RecordingDestination(Recorder& r, int rank) : r_(r), rank_(rank) {}
  std::string archive_name() const override { return "x"; }
  std::string prepare() override { return "p"; }
  void open(const std::string&) override {
    std::lock_guard<std::mutex> l(r_.mu);
    r_.opened[rank_] = true;
  }
  void write_at(uint64_t offset, std::string_view bytes) override {
    std::lock_guard<std::mutex> l(r_.mu);
    r_.writes[rank_].emplace_back(offset, std::string(bytes));
  }

 private:
  Recorder& r_;
  int rank_;
};

std::string slurp(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(f), {}};
}

}  // namespace

TEST_CASE("sight: ranks that do not see rank 0's marker are found, and the markers are gone after") {
  testutil::TempDir t;
  auto sights = testutil::run_ranks<Sight>(3, [&](Comm& c) {
    return see_dir(c, t.path.string(), false, [](int rank, const std::string& m) { return rank != 2 && fs::exists(m); });
  });
  for (const Sight& s : sights) CHECK(s == sights[0]);
  CHECK(sights[0].error.empty());
  CHECK(sights[0].group == std::vector<int64_t>{0, 0, -1});
  CHECK_FALSE(sights[0].all_see_root());
  CHECK(sights[0].blind_hosts() == std::vector<std::string>{host_name()});
  CHECK(fs::is_empty(t.path));
}

TEST_CASE("sight: a directory rank 0 cannot mark is an error naming it") {
  auto sights = testutil::run_ranks<Sight>(2, [&](Comm& c) { return see_dir(c, "/nonexistent-pbackup-dir", false); });
  CHECK(sights[1].error.find("/nonexistent-pbackup-dir") != std::string::npos);
}

TEST_CASE("forwarding: blind ranks' writes reach their writer, in every round, and they never open the output") {
  CHECK(assign_writers({true, true, false, false}) == std::vector<int>{0, 1, 0, 1});
  CHECK(assign_writers({true, false, false}) == std::vector<int>{0, 0, 0});
  Recorder rec;
  const std::vector<int> writer_of{0, 1, 0, 1};
  testutil::run_ranks<int>(4, [&](Comm& c) {
    auto d = with_forwarding(std::make_unique<RecordingDestination>(rec, c.rank()), writer_of, c.rank());
    d->open("p");
    for (int round = 0; round < 3; ++round) {
      for (int i = 0; i < 3; ++i)
        d->write_at(static_cast<uint64_t>(1000 * round + 100 * c.rank() + i), "r" + std::to_string(c.rank()) + "-" + std::to_string(i));
      d->settle(c, 0, round == 2);
    }
    d->close();
    return 0;
  });
  CHECK(rec.opened[0]);
  CHECK(rec.opened[1]);
  CHECK_FALSE(rec.opened[2]);
  CHECK_FALSE(rec.opened[3]);
  CHECK(rec.writes[2].empty());
  CHECK(rec.writes[3].empty());
  for (int w : {0, 1}) {
    auto got = rec.writes[w];
    std::sort(got.begin(), got.end());
    std::vector<std::pair<uint64_t, std::string>> want;
    for (int round = 0; round < 3; ++round)
      for (int r : {w, w + 2})
        for (int i = 0; i < 3; ++i) want.emplace_back(1000 * round + 100 * r + i, "r" + std::to_string(r) + "-" + std::to_string(i));
    std::sort(want.begin(), want.end());
    CHECK(got == want);
  }
}

TEST_CASE("backup: output that ranks 1 and 2 cannot see gives the 1-rank archive (hdd, usb_split, zip)") {
  testutil::TempDir t;
  testutil::write_file(t.path / "tree/big.bin", testutil::pattern(5'000'000, 3));
  for (int i = 0; i < 40; ++i) testutil::write_file(t.path / "tree/d" / std::to_string(i), testutil::pattern(70'000 + i, i));
  for (std::string type : {"hdd", "usb_split", "zip"}) {  // zip: hdd, with header patches
    CAPTURE(type);
    const std::string algo = type == "zip" ? "zip" : "gzip";
    if (type == "zip") type = "hdd";
    const fs::path one_dir = t.path / ("one_" + algo + type), three_dir = t.path / ("three_" + algo + type);
    fs::create_directories(one_dir);
    fs::create_directories(three_dir);
    auto opts = [&](const fs::path& out) {
      BackupOptions o = testutil::memory_backup(t.path / "tree", algo, "a");
      o.dest_type = type;
      o.output_dir = out.string();
      o.split_chunk_mb = 1;
      o.threads = 1;
      return o;
    };
    LocalComm one;
    Log log(0, LogLevel::Error);
    BackupStats s1;
    REQUIRE(run_backup(one, opts(one_dir), log, s1) == 0);
    set_sight_probe_for_tests([](int rank, const std::string& m) { return rank == 0 && fs::exists(m); });
    auto rcs = testutil::run_ranks<int>(3, [&](Comm& c) {
      Log l(c.rank(), LogLevel::Error, c.size());
      BackupStats s;
      return run_backup(c, opts(three_dir), l, s);
    });
    set_sight_probe_for_tests(nullptr);
    CHECK(rcs == std::vector<int>{0, 0, 0});
    size_t files = 0;
    for (auto& e : fs::directory_iterator(one_dir)) {
      ++files;
      const std::string name = e.path().filename().string();
      CAPTURE(name);
      if (name.find("manifest") == std::string::npos) CHECK(slurp(e.path()) == slurp(three_dir / name));
    }
    CHECK(files == static_cast<size_t>(std::distance(fs::directory_iterator(three_dir), fs::directory_iterator())));
    CHECK(files > (type == "usb_split" ? 5u : 3u));
  }
}

TEST_CASE("restore: a directory rank 2 does not see is refused before anything is written") {
  testutil::TempDir t;
  testutil::write_file(t.path / "tree/a.txt", "alpha");
  fs::create_directories(t.path / "out");
  LocalComm one;
  Log log(0, LogLevel::Error);
  BackupOptions o = testutil::memory_backup(t.path / "tree", "gzip", "r");
  o.dest_type = "hdd";
  o.output_dir = (t.path / "out").string();
  BackupStats s;
  REQUIRE(run_backup(one, o, log, s) == 0);
  const fs::path to = t.path / "new" / "deep";
  set_sight_probe_for_tests([](int rank, const std::string& m) { return rank != 2 && fs::exists(m); });
  auto rcs = testutil::run_ranks<int>(3, [&](Comm& c) {
    Log l(c.rank(), LogLevel::Error, c.size());
    RestoreOptions r;
    r.source = (t.path / "out" / s.archive).string();
    r.restore_to = to.string();
    return run_restore(c, r, l);
  });
  set_sight_probe_for_tests(nullptr);
  CHECK(rcs[0] == 2);
  CHECK_FALSE(fs::exists(t.path / "new"));  // not even the directory
  CHECK(std::distance(fs::directory_iterator(t.path), fs::directory_iterator()) == 2);  // tree, out: no marker left
}

TEST_CASE("comm: split gives each colour its own communicator, ranked in order") {
  auto got = testutil::run_ranks<std::string>(5, [&](Comm& c) {
    std::unique_ptr<Comm> sub = c.split(c.rank() % 2);
    const uint64_t sum = sub->sum(static_cast<uint64_t>(c.rank()));
    std::vector<std::string> g = sub->gather(std::to_string(c.rank()), 0);
    std::string all;
    for (auto& x : g) all += x;
    return std::to_string(sub->rank()) + "/" + std::to_string(sub->size()) + " sum " + std::to_string(sum) + " " + all;
  });
  CHECK(got == std::vector<std::string>{"0/3 sum 6 024", "0/2 sum 4 13", "1/3 sum 6 ", "1/2 sum 4 ", "2/3 sum 6 "});
}
