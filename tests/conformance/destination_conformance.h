// One conformance suite that every destination runs (restic's idea): the same writes, arriving
// in a scrambled order, cut at odd places, with a placeholder patched at the end (as zip's
// headers are), settled step by step as the pipeline does, must give exactly the archive bytes,
// fragments of the right sizes and checksums, a readable side file, and nothing visible after
// an abort. The unit tests run it on hdd, usb_split and memory; the S3 tests on cloud (behind the
// core's part exchange, as the pipeline uses it).
#pragma once
#include <doctest/doctest.h>

#include <algorithm>
#include <functional>
#include <random>
#include <string>

#include "core/part_exchange.h"
#include "pbackup/comm.h"
#include "pbackup/destination.h"
#include "pbackup/sha256.h"

namespace conformance {

struct Target {
  pbackup::DestinationSpec spec;                              // name is set by the suite
  std::function<std::string(const std::string&)> read;        // a committed file/object's bytes
  std::function<bool(const std::string&)> exists;             // is a file/object visible?
};

inline std::string archive_bytes(size_t n) {
  std::string s(n, '\0');
  std::mt19937_64 r(42);
  for (auto& c : s) c = static_cast<char>(r() & 0xff);
  return s;
}

inline void run(Target t, const std::string& tag) {
  using namespace pbackup;
  const std::string data = archive_bytes((12u << 20) + 12345);
  const uint64_t patch_at = (5u << 20) + 77, patch_len = 300;  // crosses no boundary of interest
  LocalComm comm;

  SUBCASE("writes in any order, settled step by step, commit gives the archive") {
    t.spec.name = "conf-" + tag + ".tar.gz";
    auto d = pbackup::with_part_exchange(make_destination(t.spec));  // as the pipeline makes it
    d->open(d->prepare());
    // chunks of odd sizes, written in a shuffled order, the patch region as zeros first
    std::vector<std::pair<uint64_t, uint64_t>> chunks;
    for (uint64_t off = 0; off < data.size();) {
      uint64_t n = std::min<uint64_t>(data.size() - off, 100000 + (off * 7919) % 900000);
      chunks.emplace_back(off, n);
      off += n;
    }
    std::mt19937 rng(7);
    std::shuffle(chunks.begin(), chunks.end(), rng);
    std::vector<bool> done(chunks.size());
    auto settled_prefix = [&] {
      std::vector<std::pair<uint64_t, uint64_t>> w;
      for (size_t i = 0; i < chunks.size(); ++i)
        if (done[i]) w.push_back(chunks[i]);
      std::sort(w.begin(), w.end());
      uint64_t s = 0;
      for (auto& [o, n] : w)
        if (o == s) s += n;
      return std::min(s, patch_at);  // the placeholder holds everything after it back
    };
    for (size_t i = 0; i < chunks.size(); ++i) {
      auto [off, n] = chunks[i];
      std::string bytes = data.substr(off, n);
      for (uint64_t p = std::max(off, patch_at); p < std::min(off + n, patch_at + patch_len); ++p) bytes[p - off] = 0;
      d->write_at(off, bytes);
      done[i] = true;
      if (i % 3 == 2) d->settle(comm, settled_prefix(), false);
    }
    d->write_at(patch_at, data.substr(patch_at, patch_len));
    d->settle(comm, data.size(), true);
    d->close();
    std::vector<std::string> hashes;
    for (size_t k = 0; k < d->fragment_count(data.size()); ++k) hashes.push_back(d->hash_fragment(k, data.size()));
    std::vector<Fragment> frags = d->fragments(data.size(), hashes);
    REQUIRE(!frags.empty());
    for (auto& f : frags) CHECK_FALSE(t.exists(f.name));  // nothing final before commit
    d->commit(data.size(), {{t.spec.name + ".manifest.json", "{\"side\": true}\n"}});
    std::string joined;
    for (auto& f : frags) {
      std::string bytes = t.read(f.name);
      CHECK(bytes.size() == f.size);
      if (!f.sha256.empty()) CHECK(sha256_hex(bytes) == f.sha256);
      joined += bytes;
    }
    CHECK(joined.size() == data.size());
    CHECK(joined == data);
    if (t.spec.split_bytes) {
      for (size_t k = 0; k + 1 < frags.size(); ++k) CHECK(frags[k].size == t.spec.split_bytes);
      CHECK(frags.front().name == t.spec.name + ".part0001");
    }
    CHECK(t.read(t.spec.name + ".manifest.json") == "{\"side\": true}\n");
  }

  SUBCASE("a side file that cannot be written (the manifest): commit fails, nothing stays visible") {
    if (t.spec.type == "memory") return;  // takes any name
    t.spec.name = "conf-side-" + tag + ".tar.gz";
    auto d = pbackup::with_part_exchange(make_destination(t.spec));  // as the pipeline makes it
    d->open(d->prepare());
    const uint64_t n = 6u << 20;
    d->write_at(0, data.substr(0, n));
    d->settle(comm, n, true);
    d->close();
    std::vector<std::string> hashes;
    for (size_t k = 0; k < d->fragment_count(n); ++k) hashes.push_back(d->hash_fragment(k, n));
    std::vector<Fragment> frags = d->fragments(n, hashes);
    // too long a name for a file system (NAME_MAX) and for S3 (1024-byte keys)
    const std::string bad = t.spec.name + std::string(1100, 'm') + ".manifest.json";
    CHECK_THROWS(d->commit(n, {{t.spec.name + ".sha256", "sums"}, {bad, "{}"}}));
    d->abort();
    for (auto& f : frags) CHECK_FALSE(t.exists(f.name));
    CHECK_FALSE(t.exists(t.spec.name + ".sha256"));
  }

  SUBCASE("abort leaves nothing that looks like an archive") {
    t.spec.name = "conf-abort-" + tag + ".tar.gz";
    auto d = pbackup::with_part_exchange(make_destination(t.spec));  // as the pipeline makes it
    d->open(d->prepare());
    d->write_at(0, data.substr(0, 7u << 20));
    d->settle(comm, 7u << 20, false);
    d->abort();
    CHECK_FALSE(t.exists(t.spec.name));
    CHECK_FALSE(t.exists(t.spec.name + ".part0001"));
    CHECK_FALSE(t.exists(t.spec.name + ".manifest.json"));
  }
}

}  // namespace conformance
