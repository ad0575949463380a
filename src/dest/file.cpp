// hdd destination: one archive file, written at offsets by every rank into a hidden temporary
// file in the output directory (".NAME.TAG.tmp-pbackup", TAG random and chosen by rank 0, which
// creates the file with O_EXCL, so two runs with the same name never share a file). At commit
// the archive and its side files are all written and synced under temporary names first, then
// renamed without replacing anything, manifest last (DESIGN §7).
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <future>

#include "dest/registry.h"
#include "pbackup/comm.h"
#include "pbackup/error.h"
#include "pbackup/sha256.h"
#include "util/file_util.h"

namespace pbackup {
namespace {

class FileDestination final : public Destination {
 public:
  explicit FileDestination(const DestinationSpec& s) : spec_(s), final_(s.output_dir + "/" + s.name) {}
  std::string archive_name() const override { return spec_.name; }

  std::string prepare() override {
    check_output_dir(spec_.output_dir);
    if (!spec_.resume_tag.empty()) {  // --resume: an interrupted run's file, its first bytes kept
      tag_ = spec_.resume_tag;
      temp_ = temp_path(spec_.name);  // abort() removes it when the run starts over
      adopt_temp(temp_, spec_.resume_bytes);
      return tag_;
    }
    tag_ = random_tag();
    std::string t = temp_path(spec_.name);
    Fd fd = open_or_throw(t, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW);
    temp_ = t;  // ours from here on (abort() removes it)
    return tag_;
  }
  void open(const std::string& prepared) override {
    tag_ = prepared;
    temp_ = temp_path(spec_.name);
    fd_ = open_or_throw(temp_, O_WRONLY | O_NOFOLLOW);
  }
  void write_at(uint64_t offset, std::string_view bytes) override {
    pwrite_all(fd_.get(), bytes, offset, temp_);
  }
  void close() override {
    if (!fd_) return;
    fsync_or_throw(fd_.get(), temp_);
    if (::close(fd_.release()) != 0) throw_sys("cannot close", temp_, errno);
  }
  size_t fragment_count(uint64_t) const override { return 1; }
  // The SHA-256 for the .sha256 file that sha256sum -c reads: rank 0 reads back what is final
  // on a thread of its own (from the page cache, ~1.5 GB/s with SHA-NI), so at the end only the
  // last rounds are left to hash (large set, zstd: 0.06 s less at the end). When settle() is
  // called, the other ranks may still be writing the bytes below `settled` (they are certain
  // to be written only by the next call), so each call hashes up to the previous one's value.
  void settle(Comm& comm, uint64_t settled, bool last) override {
    // --resume: what this rank wrote is durable before it reports the round (core/resume.h)
    if (spec_.sync_rounds && fd_ && ::fdatasync(fd_.get()) != 0) throw_sys("cannot sync", temp_, errno);
    if (comm.rank() != 0 || last) return;
    const uint64_t safe = settled_before_;
    settled_before_ = std::max(settled_before_, settled);
    if (safe <= hash_queued_) return;
    if (hashing_.valid()) hashing_.get();  // one range at a time, in order; rethrows
    const uint64_t from = hash_queued_;
    hash_queued_ = safe;
    hashing_ = std::async(std::launch::async, [this, from, safe] { hash_file_range(temp_, from, safe, sha_); });
  }
  std::string hash_fragment(size_t, uint64_t total) override {
    if (hashing_.valid()) hashing_.get();
    if (hash_queued_ > total) throw Fatal("internal: hashed past the archive's end");
    hash_file_range(temp_, hash_queued_, total, sha_);
    hash_queued_ = total;
    return sha_.hex();
  }
  std::vector<Fragment> fragments(uint64_t total, const std::vector<std::string>& hashes) override {
    return {Fragment{spec_.name, total, hashes.empty() ? "" : hashes[0]}};
  }
  void commit(uint64_t total, const std::vector<SideFile>& side_files) override {
    Fd fd = open_or_throw(temp_, O_RDWR | O_NOFOLLOW);
    if (::ftruncate(fd.get(), static_cast<off_t>(total)) != 0) throw_sys("cannot truncate", temp_, errno);
    fsync_or_throw(fd.get(), temp_);
    std::vector<std::pair<std::string, std::string>> moves{{temp_, final_}};
    for (const auto& f : side_files) {
      std::string t = temp_path(f.name);
      write_new_file(t, f.bytes);
      side_temps_.push_back(t);
      moves.emplace_back(t, spec_.output_dir + "/" + f.name);
    }
    fsync_dir(spec_.output_dir);
    commit_renames(spec_.output_dir, moves);
    side_temps_.clear();
  }
  void abort() noexcept override {
    if (hashing_.valid()) hashing_.wait();
    fd_.reset();
    if (!temp_.empty()) ::unlink(temp_.c_str());
    for (auto& t : side_temps_) ::unlink(t.c_str());
    side_temps_.clear();
  }
  std::vector<std::string> temp_paths() const override {
    if (temp_.empty()) return {};
    return {temp_};
  }

 private:
  std::string temp_path(const std::string& name) const {
    return spec_.output_dir + "/." + name + "." + tag_ + ".tmp-pbackup";
  }

  DestinationSpec spec_;
  std::string final_, tag_, temp_;  // temp_: empty until prepare()/open()
  std::vector<std::string> side_temps_;
  Fd fd_;
  Sha256 sha_;
  uint64_t hash_queued_ = 0;       // bytes handed to the hashing thread so far
  uint64_t settled_before_ = 0;    // `settled` of the previous settle() call
  std::future<void> hashing_;      // last: waited for before the members above go
};

}  // namespace

std::unique_ptr<Destination> make_file_destination(const DestinationSpec& s) {
  return std::make_unique<FileDestination>(s);
}

}  // namespace pbackup
