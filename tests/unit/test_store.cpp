// The read-side Store conformance suite on the local file system.
#include <doctest/doctest.h>

#include "../conformance/store_conformance.h"
#include "helpers.h"

TEST_CASE("store conformance: local") {
  testutil::TempDir dir;
  conformance::StoreTarget t;
  t.store = pbackup::make_local_store();
  t.dir = dir.path.string();
  t.put = [](const std::string& name, const std::string& bytes) { testutil::write_file(name, bytes); };
  conformance::run_store(t);
}

TEST_CASE("store: make_store picks the kind by bucket") {
  CHECK(pbackup::make_store("", {})->bucket().empty());
  CHECK(pbackup::make_store("b", {})->bucket() == "b");  // no client until the first request
}
