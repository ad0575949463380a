// usb_split destination: the archive as fragments BASE.<ext>.part0001, .part0002, ... of
// exactly split_bytes each (the last one shorter), for USB disks and file systems with a file
// size limit. Every rank writes its blocks straight into whichever fragments their offsets
// fall in (a block straddling a boundary goes to both), under hidden temporary names
// (".BASE.<ext>.partK.TAG.tmp-pbackup", TAG random, chosen by rank 0, which creates the first
// one with O_EXCL); nothing is assembled on one rank or staged. `cat BASE.<ext>.part*` is the
// single-file archive. Commit as the hdd destination: everything synced, then renamed without
// replacing anything, manifest last.
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <map>

#include "dest/registry.h"
#include "pbackup/error.h"
#include "pbackup/sha256.h"
#include "util/file_util.h"

namespace pbackup {
namespace {

class SplitDestination final : public Destination {
 public:
  explicit SplitDestination(const DestinationSpec& s) : spec_(s) {
    if (s.split_bytes == 0) throw Fatal("--dest-type usb_split needs --split-chunk-mb N (N >= 1)");
  }
  std::string archive_name() const override { return spec_.name; }

  std::string prepare() override {
    check_output_dir(spec_.output_dir);
    if (!spec_.resume_tag.empty()) {  // --resume: an interrupted run's fragments, their first bytes kept
      tag_ = spec_.resume_tag;
      mine_ = true;  // abort() removes them when the run starts over
      const uint64_t need = spec_.resume_bytes;
      for (uint64_t k = 0; k == 0 || k * spec_.split_bytes < need; ++k)
        adopt_temp(temp_path(k), std::min<uint64_t>(spec_.split_bytes, need - std::min(need, k * spec_.split_bytes)));
      return tag_;
    }
    tag_ = random_tag();
    std::string first = temp_path(0);
    Fd fd = open_or_throw(first, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW);
    mine_ = true;  // from here on abort() removes this run's temporary files
    return tag_;
  }
  void open(const std::string& prepared) override { tag_ = prepared; }
  void write_at(uint64_t offset, std::string_view bytes) override {
    while (!bytes.empty()) {
      uint64_t k = offset / spec_.split_bytes, within = offset % spec_.split_bytes;
      uint64_t n = std::min<uint64_t>(bytes.size(), spec_.split_bytes - within);
      pwrite_all(fd_for(k), bytes.substr(0, n), within, temp_path(k));
      bytes.remove_prefix(n);
      offset += n;
    }
  }
  void settle(Comm&, uint64_t, bool) override {
    if (!spec_.sync_rounds) return;  // --resume: durable before the round is reported (core/resume.h)
    for (auto& [k, fd] : fds_)
      if (::fdatasync(fd.get()) != 0) throw_sys("cannot sync", temp_path(k), errno);
  }
  void close() override {
    for (auto& [k, fd] : fds_) {
      fsync_or_throw(fd.get(), temp_path(k));
      if (::close(fd.release()) != 0) throw_sys("cannot close", temp_path(k), errno);
    }
    fds_.clear();
  }
  size_t fragment_count(uint64_t total) const override {
    return std::max<uint64_t>(1, (total + spec_.split_bytes - 1) / spec_.split_bytes);
  }
  std::string hash_fragment(size_t k, uint64_t total) override {
    return hash_file(temp_path(k), fragment_size(k, total));
  }
  std::vector<Fragment> fragments(uint64_t total, const std::vector<std::string>& hashes) override {
    size_t n = fragment_count(total);
    std::vector<Fragment> out;
    for (size_t k = 0; k < n; ++k)
      out.push_back({fragment_name(spec_.name, k, n), fragment_size(k, total), k < hashes.size() ? hashes[k] : ""});
    return out;
  }
  void commit(uint64_t total, const std::vector<SideFile>& side_files) override {
    size_t n = fragment_count(total);
    std::vector<std::pair<std::string, std::string>> moves;
    for (size_t k = 0; k < n; ++k) {
      std::string tmp = temp_path(k);
      Fd fd = open_or_throw(tmp, O_RDWR | O_CREAT | O_NOFOLLOW);  // every fragment has bytes, but be safe
      if (::ftruncate(fd.get(), static_cast<off_t>(fragment_size(k, total))) != 0) throw_sys("cannot truncate", tmp, errno);
      fsync_or_throw(fd.get(), tmp);
      moves.emplace_back(tmp, spec_.output_dir + "/" + fragment_name(spec_.name, k, n));
    }
    for (const auto& f : side_files) {
      std::string t = side_temp(f.name);
      write_new_file(t, f.bytes);
      side_temps_.push_back(t);
      moves.emplace_back(t, spec_.output_dir + "/" + f.name);
    }
    fsync_dir(spec_.output_dir);
    commit_renames(spec_.output_dir, moves);
    side_temps_.clear();
  }
  void abort() noexcept override {
    fds_.clear();
    if (mine_) remove_temps();
    for (auto& t : side_temps_) ::unlink(t.c_str());
    side_temps_.clear();
  }
  std::vector<std::string> temp_paths() const override {
    // The signal path removes the first fragments by name; abort() removes all of them.
    std::vector<std::string> v;
    if (tag_.empty()) return v;
    for (size_t k = 0; k < 8; ++k) v.push_back(temp_path(k));
    return v;
  }

 private:
  uint64_t fragment_size(size_t k, uint64_t total) const {
    uint64_t start = k * spec_.split_bytes;
    return std::min<uint64_t>(spec_.split_bytes, total > start ? total - start : 0);
  }
  std::string temp_prefix() const { return "." + spec_.name + ".part"; }
  std::string temp_suffix() const { return "." + tag_ + ".tmp-pbackup"; }
  std::string temp_path(uint64_t k) const {
    return spec_.output_dir + "/" + temp_prefix() + std::to_string(k + 1) + temp_suffix();
  }
  std::string side_temp(const std::string& name) const { return spec_.output_dir + "/." + name + temp_suffix(); }
  int fd_for(uint64_t k) {
    auto it = fds_.find(k);
    if (it != fds_.end()) return it->second.get();
    Fd fd = open_or_throw(temp_path(k), O_WRONLY | O_CREAT | O_NOFOLLOW);
    int raw = fd.get();
    fds_.emplace(k, std::move(fd));
    return raw;
  }
  // This run's fragments (its tag), whichever rank created them; never another run's.
  void remove_temps() noexcept {
    DIR* d = ::opendir(spec_.output_dir.c_str());
    if (!d) return;
    const std::string prefix = temp_prefix(), suffix = temp_suffix();
    while (struct dirent* de = ::readdir(d)) {
      std::string n = de->d_name;
      if (n.size() > prefix.size() + suffix.size() && n.rfind(prefix, 0) == 0 &&
          n.compare(n.size() - suffix.size(), suffix.size(), suffix) == 0)
        ::unlink((spec_.output_dir + "/" + n).c_str());
    }
    ::closedir(d);
  }

  DestinationSpec spec_;
  std::string tag_;    // this run's temporary-name tag (from prepare)
  bool mine_ = false;  // rank 0 created this run's first temporary file
  std::map<uint64_t, Fd> fds_;
  std::vector<std::string> side_temps_;
};

}  // namespace

std::string fragment_name(const std::string& archive, size_t k, size_t count) {
  int width = 4;
  for (size_t c = count; c >= 10000; c /= 10) ++width;
  char b[32];
  std::snprintf(b, sizeof b, ".part%0*zu", width, k + 1);
  return archive + b;
}

std::unique_ptr<Destination> make_split_destination(const DestinationSpec& s) {
  return std::make_unique<SplitDestination>(s);
}

}  // namespace pbackup
