// The tar reader of the parallel restore: it must read back everything tar_header writes, GNU
// long-name headers, and refuse damaged headers.
#include <doctest/doctest.h>

#include <cstring>

#include "format/tar.h"
#include "format/pax.h"
#include "format/sparse.h"
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

namespace {
// A header of `type` whose 12-byte size field is `size_field`, checksum fixed.
std::string special_header(char type, const std::string& size_field) {
  std::string h = tar_header(make("././@PaxHeader", EntryType::File, 0));
  h[156] = type;
  std::memcpy(h.data() + 124, size_field.data(), 12);
  std::memset(h.data() + 148, ' ', 8);
  unsigned sum = 0;
  for (unsigned char ch : h) sum += ch;
  std::snprintf(h.data() + 148, 8, "%06o", sum);
  return h;
}
std::string octal12(uint64_t n) {
  char f[13];
  std::snprintf(f, sizeof f, "%011llo", static_cast<unsigned long long>(n));
  return std::string(f, 12);
}
// A pax 'x' header holding `records` (each "key=value"), then a plain member "m".
std::string pax_member(const std::vector<std::string>& records) {
  std::string data;
  for (const auto& r : records) {
    size_t len = r.size() + 3;  // " " and "\n" and at least one digit
    while (std::to_string(len).size() + r.size() + 2 != len) ++len;
    data += std::to_string(len) + " " + r + "\n";
  }
  std::string t = special_header('x', octal12(data.size())) + data;
  t.resize(tar_padded(t.size()), '\0');
  return t + tar_header(make("m", EntryType::File, 0));
}
}  // namespace

TEST_CASE("tar_read: a pax 'g' header sized 2^64-512 (base-256) is refused at once, not looped on") {
  std::string size(12, '\0');
  size[0] = static_cast<char>(0x80);
  for (int i = 4; i < 10; ++i) size[i] = static_cast<char>(0xff);
  size[10] = static_cast<char>(0xfe);  // 0xFFFFFFFFFFFFFE00 = 2^64 - 512
  std::string buf = special_header('g', size) + std::string(2048, '\0');
  size_t pos = 0;
  TarMember m;
  CHECK_THROWS_AS(read_tar_member(buf, pos, m), Fatal);
  // The same size as the value of a plain member does not fit in an int64 either.
  std::string plain = tar_header(make("f", EntryType::File, 0));
  std::string p = special_header('0', size);
  pos = 0;
  CHECK_THROWS_AS(read_tar_member(p, pos, m), Fatal);
  // A large but representable base-256 size on a 'g' header hits the special-header cap.
  size.assign(12, '\0');
  size[0] = static_cast<char>(0x80);
  size[4] = 0x40;  // 2^62
  buf = special_header('g', size) + std::string(2048, '\0');
  pos = 0;
  CHECK_THROWS_WITH_AS(read_tar_member(buf, pos, m), doctest::Contains("larger than the limit"), Fatal);
  // Negative base-256 numbers (GNU's pre-epoch mtimes) read as negative.
  std::string neg = tar_header(make("f", EntryType::File, 0));
  std::memset(neg.data() + 136, 0xff, 12);  // -1
  std::memset(neg.data() + 148, ' ', 8);
  unsigned sum = 0;
  for (unsigned char ch : neg) sum += ch;
  std::snprintf(neg.data() + 148, 8, "%06o", sum);
  pos = 0;
  REQUIRE(read_tar_member(neg, pos, m));
  CHECK(m.mtime == -1);
}

TEST_CASE("tar_read: special headers are capped at 1 MiB") {
  TarMember m;
  for (char type : {'x', 'g', 'L', 'K'}) {
    CAPTURE(type);
    std::string data(kMaxTarSpecialHeader + 1, 'a');
    std::string buf = special_header(type, octal12(data.size())) + data;
    buf.resize(tar_padded(buf.size()), '\0');
    buf += tar_header(make("m", EntryType::File, 0));
    size_t pos = 0;
    CHECK_THROWS_WITH_AS(read_tar_member(buf, pos, m), doctest::Contains("larger than the limit"), Fatal);
  }
  // Exactly the limit is fine (a long name of 1 MiB - 1 bytes).
  std::string name(kMaxTarSpecialHeader - 1, 'n');
  std::string buf = special_header('L', octal12(name.size() + 1)) + name + '\0';
  buf.resize(tar_padded(buf.size()), '\0');
  buf += tar_header(make("m", EntryType::File, 0));
  size_t pos = 0;
  REQUIRE(read_tar_member(buf, pos, m));
  CHECK(m.path == name);
  // A special header whose padding runs past the buffer is cut short, not read beyond.
  std::string cut = special_header('x', octal12(600)) + std::string(600, 'x');
  pos = 0;
  CHECK_THROWS_WITH_AS(read_tar_member(cut, pos, m), doctest::Contains("cut short"), Fatal);
}

TEST_CASE("tar_read: pax numbers are parsed strictly") {
  TarMember m;
  size_t pos = 0;
  REQUIRE(read_tar_member(pax_member({"mtime=-1.25", "size=0", "uid=4294967295", "gid=0"}), pos, m));
  CHECK(m.mtime == -2);
  CHECK(m.mtime_nsec == 750000000u);
  CHECK(m.uid == 4294967295u);
  pos = 0;
  REQUIRE(read_tar_member(pax_member({"mtime=1700000000.1234567891234"}), pos, m));
  CHECK(m.mtime == 1700000000);
  CHECK(m.mtime_nsec == 123456789u);
  pos = 0;
  REQUIRE(read_tar_member(pax_member({"mtime=-9223372036854775807"}), pos, m));
  CHECK(m.mtime == -9223372036854775807LL);
  pos = 0;
  REQUIRE(read_tar_member(pax_member({"size=9223372036854775807"}), pos, m));
  CHECK(m.size == 9223372036854775807ULL);
  for (const char* bad : {"size=12abc", "size=-1", "size=+5", "size=", "size=9223372036854775808",
                          "size=18446744073709551616", "uid=-1", "uid=4294967296", "gid=1e3",
                          "mtime=99999999999999999999", "mtime=-99999999999999999999", "mtime=1.2x", "mtime=--5",
                          "mtime=", "mtime=.5", "mtime=1 ", "noequals"}) {
    CAPTURE(bad);
    pos = 0;
    CHECK_THROWS_AS(read_tar_member(pax_member({bad}), pos, m), Fatal);
  }
  // Record lengths: not a number, too short, past the data, not ending in a newline.
  for (const char* data : {"0x1A path=a\n", "3 a\n", "99 path=a\n", "10 path=ab\t"}) {
    CAPTURE(data);
    std::string d = data;
    std::string t = special_header('x', octal12(d.size())) + d;
    t.resize(tar_padded(t.size()), '\0');
    t += tar_header(make("m", EntryType::File, 0));
    pos = 0;
    CHECK_THROWS_AS(read_tar_member(t, pos, m), Fatal);
  }
}

TEST_CASE("tar_read: walk_tar_members and tar_block_start, as verify walks a block") {
  std::string block = tar_header(make("a", EntryType::File, 3)) + std::string("abc") + std::string(509, '\0') +
                      tar_header(make("b", EntryType::Dir, 0)) + std::string(1024, '\0');
  CHECK(walk_tar_members(block, 0) == 2);
  // A block continuing a file: its first 100 bytes are the file's last 100 bytes, then padding.
  std::string cont = std::string(100, 'x') + std::string(412, '\0') + block;
  CHECK(tar_block_start(cont, true, 900, 1000) == 512);
  CHECK(walk_tar_members(cont, tar_block_start(cont, true, 900, 1000)) == 2);
  CHECK(tar_block_start(cont, false, 0, 0) == 0);
  CHECK(tar_block_start(cont, true, 0, uint64_t{1} << 40) == cont.size());  // all of it is file data
  CHECK_THROWS_AS(tar_block_start(cont, true, 1001, 1000), Fatal);
  // The 2^64-512 'g' header that made restore loop: verify's walk refuses it too.
  std::string size(12, '\0');
  size[0] = static_cast<char>(0x80);
  for (int i = 4; i < 10; ++i) size[i] = static_cast<char>(0xff);
  size[10] = static_cast<char>(0xfe);
  CHECK_THROWS_AS(walk_tar_members(special_header('g', size) + block, 0), Fatal);
  // A member whose size runs past the block (a file continued in the next block) ends the walk.
  std::string spans = tar_header(make("big", EntryType::File, 1 << 20)) + std::string(4096, 'd');
  CHECK(walk_tar_members(spans, 0) == 1);
}

TEST_CASE("tar_read reads owner names, SCHILY and LIBARCHIVE xattr records") {
  std::string recs;
  add_pax_record(recs, kAclAccessKey, "user::rw-\ngroup::r--\nother::r--\n");
  add_pax_record(recs, "SCHILY.xattr.user.a%3Db", std::string("v\0=\n", 4));
  add_pax_record(recs, "LIBARCHIVE.xattr.user.la", "YWxwaGE");       // "alpha", no padding
  add_pax_record(recs, "LIBARCHIVE.xattr.user.both", "bGE=");        // "la": SCHILY wins
  add_pax_record(recs, "SCHILY.xattr.user.both", "schily");
  Entry e = make("r/x", EntryType::File, 0);
  e.owner = "alice:" + std::string(40, 'g');  // the group name needs a pax record
  e.xattrs = recs;
  std::string h = tar_header(e) + std::string(1024, '\0');
  size_t pos = 0;
  TarMember m;
  REQUIRE(read_tar_member(h, pos, m));
  CHECK(m.uname == "alice");
  CHECK(m.gname == std::string(40, 'g'));
  std::string want;
  add_pax_record(want, kAclAccessKey, "user::rw-\ngroup::r--\nother::r--\n");
  add_pax_record(want, "SCHILY.xattr.user.a%3Db", std::string("v\0=\n", 4));
  add_pax_record(want, "SCHILY.xattr.user.both", "schily");
  add_pax_record(want, "SCHILY.xattr.user.la", "alpha");
  CHECK(m.xattrs == want);
  CHECK(decode_xattr_name("user.a%3Db%25c%zz") == "user.a=b%c%zz");
  CHECK(encode_xattr_name("user.a=b%c") == "user.a%3Db%25c");
}

TEST_CASE("tar_read refuses a LIBARCHIVE.xattr value that is not base64") {
  std::string recs;
  add_pax_record(recs, "LIBARCHIVE.xattr.user.la", "not base64!");
  Entry e = make("r/x", EntryType::File, 0);
  e.xattrs = recs;
  std::string h = tar_header(e) + std::string(1024, '\0');
  size_t pos = 0;
  TarMember m;
  CHECK_THROWS_AS(read_tar_member(h, pos, m), Fatal);
}

TEST_CASE("sparse members spanning blocks: the map from the first bytes, stored bytes to file offsets") {
  SparseMap map{{100, 1000}, {5000, 24}, {9000, 0}};
  const std::string mb = sparse_map_block(map);  // 512 bytes
  const uint64_t stored = mb.size() + 1024;
  SparseMap got;
  uint64_t start = 0;
  CHECK_FALSE(parse_sparse_map(mb.substr(0, 7), stored, 9000, got, start));  // ends inside the map: read more
  CHECK_FALSE(parse_sparse_map("3\n100\n10", stored, 9000, got, start));
  REQUIRE(parse_sparse_map(mb, stored, 9000, got, start));  // the map alone is enough
  CHECK(start == 512);
  REQUIRE(got.size() == 2);
  // hostile maps are refused from the first bytes too
  CHECK_THROWS_AS(parse_sparse_map(mb, stored + 1, 9000, got, start), Fatal);        // regions do not add up
  CHECK_THROWS_AS(parse_sparse_map(mb, stored, 5023, got, start), Fatal);            // past the real size
  CHECK_THROWS_AS(parse_sparse_map(std::string(30, '7'), stored, 9000, got, start), Fatal);  // a number too long
  CHECK_THROWS_AS(parse_sparse_map("1\n18446744073709551615\n18446744073709551615\n", stored, ~0ull, got, start), Fatal);
  CHECK_THROWS_AS(parse_sparse_map(sparse_map_block({{10, 5}, {12, 5}}), 522, 100, got, start), Fatal);  // overlap

  SparseLayout l = make_sparse_layout(got, start, 9000, stored);
  auto pieces = sparse_pieces(l, 0, stored);  // the whole member: the map goes nowhere
  REQUIRE(pieces.size() == 2);
  CHECK(pieces[0].file_offset == 100);
  CHECK(pieces[0].pos == 512);
  CHECK(pieces[0].len == 1000);
  CHECK(pieces[1].file_offset == 5000);
  CHECK(pieces[1].pos == 1512);
  CHECK(pieces[1].len == 24);
  CHECK(sparse_pieces(l, 0, 300).empty());  // map bytes only
  pieces = sparse_pieces(l, 1000, 520);      // the end of region 0 and the start of region 1
  REQUIRE(pieces.size() == 2);
  CHECK(pieces[0].file_offset == 100 + 488);
  CHECK(pieces[0].pos == 0);
  CHECK(pieces[0].len == 512);
  CHECK(pieces[1].file_offset == 5000);
  CHECK(pieces[1].pos == 512);
  CHECK(pieces[1].len == 8);
  pieces = sparse_pieces(l, 500, 20);  // across the map's end
  REQUIRE(pieces.size() == 1);
  CHECK(pieces[0].file_offset == 100);
  CHECK(pieces[0].pos == 12);
  CHECK(pieces[0].len == 8);
  uint64_t sum = 0;  // any cut of the stored bytes writes each data byte once
  for (uint64_t at = 0; at < stored; at += 97)
    for (const auto& p : sparse_pieces(l, at, std::min<uint64_t>(97, stored - at))) sum += p.len;
  CHECK(sum == 1024);
  CHECK_THROWS_AS(sparse_pieces(l, stored, 1), Fatal);
  CHECK_THROWS_AS(sparse_pieces(l, 5, ~0ull), Fatal);  // at + len would overflow
  // layouts from a message are checked again
  CHECK_THROWS_AS(make_sparse_layout({{100, 1000}, {50, 24}}, 512, 9000, stored), Fatal);  // out of order
  CHECK_THROWS_AS(make_sparse_layout({{100, 1000}, {5000, 25}}, 512, 9000, stored), Fatal);  // past the data
  CHECK_THROWS_AS(make_sparse_layout({{100, 1000}}, 512, 9000, stored), Fatal);              // short of the data
  CHECK_THROWS_AS(make_sparse_layout({{~0ull - 5, 10}}, 512, ~0ull, 522), Fatal);            // past the end, overflowing
  CHECK_THROWS_AS(make_sparse_layout(got, 513, 9000, stored), Fatal);                        // map not padded
}

TEST_CASE("sparse members: the map is read back and hostile maps are refused") {
  SparseMap map{{0, 3}, {1000, 2}, {5000, 0}};
  std::string data = sparse_map_block(map) + "abcde";
  size_t start = 0;
  SparseMap got = parse_sparse_member(data, 5000, start);
  CHECK(start == 512);
  REQUIRE(got.size() == 2);
  CHECK(got[1] == std::make_pair(uint64_t{1000}, uint64_t{2}));
  CHECK_THROWS_AS(parse_sparse_member(data, 1001, start), Fatal);                          // outside the file
  CHECK_THROWS_AS(parse_sparse_member(data + "x", 5000, start), Fatal);                    // bytes left over
  CHECK_THROWS_AS(parse_sparse_member(sparse_map_block({{10, 2}, {5, 1}}) + "abc", 100, start), Fatal);  // order
  CHECK_THROWS_AS(parse_sparse_member("99999999999\n", 100, start), Fatal);                // count too big
  CHECK_THROWS_AS(parse_sparse_member("1\n18446744073709551615\n2\n", ~0ull >> 1, start), Fatal);
  CHECK_THROWS_AS(parse_sparse_member("1\n5", 100, start), Fatal);                         // cut short
  // tar_header writes GNU sparse 1.0; tar_read gives back the real name and size
  Entry e = make("r/d/vm.img", EntryType::File, 5000);
  e.sparse = encode_sparse_map(map);
  std::string h = tar_header(e);
  CHECK(h.find("r/d/GNUSparseFile.0/vm.img") != std::string::npos);
  h += data + std::string(512 - 5 + 1024, '\0');
  size_t pos = 0;
  TarMember m;
  REQUIRE(read_tar_member(h, pos, m));
  CHECK(m.sparse);
  CHECK(m.path == "r/d/vm.img");
  CHECK(m.realsize == 5000);
  CHECK(m.size == data.size());
  CHECK(tar_data_size(e) == data.size());
}
