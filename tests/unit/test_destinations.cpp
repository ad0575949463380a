// The destination conformance suite on the destinations that need no server.
#include <doctest/doctest.h>
#include <sys/stat.h>

#include <fstream>
#include <sstream>

#include "../conformance/destination_conformance.h"
#include "dest/registry.h"
#include "helpers.h"

namespace {
conformance::Target local(const std::string& type, const std::string& dir, uint64_t split) {
  conformance::Target t;
  t.spec.type = type;
  t.spec.output_dir = dir;
  t.spec.split_bytes = split;
  t.read = [dir](const std::string& name) {
    std::ifstream in(dir + "/" + name, std::ios::binary);
    REQUIRE(in);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  };
  t.exists = [dir](const std::string& name) {
    struct stat st {};
    return ::stat((dir + "/" + name).c_str(), &st) == 0;
  };
  return t;
}
}  // namespace

TEST_CASE("destination conformance: hdd") {
  testutil::TempDir dir;
  conformance::run(local("hdd", dir.path.string(), 0), "hdd");
}

TEST_CASE("destination conformance: usb_split") {
  testutil::TempDir dir;
  conformance::run(local("usb_split", dir.path.string(), 1u << 20), "split");
}

TEST_CASE("destination conformance: memory") {
  conformance::Target t;
  t.spec.type = "memory";
  t.read = [](const std::string& name) { return pbackup::memory_object(name); };
  t.exists = [](const std::string& name) {
    try {
      pbackup::memory_object(name);
      return true;
    } catch (...) {
      return false;
    }
  };
  conformance::run(t, "memory");
}
