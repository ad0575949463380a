// cloud destination: an S3-compatible object store. The archive is one object written by a
// multipart upload (or, with --split-chunk-mb, one object per fragment), and the manifest object
// is put last. An object store cannot be written at random offsets, so this destination only
// stores whole parts: the core's part exchange (core/part_exchange.h) keeps every rank's writes,
// brings each finished part to its owner rank at settle() and calls store_part() there.
// Nothing is visible before commit: parts of an unfinished multipart upload are not an object,
// and abort() (or a failed run) aborts the upload(s).
#include <algorithm>
#include <map>
#include <mutex>

#include "dest/registry.h"
#include "dest/s3_client.h"
#include "dest/s3_receipt.h"
#include "pbackup/error.h"

namespace pbackup {

namespace {

constexpr uint64_t kMinPart = 5ull << 20, kMaxPart = 5ull << 30;

struct PartDone {  // rank 0: an uploaded part
  uint64_t size = 0;
  std::string etag, sha256, upload_id;
};

class CloudDestination final : public Destination {
 public:
  explicit CloudDestination(const DestinationSpec& s) : spec_(s), client_(s.s3_endpoint, s.s3_region) {
    S3Url u = S3Url::parse(s.output_dir);
    bucket_ = u.bucket;
    prefix_ = u.key.empty() || u.key.back() == '/' ? u.key : u.key + "/";
    split_ = s.split_bytes > 0;
    part_ = split_ ? s.split_bytes : s.part_bytes;
    if (split_ && part_ > kMaxPart) throw Fatal("--split-chunk-mb: a cloud fragment is one upload part, at most 5 GiB (5120 MiB)");
    if (!split_ && (part_ < kMinPart || part_ > kMaxPart)) throw Fatal("--s3-part-mb must be between 5 and 5120 (S3's part size limits)");
  }
  std::string archive_name() const override { return spec_.name; }

  std::string prepare() override {
    S3Client& c = client_.get();
    for (const std::string& key : {key_of(spec_.name), key_of(fragment(0)), key_of(spec_.name + ".manifest.json")})
      if (c.head_object(bucket_, key)) throw Fatal("archive s3://" + bucket_ + "/" + key + " already exists; choose another --name");
    if (!split_) upload_id_ = c.create_multipart(bucket_, key_of(spec_.name));
    return upload_id_;
  }
  void open(const std::string& prepared) override { upload_id_ = prepared; }

  // The core's part exchange (core/part_exchange.h) brings whole parts to store_part.
  uint64_t part_bytes() const override { return part_; }
  void write_at(uint64_t, std::string_view) override {
    throw std::logic_error("cloud destination: writes go through the part exchange (with_part_exchange)");
  }
  void check_part_count(uint64_t parts) const override {
    if (parts > 10000 && !split_)
      throw Fatal("the archive needs more than 10,000 parts of " + std::to_string(part_ >> 20) + " MiB; use a larger --s3-part-mb");
  }
  // Uploads part k: one part of the multipart upload, or with --split-chunk-mb its own
  // one-part upload (completed at commit; aborted here if its upload fails).
  std::string store_part(uint64_t k, std::string_view bytes, const std::string& sha256) override {
    S3Client& c = client_.get();
    std::string part(bytes);
    PartReceipt receipt;
    if (split_) {
      std::string key = key_of(fragment(k));
      std::string id = c.create_multipart(bucket_, key);
      try {
        receipt.etag = c.upload_part(bucket_, key, id, 1, part);
      } catch (...) {
        try {
          c.abort_multipart(bucket_, key, id);
        } catch (...) {
        }
        throw;
      }
      receipt.upload_id = id;
    } else {
      receipt.etag = c.upload_part(bucket_, key_of(spec_.name), upload_id_, static_cast<int>(k + 1), part);
    }
    std::lock_guard<std::mutex> l(mu_);
    hashes_[k] = sha256;
    return to_wire(receipt);
  }
  void parts_stored(const std::vector<StoredPart>& parts) override {
    for (const auto& p : parts) {
      PartReceipt r = from_wire<PartReceipt>(p.receipt);
      PartDone d;
      d.size = p.size;
      d.sha256 = p.sha256;
      d.etag = std::move(r.etag);
      d.upload_id = std::move(r.upload_id);
      parts_[p.k] = std::move(d);
    }
  }

  void close() override {}
  size_t fragment_count(uint64_t total) const override {
    return split_ ? std::max<uint64_t>(1, (total + part_ - 1) / part_) : 1;
  }
  std::string hash_fragment(size_t k, uint64_t) override {
    if (!split_) return "";
    auto it = hashes_.find(k);
    if (it == hashes_.end()) throw Fatal("cloud: no checksum for fragment " + std::to_string(k + 1) + " on this rank");
    return it->second;
  }
  std::vector<Fragment> fragments(uint64_t total, const std::vector<std::string>& hashes) override {
    if (!split_) return {Fragment{spec_.name, total, ""}};
    std::vector<Fragment> out;
    for (auto& [k, d] : parts_)
      out.push_back({fragment(k), d.size, k < hashes.size() && !hashes[k].empty() ? hashes[k] : d.sha256});
    return out;
  }
  // An object store has no rename: the objects appear one by one, the manifest last, and every
  // object this run made visible is deleted again if a later step fails (abort()).
  void commit(uint64_t, const std::vector<SideFile>& side_files) override {
    S3Client& c = client_.get();
    if (!split_) {
      std::vector<std::pair<int, std::string>> etags;
      for (auto& [k, d] : parts_) etags.emplace_back(static_cast<int>(k + 1), d.etag);
      if (etags.empty()) {  // an empty archive is impossible (tar has an end marker), but be exact
        throw Fatal("cloud: no part was uploaded");
      }
      c.complete_multipart(bucket_, key_of(spec_.name), upload_id_, etags);
      upload_id_.clear();
      completed_.push_back(key_of(spec_.name));
    } else {
      for (auto it = parts_.begin(); it != parts_.end();) {
        c.complete_multipart(bucket_, key_of(fragment(it->first)), it->second.upload_id, {{1, it->second.etag}});
        completed_.push_back(key_of(fragment(it->first)));
        it = parts_.erase(it);
      }
    }
    for (auto& f : side_files) {
      c.put_object(bucket_, key_of(f.name), f.bytes);
      completed_.push_back(key_of(f.name));
    }
    completed_.clear();  // committed: abort() must not delete them any more
  }
  void abort() noexcept override {
    try {
      S3Client& c = client_.get();
      if (!upload_id_.empty()) c.abort_multipart(bucket_, key_of(spec_.name), upload_id_);
      upload_id_.clear();
      for (auto& [k, d] : parts_)
        if (!d.upload_id.empty()) c.abort_multipart(bucket_, key_of(fragment(k)), d.upload_id);
      parts_.clear();
      for (auto& key : completed_) c.delete_object(bucket_, key);
      completed_.clear();
    } catch (...) {
    }
  }
  std::vector<std::string> temp_paths() const override { return {}; }

 private:
  std::string key_of(const std::string& name) const { return prefix_ + name; }
  std::string fragment(uint64_t k) const { return fragment_name(spec_.name, k, 0); }

  DestinationSpec spec_;
  LazyS3Client client_;  // made from the spec's flags on first use (prepare, or a part's upload)
  std::string bucket_, prefix_, upload_id_;
  bool split_ = false;
  uint64_t part_ = 0;
  std::mutex mu_;                            // hashes_: store_part runs on several threads
  std::map<uint64_t, std::string> hashes_;   // parts this rank uploaded
  std::map<uint64_t, PartDone> parts_;       // rank 0: every uploaded part
  std::vector<std::string> completed_;       // rank 0: objects this commit made visible so far
};

}  // namespace

std::unique_ptr<Destination> make_cloud_destination(const DestinationSpec& s) {
  return std::make_unique<CloudDestination>(s);
}

}  // namespace pbackup
