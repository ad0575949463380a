// The local file system as a read-side Store (see pbackup/store.h): objects are files by path.
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <fstream>
#include <sstream>

#include "pbackup/error.h"
#include "pbackup/store.h"
#include "util/fd.h"

namespace pbackup {
namespace {

class LocalReader final : public StoreReader {
 public:
  explicit LocalReader(const std::string& path) : path_(path), fd_(open_or_throw(path, O_RDONLY)), buf_(1 << 20) {}
  std::string_view read(uint64_t offset, uint64_t max) override {
    if (max == 0) return {};
    size_t want = static_cast<size_t>(std::min<uint64_t>(buf_.size(), max));
    ssize_t n;
    do n = ::pread(fd_.get(), buf_.data(), want, static_cast<off_t>(offset));
    while (n < 0 && errno == EINTR);
    if (n < 0) throw_sys("cannot read", path_, errno);
    if (n == 0) throw Fatal(quote(path_) + " ended early");
    return {buf_.data(), static_cast<size_t>(n)};
  }

 private:
  std::string path_;
  Fd fd_;
  std::vector<char> buf_;
};

class LocalStore final : public Store {
 public:
  std::optional<uint64_t> size(const std::string& name) override {
    struct stat st {};
    if (::stat(name.c_str(), &st) != 0 || S_ISDIR(st.st_mode)) return std::nullopt;
    return static_cast<uint64_t>(st.st_size);
  }
  std::string read_range(const std::string& name, uint64_t offset, uint64_t n) override {
    if (n == 0) return {};
    std::string out(n, '\0');
    Fd fd = open_or_throw(name, O_RDONLY);
    uint64_t got = pread_full(fd.get(), out.data(), n, offset, name);
    if (got != n) throw Fatal(quote(name) + " is shorter than expected");
    return out;
  }
  std::string read_all(const std::string& name) override {
    std::ifstream in(name, std::ios::binary);
    if (!in) throw Fatal(sys_message("cannot read", name, errno));
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }
  std::vector<std::string> list(const std::string& dir) override {
    std::vector<std::string> names;
    DIR* d = ::opendir(dir.c_str());
    if (!d) throw Fatal(sys_message("cannot open directory", dir, errno));
    while (struct dirent* de = ::readdir(d))
      if (de->d_name[0] != '.') names.push_back(de->d_name);
    ::closedir(d);
    std::sort(names.begin(), names.end());
    return names;
  }
  std::unique_ptr<StoreReader> open(const std::string& name) override { return std::make_unique<LocalReader>(name); }
  std::string join(const std::string& dir, const std::string& leaf) const override { return dir + "/" + leaf; }
  std::string display(const std::string& name) const override { return name; }
  std::string bucket() const override { return ""; }
};

}  // namespace

std::shared_ptr<Store> make_local_store() { return std::make_shared<LocalStore>(); }

}  // namespace pbackup
