// The multi-rank protocols with N thread-ranks (thread_comm.h): the Comm operations themselves,
// the scan hand-out, a whole backup (same bytes as one rank) and the parallel restore.
#include <doctest/doctest.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>

#include "core/catalog.h"
#include "core/file_list.h"
#include "dest/registry.h"
#include "helpers.h"
#include "pbackup/pipeline.h"
#include "thread_comm.h"

using namespace pbackup;
namespace fs = std::filesystem;

TEST_CASE("thread comm: every operation across 4 thread-ranks") {
  auto out = testutil::run_ranks<std::string>(4, [](Comm& c) {
    const int r = c.rank();
    std::string s;
    std::string b = r == 2 ? "from two" : "";
    c.broadcast(b, 2);
    s += b + "|";
    auto g = c.gather("g" + std::to_string(r), 1);
    if (r == 1) CHECK(g == std::vector<std::string>{"g0", "g1", "g2", "g3"});
    else CHECK(g.empty());
    std::vector<std::string> parts;
    if (r == 3) parts = {"s0", "s1", "s2", "s3"};
    s += c.scatter(parts, 3) + "|";
    s += std::to_string(c.sum(static_cast<uint64_t>(r) + 1)) + "|" + std::to_string(c.max(static_cast<uint64_t>(r) * 7)) + "|";
    s += c.all_ok(true) ? "ok|" : "no|";
    s += c.all_ok(r != 1) ? "ok|" : "no|";
    c.barrier();
    // point to point: in order per sender and tag; a later tag does not overtake
    if (r != 0) {
      c.send(0, 5, "a" + std::to_string(r));
      c.send(0, 5, "b" + std::to_string(r));
      c.send(0, 6, "t6");
    } else {
      CHECK(c.recv(2, 5) == "a2");
      CHECK(c.recv(2, 5) == "b2");
      int got5 = 0, got6 = 0;
      while (got5 < 4) {
        auto [src, bytes] = c.recv_any(5);
        CHECK((src == 1 || src == 3));
        ++got5;
      }
      while (got6 < 3) {
        if (auto m = c.try_recv_any(6)) {
          CHECK(m->second == "t6");
          ++got6;
        }
      }
      CHECK(!c.try_recv_any(5));
    }
    c.barrier();
    return s;
  });
  for (int r = 0; r < 4; ++r) CHECK(out[r] == "from two|s" + std::to_string(r) + "|10|21|ok|no|");
}

TEST_CASE("thread comm: exscan and exchange across 1 to 4 thread-ranks") {
  for (int n = 1; n <= 4; ++n) {
    auto out = testutil::run_ranks<std::string>(n, [n](Comm& c) {
      const int r = c.rank();
      std::string s = std::to_string(c.exscan(static_cast<uint64_t>(r) * 10 + 1)) + "|";
      // twice in a row, with empty and unequal strings: the second must not mix with the first
      for (int round = 0; round < 2; ++round) {
        std::vector<std::string> to(static_cast<size_t>(n));
        for (int d = 0; d < n; ++d) to[static_cast<size_t>(d)] = (d + round) % 2 ? "" : std::string(static_cast<size_t>(r + 1), static_cast<char>('a' + d)) + std::to_string(round);
        auto got = c.exchange(to);
        REQUIRE(got.size() == static_cast<size_t>(n));
        for (int from = 0; from < n; ++from) s += got[static_cast<size_t>(from)] + ",";
      }
      return s;
    });
    for (int r = 0; r < n; ++r) {
      uint64_t below = 0;
      for (int i = 0; i < r; ++i) below += static_cast<uint64_t>(i) * 10 + 1;
      std::string want = std::to_string(below) + "|";
      for (int round = 0; round < 2; ++round)
        for (int from = 0; from < n; ++from)
          want += ((r + round) % 2 ? "" : std::string(static_cast<size_t>(from + 1), static_cast<char>('a' + r)) + std::to_string(round)) + ",";
      CHECK(out[static_cast<size_t>(r)] == want);
    }
  }
  LocalComm one;
  CHECK(one.exscan(5) == 0);
  CHECK(one.exchange({"x"}) == std::vector<std::string>{"x"});
}

TEST_CASE("thread comm: a failing rank fails the run instead of hanging the others") {
  CHECK_THROWS_WITH(testutil::run_ranks<int>(3,
                                             [](Comm& c) {
                                               if (c.rank() == 1) throw std::runtime_error("rank one broke");
                                               c.barrier();
                                               return 0;
                                             }),
                    "rank one broke");
  CHECK_THROWS_WITH(testutil::run_ranks<int>(2,
                                             [](Comm& c) {
                                               if (c.rank() == 0) c.barrier();
                                               else c.sum(1);
                                               return 0;
                                             }),
                    doctest::Contains("ThreadComm: rank"));
}

namespace {
// A tree with enough directories that the coordinator hands many out and workers send some back.
void make_tree(const fs::path& src) {
  for (int d = 0; d < 10; ++d)
    for (int f = 0; f < 60; ++f)
      testutil::write_file(src / ("d" + std::to_string(d)) / ("s" + std::to_string(f % 3)) / ("f" + std::to_string(f)),
                           std::string(static_cast<size_t>(f % 5), 'x'));
  testutil::write_file(src / "big.bin", testutil::pattern(3'300'000, 3));
  testutil::write_file(src / "mid.bin", testutil::pattern(900'000, 4));
  fs::create_symlink("big.bin", src / "link");
  fs::create_hard_link(src / "mid.bin", src / "d3" / "hard");
  fs::create_directories(src / "empty");
}

std::vector<std::string> describe(const EntryList& es) {
  std::vector<std::string> out;
  for (const auto& e : es)
    out.push_back(e.path + " " + std::to_string(static_cast<int>(e.type)) + " " + std::to_string(e.size) + " " + e.link);
  return out;
}

using testutil::memory_backup;

std::string tree_listing(const fs::path& root, bool link_counts) {
  std::vector<std::string> out;
  for (auto it = fs::recursive_directory_iterator(root); it != fs::recursive_directory_iterator(); ++it) {
    struct stat st {};
    REQUIRE(::lstat(it->path().c_str(), &st) == 0);
    std::string line = fs::relative(it->path(), root).string() + " " + std::to_string(st.st_mode) + " " +
                       std::to_string(st.st_mtim.tv_sec);
    if (S_ISREG(st.st_mode)) {
      std::ifstream f(it->path(), std::ios::binary);
      std::stringstream ss;
      ss << f.rdbuf();
      line += " " + std::to_string(std::hash<std::string>{}(ss.str()));
      if (link_counts) line += " " + std::to_string(st.st_nlink);
    } else if (S_ISLNK(st.st_mode)) {
      line += " -> " + fs::read_symlink(it->path()).string();
    }
    out.push_back(line);
  }
  std::sort(out.begin(), out.end());
  std::string s;
  for (auto& l : out) s += l + "\n";
  return s;
}
}  // namespace

TEST_CASE("scan + sort_by_path: 1 to 4 thread-ranks find and order the same entries as one rank") {
  testutil::TempDir t;
  make_tree(t.path / "tree");
  auto roots = resolve_roots({(t.path / "tree").string()});
  LocalComm one;
  Log log(0, LogLevel::Error);
  EntryList single = scan(one, roots, log);
  order_entries(single);
  for (int n = 1; n <= 4; ++n) {
    CAPTURE(n);
    auto per_rank = testutil::run_ranks<EntryList>(n, [&](Comm& c) {
      Log l(c.rank(), LogLevel::Error, c.size());
      EntryList mine = scan(c, roots, l);  // each rank keeps what it found
      sort_by_path(c, mine);
      // every slice in order, and before the next rank's
      for (size_t i = 1; i < mine.size(); ++i) CHECK(path_less(mine[i - 1].path, mine[i].path));
      auto firsts = c.gather(mine.empty() ? "" : mine.front().path, 0);
      auto lasts = c.gather(mine.empty() ? "" : mine.back().path, 0);
      for (size_t r = 0; r < firsts.size(); ++r)
        for (size_t q = r + 1; q < firsts.size(); ++q)
          if (!lasts[r].empty() && !firsts[q].empty()) CHECK(path_less(lasts[r], firsts[q]));
      gather_in_order(c, mine);
      if (c.rank() == 0) mark_hardlinks(mine);
      return mine;
    });
    for (int r = 1; r < n; ++r) CHECK(per_rank[static_cast<size_t>(r)].empty());
    CHECK(describe(per_rank[0]) == describe(single));
  }
}

TEST_CASE("sort_by_path: every rank gets a fair share, in order, from very uneven lists") {
  // 20000 entries all found by rank 2 (more than a batch per destination), plus a few on rank 0
  for (int n : {2, 3, 4}) {
    CAPTURE(n);
    auto per_rank = testutil::run_ranks<EntryList>(n, [n](Comm& c) {
      EntryList mine;
      auto add = [&](int i) {
        Entry e;
        char b[32];
        std::snprintf(b, sizeof b, "r/d%03d/f%05d", i % 997, i);
        e.path = b;
        e.size = static_cast<uint64_t>(i);
        mine.push_back(e);
      };
      if (c.rank() == n - 1)
        for (int i = 0; i < 20000; ++i) add(i);
      if (c.rank() == 0)
        for (int i = 20000; i < 20010; ++i) add(i);
      sort_by_path(c, mine);
      return mine;
    });
    std::vector<std::string> all;
    for (auto& l : per_rank) {
      CHECK(l.size() > 20010 / static_cast<size_t>(n) * 9 / 10);  // about equal shares
      CHECK(l.size() < 20010 / static_cast<size_t>(n) * 11 / 10 + 1);
      for (auto& e : l) {
        CHECK(e.size == std::stoull(e.path.substr(e.path.size() - 5)));  // the entries travel whole
        all.push_back(e.path);
      }
    }
    REQUIRE(all.size() == 20010);
    CHECK(std::is_sorted(all.begin(), all.end(), [](const std::string& a, const std::string& b) { return path_less(a, b); }));
    CHECK(std::adjacent_find(all.begin(), all.end()) == all.end());
  }
}

TEST_CASE("path_less: the word-at-a-time prefix skip orders as the byte-by-byte rule") {
  // the rule: the first differing byte decides, '/' before every other byte; a prefix first
  auto reference = [](const std::string& a, const std::string& b) {
    for (size_t i = 0; i < std::min(a.size(), b.size()); ++i) {
      const auto x = static_cast<unsigned char>(a[i]), y = static_cast<unsigned char>(b[i]);
      if (x != y) return x == '/' ? true : y == '/' ? false : x < y;
    }
    return a.size() < b.size();
  };
  std::mt19937 rng(7);
  const std::string alphabet = "/.-a\x01\x7f\xff";  // '/', bytes below and above it, high bytes
  const std::string prefix = "root/a long shared directory/";
  for (int i = 0; i < 20000; ++i) {
    std::string a = prefix.substr(0, rng() % (prefix.size() + 1)), b = a;
    for (size_t k = rng() % 20; k > 0; --k) a += alphabet[rng() % alphabet.size()];
    for (size_t k = rng() % 20; k > 0; --k) b += alphabet[rng() % alphabet.size()];
    if (rng() % 4 == 0) b = a + b.substr(0, rng() % 3);  // prefixes of each other, equal
    CHECK(path_less(a, b) == reference(a, b));
    CHECK(path_less(b, a) == reference(b, a));
  }
  CHECK(path_less("r/abcdefgh/x", "r/abcdefghx"));  // '/' before 'x' after a whole equal word
  CHECK_FALSE(path_less("r/abcdefghx", "r/abcdefgh/x"));
}

TEST_CASE("backup: 3 thread-ranks write the same archive bytes as one rank") {
  testutil::TempDir t;
  make_tree(t.path / "tree");
  for (std::string algo : {"gzip", "zstd", "zip"}) {
    CAPTURE(algo);
    LocalComm one;
    Log log(0, LogLevel::Error);
    BackupStats s1;
    REQUIRE(run_backup(one, memory_backup(t.path / "tree", algo, "tc1_" + algo), log, s1) == 0);
    auto rcs = testutil::run_ranks<int>(3, [&](Comm& c) {
      Log l(c.rank(), LogLevel::Error, c.size());
      BackupStats s;
      int rc = run_backup(c, memory_backup(t.path / "tree", algo, "tc3_" + algo), l, s);
      if (c.rank() == 0) CHECK(s.bytes_out == s1.bytes_out);
      return rc;
    });
    CHECK(rcs == std::vector<int>{0, 0, 0});
    CHECK(memory_object(s1.archive) == memory_object("tc3_" + s1.archive.substr(4)));
    CHECK(memory_object(s1.archive + ".manifest.json").size() > 0);
  }
}

TEST_CASE("incremental: a level from 3 thread-ranks is byte-identical to one rank's, catalog included") {
  // The level stores little (directories, the hard-linked pair, two changed files): the cut hands
  // it all on to the last rank, while every rank keeps the records of its unchanged files, so
  // rank 0 must merge the ranks' record streams by path, not concatenate them.
  testutil::TempDir t;
  make_tree(t.path / "tree");
  fs::create_directories(t.path / "out");
  auto options = [&](const std::string& name, const std::string& prev) {
    BackupOptions o = memory_backup(t.path / "tree", "zstd", name);
    o.dest_type = "hdd";
    o.output_dir = (t.path / "out").string();
    o.incremental_from = prev;
    return o;
  };
  LocalComm one;
  Log log(0, LogLevel::Error);
  BackupStats s0, s1;
  REQUIRE(run_backup(one, options("l0", ""), log, s0) == 0);
  testutil::write_file(t.path / "tree" / "d1" / "s0" / "f3", "changed");
  testutil::write_file(t.path / "tree" / "d8" / "new", "added");
  const std::string prev = (t.path / "out" / s0.archive).string();
  REQUIRE(run_backup(one, options("one", prev), log, s1) == 0);
  auto rcs = testutil::run_ranks<int>(3, [&](Comm& c) {
    Log l(c.rank(), LogLevel::Error, c.size());
    BackupStats s;
    return run_backup(c, options("three", prev), l, s);
  });
  CHECK(rcs == std::vector<int>{0, 0, 0});
  auto bytes = [&](const std::string& name) {
    std::ifstream in(t.path / "out" / name, std::ios::binary);
    REQUIRE(in);
    return std::string(std::istreambuf_iterator<char>(in), {});
  };
  const std::string three = "three" + s1.archive.substr(3);
  CHECK(bytes(s1.archive) == bytes(three));
  const std::string cat1 = bytes(catalog_name(s1.archive));
  CHECK(cat1 == bytes(catalog_name(three)));
  std::vector<std::string> paths;
  read_catalog(cat1, [&](const CatalogRecord& r) { paths.push_back(r.path); });
  size_t on_disk = 1;  // the root
  for (auto it = fs::recursive_directory_iterator(t.path / "tree"); it != fs::recursive_directory_iterator(); ++it) ++on_disk;
  CHECK(paths.size() == on_disk);  // the whole tree, not only what the level stores
  CHECK(std::is_sorted(paths.begin(), paths.end(), [](const std::string& a, const std::string& b) { return path_less(a, b); }));
}

TEST_CASE("restore: 3 thread-ranks restore the tree a file backup holds") {
  testutil::TempDir t;
  make_tree(t.path / "tree");
  fs::create_directories(t.path / "out");
  for (std::string algo : {"zstd", "zip"}) {
    CAPTURE(algo);
    LocalComm one;
    Log log(0, LogLevel::Error);
    BackupOptions o = memory_backup(t.path / "tree", algo, "a_" + algo);
    o.dest_type = "hdd";
    o.output_dir = (t.path / "out").string();
    BackupStats s;
    REQUIRE(run_backup(one, o, log, s) == 0);
    const fs::path to = t.path / ("r_" + algo);
    fs::create_directories(to);
    auto rcs = testutil::run_ranks<int>(3, [&](Comm& c) {
      Log l(c.rank(), LogLevel::Error, c.size());
      RestoreOptions r;
      r.source = (t.path / "out" / s.archive).string();
      r.restore_to = to.string();
      r.threads = 2;
      return run_restore(c, r, l);
    });
    CHECK(rcs == std::vector<int>{0, 0, 0});
    CHECK(tree_listing(to / "tree", algo != "zip") == tree_listing(t.path / "tree", algo != "zip"));  // zip stores a copy
  }
}

namespace {
// A block as paths, so blocks cut from different lists compare.
std::vector<std::string> describe_blocks(const std::vector<Block>& blocks, const EntryList& entries) {
  std::vector<std::string> out;
  for (const Block& b : blocks) {
    std::string s = std::to_string(b.id) + " " + std::to_string(b.raw_offset) + "+" + std::to_string(b.raw_bytes) + ":";
    for (const Piece& p : b.pieces)
      s += " " + entries.at(p.entry).path + (p.header ? "/h" : "") + (p.last ? "/l" : "") + "@" + std::to_string(p.offset) +
           "+" + std::to_string(p.length);
    out.push_back(s);
  }
  return out;
}
}  // namespace

TEST_CASE("cut_in_turn and distributed hard links: the same blocks and links as one list, for 1 to 4 ranks") {
  // 9000 entries: mostly tiny (the 4096-piece cap cuts), a few spanning several 64 KiB blocks,
  // pairs of hard links far apart in the order (and one name per rank boundary, whatever it is)
  auto make = [](int i) {
    Entry e;
    char b[32];
    std::snprintf(b, sizeof b, "t/d%02d/f%05d", i % 37, i);
    e.path = b;
    e.size = i % 1000 == 7 ? 300000 + static_cast<uint64_t>(i) : static_cast<uint64_t>(i % 5);
    e.dev = 1;
    e.ino = static_cast<uint64_t>(i);
    if (i % 450 == 3 || i % 450 == 4) {  // the same inode under two names
      e.ino = 100000 + static_cast<uint64_t>(i / 450);
      e.nlink = 2;
      e.size = 12345;
    }
    return e;
  };
  const int kEntries = 9000;
  const uint64_t kBlock = 64 << 10;
  auto fmt = make_format("gzip", 1);
  EntryList whole;
  for (int i = 0; i < kEntries; ++i) whole.push_back(make(i));
  order_entries(whole);
  const auto want = describe_blocks(fmt->cut(whole, kBlock), whole);
  std::vector<std::string> want_links;
  for (const Entry& e : whole)
    if (e.type == EntryType::Hardlink) want_links.push_back(e.path + " -> " + e.link);
  REQUIRE(want_links.size() == 20);
  for (int n = 1; n <= 4; ++n) {
    CAPTURE(n);
    struct Out {
      std::vector<std::string> blocks, links;
      size_t owned = 0;
    };
    auto per_rank = testutil::run_ranks<Out>(n, [&](Comm& c) {
      EntryList mine;
      for (int i = c.rank(); i < kEntries; i += c.size()) mine.push_back(make(i));
      sort_by_path(c, mine);
      mark_hardlinks(c, mine);
      auto blocks = cut_in_turn(c, mine, *fmt, kBlock);
      Out o;
      o.blocks = describe_blocks(blocks, mine);
      for (const Block& b : blocks)
        for (const Piece& p : b.pieces)
          if (p.header) {
            ++o.owned;
            if (mine[p.entry].type == EntryType::Hardlink) o.links.push_back(mine[p.entry].path + " -> " + mine[p.entry].link);
          }
      return o;
    });
    std::vector<std::string> got, links;
    size_t owned = 0;
    for (auto& o : per_rank) {
      got.insert(got.end(), o.blocks.begin(), o.blocks.end());
      links.insert(links.end(), o.links.begin(), o.links.end());
      owned += o.owned;
    }
    CHECK(got == want);
    CHECK(links == want_links);
    CHECK(owned == static_cast<size_t>(kEntries));  // each entry's header on exactly one rank
  }
}

namespace {
// Passes every call on to another Comm and keeps the size of the largest string any call moved.
class LargestMessage final : public Comm {
 public:
  explicit LargestMessage(Comm& c) : c_(c) {}
  int rank() const override { return c_.rank(); }
  int size() const override { return c_.size(); }
  int local_size() const override { return c_.local_size(); }
  void barrier() override { c_.barrier(); }
  void broadcast(std::string& b, int root) override {
    c_.broadcast(b, root);
    see(b);
  }
  std::vector<std::string> gather(const std::string& mine, int root) override {
    see(mine);
    return c_.gather(mine, root);
  }
  std::string scatter(const std::vector<std::string>& parts, int root) override {
    for (auto& p : parts) see(p);
    return c_.scatter(parts, root);
  }
  bool all_ok(bool ok) override { return c_.all_ok(ok); }
  uint64_t sum(uint64_t v) override { return c_.sum(v); }
  uint64_t max(uint64_t v) override { return c_.max(v); }
  uint64_t exscan(uint64_t v) override { return c_.exscan(v); }
  std::vector<std::string> exchange(const std::vector<std::string>& to) override {
    for (auto& p : to) see(p);
    return c_.exchange(to);
  }
  void send(int d, int tag, const std::string& b) override {
    see(b);
    c_.send(d, tag, b);
  }
  std::pair<int, std::string> recv_any(int tag) override { return c_.recv_any(tag); }
  std::optional<std::pair<int, std::string>> try_recv_any(int tag) override { return c_.try_recv_any(tag); }
  std::string recv(int s, int tag) override { return c_.recv(s, tag); }
  uint64_t largest = 0;

 private:
  void see(const std::string& b) { largest = std::max<uint64_t>(largest, b.size()); }
  Comm& c_;
};
}  // namespace

TEST_CASE("file list: no message between ranks grows with the file count (30000 entries found by one rank)") {
  auto make = [](int i) {
    Entry e;
    e.path = "many/d" + std::to_string(i % 97) + "/file_" + std::to_string(i);
    e.owner = "root:root";
    e.ino = static_cast<uint64_t>(i % 20000);  // 10000 files with two names
    e.nlink = i % 20000 < 10000 ? 2 : 1;
    return e;
  };
  auto fmt = make_format("gzip", 1);
  auto largest = testutil::run_ranks<uint64_t>(3, [&](Comm& c) {
    LargestMessage m(c);
    EntryList mine;
    if (c.rank() == 2)
      for (int i = 0; i < 30000; ++i) mine.push_back(make(i));
    sort_by_path(m, mine);
    mark_hardlinks(m, mine);
    cut_in_turn(m, mine, *fmt, 64 << 20);  // blocks end at the 4096-entry cap: the carry is a block
    gather_in_order(m, mine);
    return m.largest;
  });
  EntryList batch, whole;
  for (int i = 0; i < 30000; ++i) (i < static_cast<int>(kListBatchEntries) ? batch : whole).push_back(make(i));
  const uint64_t bound = to_wire(batch).size() + kListBatchEntries * 24 + 4096;  // a batch, or a block's entries and pieces
  for (uint64_t l : largest) {
    CHECK(l > 0);
    CHECK(l <= bound);
  }
  CHECK(bound * 4 < to_wire(whole).size());
}
