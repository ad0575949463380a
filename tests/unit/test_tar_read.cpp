// The tar reader of the parallel restore: it must read back everything tar_header writes, GNU
// long-name headers, and refuse damaged headers.
#include <doctest/doctest.h>

#include <cstring>

#include "format/tar.h"
#include "format/tar_read.h"
#include "pbackup/error.h"

using namespace pbackup;

namespace {
Entry make(const std::string& path, EntryType t, uint64_t size) {
  Entry e;
  e.path = path;
  e.type = t;
  e.size = size;
  e.mode = 0640;
  e.uid = 1234;
  e.gid = 5678;
  e.mtime_sec = 1700000000;
  return e;
}
}  // namespace

TEST_CASE("tar_read reads back what tar_header writes") {
  std::string longname = "r";
  for (int i = 0; i < 40; ++i) longname += "/component_" + std::to_string(i);
  Entry a = make(longname + "/f\xc3\xa9", EntryType::File, 3);
  a.mtime_nsec = 987654321;
  Entry b = make("r/old", EntryType::File, 0);
  b.mtime_sec = -100;
  b.mtime_nsec = 250000000;
  Entry c = make("r/link", EntryType::Symlink, 0);
  c.link = std::string(200, 'L');
  Entry d = make("r/dir", EntryType::Dir, 0);
  Entry h = make("r/hard", EntryType::Hardlink, 7);
  h.link = "r/old";
  Entry big = make("r/big", EntryType::File, 9ull << 30);
  Entry ids = make("r/ids", EntryType::File, 0);
  ids.uid = 4000000;
  std::string buf;
  for (const Entry* e : {&a, &b, &c, &d, &h, &big, &ids}) {
    buf += tar_header(*e);
    if (e == &a) {
      buf += "abc";
      buf.resize((buf.size() + 511) / 512 * 512, '\0');
    }
  }
  size_t pos = 0;
  TarMember m;
  REQUIRE(read_tar_member(buf, pos, m));
  CHECK(m.path == a.path);
  CHECK(m.type == '0');
  CHECK(m.size == 3);
  CHECK(m.mtime == 1700000000);
  CHECK(m.mtime_nsec == 987654321);
  CHECK(m.mode == 0640);
  CHECK(m.uid == 1234);
  CHECK(m.gid == 5678);
  CHECK(buf.substr(pos, 3) == "abc");
  pos += 512;
  REQUIRE(read_tar_member(buf, pos, m));
  CHECK(m.mtime == -100);
  CHECK(m.mtime_nsec == 250000000);
  REQUIRE(read_tar_member(buf, pos, m));
  CHECK(m.type == '2');
  CHECK(m.link == c.link);
  REQUIRE(read_tar_member(buf, pos, m));
  CHECK(m.type == '5');
  CHECK(m.path == "r/dir");
  REQUIRE(read_tar_member(buf, pos, m));
  CHECK(m.type == '1');
  CHECK(m.link == "r/old");
  CHECK(m.size == 0);
  REQUIRE(read_tar_member(buf, pos, m));
  CHECK(m.size == (9ull << 30));
  REQUIRE(read_tar_member(buf, pos, m));
  CHECK(m.uid == 4000000);
  std::string end(1024, '\0');
  size_t epos = 0;
  CHECK_FALSE(read_tar_member(end, epos, m));
}

TEST_CASE("tar_read: GNU long names, and damage is refused") {
  // A GNU 'L' header carrying a long name, then the member itself.
  std::string name(300, 'n');
  Entry carrier = make("././@LongLink", EntryType::File, name.size() + 1);
  std::string l = tar_header(carrier);
  l[156] = 'L';
  std::memset(l.data() + 148, ' ', 8);  // fix the checksum after changing the type
  unsigned sum = 0;
  for (unsigned char ch : l) sum += ch;
  std::snprintf(l.data() + 148, 8, "%06o", sum);
  l += name + '\0';
  l.resize((l.size() + 511) / 512 * 512, '\0');
  l += tar_header(make("short", EntryType::File, 0));
  size_t pos = 0;
  TarMember m;
  REQUIRE(read_tar_member(l, pos, m));
  CHECK(m.path == name);

  std::string bad = tar_header(make("r/x", EntryType::File, 0));
  bad[10] ^= 1;
  pos = 0;
  CHECK_THROWS_AS(read_tar_member(bad, pos, m), Fatal);
  std::string cut = tar_header(make("r/x", EntryType::File, 0)).substr(0, 300);
  pos = 0;
  CHECK_THROWS_AS(read_tar_member(cut, pos, m), Fatal);
}
