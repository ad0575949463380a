// The zip central-directory reader behind the parallel zip restore: it must find members by
// their local headers, read zip64 fields, Unix modes, "UT" times and "ux" owners, and decline
// (nullopt) the zips it leaves to libarchive instead of guessing.
#include <doctest/doctest.h>
#include <sys/stat.h>
#include <zlib.h>

#include "format/zip_read.h"
#include "pbackup/error.h"

using namespace pbackup;

namespace {

struct Le {
  std::string s;
  Le& u16(uint32_t v) { s.push_back(char(v & 0xff)); s.push_back(char((v >> 8) & 0xff)); return *this; }
  Le& u32(uint32_t v) { u16(v & 0xffff); return u16(v >> 16); }
  Le& u64(uint64_t v) { u32(uint32_t(v)); return u32(uint32_t(v >> 32)); }
  Le& raw(const std::string& b) { s += b; return *this; }
};

struct Member {
  std::string name, data, local_extra, central_extra;
  uint32_t unix_mode = 0;  // 0: made on MS-DOS
  bool zip64 = false;      // sizes and offset only in the zip64 extra field
  uint16_t dos_date = 0x21;  // 1980-01-01
};

// A stored-method zip of `members`, optionally with bytes before it and a comment after it.
std::string make_zip(const std::vector<Member>& members, const std::string& before = "", const std::string& comment = "",
                     bool zip64_end = false) {
  Le z;
  z.raw(before);
  Le cd;
  for (const auto& m : members) {
    uint64_t off = z.s.size();
    z.u32(0x04034b50).u16(20).u16(0).u16(0).u16(0).u16(m.dos_date).u32(0).u32(uint32_t(m.data.size())).u32(uint32_t(m.data.size()));
    z.u16(uint32_t(m.name.size())).u16(uint32_t(m.local_extra.size())).raw(m.name).raw(m.local_extra).raw(m.data);
    std::string extra = m.central_extra;
    if (m.zip64) {
      Le x;
      x.u16(0x0001).u16(24).u64(m.data.size()).u64(m.data.size()).u64(off);
      extra += x.s;
    }
    uint32_t sz = m.zip64 ? 0xFFFFFFFFu : uint32_t(m.data.size());
    cd.u32(0x02014b50).u16(m.unix_mode ? (3 << 8) | 30 : 20).u16(20).u16(0).u16(0).u16(0).u16(m.dos_date).u32(0xdeadbeef);
    cd.u32(sz).u32(sz).u16(uint32_t(m.name.size())).u16(uint32_t(extra.size())).u16(0).u16(0).u16(0);
    cd.u32(m.unix_mode << 16).u32(m.zip64 ? 0xFFFFFFFFu : uint32_t(off)).raw(m.name).raw(extra);
  }
  uint64_t cd_at = z.s.size();
  z.raw(cd.s);
  if (zip64_end) {
    uint64_t end64 = z.s.size();
    z.u32(0x06064b50).u64(44).u16(45).u16(45).u32(0).u32(0).u64(members.size()).u64(members.size()).u64(cd.s.size()).u64(cd_at);
    z.u32(0x07064b50).u32(0).u64(end64).u32(1);
    z.u32(0x06054b50).u16(0).u16(0).u16(0xFFFF).u16(0xFFFF).u32(0xFFFFFFFFu).u32(0xFFFFFFFFu).u16(uint32_t(comment.size())).raw(comment);
  } else {
    z.u32(0x06054b50).u16(0).u16(0).u16(uint32_t(members.size())).u16(uint32_t(members.size()));
    z.u32(uint32_t(cd.s.size())).u32(uint32_t(cd_at)).u16(uint32_t(comment.size())).raw(comment);
  }
  return z.s;
}

std::optional<ZipDirectory> read(const std::string& zip) {
  return read_zip_directory(zip.size(), [&](uint64_t off, uint64_t n) {
    if (off + n > zip.size()) throw Fatal("read past the end");
    return zip.substr(off, n);
  });
}

std::string ut(uint32_t mtime) { return Le().u16(0x5455).u16(5).raw(std::string(1, '\1')).u32(mtime).s; }
std::string ux(uint32_t uid, uint32_t gid) {
  return Le().u16(0x7875).u16(11).raw(std::string("\1\4", 2)).u32(uid).raw(std::string(1, '\4')).u32(gid).s;
}

}  // namespace

TEST_CASE("zip_read: members, Unix modes, UT times, ux owners, local header offsets") {
  std::vector<Member> ms = {
      {"dir/", "", "", ut(1000000000), S_IFDIR | 0750},
      {"dir/file.txt", "hello", ux(1234, 5678), ut(1700000000), S_IFREG | 0640},
      {"dir/link", "file.txt", "", "", S_IFLNK | 0777},
      {"dos.txt", "x", "", ""},
      {"dosdir/", "", "", ""},
  };
  std::string zip = make_zip(ms, "", "a comment");
  auto dir = read(zip);
  REQUIRE(dir);
  REQUIRE(dir->members.size() == 5);
  const auto& d = dir->members;
  CHECK(d[0].is_dir());
  CHECK((d[0].mode & 07777) == 0750);
  CHECK(d[0].mtime == 1000000000);
  CHECK(S_ISREG(d[1].mode));
  CHECK((d[1].mode & 07777) == 0640);
  CHECK(d[1].mtime == 1700000000);
  CHECK(d[1].usize == 5);
  CHECK(d[1].crc == 0xdeadbeef);
  CHECK(d[2].is_symlink());
  CHECK((d[3].mode & 07777) == 0644);  // no Unix attributes: the usual defaults
  CHECK(d[4].is_dir());
  CHECK(dir->offset == zip.find("PK\x01\x02"));

  // the local header gives the data offset and the owner
  const ZipMember& f = d[1];
  std::string fixed = zip.substr(f.header_offset, kZipLocalFixed);
  uint64_t n = zip_local_header_size(fixed, f);
  ZipLocal l = parse_zip_local_header(zip.substr(f.header_offset, n), f);
  CHECK(zip.substr(l.data_offset, f.csize) == "hello");
  REQUIRE(l.uid);
  CHECK(*l.uid == 1234);
  CHECK(*l.gid == 5678);
  ZipLocal none = parse_zip_local_header(zip.substr(d[3].header_offset, 64), d[3]);
  CHECK_FALSE(none.uid);

  // a local header that is not one is refused, naming the member
  CHECK_THROWS_AS(zip_local_header_size(zip.substr(f.header_offset + 1, kZipLocalFixed), f), Fatal);
}

TEST_CASE("zip_read: UT sign from the DOS date, old UX extra, Unicode Path, DOS backslashes") {
  auto up = [](const std::string& for_name, const std::string& utf8) {
    uint32_t crc = static_cast<uint32_t>(crc32(0, reinterpret_cast<const Bytef*>(for_name.data()), static_cast<uInt>(for_name.size())));
    return Le().u16(0x7075).u16(uint32_t(5 + utf8.size())).raw(std::string(1, '\1')).u32(crc).raw(utf8).s;
  };
  const uint16_t y2040 = (60 << 9) | (2 << 5) | 3;
  Member late{"late", "", "", ut(0x90000000u), S_IFREG | 0644};
  late.dos_date = y2040;
  Member ux_late{"ux_late", "", "", Le().u16(0x5855).u16(8).u32(1).u32(0x90000000u).s, S_IFREG | 0644};
  ux_late.dos_date = y2040;
  std::vector<Member> ms = {
      {"old", "", "", ut(0xEDF91540u), S_IFREG | 0644},  // 1960: Info-ZIP and bsdtar clamp the DOS date to 1980
      late,                                                // 2045: the DOS date says 2040
      {"ux", "", Le().u16(0x5855).u16(12).u32(1).u32(1321009871).u16(4321).u16(8765).s,
       Le().u16(0x5855).u16(8).u32(1).u32(1321009871).s, S_IFREG | 0644},
      ux_late,
      {"caf\x82", "", "", up("caf\x82", "caf\xc3\xa9"), S_IFREG | 0644},
      {"stale\x82", "", "", up("other", "renamed"), S_IFREG | 0644},
      {"arc\\dos\\test", "", "", ""},                 // made on MS-DOS
      {"unix\\name", "", "", "", S_IFREG | 0644},       // made on Unix: '\\' is a character
      {"ut_wins", "", "", Le().u16(0x5855).u16(8).u32(1).u32(5).s + ut(7), S_IFREG | 0644},
  };
  std::string zip = make_zip(ms);
  auto dir = read(zip);
  REQUIRE(dir);
  const auto& d = dir->members;
  REQUIRE(d.size() == ms.size());
  CHECK(d[0].mtime == static_cast<int32_t>(0xEDF91540u));
  CHECK(d[0].mtime < 0);
  CHECK(d[1].mtime == int64_t{0x90000000u});
  CHECK(d[2].mtime == 1321009871);
  CHECK(d[3].mtime == int64_t{0x90000000u});
  CHECK(d[4].name == "caf\xc3\xa9");
  CHECK(d[5].name == "stale\x82");
  CHECK(d[6].name == "arc/dos/test");
  CHECK(d[7].name == "unix\\name");
  CHECK(d[8].mtime == 7);
  ZipLocal l = parse_zip_local_header(zip.substr(d[2].header_offset, 64), d[2]);
  REQUIRE(l.uid);
  CHECK(*l.uid == 4321);
  CHECK(*l.gid == 8765);
}

TEST_CASE("zip_read: zip64 extra fields and the zip64 end record") {
  std::vector<Member> ms = {{"a", "abc", "", "", S_IFREG | 0600, true}, {"b", "defg", "", "", S_IFREG | 0600, true}};
  auto dir = read(make_zip(ms, "", "", true));
  REQUIRE(dir);
  REQUIRE(dir->members.size() == 2);
  CHECK(dir->members[1].usize == 4);
  CHECK(dir->members[1].csize == 4);
  CHECK(dir->members[1].header_offset == 30 + 1 + 3);
}

TEST_CASE("zip_read: declines what it does not handle") {
  std::vector<Member> ms = {{"a", "abc", "", "", S_IFREG | 0600}};
  std::string good = make_zip(ms);
  REQUIRE(read(good));
  CHECK_FALSE(read("not a zip at all, just some text that is long enough"));
  CHECK_FALSE(read(""));
  // bytes before the first member without adjusted offsets (an unfixed self-extractor)
  CHECK_FALSE(read("#!/bin/sh\n" + good));
  // a damaged central record signature
  std::string bad = good;
  bad[bad.find("PK\x01\x02")] = 'X';
  CHECK_FALSE(read(bad));
  // a multi-disk end record
  std::string disk = good;
  disk[disk.size() - 22 + 4] = 1;
  CHECK_FALSE(read(disk));
  // an entry count that cannot fit in the directory
  std::string many = good;
  many[many.size() - 22 + 10] = char(0xff);
  many[many.size() - 22 + 8] = char(0xff);
  CHECK_FALSE(read(many));
  // an entry count that lies low (a member would silently go missing)
  std::vector<Member> three = {{"a", "1", "", "", S_IFREG | 0600}, {"b", "2", "", "", S_IFREG | 0600}, {"c", "3", "", "", S_IFREG | 0600}};
  std::string low = make_zip(three);
  REQUIRE(read(low));
  low[low.size() - 22 + 8] = 1;
  low[low.size() - 22 + 10] = 1;
  CHECK_FALSE(read(low));
  // two central records pointing at the same local header (overlapping members)
  std::string twice = make_zip(three);
  size_t second = twice.find("PK\x01\x02", twice.find("PK\x01\x02") + 4);
  for (int k = 0; k < 4; ++k) twice[second + 42 + k] = 0;  // its local header offset -> 0
  CHECK_THROWS_AS(read(twice), ZipOverlap);
  // truncated in the middle: the end record is gone
  CHECK_FALSE(read(good.substr(0, good.size() / 2)));
}

TEST_CASE("zip_read: zip64 values near 2^64 are declined, not wrapped") {
  std::vector<Member> ms = {{"a", "abc", "", "", S_IFREG | 0600, true}, {"b", "defg", "", "", S_IFREG | 0600, true}};
  const std::string good = make_zip(ms, "", "", true);
  REQUIRE(read(good));
  auto set_u64 = [](std::string z, size_t at, uint64_t v) {
    for (int k = 0; k < 8; ++k) z[at + k] = char((v >> (8 * k)) & 0xff);
    return z;
  };
  const uint64_t top = ~uint64_t{0};
  // The first member's zip64 extra field holds usize, csize, header offset (8 bytes each).
  const size_t x = good.find(std::string("\x01\x00\x18\x00", 4), good.find("PK\x01\x02"));
  REQUIRE(x != std::string::npos);
  CHECK_FALSE(read(set_u64(good, x + 12, top)));                 // csize 2^64-1: offset + csize wraps
  CHECK_FALSE(read(set_u64(good, x + 20, top - 15)));            // header offset 2^64-16
  CHECK_FALSE(read(set_u64(set_u64(good, x + 12, uint64_t{1} << 63), x + 20, uint64_t{1} << 63)));
  // The zip64 end record: entries (on disk, total) 2^63; a directory of 16 bytes at 2^64-16.
  const size_t end64 = good.find("PK\x06\x06");
  REQUIRE(end64 != std::string::npos);
  CHECK_FALSE(read(set_u64(set_u64(good, end64 + 24, uint64_t{1} << 63), end64 + 32, uint64_t{1} << 63)));
  CHECK_FALSE(read(set_u64(set_u64(good, end64 + 40, 16), end64 + 48, top - 15)));
  // The zip64 locator pointing far past the end record.
  const size_t loc = good.find("PK\x06\x07");
  REQUIRE(loc != std::string::npos);
  CHECK_FALSE(read(set_u64(good, loc + 8, top)));
  CHECK_FALSE(read(set_u64(good, loc + 8, top - 40)));
}
