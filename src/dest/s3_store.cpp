// One S3 bucket as a read-side Store (see pbackup/store.h): objects are keys, read with HEAD,
// ranged GETs and ListObjectsV2 by a client this store owns (made on first use, so a store that
// is never read needs no credentials).
#include <algorithm>

#include "dest/s3_client.h"
#include "pbackup/error.h"
#include "pbackup/store.h"

namespace pbackup {
namespace {

class S3Reader final : public StoreReader {
 public:
  S3Reader(std::shared_ptr<LazyS3Client> c, std::string bucket, std::string key)
      : c_(std::move(c)), bucket_(std::move(bucket)), key_(std::move(key)) {}
  std::string_view read(uint64_t offset, uint64_t max) override {
    if (max == 0) return {};
    chunk_ = c_->get().get_range(bucket_, key_, offset, std::min<uint64_t>(8 << 20, max));
    if (chunk_.empty()) throw Fatal("s3://" + bucket_ + "/" + key_ + " ended early");
    return chunk_;
  }

 private:
  std::shared_ptr<LazyS3Client> c_;
  std::string bucket_, key_, chunk_;
};

class S3Store final : public Store {
 public:
  S3Store(std::string bucket, const S3Flags& flags) : bucket_(std::move(bucket)), c_(std::make_shared<LazyS3Client>(flags.endpoint, flags.region, flags.addressing)) {}
  std::optional<uint64_t> size(const std::string& name) override {
    auto o = c_->get().head_object(bucket_, name);
    if (!o) return std::nullopt;
    return o->size;
  }
  std::string read_range(const std::string& name, uint64_t offset, uint64_t n) override {
    if (n == 0) return {};
    return c_->get().get_range(bucket_, name, offset, n);
  }
  std::string read_all(const std::string& name) override { return c_->get().get_object(bucket_, name); }
  std::vector<std::string> list(const std::string& dir) override {
    std::vector<std::string> names;
    for (auto& o : c_->get().list_objects(bucket_, dir.empty() ? "" : dir + "/")) {
      std::string rest = o.key.substr(dir.empty() ? 0 : dir.size() + 1);
      if (!rest.empty() && rest.find('/') == std::string::npos && rest[0] != '.') names.push_back(rest);
    }
    return names;
  }
  std::unique_ptr<StoreReader> open(const std::string& name) override { return std::make_unique<S3Reader>(c_, bucket_, name); }
  std::string join(const std::string& dir, const std::string& leaf) const override { return dir.empty() ? leaf : dir + "/" + leaf; }
  std::string display(const std::string& name) const override { return "s3://" + bucket_ + "/" + name; }
  std::string bucket() const override { return bucket_; }

 private:
  std::string bucket_;
  std::shared_ptr<LazyS3Client> c_;
};

}  // namespace

std::shared_ptr<Store> make_s3_store(const std::string& bucket, const S3Flags& flags) {
  return std::make_shared<S3Store>(bucket, flags);
}

}  // namespace pbackup
