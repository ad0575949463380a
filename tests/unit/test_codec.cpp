// Codecs: each block is one self-contained stream; streams concatenate; damage is detected.
#include <doctest/doctest.h>

#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <thread>

#include "codec/gunzip_stream.h"
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
    CHECK(c->decompress(out, in.size()) == in);
    std::string empty;
    c->compress("", empty);
    CHECK(c->decompress(empty, 0).empty());
    CHECK_THROWS_AS(c->decompress(std::string_view(out).substr(0, out.size() / 2), in.size()), Fatal);
    std::string bad = out;
    bad[bad.size() / 2] ^= 0x55;
    bad[bad.size() / 2 + 1] ^= 0x55;
    CHECK_THROWS_AS(c->decompress(bad, in.size()), Fatal);
    // The expected size is exact: one byte more or less is an error, not a shorter block.
    CHECK_THROWS_WITH_AS(c->decompress(out, in.size() - 1), doctest::Contains("expected"), Fatal);
    CHECK_THROWS_WITH_AS(c->decompress(out, in.size() + 1), doctest::Contains("expected"), Fatal);
    // Trailing bytes after the one stream are refused.
    CHECK_THROWS_AS(c->decompress(out + empty, in.size()), Fatal);
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

namespace {
std::string compressed(const char* codec, const std::string& in) {
  std::string out;
  make_codec(codec, -1)->compress(in, out);
  return out;
}
}  // namespace

TEST_CASE("gzip: a 49-byte member whose ISIZE claims 4 GiB fails fast, bounded by the expected size") {
  std::string in = "hello, world, hello, world, hello", gz = compressed("gzip", in);
  REQUIRE(gz.size() < 64);
  for (int i = 1; i <= 4; ++i) gz[gz.size() - i] = static_cast<char>(0xff);  // ISIZE = 2^32 - 1
  auto c = make_codec("gzip", -1);
  auto t0 = std::chrono::steady_clock::now();
  CHECK_THROWS_WITH_AS(c->decompress(gz, in.size()), doctest::Contains("size trailer"), Fatal);
  CHECK(std::chrono::steady_clock::now() - t0 < std::chrono::milliseconds(200));
  // An expected size beyond any block is refused before allocating (an empty member's ISIZE 0
  // matches 2^62).
  std::string empty = compressed("gzip", "");
  CHECK_THROWS_WITH_AS(c->decompress(empty, uint64_t{1} << 62), doctest::Contains("larger than any block"), Fatal);
  CHECK_THROWS_WITH_AS(make_codec("bzip2", -1)->decompress(compressed("bzip2", ""), uint64_t{1} << 62),
                       doctest::Contains("larger than any block"), Fatal);
}

TEST_CASE("every codec checks its checksums: gzip CRC-32 and ISIZE, bzip2 block and stream CRCs, zstd checksum") {
  std::string in = testutil::pattern(200000, 7);
  std::string gz = compressed("gzip", in);
  auto gzip = make_codec("gzip", -1);
  std::string crc = gz;
  crc[crc.size() - 8] ^= 0x01;  // the CRC-32 in the member's trailer
  CHECK_THROWS_WITH_AS(gzip->decompress(crc, in.size()), doctest::Contains("CRC"), Fatal);
  std::string isize = gz;
  isize[isize.size() - 4] ^= 0x01;
  CHECK_THROWS_AS(gzip->decompress(isize, in.size()), Fatal);

  std::string bz = compressed("bzip2", in);
  auto bzip2 = make_codec("bzip2", -1);
  REQUIRE(bz.compare(0, 3, "BZh") == 0);
  std::string block_crc = bz;
  block_crc[10] ^= 0x01;  // "BZh9", the 48-bit block magic, then the block's CRC
  CHECK_THROWS_WITH_AS(bzip2->decompress(block_crc, in.size()), doctest::Contains("CRC"), Fatal);
  std::string stream_crc = bz;
  stream_crc.back() ^= static_cast<char>(0x80);  // the last byte's first bit belongs to the stream CRC
  CHECK_THROWS_WITH_AS(bzip2->decompress(stream_crc, in.size()), doctest::Contains("CRC"), Fatal);

  std::string zs = compressed("zstd", in);
  auto zstd = make_codec("zstd", -1);
  std::string sum = zs;
  sum.back() ^= 0x01;  // the frame's content checksum (last 4 bytes)
  CHECK_THROWS_WITH_AS(zstd->decompress(sum, in.size()), doctest::Contains("checksum"), Fatal);
}

namespace {
// Decompresses `gz` with GunzipStream, fed in pieces of `step` bytes.
std::string gunzip(const std::string& gz, size_t step) {
  size_t at = 0;
  GunzipStream g(
      [&]() {
        std::string_view piece = std::string_view(gz).substr(at, step);
        at += piece.size();
        return piece;
      },
      step == 7 ? 100 : size_t{1} << 20);
  std::string out;
  for (std::string_view p; !(p = g.next()).empty();) out.append(p);
  return out;
}
}  // namespace

TEST_CASE("GunzipStream: concatenated members, zero padding; CRC, ISIZE, truncation and garbage refused") {
  std::string a = testutil::pattern(300000, 11), b = testutil::pattern(5000, 12);
  std::string gz = compressed("gzip", a) + compressed("gzip", "") + compressed("gzip", b);
  for (size_t step : {size_t{1} << 20, size_t{7}}) {
    CAPTURE(step);
    CHECK(gunzip(gz, step) == a + b);
    CHECK(gunzip(gz + std::string(1000, '\0'), step) == a + b);
    std::string crc = gz;
    crc[gz.size() - 8] ^= 1;  // the last member's CRC-32
    CHECK_THROWS_WITH_AS(gunzip(crc, step), doctest::Contains("gzip member 3"), Fatal);
    std::string isize = gz;
    isize[gz.size() - 1] ^= 1;
    CHECK_THROWS_AS(gunzip(isize, step), Fatal);
    CHECK_THROWS_WITH_AS(gunzip(gz.substr(0, gz.size() - 3), step), doctest::Contains("truncated"), Fatal);
    CHECK_THROWS_WITH_AS(gunzip(gz + "x", step), doctest::Contains("not a gzip member"), Fatal);
    CHECK_THROWS_AS(gunzip(gz + std::string(10, '\0') + "x", step), Fatal);
  }
  CHECK_THROWS_AS(gunzip("", 10), Fatal);
  CHECK(GunzipStream::looks_like_gzip(gz));
  CHECK_FALSE(GunzipStream::looks_like_gzip("BZh91AY"));
}

TEST_CASE("a block the memory limit cannot hold is a clear error, not std::bad_alloc") {
  // A child process under a 256 MiB address-space limit decodes a member whose ISIZE and
  // expected size say 1 GiB: the buffer cannot be had, and that must be a Fatal saying so.
  std::string gz = compressed("gzip", "");
  const uint32_t gib = 1u << 30;
  for (int k = 0; k < 4; ++k) gz[gz.size() - 4 + k] = static_cast<char>((gib >> (8 * k)) & 0xff);
  auto c = make_codec("gzip", -1);
  pid_t pid = fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    struct rlimit rl {256u << 20, 256u << 20};
    setrlimit(RLIMIT_AS, &rl);
    int rc = 3;
    try {
      c->decompress(gz, gib);
      rc = 1;
    } catch (const Fatal& f) {
      rc = std::string(f.what()).find("out of memory") != std::string::npos ? 0 : 2;
    } catch (...) {
      rc = 4;
    }
    _exit(rc);
  }
  int status = 0;
  REQUIRE(waitpid(pid, &status, 0) == pid);
  REQUIRE(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);
}

// The codecs reuse one compression/decompression context per thread: a block must compress to
// the same bytes whatever the thread compressed before (other levels, other sizes), as a fresh
// thread's context gives, and a failed decompression must not poison the next one.
TEST_CASE("codec contexts reused per thread: same bytes as a fresh thread, levels interleaved, after errors") {
  const std::string big = testutil::pattern(3'000'000, 11), small = testutil::pattern(70'000, 12);
  for (std::string name : {"gzip", "zstd"}) {
    CAPTURE(name);
    auto lo = make_codec(name, 1), mid = make_codec(name, -1), hi = make_codec(name, 9);
    auto fresh = [&](const Codec& c, const std::string& in) {
      std::string out;
      std::thread([&] { c.compress(in, out); }).join();
      return out;
    };
    const std::string want_mid_big = fresh(*mid, big), want_hi_small = fresh(*hi, small), want_lo_big = fresh(*lo, big);
    for (int round = 0; round < 2; ++round) {
      std::string a, b, c, d;
      mid->compress(big, a);
      hi->compress(small, b);
      lo->compress(big, c);
      mid->compress(big, d);
      CHECK(a == want_mid_big);
      CHECK(b == want_hi_small);
      CHECK(c == want_lo_big);
      CHECK(d == want_mid_big);
      std::string damaged = a;
      damaged[damaged.size() / 2] ^= 0x5a;
      CHECK_THROWS_AS(mid->decompress(damaged, big.size()), Fatal);
      CHECK_THROWS_AS(mid->decompress(std::string_view(a).substr(0, a.size() / 3), big.size()), Fatal);
      CHECK(mid->decompress(a, big.size()) == big);
      CHECK(hi->decompress(b, small.size()) == small);
    }
  }
}
