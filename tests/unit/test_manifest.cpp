// Manifest: JSON written and read back; malformed input is refused with a reason.
#include <doctest/doctest.h>

#include "pbackup/error.h"
#include "pbackup/manifest.h"

using namespace pbackup;

TEST_CASE("manifest round-trips through JSON") {
  Manifest m;
  m.tool_version = "0.1.0";
  m.command = "pbackup backup --sources \"a b\"\n";
  m.format = "tar";
  m.codec = "gzip";
  m.archive = "x.tar.gz";
  m.archive_size = 1ull << 40;
  m.sources = {"/data/\xc3\xa9t\xc3\xa9"};
  m.fragments = {{"x.tar.gz.part0001", 5, "ab"}};
  m.blocks = {{0, 100, 0, 40, "cd", "root/f", "block"}, {0, 0, 40, 10, "ef", "", "structure"}};
  Manifest r = manifest_from_json(manifest_to_json(m));
  CHECK(r.command == m.command);
  CHECK(r.archive_size == m.archive_size);
  CHECK(r.sources == m.sources);
  REQUIRE(r.blocks.size() == 2);
  CHECK(r.blocks[1].kind == "structure");
  CHECK(r.blocks[0].first_entry == "root/f");
  CHECK(checksum_file(r) == "ab  x.tar.gz.part0001\n");
}

TEST_CASE("malformed manifests are refused") {
  CHECK_THROWS_AS(manifest_from_json("{"), Fatal);
  CHECK_THROWS_AS(manifest_from_json("{\"a\": 1}"), Fatal);
  CHECK_THROWS_AS(manifest_from_json("[1,2"), Fatal);
  CHECK_THROWS_AS(manifest_from_json(std::string(100, '[')), Fatal);
}

TEST_CASE("manifest: the damaged list round-trips and is absent when empty") {
  Manifest m;
  m.format = "tar";
  m.codec = "gzip";
  m.archive = "a.tar.gz";
  CHECK(manifest_to_json(m).find("damaged") == std::string::npos);
  m.damaged = {"root/gone \"quoted\".bin", "root/swap.bin"};
  Manifest back = manifest_from_json(manifest_to_json(m));
  CHECK(back.damaged == m.damaged);
}
