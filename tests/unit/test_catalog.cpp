// The catalog: written and read back, and hostile input refused with Fatal (src/core/catalog.cpp).
#include <doctest/doctest.h>

#include <sys/stat.h>
#include <zstd.h>

#include <algorithm>
#include <filesystem>

#include <string>
#include <vector>

#include "core/catalog.h"
#include "core/incremental.h"
#include "format/pax.h"
#include "helpers.h"
#include "format/sparse.h"
#include "pbackup/error.h"
#include "pbackup/manifest.h"

using namespace pbackup;

namespace {
std::vector<CatalogRecord> sample() {
  std::vector<CatalogRecord> v(3);
  v[0].path = "root";
  v[0].type = EntryType::Dir;
  v[0].mode = 0755;
  v[1].path = "root/a\nb";
  v[1].size = 1ull << 40;
  v[1].mtime_sec = -5;
  v[1].mtime_nsec = 999999999;
  v[1].uname = "alice";
  v[1].block = 7;
  v[1].offset = 1536;
  v[2].path = "root/l";
  v[2].type = EntryType::Symlink;
  v[2].link = std::string(1000, 'x');
  return v;
}
std::string write(const std::vector<CatalogRecord>& v) {
  CatalogWriter w(v.size());
  for (auto& r : v) w.add(r);
  return w.finish();
}
std::vector<CatalogRecord> read(const std::string& bytes) {
  std::vector<CatalogRecord> out;
  read_catalog(bytes, [&](const CatalogRecord& r) { out.push_back(r); });
  return out;
}
}  // namespace

TEST_CASE("catalog: records round-trip, fed whole or byte by byte") {
  auto v = sample();
  std::string bytes = write(v);
  auto back = read(bytes);
  REQUIRE(back.size() == 3);
  CHECK(back[1].path == "root/a\nb");
  CHECK(back[1].size == (1ull << 40));
  CHECK(back[1].mtime_sec == -5);
  CHECK(back[1].mtime_nsec == 999999999u);
  CHECK(back[1].uname == "alice");
  CHECK(back[1].block == 7);
  CHECK(back[1].offset == 1536);
  CHECK(back[2].link == v[2].link);
  CHECK(back[0].block == kCatalogNone);
  size_t at = 0, n = 0;
  read_catalog([&]() -> std::string_view { return at < bytes.size() ? std::string_view(bytes).substr(at++, 1) : std::string_view(); },
               [&](const CatalogRecord&) { ++n; });
  CHECK(n == 3);
}

TEST_CASE("catalog: hostile input is refused with Fatal") {
  std::string good = write(sample());
  CHECK_THROWS_AS(read(good.substr(0, 20)), Fatal);                // short header
  CHECK_THROWS_AS(read(good.substr(0, good.size() - 3)), Fatal);   // truncated frame
  std::string bad = good;
  bad[0] = 'X';
  CHECK_THROWS_AS(read(bad), Fatal);  // magic
  bad = good;
  bad[8] = 3;
  CHECK_THROWS_AS(read(bad), Fatal);  // version
  bad = good;
  bad[16] = 4;
  CHECK_THROWS_WITH_AS(read(bad), doctest::Contains("records"), Fatal);  // count says 4
  bad = good;
  bad[24] ^= 1;
  CHECK_THROWS_AS(read(bad), Fatal);  // raw byte total
  CHECK_THROWS_AS(read(good + "junk"), Fatal);  // bytes after the frame
  // a record whose length field is huge: refused before any allocation of that size
  std::string raw = "\xff\xff\xff\x7f" + std::string(60, 'a');
  std::string z(ZSTD_compressBound(raw.size()), '\0');
  z.resize(ZSTD_compress(z.data(), z.size(), raw.data(), raw.size(), 1));
  std::string forged = good.substr(0, 32) + z;
  forged[16] = 1;
  for (int i = 17; i < 24; ++i) forged[i] = 0;
  forged[24] = static_cast<char>(raw.size());
  for (int i = 25; i < 32; ++i) forged[i] = 0;
  CHECK_THROWS_WITH_AS(read(forged), doctest::Contains("impossible length"), Fatal);
  std::vector<CatalogRecord> one(1);
  one[0].path = "p";
  std::string w = write(one);
  auto recs = read(w);
  CHECK(recs.size() == 1);
  CHECK_THROWS_AS(read(w.substr(0, 32)), Fatal);  // header says 1 record, none follow
}

TEST_CASE("catalog: a record's reserved bytes must be zero, its flags known (an incremental level copies record bytes)") {
  CatalogRecord r;
  r.path = "r/f", r.ino = 4, r.dev = 3;
  auto catalog_of = [&](const std::string& raw) {
    std::vector<CatalogRecord> one{r};
    std::string c = write(one).substr(0, 32);  // the header: one record
    for (int i = 0; i < 8; ++i) c[24 + i] = static_cast<char>(static_cast<uint64_t>(raw.size()) >> (8 * i));
    std::string z(ZSTD_compressBound(raw.size()), '\0');
    z.resize(ZSTD_compress(z.data(), z.size(), raw.data(), raw.size(), 1));
    return c + z;
  };
  std::string raw;
  encode_catalog_record(r, raw);
  CHECK(read(catalog_of(raw)).size() == 1);
  raw[4 + 2] = 1;
  CHECK_THROWS_WITH_AS(read(catalog_of(raw)), doctest::Contains("reserved"), Fatal);
  raw[4 + 2] = 0;
  raw[4 + 1] = 8 | 16;  // sparse, and a flag no writer sets
  CHECK_THROWS_WITH_AS(read(catalog_of(raw)), doctest::Contains("unknown flags"), Fatal);
}

TEST_CASE("catalog: records must be in path order, each path once (a level copies PREV's records)") {
  auto of = [](const std::vector<std::string>& paths) {
    std::vector<CatalogRecord> v;
    for (const auto& p : paths) {
      CatalogRecord r;
      r.path = p, r.ino = 4, r.dev = 3;
      v.push_back(r);
    }
    return write(v);
  };
  CHECK(read(of({"r", "r/a", "r/a/x", "r/a-b", "r/b"})).size() == 5);  // '/' sorts first
  CHECK_THROWS_WITH_AS(read(of({"r", "r/f", "r/f"})), doctest::Contains("sorted by path"), Fatal);
  CHECK_THROWS_WITH_AS(read(of({"r", "r/b", "r/a"})), doctest::Contains("sorted by path"), Fatal);
  CHECK_THROWS_WITH_AS(read(of({"r", "r/a-b", "r/a/x"})), doctest::Contains("sorted by path"), Fatal);
}

TEST_CASE("manifest: the optional catalog field round-trips and is typed") {
  Manifest m;
  m.catalog = {"b.tar.gz.catalog.zst", 1234, std::string(64, 'c')};
  Manifest back = manifest_from_json(manifest_to_json(m));
  CHECK(back.catalog.name == m.catalog.name);
  CHECK(back.catalog.size == 1234);
  CHECK(back.catalog.sha256 == m.catalog.sha256);
  Manifest none = manifest_from_json(manifest_to_json(Manifest{}));
  CHECK(none.catalog.name.empty());
  std::string j = manifest_to_json(m);
  j.replace(j.find("\"size\": 1234"), 12, "\"size\": \"x\"");
  CHECK_THROWS_WITH_AS(manifest_from_json(j), doctest::Contains("catalog.size"), Fatal);
}

TEST_CASE("catalog: entries with xattrs, ACLs or holes are flagged (tar; zip holds none of them)") {
  EntryList entries(4);
  for (size_t i = 0; i < entries.size(); ++i) {
    entries[i].path = "r/f" + std::to_string(i);
    entries[i].type = EntryType::File;
  }
  std::string x, acl;
  add_pax_record(x, "SCHILY.xattr.user.project", "alpha");
  add_pax_record(acl, "SCHILY.acl.access", "user::rw-,user:65534:r--,group::r--,mask::r--,other::---");
  entries[1].xattrs = x;
  entries[2].xattrs = acl;
  entries[3].sparse = encode_sparse_map({{0, 4096}, {1 << 20, 0}});
  entries[3].size = 1 << 20;
  Block b;
  for (uint32_t i = 0; i < entries.size(); ++i) b.pieces.push_back(Piece{i, true, true, 0, entries[i].size});
  for (const std::string fmt : {"tar", "zip"}) {
    std::vector<CatalogRecord> recs = read(build_catalog(entries, {b}, fmt, {"r/f3"}));
    REQUIRE(recs.size() == 4);
    const bool tar = fmt == "tar";
    CHECK(recs[0].flags == 0);
    CHECK(recs[1].flags == (tar ? kCatalogXattrs : 0));
    CHECK(recs[2].flags == (tar ? kCatalogAcls : 0));
    CHECK(recs[3].flags == (kCatalogDamaged | (tar ? kCatalogSparse : 0)));
  }
}

TEST_CASE("long_line: owner names from the archive are escaped and never cut the line") {
  pbackup::CatalogRecord r;
  r.path = "a/b";
  r.size = 12345;
  r.mode = 0644;
  r.uname = "evil\n-rw-r--r-- root/root 0 2020-01-01 00:00 /etc/passwd\x1b[2J";
  r.gname = std::string(1000, 'g');
  std::string line = pbackup::long_line(r);
  CHECK(line.find('\n') == std::string::npos);
  CHECK(line.find('\x1b') == std::string::npos);
  CHECK(line.find("evil\\n-rw") != std::string::npos);
  CHECK(line.find(" 12345 ") != std::string::npos);  // the size survives a long owner
  CHECK(line.size() > 1000);
  CHECK(line.substr(line.size() - 4) == " a/b");
}

TEST_CASE("catalog: a forged record with an absolute path or a '..' component is refused") {
  auto one = [](const std::string& path, pbackup::EntryType t = pbackup::EntryType::File, const std::string& link = "") {
    pbackup::CatalogRecord r;
    r.path = path;
    r.type = t;
    r.link = link;
    pbackup::CatalogWriter w(1);
    w.add(r);
    return w.finish();
  };
  auto reads = [](const std::string& bytes) {
    pbackup::read_catalog(bytes, [](const pbackup::CatalogRecord&) {});
  };
  CHECK_THROWS_AS(reads(one("../../etc/shadow")), pbackup::Fatal);
  CHECK_THROWS_AS(reads(one("root/../../x")), pbackup::Fatal);
  CHECK_THROWS_AS(reads(one("root/..")), pbackup::Fatal);
  CHECK_THROWS_AS(reads(one("/etc/passwd")), pbackup::Fatal);
  CHECK_THROWS_AS(reads(one("root/h", pbackup::EntryType::Hardlink, "../outside")), pbackup::Fatal);
  CHECK_NOTHROW(reads(one("root/..a/b..")));
  CHECK_NOTHROW(reads(one("root/l", pbackup::EntryType::Symlink, "../../anywhere")));  // a symlink's target is data
}

namespace {
void le(std::string& o, uint64_t v, int n) {
  for (int i = 0; i < n; ++i) o.push_back(static_cast<char>(v >> (8 * i)));
}
}  // namespace

TEST_CASE("catalog: version 2 carries ctime, dev, ino and the chain level; version 1 is still read") {
  auto v = sample();
  v[1].ctime_sec = 1700000000;
  v[1].ctime_nsec = 123456789;
  v[1].dev = 0xfd01;
  v[1].ino = 1ull << 40;
  v[1].level = 3;
  auto back = read(write(v));
  REQUIRE(back.size() == 3);
  CHECK(back[1].ctime_sec == 1700000000);
  CHECK(back[1].ctime_nsec == 123456789u);
  CHECK(back[1].dev == 0xfd01);
  CHECK(back[1].ino == (1ull << 40));
  CHECK(back[1].level == 3);
  CHECK(back[1].member.empty());
  v[2].member = "root/old/l";  // a renamed entry: the member name its archive holds it under
  CHECK(read(write(v))[2].member == "root/old/l");
  v[2].member = "../etc/passwd";
  CHECK_THROWS_WITH_AS(read(write(v)), doctest::Contains("member name"), Fatal);
  v[2].member.clear();
  v[1].ctime_nsec = 1000000000u;
  CHECK_THROWS_WITH_AS(read(write(v)), doctest::Contains("nanoseconds"), Fatal);
  // a version 1 catalog (52-byte fixed part, as pbackup wrote before issue 15)
  std::string rec;
  le(rec, 0, 4);
  rec.push_back(0), rec.push_back(0), rec.push_back(0), rec.push_back(0);  // file, no flags
  le(rec, 0644, 4), le(rec, 1, 4), le(rec, 2, 4), le(rec, 5, 8), le(rec, 77, 8), le(rec, 9, 4), le(rec, 0, 8), le(rec, 512, 8);
  for (std::string name : {"r/f", "", "u", "g"}) le(rec, name.size(), 4), rec += name;
  const uint64_t len = rec.size() - 4;
  for (int i = 0; i < 4; ++i) rec[static_cast<size_t>(i)] = static_cast<char>(len >> (8 * i));
  std::string z(ZSTD_compressBound(rec.size()), '\0');
  z.resize(ZSTD_compress(z.data(), z.size(), rec.data(), rec.size(), 1));
  std::string v1 = "PBKCATLG";
  le(v1, 1, 4), le(v1, 0, 4), le(v1, 1, 8), le(v1, rec.size(), 8);
  auto old = read(v1 + z);
  REQUIRE(old.size() == 1);
  CHECK(old[0].path == "r/f");
  CHECK(old[0].size == 5);
  CHECK(old[0].mtime_sec == 77);
  CHECK(old[0].offset == 512);
  CHECK(old[0].uname == "u");
  CHECK(old[0].ino == 0);
  CHECK(old[0].level == 0);
  Entry e;
  e.path = "r/f", e.size = 5, e.mtime_sec = 77, e.mtime_nsec = 9, e.mode = 0644, e.uid = 1, e.gid = 2;
  CHECK_FALSE(unchanged(e, old[0]));  // a version 1 record matches nothing: the level stores all
}

TEST_CASE("incremental: an entry is unchanged only when every compared field matches") {
  Entry e;
  e.path = "r/f", e.size = 5, e.mtime_sec = 77, e.mtime_nsec = 9, e.ctime_sec = 88, e.ctime_nsec = 1;
  e.mode = 0644, e.uid = 1, e.gid = 2, e.dev = 3, e.ino = 4;
  CatalogRecord r = catalog_record(e, true, false, 0, 0);
  CHECK(unchanged(e, r));
  auto differs = [&](auto change) {
    Entry x = e;
    change(x);
    return !unchanged(x, r);
  };
  CHECK(differs([](Entry& x) { x.size = 6; }));
  CHECK(differs([](Entry& x) { x.mtime_nsec = 10; }));
  CHECK(differs([](Entry& x) { x.ctime_sec = 89; }));  // content changed, mtime reset by touch
  CHECK(differs([](Entry& x) { x.ctime_nsec = 2; }));
  CHECK(differs([](Entry& x) { x.mode = 0755; }));
  CHECK(differs([](Entry& x) { x.uid = 9; }));
  CHECK(differs([](Entry& x) { x.gid = 9; }));
  CHECK(differs([](Entry& x) { x.dev = 9; }));
  CHECK(differs([](Entry& x) { x.ino = 9; }));
  CHECK(differs([](Entry& x) { x.type = EntryType::Symlink; }));
  CHECK(differs([](Entry& x) { x.nlink = 2; }));  // hard links are stored together, again
  CatalogRecord damaged = r;
  damaged.flags |= kCatalogDamaged;
  CHECK_FALSE(unchanged(e, damaged));
  Entry d = e;
  d.type = EntryType::Dir;
  CHECK_FALSE(unchanged(d, catalog_record(d, true, false, 0, 0)));  // directories: always stored
  Entry l = e;
  l.type = EntryType::Symlink, l.link = "a", l.size = 0;
  CatalogRecord lr = catalog_record(l, true, false, 0, 0);
  CHECK(unchanged(l, lr));
  l.link = "b";
  CHECK_FALSE(unchanged(l, lr));
}

namespace fs = std::filesystem;

namespace {
// drop_unchanged on `lists` (one per rank, each sorted) against the PREV catalog `prev`: every
// kept record ("path<-member") and every entry left to store, over all the "ranks", sorted.
std::vector<std::string> level_of(const std::string& prev, const std::vector<Root>& roots, std::vector<EntryList> lists) {
  std::vector<std::string> out;
  for (EntryList& mine : lists) {
    Incremental inc;
    inc.on = true;
    inc.prev.name = "prev";
    inc.chain.resize(1);
    inc.prev_catalog = prev;
    drop_unchanged(inc, mine, roots);
    std::string all;
    for (; !inc.kept.empty(); inc.kept.pop()) all += inc.kept.front();
    for (const Entry& e : mine) out.push_back("store " + e.path);
    size_t at = 0;
    while (at < all.size()) {
      const std::string_view rec = std::string_view(all).substr(at, encoded_record_size(std::string_view(all).substr(at)));
      out.push_back("keep " + std::string(encoded_record_path(rec)));
      at += rec.size();
    }
  }
  std::sort(out.begin(), out.end());
  return out;
}
}  // namespace

TEST_CASE("incremental: which rank holds an entry does not change what a level keeps (same inode at two paths)") {
  // Two paths showing one inode with one link (a bind mount inside the tree, or a source given
  // inside another): each rank decides on its own entries, so the outcome must not depend on
  // whether the other path is on the same rank; and a path still on disk is no rename (a
  // restore puts a member under one path only: carried, the other path would be lost).
  testutil::TempDir t;
  fs::create_directories(t.path / "r" / "x");
  testutil::write_file(t.path / "r" / "x" / "f", "hello");
  struct stat st {};
  REQUIRE(::lstat((t.path / "r" / "x" / "f").c_str(), &st) == 0);
  const std::vector<Root> roots{{(t.path / "r").string(), "r"}};
  auto entry = [&](const std::string& path) {
    Entry e;
    e.path = path, e.size = 5, e.mtime_sec = 77, e.ctime_sec = 88, e.mode = 0644, e.nlink = 1;
    e.dev = st.st_dev, e.ino = st.st_ino;
    return e;
  };
  auto catalog = [&](const std::vector<std::string>& paths) {
    CatalogWriter w(paths.size());
    for (const auto& p : paths) w.add(catalog_record(entry(p), true, false, 0, 0));
    return w.finish();
  };
  auto list = [&](const std::vector<std::string>& paths) {
    EntryList l;
    for (const auto& p : paths) l.push_back(entry(p));
    return l;
  };
  SUBCASE("one path unchanged, the other new") {
    const std::string prev = catalog({"r/x/f"});
    const auto one = level_of(prev, roots, {list({"r/x/f", "r/y/f"})});
    CHECK(one == std::vector<std::string>{"keep r/x/f", "store r/y/f"});
    CHECK(one == level_of(prev, roots, {list({"r/x/f"}), list({"r/y/f"})}));
    CHECK(one == level_of(prev, roots, {list({"r/y/f"}), list({"r/x/f"})}));
  }
  SUBCASE("the old path gone: a rename") {
    const std::string prev = catalog({"r/a"});
    const auto one = level_of(prev, roots, {list({"r/b"})});
    CHECK(one == std::vector<std::string>{"keep r/b"});
  }
}

TEST_CASE("manifest: the optional chain of an incremental level round-trips and is typed") {
  Manifest m;
  m.chain = {{"L0.tar.gz.manifest.json", 10, std::string(64, 'a')}, {"L1.tar.gz.manifest.json", 11, std::string(64, 'b')}};
  Manifest back = manifest_from_json(manifest_to_json(m));
  REQUIRE(back.chain.size() == 2);
  CHECK(back.chain[1].name == "L1.tar.gz.manifest.json");
  CHECK(back.chain[1].size == 11);
  CHECK(back.chain[0].sha256 == std::string(64, 'a'));
  CHECK(manifest_from_json(manifest_to_json(Manifest{})).chain.empty());
  std::string j = manifest_to_json(m);
  j.replace(j.find("\"size\": 11"), 10, "\"size\": \"x\"");
  CHECK_THROWS_WITH_AS(manifest_from_json(j), doctest::Contains("chain[1].size"), Fatal);
}

TEST_CASE("catalog: a name past 1 MiB is refused by the reader as by the writer (what it accepts must write back)") {
  auto catalog = [](size_t member_size) {
    std::string rec;
    le(rec, 0, 4);  // length, set below
    rec += std::string(1, '\0') + std::string(3, '\0');  // file, no flags, reserved
    for (int i = 0; i < 3; ++i) le(rec, 0, 4);           // mode uid gid
    le(rec, 0, 8);                                       // size
    le(rec, 0, 8), le(rec, 0, 4);                        // mtime
    le(rec, kCatalogNone, 8), le(rec, kCatalogNone, 8);  // block offset
    le(rec, 0, 8), le(rec, 0, 4), le(rec, 0, 8), le(rec, 0, 8), le(rec, 0, 4);  // ctime dev ino level
    for (const std::string& n : {std::string("p"), std::string(), std::string(), std::string(), std::string(member_size, 'm')}) {
      le(rec, n.size(), 4);
      rec += n;
    }
    const uint64_t len = rec.size() - 4;
    for (int i = 0; i < 4; ++i) rec[i] = static_cast<char>(len >> (8 * i));
    std::string z(ZSTD_compressBound(rec.size()), '\0');
    z.resize(ZSTD_compress(z.data(), z.size(), rec.data(), rec.size(), 1));
    std::string f = "PBKCATLG";
    le(f, 2, 4), le(f, 0, 4), le(f, 1, 8), le(f, rec.size(), 8);
    return f + z;
  };
  std::vector<CatalogRecord> got;
  CHECK_NOTHROW(read_catalog(catalog(1u << 20), [&](const CatalogRecord& r) { got.push_back(r); }));
  REQUIRE(got.size() == 1);
  CatalogWriter w(1);
  CHECK_NOTHROW(w.add(got[0]));
  CHECK_THROWS_WITH_AS(read_catalog(catalog((1u << 20) + 1), [](const CatalogRecord&) {}), doctest::Contains("name of 1048577 bytes"), Fatal);
}

TEST_CASE("catalog: a record travels between ranks encoded as the catalog stores it, incremental fields too") {
  CatalogRecord r;
  r.path = "root/p", r.link = "l", r.uname = "u", r.gname = "g";
  r.type = EntryType::Symlink, r.flags = 3, r.mode = 0700, r.uid = 5, r.gid = 6, r.size = 7;
  r.mtime_sec = -8, r.mtime_nsec = 9, r.block = 10, r.offset = 11;
  r.ctime_sec = 12, r.ctime_nsec = 13, r.dev = 14, r.ino = 15, r.level = 16, r.member = "root/old";
  std::string encoded;
  encode_catalog_record(r, encoded);
  CHECK(encoded_record_size(encoded) == encoded.size());
  CHECK(encoded_record_path(encoded) == r.path);
  CatalogWriter w(1);
  w.add_encoded(encoded);
  CatalogRecord b;
  read_catalog(w.finish(), [&](const CatalogRecord& got) { b = got; });
  CHECK(b.path == r.path);
  CHECK(b.link == r.link);
  CHECK(b.gname == r.gname);
  CHECK(b.type == r.type);
  CHECK(b.offset == r.offset);
  CHECK(b.ctime_sec == 12);
  CHECK(b.ctime_nsec == 13);
  CHECK(b.dev == 14);
  CHECK(b.ino == 15);
  CHECK(b.level == 16);
  CHECK(b.member == "root/old");
}
