// Formats: tar headers, block cutting, and the zip layout, without MPI.
#include <doctest/doctest.h>

#include <cstring>

#include "format/cut.h"
#include "format/tar.h"
#include "helpers.h"
#include "pbackup/format.h"

using namespace pbackup;

namespace {
Entry file(const std::string& path, uint64_t size) {
  Entry e;
  e.path = path;
  e.size = size;
  e.mode = 0644;
  e.mtime_sec = 1700000000;
  return e;
}
std::string tar_of(const std::vector<std::pair<Entry, std::string>>& items) {
  std::string t;
  for (auto& [e, data] : items) {
    t += tar_header(e);
    t += data;
    t.resize((t.size() + 511) / 512 * 512, '\0');
  }
  t.append(1024, '\0');
  return t;
}
}  // namespace

TEST_CASE("tar headers: plain ustar, checksum, and libarchive reads them") {
  Entry e = file("root/a.txt", 5);
  std::string h = tar_header(e);
  REQUIRE(h.size() == 512);
  CHECK(std::memcmp(h.data() + 257, "ustar", 6) == 0);
  auto m = testutil::read_archive(tar_of({{e, "hello"}}));
  REQUIRE(m.count("root/a.txt"));
  CHECK(m["root/a.txt"].data == "hello");
  CHECK(m["root/a.txt"].mtime == 1700000000);
}

TEST_CASE("tar headers: pax records for long and UTF-8 names, sub-second and old mtimes, huge sizes") {
  std::string longname = "root";
  for (int i = 0; i < 30; ++i) longname += "/directory_component_" + std::to_string(i);
  Entry a = file(longname + "/f", 3);
  a.mtime_nsec = 123456789;
  Entry b = file("root/h\xc3\xa9llo w\xc3\xb6rld", 2);
  Entry c = file("root/old", 1);
  c.mtime_sec = -86400 * 365;  // 1969

  Entry l;
  l.path = "root/link";
  l.type = EntryType::Symlink;
  l.link = std::string(150, 'x');
  l.mode = 0777;
  CHECK(tar_header(a).size() > 512);
  auto m = testutil::read_archive(tar_of({{a, "abc"}, {b, "hi"}, {c, "z"}, {l, ""}}));
  REQUIRE(m.count(longname + "/f"));
  CHECK(m[longname + "/f"].mtime_nsec == 123456789);
  CHECK(m.count("root/h\xc3\xa9llo w\xc3\xb6rld"));
  CHECK(m["root/old"].mtime == -86400 * 365);

  CHECK(m["root/link"].link == std::string(150, 'x'));
  Entry big = file("root/big", 10ull << 30);
  std::string h = tar_header(big);
  CHECK(h.find("size=10737418240") != std::string::npos);
}

TEST_CASE("cutting: small files share blocks, a big file spans several, nothing is lost") {
  EntryList es;
  es.push_back(file("r/a", 1000));
  es.push_back(file("r/big", 10'000'000));
  es.push_back(file("r/z", 10));
  StreamShape shape;
  shape.header_bytes = [](const Entry&) { return uint64_t{512}; };
  shape.data_bytes = [](const Entry& e) { return e.size; };
  shape.align = 512;
  auto blocks = cut_blocks(es, shape, 1 << 20);
  CHECK(blocks.size() >= 9);
  uint64_t data = 0, raw = 0;
  std::vector<int> last_count(es.size(), 0);
  for (size_t i = 0; i < blocks.size(); ++i) {
    CHECK(blocks[i].id == i);
    CHECK(blocks[i].raw_offset == raw);
    raw += blocks[i].raw_bytes;
    for (auto& p : blocks[i].pieces) {
      data += p.length;
      if (p.last) ++last_count[p.entry];
      if (!p.last) CHECK(p.length % 512 == 0);
    }
  }
  CHECK(data == 10'000'000 + 1000 + 10);
  CHECK(last_count == std::vector<int>{1, 1, 1});
  auto again = cut_blocks(es, shape, 1 << 20);
  REQUIRE(again.size() == blocks.size());
  for (size_t i = 0; i < blocks.size(); ++i) CHECK(again[i].raw_bytes == blocks[i].raw_bytes);
}

TEST_CASE("unknown --algo lists the valid ones") {
  CHECK_THROWS_WITH_AS(make_format("rar", -1), doctest::Contains("zip"), std::exception);
}
