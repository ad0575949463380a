// usb_split destination: the archive as fragments BASE.<ext>.part0001, .part0002, ... of
// exactly split_bytes each (the last one shorter), for USB disks and file systems with a file
// size limit. Every rank writes its blocks straight into whichever fragments their offsets
// fall in (a block straddling a boundary goes to both), under hidden temporary names; nothing
// is assembled on one rank or staged. `cat BASE.<ext>.part*` is the single-file archive.
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <map>

#include "dest/file_util.h"
#include "dest/registry.h"
#include "pbackup/error.h"
#include "pbackup/sha256.h"

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
    remove_temps();  // leftovers of an earlier killed run with the same name
    return "";
  }
  void open(const std::string&) override {}
  void write_at(uint64_t offset, std::string_view bytes) override {
    while (!bytes.empty()) {
      uint64_t k = offset / spec_.split_bytes, within = offset % spec_.split_bytes;
      uint64_t n = std::min<uint64_t>(bytes.size(), spec_.split_bytes - within);
      pwrite_all(fd_for(k), bytes.substr(0, n), within, temp_path(k));
      bytes.remove_prefix(n);
      offset += n;
    }
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
  std::vector<Fragment> commit(uint64_t total, const std::vector<std::string>& hashes) override {
    size_t n = fragment_count(total);
    std::vector<Fragment> out;
    for (size_t k = 0; k < n; ++k) {
      std::string tmp = temp_path(k);
      Fd fd = open_or_throw(tmp, O_RDWR | O_CREAT);  // an all-zero-free archive has no empty part, but be safe
      if (::ftruncate(fd.get(), static_cast<off_t>(fragment_size(k, total))) != 0) throw_sys("cannot truncate", tmp, errno);
      fsync_or_throw(fd.get(), tmp);
      out.push_back({fragment_name(spec_.name, k, n), fragment_size(k, total), k < hashes.size() ? hashes[k] : ""});
    }
    for (size_t k = 0; k < n; ++k) {
      std::string final_path = spec_.output_dir + "/" + out[k].name;
      if (::rename(temp_path(k).c_str(), final_path.c_str()) != 0) throw_sys("cannot rename into", final_path, errno);
    }
    fsync_dir(spec_.output_dir);
    return out;
  }
  void put_side_file(const std::string& name, std::string_view bytes) override {
    write_file_atomic(spec_.output_dir + "/" + name, bytes);
  }
  void abort() noexcept override {
    fds_.clear();
    remove_temps();
  }
  std::vector<std::string> temp_paths() const override {
    // The signal path removes the first fragments by name; abort() removes all of them.
    std::vector<std::string> v;
    for (size_t k = 0; k < 8; ++k) v.push_back(temp_path(k));
    return v;
  }

 private:
  uint64_t fragment_size(size_t k, uint64_t total) const {
    uint64_t start = k * spec_.split_bytes;
    return std::min<uint64_t>(spec_.split_bytes, total > start ? total - start : 0);
  }
  std::string temp_prefix() const { return "." + spec_.name + ".part"; }
  std::string temp_path(uint64_t k) const {
    return spec_.output_dir + "/" + temp_prefix() + std::to_string(k + 1) + ".tmp-pbackup";
  }
  int fd_for(uint64_t k) {
    auto it = fds_.find(k);
    if (it != fds_.end()) return it->second.get();
    Fd fd = open_or_throw(temp_path(k), O_WRONLY | O_CREAT);
    int raw = fd.get();
    fds_.emplace(k, std::move(fd));
    return raw;
  }
  void remove_temps() noexcept {
    DIR* d = ::opendir(spec_.output_dir.c_str());
    if (!d) return;
    std::string prefix = temp_prefix();
    while (struct dirent* de = ::readdir(d)) {
      std::string n = de->d_name;
      if (n.rfind(prefix, 0) == 0 && n.size() > 12 && n.compare(n.size() - 12, 12, ".tmp-pbackup") == 0)
        ::unlink((spec_.output_dir + "/" + n).c_str());
    }
    ::closedir(d);
  }

  DestinationSpec spec_;
  std::map<uint64_t, Fd> fds_;
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
