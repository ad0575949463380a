// memory destination, for tests: the archive is a string in a process-wide store, keyed by
// name, so a test can run the pipeline with LocalComm and inspect the bytes.
#include <map>
#include <mutex>

#include "dest/registry.h"
#include "pbackup/error.h"

namespace pbackup {

namespace {
std::mutex g_mu;
std::map<std::string, std::string>& store() {
  static std::map<std::string, std::string> s;
  return s;
}

class MemoryDestination final : public Destination {
 public:
  explicit MemoryDestination(const DestinationSpec& s) : spec_(s) {}
  std::string archive_name() const override { return spec_.name; }
  std::string prepare() override {
    std::lock_guard<std::mutex> l(g_mu);
    store()[temp()].clear();
    return "";
  }
  void open(const std::string&) override {}
  void write_at(uint64_t offset, std::string_view bytes) override {
    std::lock_guard<std::mutex> l(g_mu);
    std::string& s = store()[temp()];
    if (s.size() < offset + bytes.size()) s.resize(offset + bytes.size());
    s.replace(offset, bytes.size(), bytes);
  }
  void close() override {}
  size_t fragment_count(uint64_t) const override { return 1; }
  std::string hash_fragment(size_t, uint64_t) override { return ""; }
  std::vector<Fragment> fragments(uint64_t total, const std::vector<std::string>&) override {
    return {Fragment{spec_.name, total, ""}};
  }
  void commit(uint64_t total, const std::vector<SideFile>& side_files) override {
    std::lock_guard<std::mutex> l(g_mu);
    if (store().count(spec_.name)) throw Fatal("archive " + quote(spec_.name) + " already exists");
    for (auto& f : side_files)
      if (store().count(f.name)) throw Fatal("archive file " + quote(f.name) + " already exists");
    std::string data = std::move(store()[temp()]);
    store().erase(temp());
    data.resize(total);
    store()[spec_.name] = std::move(data);
    for (auto& f : side_files) store()[f.name] = f.bytes;
  }
  void abort() noexcept override {
    std::lock_guard<std::mutex> l(g_mu);
    store().erase(temp());
  }
  std::vector<std::string> temp_paths() const override { return {}; }

 private:
  std::string temp() const { return "tmp:" + spec_.name; }
  DestinationSpec spec_;
};
}  // namespace

std::unique_ptr<Destination> make_memory_destination(const DestinationSpec& s) {
  return std::make_unique<MemoryDestination>(s);
}

std::string memory_object(const std::string& name) {
  std::lock_guard<std::mutex> l(g_mu);
  auto it = store().find(name);
  if (it == store().end()) throw Fatal("memory destination: no object " + quote(name));
  return it->second;
}

}  // namespace pbackup
