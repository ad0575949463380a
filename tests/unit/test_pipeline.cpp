// The whole backup pipeline on one rank (LocalComm) into the memory destination: every format
// reads back with libarchive, and the bytes do not depend on the thread count.
#include <doctest/doctest.h>
#include <sys/stat.h>

#include "dest/registry.h"
#include "helpers.h"
#include "pbackup/manifest.h"
#include "pbackup/pipeline.h"

using namespace pbackup;
namespace fs = std::filesystem;

namespace {
std::string backup_to_memory(const fs::path& src, const std::string& algo, int threads, const std::string& name) {
  LocalComm comm;
  Log log(0, LogLevel::Error);
  BackupOptions o = testutil::memory_backup(src, algo, name, threads);
  BackupStats stats;
  REQUIRE(run_backup(comm, o, log, stats) == 0);
  return memory_object(stats.archive);
}
}  // namespace

TEST_CASE("pipeline: every format round-trips a tree, same bytes for 1 and 3 threads") {
  testutil::TempDir t;
  fs::path src = t.path / "tree";
  testutil::write_file(src / "a.txt", "alpha");
  testutil::write_file(src / "sub/big.bin", testutil::pattern(3'500'000, 7));
  testutil::write_file(src / "sub/empty", "");
  fs::create_directories(src / "emptydir");
  fs::create_symlink("../a.txt", src / "sub/link");
  fs::create_hard_link(src / "a.txt", src / "sub/hard");
  for (std::string algo : {"gzip", "bzip2", "zstd", "zip"}) {
    CAPTURE(algo);
    std::string one = backup_to_memory(src, algo, 1, "u1_" + algo);
    std::string three = backup_to_memory(src, algo, 3, "u3_" + algo);
    CHECK(one == three);
    auto m = testutil::read_archive(one);
    CHECK(m["tree/a.txt"].data == "alpha");
    CHECK(m["tree/sub/big.bin"].data == testutil::pattern(3'500'000, 7));
    CHECK(m.count("tree/sub/empty"));
    CHECK(m.count("tree/emptydir/"));
    CHECK(m["tree/sub/link"].link == "../a.txt");
    if (algo == "zip") CHECK(m["tree/sub/hard"].data == "alpha");  // zip stores a copy
    else CHECK(m["tree/sub/hard"].hardlink == "tree/a.txt");
    Manifest man = manifest_from_json(memory_object("u1_" + algo + (algo == "zip" ? ".zip" : "") +
                                                    (algo == "gzip" ? ".tar.gz" : algo == "bzip2" ? ".tar.bz2" : algo == "zstd" ? ".tar.zst" : "") +
                                                    ".manifest.json"));
    CHECK(man.archive_size == one.size());
    uint64_t covered = 0;
    for (auto& b : man.blocks)
      if (b.kind != "patch") covered += b.size;
    CHECK(covered == one.size());  // every byte belongs to exactly one block or structure record
  }
}

TEST_CASE("pipeline: two roots with one base name are refused before any work") {
  testutil::TempDir t;
  fs::create_directories(t.path / "a/x");
  fs::create_directories(t.path / "b/x");
  CHECK_THROWS_WITH_AS(resolve_roots({(t.path / "a/x").string(), (t.path / "b/x").string()}),
                       doctest::Contains("same base name"), std::exception);
}

TEST_CASE("scan: entries are ordered by path component and hard links found") {
  testutil::TempDir t;
  testutil::write_file(t.path / "r/a-b", "1");
  testutil::write_file(t.path / "r/a/z", "2");
  fs::create_hard_link(t.path / "r/a/z", t.path / "r/b");
  LocalComm comm;
  Log log(0, LogLevel::Error);
  auto roots = resolve_roots({(t.path / "r").string()});
  auto es = scan(comm, roots, log);
  order_entries(es);
  std::vector<std::string> paths;
  for (auto& e : es) paths.push_back(e.path);
  CHECK(paths == std::vector<std::string>{"r", "r/a", "r/a/z", "r/a-b", "r/b"});
  CHECK(es[4].type == EntryType::Hardlink);
  CHECK(es[4].link == "r/a/z");
}
