// A Destination for unit tests that only care about prepare/open/write_at: one fragment, no
// hashes, commit and abort do nothing, no temporary files. Tests override what they observe.
#pragma once
#include <string>
#include <vector>

#include "pbackup/destination.h"

namespace pbackup::testing {

class TestDestination : public Destination {
 public:
  void close() override {}
  size_t fragment_count(uint64_t) const override { return 1; }
  std::string hash_fragment(size_t, uint64_t) override { return ""; }
  std::vector<Fragment> fragments(uint64_t, const std::vector<std::string>&) override { return {}; }
  void commit(uint64_t, const std::vector<SideFile>&) override {}
  void abort() noexcept override {}
  std::vector<std::string> temp_paths() const override { return {}; }
};

}  // namespace pbackup::testing
