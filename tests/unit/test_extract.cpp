// The extraction rules every restore path relies on: member names reduced to one canonical
// spelling (so duplicate checks see aliases), and metadata never applied through a symlink
// that another member put where a directory or file was.
#include <doctest/doctest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iterator>

#include "core/extract.h"
#include "core/xattr.h"
#include "pbackup/error.h"
#include "helpers.h"
#include "pbackup/log.h"

using namespace pbackup;

namespace {
std::string clean(std::string name, bool* ok = nullptr, std::string* why = nullptr) {
  std::string w;
  bool r = sanitize_member(name, w);
  if (ok) *ok = r;
  if (why) *why = w;
  return name;
}
std::string slurp(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}
}  // namespace

TEST_CASE("sanitize_member: one spelling per path, '..' and NUL refused") {
  bool ok = false;
  std::string why;
  CHECK(clean("a/b/c") == "a/b/c");
  CHECK(clean("a//b/./c/") == "a/b/c");
  CHECK(clean("./a/b") == "a/b");
  CHECK(clean("x/./d", &ok) == "x/d");
  CHECK(ok);
  CHECK(clean("/etc/passwd", &ok, &why) == "etc/passwd");
  CHECK(ok);
  CHECK(why.find("leading '/'") != std::string::npos);
  clean("a/../../b", &ok, &why);
  CHECK_FALSE(ok);
  CHECK(why.find("'..'") != std::string::npos);
  clean(std::string("x/d\0z", 5), &ok, &why);
  CHECK_FALSE(ok);
  CHECK(why.find("NUL") != std::string::npos);
  clean("./", &ok, &why);
  CHECK_FALSE(ok);
  CHECK(why.empty());  // the archive's own top: nothing to extract, nothing to report
  CHECK(clean("a..b/..c") == "a..b/..c");
}

TEST_CASE("Extractor::finish never changes what a symlink points to") {
  testutil::TempDir t;
  const std::string root = (t.path / "restore").string(), victim = (t.path / "victim").string();
  REQUIRE(::mkdir(victim.c_str(), 0755) == 0);
  REQUIRE(::mkdir(root.c_str(), 0755) == 0);
  testutil::write_file(t.path / "victim" / "file", "keep");
  REQUIRE(::chmod((t.path / "victim" / "file").c_str(), 0644) == 0);
  Extractor x(root);
  x.make_dir("d");
  x.create_file("f", 4, "data");
  // another member replaced both by symlinks to the victim while the restore ran
  REQUIRE(::rmdir((root + "/d").c_str()) == 0);
  REQUIRE(::symlink(victim.c_str(), (root + "/d").c_str()) == 0);
  REQUIRE(::unlink((root + "/f").c_str()) == 0);
  REQUIRE(::symlink((victim + "/file").c_str(), (root + "/f").c_str()) == 0);
  std::vector<RestoredEntry> entries = {
      RestoredEntry{"d", "", '5', 0777, 0, 0, 1000, 0},
      RestoredEntry{"f", "", '0', 0777, 0, 0, 1000, 0},
  };
  Log log(0, LogLevel::Error);
  CHECK(x.finish(entries, log, 1) == 2);  // both reported
  struct stat st {};
  REQUIRE(::stat(victim.c_str(), &st) == 0);
  CHECK((st.st_mode & 07777) == 0755);
  CHECK(st.st_mtime != 1000);
  REQUIRE(::stat((victim + "/file").c_str(), &st) == 0);
  CHECK((st.st_mode & 07777) == 0644);
  CHECK(st.st_mtime != 1000);
}

TEST_CASE("Extractor: directories made for members below them are reported as implied") {
  testutil::TempDir t;
  Extractor x(t.path.string());
  x.make_dir("listed");
  x.create_file("a/b/c.txt", 1, "x");
  auto implied = x.implied_dirs();
  std::sort(implied.begin(), implied.end());
  CHECK(implied == std::vector<std::string>{"a", "a/b"});
}

TEST_CASE("Extractor::create replaces what is at the name, never writes through it") {
  testutil::TempDir t;
  const std::string root = (t.path / "restore").string(), victim = (t.path / "victim").string();
  REQUIRE(::mkdir(root.c_str(), 0755) == 0);
  testutil::write_file(t.path / "victim", "keep");
  // a hard link to a file outside, and a symlink to it, where members will go
  REQUIRE(::link(victim.c_str(), (root + "/f").c_str()) == 0);
  REQUIRE(::symlink(victim.c_str(), (root + "/g").c_str()) == 0);
  REQUIRE(::mkdir((root + "/emptydir").c_str(), 0755) == 0);
  Extractor x(root);
  x.create_file("f", 4, "data");
  { Fd fd = x.create("g", 10); }
  x.create_file("emptydir", 1, "e");
  CHECK(slurp(t.path / "victim") == "keep");
  CHECK(slurp(t.path / "restore" / "f") == "data");
  struct stat st {};
  REQUIRE(::lstat((root + "/g").c_str(), &st) == 0);
  CHECK(S_ISREG(st.st_mode));
  CHECK(st.st_size == 10);
  CHECK(st.st_nlink == 1);
  CHECK(slurp(t.path / "restore" / "emptydir") == "e");
  REQUIRE(::stat(victim.c_str(), &st) == 0);
  CHECK(st.st_nlink == 1);
}

TEST_CASE("Extractor::write_part writes only into the inode it was given") {
  testutil::TempDir t;
  const std::string root = (t.path / "restore").string(), victim = (t.path / "victim").string();
  REQUIRE(::mkdir(root.c_str(), 0755) == 0);
  testutil::write_file(t.path / "victim", "keep");
  Extractor x(root);
  uint64_t ino = 0;
  {
    Fd fd = x.create("big", 8);
    struct stat st {};
    REQUIRE(::fstat(fd.get(), &st) == 0);
    ino = st.st_ino;
  }
  x.write_part("big", ino, 4, "abcd");
  CHECK(slurp(t.path / "restore" / "big") == std::string("\0\0\0\0abcd", 8));
  // replaced by a hard link to a file outside (or anything else) while the restore ran
  REQUIRE(::unlink((root + "/big").c_str()) == 0);
  REQUIRE(::link(victim.c_str(), (root + "/big").c_str()) == 0);
  CHECK_THROWS(x.write_part("big", ino, 0, "XXXX"));
  REQUIRE(::unlink((root + "/big").c_str()) == 0);
  REQUIRE(::symlink(victim.c_str(), (root + "/big").c_str()) == 0);
  CHECK_THROWS(x.write_part("big", ino, 0, "XXXX"));
  CHECK(slurp(t.path / "victim") == "keep");
}

TEST_CASE("Extractor::finish looks a hard link's target up, never makes directories for it") {
  testutil::TempDir t;
  Extractor x(t.path.string());
  std::vector<RestoredEntry> entries = {RestoredEntry{"h", "no/such/target", '1', 0644, 0, 0, 1000, 0}};
  Log log(0, LogLevel::Error);
  CHECK(x.finish(entries, log, 1) == 1);
  CHECK_FALSE(std::filesystem::exists(t.path / "no"));
  CHECK(x.implied_dirs().empty());
}

TEST_CASE("ACL text <-> kernel xattr: GNU tar's and libarchive's forms") {
  std::string why;
  // libarchive: commas, entries out of order, the id as a 4th field (used when the name is
  // unknown here); GNU tar: acl_to_text's newlines.
  std::string bin = acl_text_to_xattr("user::rw-,group::r--,other::r--,user:pbk_no_such_user:r--:4321,mask::r--", why);
  REQUIRE_MESSAGE(!bin.empty(), why);
  CHECK(bin.size() == 4 + 5 * 8);
  std::string text = acl_xattr_to_text(bin);
  CHECK(text.find("user:4321:r--\n") != std::string::npos);
  CHECK(text.rfind("user::rw-\n", 0) == 0);
  CHECK(text.find("mask::r--\nother::r--\n") != std::string::npos);
  CHECK(acl_text_to_xattr(text, why) == bin);
  CHECK(acl_text_to_xattr("user::rw-\ngroup::r--\nother:r--\n", why).size() == 4 + 3 * 8);
  CHECK(acl_text_to_xattr("user:pbk_no_such_user:r--", why).empty());
  CHECK(why.find("pbk_no_such_user") != std::string::npos);
  CHECK(acl_text_to_xattr("bogus::rwx", why).empty());
  CHECK(acl_text_to_xattr("user::rwz", why).empty());
  CHECK_THROWS_AS(acl_xattr_to_text(std::string("\2\0\0\0\1\0", 6)), Fatal);
  CHECK_THROWS_AS(acl_xattr_to_text(std::string("\3\0\0\0", 4)), Fatal);
}

TEST_CASE("owner-name caches stay bounded whatever names an archive holds") {
  // uname/gname and ACL qualifiers come from the archive: each distinct unknown name was kept
  // for the whole run, however many there were
  for (int i = 0; i < 70000; ++i) (void)pbackup::user_id("pbackup-no-such-user-" + std::to_string(i));
  CHECK(pbackup::cached_names() <= (1u << 16) + 8);
  CHECK_FALSE(pbackup::user_id("pbackup-no-such-user-1").has_value());
  CHECK(pbackup::user_id("root").value_or(1) == 0);
}

TEST_CASE("DeferredXattrs: holds records up to its limit, then refuses") {
  pbackup::DeferredXattrs d(100);
  CHECK(d.add("a", std::string(40, 'x')));
  CHECK(d.add("b", std::string(40, 'x')));
  CHECK_FALSE(d.add("c", std::string(40, 'x')));  // would pass 100 bytes
  CHECK(d.add("d", std::string(10, 'x')));        // a small one still fits
  CHECK(d.items().size() == 3);
  CHECK(d.items()[2].first == "d");
}
