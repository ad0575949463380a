// The destination conformance suite on the destinations that need no server.
#include <doctest/doctest.h>
#include <sys/stat.h>

#include <fstream>
#include <sstream>

#include "../conformance/destination_conformance.h"
#include "dest/registry.h"
#include "pbackup/error.h"
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

namespace {
// A local destination (hdd, or usb_split in `split`-byte fragments) named `name` in `dir`.
pbackup::DestinationSpec local_spec(const std::string& type, const testutil::TempDir& dir, const std::string& name, uint64_t split) {
  pbackup::DestinationSpec spec;
  spec.type = type;
  spec.output_dir = dir.path.string();
  spec.name = name;
  spec.split_bytes = split;
  return spec;
}

// Two runs with the same name in one folder at once, as two backups started together: each
// writes its own bytes under its own temporary names; the first commit wins, the second is
// refused ("already exists") without touching the winner's files, and its abort leaves
// nothing of its own behind.
void same_name_race(const std::string& type, uint64_t split) {
  using namespace pbackup;
  testutil::TempDir dir;
  const DestinationSpec spec = local_spec(type, dir, "race.tar.gz", split);
  const std::string a(3000, 'a'), b(2500, 'b');
  auto da = make_destination(spec), db = make_destination(spec);
  da->open(da->prepare());
  db->open(db->prepare());  // before: the split destination deleted a's temporary files here
  da->write_at(0, a);
  db->write_at(0, b);
  da->close();
  db->close();
  auto hashes = [](Destination& d, uint64_t total) {
    std::vector<std::string> h;
    for (size_t k = 0; k < d.fragment_count(total); ++k) h.push_back(d.hash_fragment(k, total));
    return h;
  };
  auto fa = da->fragments(a.size(), hashes(*da, a.size()));
  auto fb = db->fragments(b.size(), hashes(*db, b.size()));
  da->commit(a.size(), {{spec.name + ".manifest.json", "A"}});
  CHECK_THROWS_WITH_AS(db->commit(b.size(), {{spec.name + ".manifest.json", "B"}}), doctest::Contains("already exists"),
                       Fatal);
  db->abort();
  std::string joined;
  for (auto& f : fa) {
    std::ifstream in(dir.path / f.name, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    joined += ss.str();
  }
  CHECK(joined == a);
  std::ifstream man(dir.path / (spec.name + ".manifest.json"));
  std::string m;
  std::getline(man, m);
  CHECK(m == "A");
  size_t files = 0;
  for (auto& e : std::filesystem::directory_iterator(dir.path)) {
    ++files;
    CHECK_MESSAGE(e.path().filename().string()[0] != '.', e.path().filename().string());  // no temporary file of either run is left
  }
  CHECK(files == fa.size() + 1);
}
}  // namespace

TEST_CASE("two runs with one name: hdd never replaces the winner") { same_name_race("hdd", 0); }
TEST_CASE("two runs with one name: usb_split never replaces or deletes the winner") { same_name_race("usb_split", 1000); }

TEST_CASE("commit fails on the manifest: no final name is left") {
  using namespace pbackup;
  for (std::string type : {"hdd", "usb_split"}) {
    CAPTURE(type);
    testutil::TempDir dir;
    const DestinationSpec spec = local_spec(type, dir, "m.tar.gz", type == "hdd" ? 0 : 1000);
    // the manifest's final name is taken by a directory: the last rename fails
    std::filesystem::create_directory(dir.path / "m.tar.gz.manifest.json");
    auto d = make_destination(spec);
    d->open(d->prepare());
    d->write_at(0, std::string(2500, 'x'));
    d->close();
    std::vector<std::string> h;
    for (size_t k = 0; k < d->fragment_count(2500); ++k) h.push_back(d->hash_fragment(k, 2500));
    d->fragments(2500, h);
    CHECK_THROWS_AS(d->commit(2500, {{"m.tar.gz.sha256", "sums"}, {"m.tar.gz.manifest.json", "{}"}}), Fatal);
    d->abort();
    std::vector<std::string> left;
    for (auto& e : std::filesystem::directory_iterator(dir.path)) left.push_back(e.path().filename().string());
    CHECK(left == std::vector<std::string>{"m.tar.gz.manifest.json"});
  }
}

// A temporary file swapped for a symlink between prepare() and open() (someone with write
// access to the output directory): open() refuses it and never writes through the link.
TEST_CASE("a temporary file replaced by a symlink is never written through") {
  using namespace pbackup;
  for (std::string type : {"hdd", "usb_split"}) {
    CAPTURE(type);
    testutil::TempDir dir;
    const DestinationSpec spec = local_spec(type, dir, "l.tar.gz", type == "hdd" ? 0 : 1000);
    const auto victim = dir.path / "victim";
    { std::ofstream(victim) << "untouched"; }
    auto d = make_destination(spec);
    std::string prepared = d->prepare();
    std::vector<std::string> temps = d->temp_paths();
    bool swapped = false;
    for (const std::string& t : temps)
      if (std::filesystem::is_regular_file(t)) {
        std::filesystem::remove(t);
        std::filesystem::create_symlink(victim, t);
        swapped = true;
      }
    REQUIRE(swapped);
    bool refused = false;
    try {
      d->open(prepared);
      d->write_at(0, std::string(2500, 'x'));
      d->close();
    } catch (const Fatal&) {
      refused = true;
    }
    CHECK(refused);
    d->abort();
    std::ifstream in(victim);
    std::string got((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    CHECK(got == "untouched");
  }
}
