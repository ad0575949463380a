// The read-side conformance suite every Store runs (pbackup/store.h; the write side is
// destination_conformance.h): sizes of present, empty and absent objects, ranged reads, whole
// reads, reading in order through open(), listing a directory, and errors that name the object.
// The unit tests run it on the local file system; the S3 tests on a bucket of the test server.
#pragma once
#include <doctest/doctest.h>

#include <functional>
#include <memory>
#include <random>
#include <string>

#include "pbackup/error.h"
#include "pbackup/store.h"

namespace conformance {

struct StoreTarget {
  std::shared_ptr<pbackup::Store> store;
  std::string dir;  // an empty directory (local) or prefix without the trailing '/' (S3)
  // Creates object `name` (a full name: store->join(dir, leaf)) with `bytes`.
  std::function<void(const std::string& name, const std::string& bytes)> put;
};

inline std::string store_bytes(size_t n, unsigned seed) {
  std::string s(n, '\0');
  std::mt19937_64 r(seed);
  for (auto& c : s) c = static_cast<char>(r() & 0xff);
  return s;
}

// The message of the Fatal `f` throws ("" if it throws none).
template <class F>
std::string fatal_of(F f) {
  try {
    f();
  } catch (const pbackup::Fatal& e) {
    return e.what();
  }
  return "";
}

inline void run_store(StoreTarget t) {
  pbackup::Store& st = *t.store;
  // 9 MiB and a bit: more than one read in order on every store (1 MiB local, 8 MiB S3)
  const std::string big = store_bytes((9u << 20) + 4321, 1), small = "hello, store";
  const std::string a = st.join(t.dir, "a.tar.gz.part0001"), b = st.join(t.dir, "a.tar.gz.part0002");
  const std::string empty = st.join(t.dir, "empty"), hidden = st.join(t.dir, ".hidden");
  const std::string missing = st.join(t.dir, "missing");
  t.put(a, big);
  t.put(b, small);
  t.put(empty, "");
  t.put(hidden, "x");

  SUBCASE("size: present, empty, absent") {
    CHECK(st.size(a) == big.size());
    CHECK(st.size(b) == small.size());
    CHECK(st.size(empty) == 0u);
    CHECK_FALSE(st.size(missing).has_value());
  }
  SUBCASE("read_range: any range, nothing past the end") {
    for (auto [off, n] : std::vector<std::pair<uint64_t, uint64_t>>{
             {0, 1}, {0, big.size()}, {12345, 1 << 20}, {big.size() - 7, 7}, {(8u << 20) - 3, 10}})
      CHECK(st.read_range(a, off, n) == big.substr(off, n));
    CHECK(st.read_range(a, 5, 0).empty());
    std::string m = fatal_of([&] { st.read_range(a, big.size() - 2, 10); });
    CHECK(m.find(st.display(a)) != std::string::npos);
    m = fatal_of([&] { st.read_range(missing, 0, 1); });
    CHECK(m.find(st.display(missing)) != std::string::npos);
  }
  SUBCASE("read_all") {
    CHECK(st.read_all(b) == small);
    CHECK(st.read_all(empty).empty());
    CHECK(fatal_of([&] { st.read_all(missing); }) != "");
  }
  SUBCASE("open: read in order, at least one byte per read, never past max") {
    auto r = st.open(a);
    std::string got;
    int reads = 0;
    while (got.size() < big.size()) {
      uint64_t max = big.size() - got.size();
      std::string_view piece = r->read(got.size(), max);
      REQUIRE(!piece.empty());
      REQUIRE(piece.size() <= max);
      got += piece;
      ++reads;
    }
    CHECK(got == big);
    CHECK(reads >= 2);
    CHECK(r->read(big.size(), 0).empty());
    CHECK(r->read(100, 5) == big.substr(100, 5));  // any offset, not only the next one
    CHECK(fatal_of([&] { r->read(big.size(), 1); }) != "");
    std::string m = fatal_of([&] { st.open(missing)->read(0, 1); });
    CHECK(m.find(st.display(missing)) != std::string::npos);
  }
  SUBCASE("list: sorted names in the directory, hidden ones left out") {
    CHECK(st.list(t.dir) == std::vector<std::string>{"a.tar.gz.part0001", "a.tar.gz.part0002", "empty"});
  }
  SUBCASE("display names the object") {
    CHECK(st.display(a).find("a.tar.gz.part0001") != std::string::npos);
    if (st.bucket().empty()) CHECK(st.display(a) == a);
    else CHECK(st.display(a) == "s3://" + st.bucket() + "/" + a);
  }
}

}  // namespace conformance
