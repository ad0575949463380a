// Manifest: JSON written and read back (always valid JSON, any byte string round-trips), strict
// numbers and types, messages naming the field; the structural checks (validate_manifest).
#include <doctest/doctest.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <string>

#include "pbackup/error.h"
#include "pbackup/manifest.h"

using namespace pbackup;

namespace {

const std::string kSha(64, 'a');

// A manifest shaped as backup writes one: a tar.gz of 3 blocks (the second and the third start
// inside "r/big"), the end marker, one file. (ManifestBlock: raw_offset, raw_size, offset, size.)
Manifest sample() {
  Manifest m;
  m.tool_version = "0.1.0";
  m.command = "pbackup backup";
  m.created = "2026-11-29T10:00:00Z";
  m.format = "tar";
  m.codec = "gzip";
  m.archive = "x.tar.gz";
  m.entries = 3;
  m.sources = {"/data/r"};
  ManifestBlock b0{0, 2048, 0, 100, kSha, "r", "block"};
  ManifestBlock b1{2048, 4096, 100, 200, kSha, "r/big", "block"};
  b1.continues = true;
  b1.cont_offset = 1024;
  b1.cont_size = 10000;
  ManifestBlock b2{6144, 1024, 300, 50, kSha, "r/big", "block"};
  b2.continues = true;
  b2.cont_offset = 5120;
  b2.cont_size = 10000;
  ManifestBlock end{0, 0, 350, 20, kSha, "", "structure"};
  m.blocks = {b0, b1, b2, end};
  m.archive_size = 370;
  m.fragments = {{"x.tar.gz", 370, ""}};
  return m;
}

// The message of the Fatal that `f` throws ("" if it does not throw).
std::string fatal_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Fatal& e) {
    return e.what();
  }
  return "";
}

std::string parse_error(const std::string& json) {
  return fatal_of([&] { manifest_from_json(json); });
}

// The sample's JSON with `from` replaced by `to` (once).
std::string edited(const std::string& from, const std::string& to) {
  std::string j = manifest_to_json(sample());
  size_t at = j.find(from);
  REQUIRE(at != std::string::npos);
  return j.replace(at, from.size(), to);
}

std::string check(const Manifest& m) {
  return fatal_of([&] { validate_manifest(m, "/b/x.tar.gz.manifest.json"); });
}

}  // namespace

TEST_CASE("manifest round-trips through JSON") {
  Manifest m = sample();
  m.command = "pbackup backup --sources \"a b\"\n";
  m.archive_size = 1ull << 40;
  m.sources = {"/data/\xc3\xa9t\xc3\xa9"};
  m.fragments = {{"x.tar.gz.part0001", 5, "ab"}};
  Manifest r = manifest_from_json(manifest_to_json(m));
  CHECK(r.command == m.command);
  CHECK(r.archive_size == m.archive_size);
  CHECK(r.sources == m.sources);
  REQUIRE(r.blocks.size() == 4);
  CHECK(r.blocks[3].kind == "structure");
  CHECK(r.blocks[0].first_entry == "r");
  CHECK(r.blocks[2].continues);
  CHECK(r.blocks[2].cont_offset == 5120);
  CHECK(r.blocks[2].cont_size == 10000);
  CHECK(checksum_file(r) == "ab  x.tar.gz.part0001\n");
  CHECK_NOTHROW(validate_manifest(manifest_from_json(manifest_to_json(sample())), "m"));
}

TEST_CASE("any byte string but NUL round-trips, and the JSON stays valid UTF-8") {
  const std::string names[] = {
      "r/caf\xe9",                    // Latin-1
      "r/\xff\xfe\x80",               // no UTF-8 at all
      "r/100%",                       // plain, '%' untouched
      "r/50%\xe9 %41",                // escaped form: '%' must be escaped too
      "r/\xed\xa0\x80",               // an encoded surrogate: not UTF-8 for JSON parsers
      "r/\xc0\xaf",                   // overlong '/'
      "r/\xf4\x90\x80\x80",           // past U+10FFFF
      "r/\xe2\x82",                   // cut-short sequence
      "r/\xc3\xa9\x01\x1f\x7f\"\\",   // UTF-8 with control characters, quote, backslash
      std::string("\0a", 2),          // starts with NUL (never a name; still reversible)
      std::string("a\0b", 3),
      "",
  };
  for (const auto& n : names) {
    Manifest m = sample();
    m.blocks[0].first_entry = n;
    m.sources = {n};
    m.command = n;
    std::string j = manifest_to_json(m);
    // valid UTF-8 text, no raw control characters
    for (unsigned char c : j) CHECK((c >= 0x20 || c == '\n'));
    Manifest r = manifest_from_json(j);
    CHECK(r.blocks[0].first_entry == n);
    CHECK(r.sources.at(0) == n);
    CHECK(r.command == n);
  }
  // the escaped form as docs/format.md shows it
  Manifest m = sample();
  m.blocks[0].first_entry = "r/caf\xe9 100%";
  CHECK(manifest_to_json(m).find("\"first_entry\": \"\\u0000r/caf%E9 100%25\"") != std::string::npos);
}

TEST_CASE("a manifest with a non-UTF-8 name is JSON to python3 and reads back") {
  Manifest m = sample();
  m.blocks[1].first_entry = "r/big\xe9\xff";
  m.blocks[2].first_entry = "r/big\xe9\xff";
  const char* path = "/tmp/pbackup_unit_manifest.json";
  {
    std::ofstream out(path, std::ios::binary);
    out << manifest_to_json(m);
  }
  std::string cmd = std::string("python3 -c 'import json,sys; d=json.load(open(sys.argv[1], encoding=\"utf-8\", errors=\"strict\")); "
                                "assert d[\"blocks\"][1][\"first_entry\"] == \"\\x00r/big%E9%FF\"' ") + path;
  CHECK(std::system(cmd.c_str()) == 0);
  std::remove(path);
}

TEST_CASE("manifests older pbackup wrote with raw non-UTF-8 names still read") {
  std::string j = manifest_to_json(sample());
  size_t at = j.find("\"r/big\"");
  REQUIRE(at != std::string::npos);
  j.replace(at, 7, "\"r/b%g\xe9\"");
  Manifest r = manifest_from_json(j);
  CHECK(r.blocks[1].first_entry == "r/b%g\xe9");
  CHECK(r.blocks[2].first_entry == "r/big");
}

TEST_CASE("numbers must be unsigned 64-bit integers") {
  CHECK(parse_error(edited("\"entries\": 3", "\"entries\": -1")).find("entries: expected an unsigned integer") != std::string::npos);
  CHECK(parse_error(edited("\"entries\": 3", "\"entries\": -0")).find("entries") != std::string::npos);
  CHECK(parse_error(edited("\"entries\": 3", "\"entries\": 3.5")).find("entries") != std::string::npos);
  CHECK(parse_error(edited("\"entries\": 3", "\"entries\": 3.0")).find("entries") != std::string::npos);
  CHECK(parse_error(edited("\"entries\": 3", "\"entries\": 3e2")).find("entries") != std::string::npos);
  CHECK(parse_error(edited("\"archive_size\": 370", "\"archive_size\": 18446744073709551617"))
            .find("archive_size: expected an unsigned integer, found the number 18446744073709551617") != std::string::npos);
  CHECK(parse_error(edited("\"raw_offset\": 2048", "\"raw_offset\": -2048")).find("blocks[1].raw_offset") != std::string::npos);
  CHECK(parse_error(edited("\"size\": 10000}", "\"size\": 1e4}")).find("blocks[1].continues.size") != std::string::npos);
  Manifest max = manifest_from_json(edited("\"split_bytes\": 0", "\"split_bytes\": 18446744073709551615"));
  CHECK(max.split_bytes == UINT64_MAX);
}

TEST_CASE("malformed manifests are refused with the field and the reason") {
  CHECK(!parse_error("{").empty());
  CHECK(parse_error("{\"a\": 1}").find("not a pbackup manifest") != std::string::npos);
  CHECK(!parse_error("[1,2").empty());
  CHECK(parse_error("{\"pbackup_manifest\": 1,").find("not valid JSON") != std::string::npos);
  CHECK(parse_error("[1,2]").find("not a pbackup manifest") != std::string::npos);
  CHECK(!parse_error(std::string(100, '[')).empty());
  CHECK(!parse_error(std::string(1000000, '[')).empty());
  // a bad \u escape: the parser's reason, not "stoul"
  std::string bad_u = parse_error(edited("\"r/big\"", "\"r/\\uZZZZ\""));
  CHECK(bad_u.find("not valid JSON") != std::string::npos);
  CHECK(bad_u.find("stoul") == std::string::npos);
  CHECK(bad_u.find("json.exception") == std::string::npos);
  CHECK(!parse_error(edited("\"r/big\"", "\"r/\\ud800\"")).empty());  // lone surrogate
  // truncated anywhere
  std::string full = manifest_to_json(sample());
  for (size_t n = 0; n < full.size(); n += 7) CHECK(!parse_error(full.substr(0, n)).empty());
  // trailing bytes
  CHECK(parse_error(full + "x").find("not valid JSON") != std::string::npos);
  // wrong types
  CHECK(parse_error(edited("\"entries\": 3", "\"entries\": \"3\"")).find("entries: expected an unsigned integer, found a string") != std::string::npos);
  CHECK(parse_error(edited("\"format\": \"tar\"", "\"format\": 1")).find("format: expected a string") != std::string::npos);
  CHECK(parse_error(edited("\"sources\": [\"/data/r\"]", "\"sources\": [1]")).find("sources[0]: expected a string") != std::string::npos);
  CHECK(parse_error(edited("\"sources\": [\"/data/r\"]", "\"sources\": {}")).find("sources: expected an array") != std::string::npos);
  CHECK(parse_error(edited("\"first_entry\": \"r\"", "\"first_entry\": null")).find("blocks[0].first_entry") != std::string::npos);
  CHECK(parse_error(edited("\"first_entry\": \"r\"", "\"first_entry\": [\"r\"]")).find("blocks[0].first_entry") != std::string::npos);
  CHECK(parse_error(edited("\"continues\": {", "\"continues\": [")).find("blocks[1].continues: expected an object") != std::string::npos);
  CHECK(parse_error(edited("\"blocks\": [\n", "\"blocks\": [7, ")).find("blocks[0]: expected an object") != std::string::npos);
  CHECK(parse_error(edited("\"pbackup_manifest\": 1", "\"pbackup_manifest\": 2")).find("version 2") != std::string::npos);
  // missing and repeated fields
  CHECK(parse_error(edited("\"sha256\": \"" + kSha + "\", \"first_entry\": \"r\"", "\"first_entry\": \"r\""))
            .find("blocks[0]: missing field \"sha256\"") != std::string::npos);
  CHECK(parse_error(edited("\"archive_size\": 370,", "")).find("missing field \"archive_size\"") != std::string::npos);
  CHECK(parse_error(edited("\"entries\": 3", "\"entries\": 3, \"entries\": 4")).find("entries: appears twice") != std::string::npos);
  // a malformed escaped name
  CHECK(parse_error(edited("\"r/big\"", "\"\\u0000r/%G1\"")).find("blocks[1].first_entry: malformed") != std::string::npos);
  CHECK(parse_error(edited("\"r/big\"", "\"\\u0000r/%4\"")).find("malformed") != std::string::npos);
}

TEST_CASE("unknown keys are skipped, however nested; huge arrays are read or refused at once") {
  Manifest r = manifest_from_json(edited("\"entries\": 3", "\"entries\": 3, \"later\": {\"a\": [1, -2.5, {\"b\": null}], \"c\": true}"));
  CHECK(r.entries == 3);
  CHECK(!parse_error(edited("\"entries\": 3", "\"entries\": 3, \"later\": " + std::string(200, '[') + std::string(200, ']'))).empty());
  // a million tiny wrong records: the first one is refused
  std::string many;
  for (int i = 0; i < 1000000; ++i) many += "{},";
  CHECK(parse_error(edited("\"blocks\": [\n", "\"blocks\": [" + many)).find("blocks[0]: missing field \"offset\"") != std::string::npos);
  // a million sources read fine (bounded by the text's size)
  std::string srcs;
  for (int i = 0; i < 1000000; ++i) srcs += "\"s\",";
  CHECK(manifest_from_json(edited("\"sources\": [", "\"sources\": [" + srcs)).sources.size() == 1000001);
}

TEST_CASE("validate_manifest refuses manifests that do not describe the archive exactly") {
  CHECK(check(sample()) == "");
  auto with = [](const std::function<void(Manifest&)>& f) {
    Manifest m = sample();
    f(m);
    return check(m);
  };
  auto has = [](const std::string& msg, const std::string& part) {
    INFO(msg);
    CHECK(msg.find("manifest '/b/x.tar.gz.manifest.json': ") == 0);
    CHECK(msg.find(part) != std::string::npos);
  };
  // a middle block record removed: a gap, in the archive and in the raw stream
  has(with([](Manifest& m) { m.blocks.erase(m.blocks.begin() + 1); }), "blocks[1] (block at byte 300): leaves a gap");
  has(with([](Manifest& m) { m.blocks[1].offset = 50; }), "overlaps the record before it");
  has(with([](Manifest& m) { m.blocks[1].raw_offset = 99; }), "tile the uncompressed stream");
  has(with([](Manifest& m) { m.blocks[1].kind = "structure"; }), "structure record has no raw bytes");
  has(with([](Manifest& m) { m.blocks[1].kind = "blob"; }), "blocks[1].kind: 'blob' is not block, structure or patch");
  has(with([](Manifest& m) { std::swap(m.blocks[0], m.blocks[3]); }), "leaves a gap");
  // only structure left, entries > 0
  has(with([](Manifest& m) {
        m.blocks = {ManifestBlock{0, 0, 0, 370, kSha, "", "structure"}};
      }),
      "3 entries, but no block records hold them");
  has(with([](Manifest& m) { m.blocks.pop_back(); m.archive_size = m.fragments[0].size = 350; }), "no structure record");
  // sizes that wrap
  has(with([](Manifest& m) { m.blocks[3].size = UINT64_MAX - 349; }), "past 2^64");
  has(with([](Manifest& m) { m.archive_size = 371; }), "fragments add up to 370 bytes, but archive_size is 371");
  has(with([](Manifest& m) { m.archive_size = m.fragments[0].size = 371; }), "the records end at byte 370, but archive_size is 371");
  CHECK(with([](Manifest& m) {
          m.split_bytes = 200;
          m.fragments = {{"x.tar.gz.part0001", 200, ""}, {"x.tar.gz.part0002", 170, ""}};
        }) == "");
  has(with([](Manifest& m) {
        m.split_bytes = 200;
        m.fragments = {{"x.tar.gz.part0001", 170, ""}, {"x.tar.gz.part0002", 200, ""}};
      }),
      "fragments[0].size: 170 bytes, but split_bytes is 200");
  has(with([](Manifest& m) {
        m.split_bytes = 0;
        m.fragments = {{"a", 170, ""}, {"b", 200, ""}};
      }),
      "split_bytes is 0");
  has(with([](Manifest& m) {
        m.split_bytes = 1ull << 63;
        m.fragments = {{"a", 1ull << 63, ""}, {"b", 1ull << 63, ""}, {"c", 370, ""}};
      }),
      "fragment sizes add up past 2^64");
  has(with([](Manifest& m) { m.fragments[0].name = "../../etc/passwd"; }), "not a plain file name");
  has(with([](Manifest& m) { m.archive = "a/b"; }), "not a plain file name");
  has(with([](Manifest& m) { m.blocks[0].sha256 = "xyz"; }), "sha256");
  // continuation rules
  has(with([](Manifest& m) { m.blocks[2].cont_offset = 10000; }), "continues at data byte 10000 of a file of 10000 bytes");
  has(with([](Manifest& m) { m.blocks[2].cont_offset = 4096; }), "but the previous block ends at 5120");
  has(with([](Manifest& m) { m.blocks[2].cont_size = 9999; }), "the previous block says 10000");
  has(with([](Manifest& m) { m.blocks[0].continues = true; m.blocks[0].cont_size = 5; }), "the first block cannot continue");
  has(with([](Manifest& m) { m.blocks[1].first_entry.assign(1, 'q'); }), "sorts before");
  has(with([](Manifest& m) { m.blocks[2].continues = false; }), "again, but does not continue it");
  has(with([](Manifest& m) { m.blocks[1].raw_size = 4097; m.blocks[2].raw_offset = 6145; }), "multiple of 512");
  has(with([](Manifest& m) { m.entries = 0; }), "entries is 0");
  has(with([](Manifest& m) { m.codec = "lz4"; }), "codec 'lz4'");
  has(with([](Manifest& m) { m.format = "cpio"; }), "format 'cpio'");
}

TEST_CASE("patch records: inside one block, zip only, never wrapping") {
  Manifest m = sample();
  m.format = "zip";
  m.codec = "deflate";
  ManifestBlock patch{0, 0, 120, 30, kSha, "", "patch"};  // inside block 1, bytes [100, 300)
  m.blocks.insert(m.blocks.begin() + 2, patch);
  CHECK(check(m) == "");
  Manifest wraps = m;
  wraps.blocks[2].size = UINT64_MAX - 4;  // 2^64 - 5
  CHECK(check(wraps).find("past 2^64") != std::string::npos);
  Manifest spills = m;
  spills.blocks[2].offset = 290;
  CHECK(check(spills).find("runs past the end of its block") != std::string::npos);
  Manifest two = m;
  two.blocks.insert(two.blocks.begin() + 2, ManifestBlock{0, 0, 130, 30, kSha, "", "patch"});
  CHECK(check(two).find("overlaps the patch before it") != std::string::npos);
  Manifest tar = sample();
  tar.blocks.insert(tar.blocks.begin() + 2, patch);
  CHECK(check(tar).find("only in zip") != std::string::npos);
}

TEST_CASE("read_manifest names the manifest in every error") {
  std::string e = fatal_of([] { read_manifest("{\"pbackup_manifest\": 1, \"entries\": -5}", "/x/m.json"); });
  CHECK(e.find("manifest '/x/m.json': entries: expected an unsigned integer") == 0);
  Manifest m = sample();
  m.archive_size = 1;
  e = fatal_of([&] { read_manifest(manifest_to_json(m), "/x/m.json"); });
  CHECK(e.find("manifest '/x/m.json': fragments add up") == 0);
  CHECK_NOTHROW(read_manifest(manifest_to_json(sample()), "/x/m.json"));
}

TEST_CASE("a \\u escape without four hex digits is a Fatal, not std::invalid_argument (found by fuzz_manifest)") {
  CHECK_THROWS_AS(manifest_from_json("{\"pbackup_manifest\": 1, \"command\": \"a\\u\\p bc\"}"), Fatal);
  CHECK_THROWS_AS(manifest_from_json("{\"pbackup_manifest\": 1, \"command\": \"\\uZZZZ\"}"), Fatal);
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

TEST_CASE("manifest: an encrypted archive's plaintext manifest holds no names and its sizes fit an age file") {
  Manifest m = sample();
  m.archive = "x.tar.gz.age";
  m.encryption = "age";
  m.encrypted_size = 370 + 16 + 200;  // payload (one chunk: +16) and a 200-byte header with nonce
  m.fragments = {{"x.tar.gz.age", m.encrypted_size, ""}};
  CHECK(check(m).empty());
  Manifest red = redact_manifest(m);
  red.sealed_manifest = {"x.tar.gz.age.manifest.age", 99, std::string(64, 'c')};
  CHECK(check(red).empty());
  std::string json = manifest_to_json(red);
  for (const char* name : {"r/big", "/data/r", "pbackup backup"}) CHECK(json.find(name) == std::string::npos);
  Manifest back = manifest_from_json(json);
  CHECK(back.encryption == "age");
  CHECK(back.encrypted_size == m.encrypted_size);
  CHECK(back.sealed_manifest.name == "x.tar.gz.age.manifest.age");
  CHECK(back.blocks[1].cont_size == 0);  // a big file's size is a size of a file: not in plaintext
  // a plaintext block's hash would confirm a guessed file's content: none in plaintext
  for (const auto& b : back.blocks) CHECK(b.sha256.empty());
  CHECK(check(back).empty());
  // a name in the name-free copy, sizes that cannot be an age file, an unknown scheme
  Manifest named = red;
  named.blocks[0].first_entry = "r";
  CHECK(check(named).find("holds no names") != std::string::npos);
  Manifest warned = m;  // a warning names a file: redacted away, and refused in the name-free copy
  warned.warnings = {{"/data/r/s.sock", "socket not stored"}};
  warned.warnings_total = 1;
  Manifest warned_red = redact_manifest(warned);
  CHECK(warned_red.warnings.empty());
  CHECK(warned_red.warnings_total == 1);
  warned_red.sealed_manifest = red.sealed_manifest;
  CHECK(check(warned_red).empty());
  warned_red.warnings = warned.warnings;
  CHECK(check(warned_red).find("holds no names") != std::string::npos);
  Manifest small = m;
  small.encrypted_size = 370 + 16 + 16;  // no room for a header
  small.fragments[0].size = small.encrypted_size;
  CHECK(check(small).find("does not fit an age file") != std::string::npos);
  Manifest other = m;
  other.encryption = "gpg";
  CHECK(check(other).find("is not age") != std::string::npos);
  Manifest frag = m;
  frag.fragments[0].size = 370;  // the fragments are the ciphertext
  CHECK(check(frag).find("encrypted_size") != std::string::npos);
}

TEST_CASE("manifest: the warnings round-trip, are absent when none, and are checked like every field") {
  Manifest m = sample();
  CHECK(manifest_to_json(m).find("warnings") == std::string::npos);
  m.warnings = {{"/data/r/s.sock", "'/data/r/s.sock': socket not stored (skipped)"}, {"", "a \"quoted\" note\n"}};
  m.warnings_total = 3;  // one more than kept
  std::string json = manifest_to_json(m);
  Manifest back = read_manifest(json, "m.json");
  REQUIRE(back.warnings.size() == 2);
  CHECK(back.warnings[0].path == m.warnings[0].path);
  CHECK(back.warnings[1].reason == m.warnings[1].reason);
  CHECK(back.warnings_total == 3);
  // hostile forms: the field and the reason are named
  auto with = [&](const std::string& from, const std::string& to) {
    std::string j = json;
    size_t at = j.find(from);
    REQUIRE(at != std::string::npos);
    return j.replace(at, from.size(), to);
  };
  CHECK(parse_error(with("\"warnings\": [", "\"warnings\": [7, ")).find("warnings[0]: expected an object") != std::string::npos);
  CHECK(parse_error(with("{\"path\": \"/data/r/s.sock\", ", "{")).find("missing field \"path\"") != std::string::npos);
  CHECK(parse_error(with("\"reason\": \"a", "\"reason\": 5, \"x\": \"a")).find("warnings[1].reason: expected a string") != std::string::npos);
  CHECK(parse_error(with("\"warnings_total\": 3", "\"warnings_total\": -3")).find("warnings_total") != std::string::npos);
  std::string fewer = with("\"warnings_total\": 3", "\"warnings_total\": 1");
  CHECK(fatal_of([&] { read_manifest(fewer, "m.json"); }).find("warnings lists 2 warning(s) but warnings_total is 1") != std::string::npos);
}

TEST_CASE("manifest: chain links are manifest names beside it, once each, with a size and a SHA-256 (validate_manifest)") {
  Manifest m = sample();
  m.chain = {{"L0.tar.gz.manifest.json", 1254, kSha}, {"L1.tar.gz.manifest.json", 1451, std::string(64, 'b')}};
  CHECK(check(m) == "");
  auto with = [&](const Fragment& link) {
    Manifest e = m;
    e.chain[1] = link;
    return check(e);
  };
  for (const std::string name : {std::string("../L1.tar.gz.manifest.json"), std::string("d/L1.tar.gz.manifest.json"), std::string(""),
                                 std::string(".manifest.json"), std::string("L1.tar.gz"), std::string("..")}) {
    CAPTURE(name);
    CHECK(with({name, 1451, kSha}).find("chain[1]: name") != std::string::npos);
  }
  CHECK(with({std::string("L1\0x.manifest.json", 18), 1451, kSha}).find("not a manifest file name") != std::string::npos);
  CHECK(with({"L0.tar.gz.manifest.json", 1451, kSha}).find("chain[1]: name 'L0.tar.gz.manifest.json' is listed twice") != std::string::npos);
  CHECK(with({"L1.tar.gz.manifest.json", 1451, ""}).find("chain[1].sha256: not a SHA-256 in hex") != std::string::npos);
  CHECK(with({"L1.tar.gz.manifest.json", 1451, std::string(64, 'A')}).find("chain[1].sha256") != std::string::npos);
  CHECK(with({"L1.tar.gz.manifest.json", 0, kSha}).find("chain[1].size: 0") != std::string::npos);
  CHECK(with({"L1.tar.gz.manifest.json", UINT64_MAX, kSha}).find("chain[1].size: 18446744073709551615 is larger than any file") !=
        std::string::npos);
  CHECK(manifest_file_name("L.manifest.json"));
  CHECK(!manifest_file_name("a/L.manifest.json"));
}
