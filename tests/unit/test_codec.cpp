// Codecs: each block is one self-contained stream; streams concatenate; damage is detected.
#include <doctest/doctest.h>

#include "helpers.h"
#include "pbackup/codec.h"
#include "pbackup/error.h"

using namespace pbackup;

TEST_CASE("every codec round-trips a block and rejects damage") {
  for (const auto& name : codec_names()) {
    CAPTURE(name);
    auto c = make_codec(name, -1);
    std::string in = testutil::pattern(300000, 1), out;
    c->compress(in, out);
    CHECK(out.size() < in.size());
    CHECK(c->decompress(out) == in);
    std::string empty;
    c->compress("", empty);
    CHECK(c->decompress(empty).empty());
    CHECK_THROWS_AS(c->decompress(std::string_view(out).substr(0, out.size() / 2)), Fatal);
    std::string bad = out;
    bad[bad.size() / 2] ^= 0x55;
    bad[bad.size() / 2 + 1] ^= 0x55;
    CHECK_THROWS_AS(c->decompress(bad), Fatal);
  }
}

TEST_CASE("concatenated blocks read back as one stream through libarchive's filters") {
  for (const auto& name : codec_names()) {
    CAPTURE(name);
    auto c = make_codec(name, 1);
    std::string a = testutil::pattern(70000, 2), b = testutil::pattern(50000, 3), out;
    c->compress(a, out);
    c->compress(b, out);
    archive* ar = archive_read_new();
    archive_read_support_filter_all(ar);
    archive_read_support_format_raw(ar);
    REQUIRE(archive_read_open_memory(ar, out.data(), out.size()) == ARCHIVE_OK);
    archive_entry* e;
    REQUIRE(archive_read_next_header(ar, &e) == ARCHIVE_OK);
    std::string got;
    char buf[8192];
    la_ssize_t n;
    while ((n = archive_read_data(ar, buf, sizeof buf)) > 0) got.append(buf, static_cast<size_t>(n));
    archive_read_free(ar);
    CHECK(got == a + b);
  }
}

TEST_CASE("unknown codec names list the valid ones") {
  try {
    make_codec("lz5", -1);
    FAIL("no exception");
  } catch (const Fatal& f) {
    CHECK(std::string(f.what()).find("gzip") != std::string::npos);
  }
}
