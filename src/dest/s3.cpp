// cloud destination: an S3-compatible object store. The archive is one object written by a
// multipart upload (or, with --split-chunk-mb or for an archive over 5 TiB, one object per
// fragment), and the manifest object is put last. An object store cannot be written at random
// offsets, so this destination only stores whole parts: the core's part exchange
// (core/part_exchange.h) keeps every rank's writes, brings each finished part to its owner rank
// at settle() and calls store_part() there.
// Nothing is visible before commit: parts of an unfinished multipart upload are not an object,
// and abort() (or a failed run) aborts the upload(s) and deletes every object the run made
// visible; what it cannot remove it names, with the command that removes it (DESIGN §7).
// Final names are taken with conditional writes (If-None-Match: *) where the server honours
// them, so two runs with the same name cannot both commit (DESIGN §5).
#include <algorithm>
#include <cstdlib>
#include <map>
#include <mutex>
#include <random>

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

bool ends_with(const std::string& s, const char* suffix) {
  std::string t(suffix);
  return s.size() >= t.size() && s.compare(s.size() - t.size(), t.size(), t) == 0;
}

// Content-Type of each object a backup writes.
std::string content_type_of(const std::string& name) {
  if (ends_with(name, ".manifest.json")) return "application/json";
  if (ends_with(name, ".sha256")) return "text/plain; charset=utf-8";
  if (ends_with(name, ".gz")) return "application/gzip";
  if (ends_with(name, ".bz2")) return "application/x-bzip2";
  if (ends_with(name, ".zst")) return "application/zstd";
  if (ends_with(name, ".zip")) return "application/zip";
  return "application/octet-stream";
}

// How the server treats If-None-Match: * (found by a probe in prepare()).
enum class Conditional { Honoured, Ignored, Unsupported };

void report(const S3Client& c, const std::string& m) {
  if (!c.config().notify) return;
  try {
    c.config().notify(m);
  } catch (...) {
  }
}

class CloudDestination final : public Destination {
 public:
  explicit CloudDestination(const DestinationSpec& s) : spec_(s), client_(s.s3_endpoint, s.s3_region, s.s3_addressing) {
    S3Url u = S3Url::parse(s.output_dir);
    bucket_ = u.bucket;
    prefix_ = u.key.empty() || u.key.back() == '/' ? u.key : u.key + "/";
    split_ = s.split_bytes > 0;
    part_ = split_ ? s.split_bytes : s.part_bytes;
    if (split_ && part_ > kMaxPart) throw Fatal("--split-chunk-mb: a cloud fragment is one upload part, at most 5 GiB (5120 MiB)");
    if (!split_ && (part_ < kMinPart || part_ > kMaxPart)) throw Fatal("--s3-part-mb must be between 5 and 5120 (S3's part size limits)");
    client_.get();  // credentials and endpoint checked at setup, before the scan
  }
  std::string archive_name() const override { return spec_.name; }

  void expect_size(uint64_t bytes) override {
    uint64_t max_parts = 10000;
    if (const char* t = std::getenv("PBACKUP_TEST_S3_MAX_PARTS")) max_parts = std::max<uint64_t>(1, std::strtoull(t, nullptr, 10));
    CloudPartPlan p = plan_cloud_parts(part_, bytes, split_, max_parts);
    part_ = p.part;
    split_ = p.split;
  }

  // The plan every rank needs: "UPLOAD_ID PART_BYTES SPLIT SHA256_PARTS" (upload ids have no
  // spaces). SHA256_PARTS: the server keeps S3's own SHA-256 of each part (x-amz-checksum-sha256).
  std::string prepare() override {
    S3Client& c = client_.get();
    for (const std::string& key : {key_of(spec_.name), key_of(fragment(0)), key_of(spec_.name + ".manifest.json")})
      if (c.head_object(bucket_, key)) throw Fatal("archive s3://" + bucket_ + "/" + key + " already exists; choose another --name");
    conditional_ = probe_conditional(c);
    if (!split_) upload_id_ = c.create_multipart(bucket_, key_of(spec_.name), content_type_of(spec_.name), &sha256_parts_);
    return (upload_id_.empty() ? "-" : upload_id_) + " " + std::to_string(part_) + " " + (split_ ? "1" : "0") + " " +
           (sha256_parts_ ? "1" : "0");
  }
  void open(const std::string& prepared) override {
    std::vector<std::string> f;
    for (size_t at = 0; at <= prepared.size();) {
      size_t sp = prepared.find(' ', at);
      f.push_back(prepared.substr(at, sp == std::string::npos ? std::string::npos : sp - at));
      at = sp == std::string::npos ? prepared.size() + 1 : sp + 1;
    }
    if (f.size() != 4) throw Fatal("cloud: malformed plan from rank 0");
    upload_id_ = f[0] == "-" ? "" : f[0];
    part_ = std::strtoull(f[1].c_str(), nullptr, 10);
    split_ = f[2] == "1";
    sha256_parts_ = f[3] == "1";
    if (part_ == 0 || part_ > kMaxPart) throw Fatal("cloud: malformed part size from rank 0");
  }

  // The core's part exchange (core/part_exchange.h) brings whole parts to store_part.
  uint64_t part_bytes() const override { return part_; }
  void write_at(uint64_t, std::string_view) override {
    throw std::logic_error("cloud destination: writes go through the part exchange (with_part_exchange)");
  }
  void check_part_count(uint64_t parts) const override {
    if (parts > 10000 && !split_)
      throw Fatal("the archive needs more than 10,000 parts of " + std::to_string(part_ >> 20) +
                  " MiB (it grew past the size expected from the input); use a larger --s3-part-mb");
  }
  // Uploads part k: one part of the multipart upload, or as a fragment its own one-part upload
  // (completed at commit; aborted here if its upload fails).
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
        if (!c.abort_multipart(bucket_, key, id)) left_behind(c, {}, {{key, id}});
        throw;
      }
      receipt.upload_id = id;
    } else {
      receipt.etag = c.upload_part(bucket_, key_of(spec_.name), upload_id_, static_cast<int>(k + 1), part,
                                   sha256_parts_ ? sha256 : std::string());
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
    // one object: the SHA-256 the part exchange chained through the parts (hash_fragment(0))
    if (!split_) return {Fragment{spec_.name, total, hashes.empty() ? "" : hashes[0]}};
    std::vector<Fragment> out;
    for (auto& [k, d] : parts_)
      out.push_back({fragment(k), d.size, k < hashes.size() && !hashes[k].empty() ? hashes[k] : d.sha256});
    return out;
  }
  // An object store has no rename: the objects appear one by one, the manifest last. Each key is
  // noted as possibly visible before its request (an answer lost after the server acted leaves
  // the object), so that abort() deletes every object of this run if a later step fails; a key
  // a conditional write found taken is another run's and is never deleted.
  void commit(uint64_t, const std::vector<SideFile>& side_files) override {
    S3Client& c = client_.get();
    if (!split_) {
      std::vector<std::pair<int, std::string>> etags;
      std::map<int, std::string> sums;
      for (auto& [k, d] : parts_) {
        etags.emplace_back(static_cast<int>(k + 1), d.etag);
        if (sha256_parts_) sums[static_cast<int>(k + 1)] = d.sha256;
      }
      if (etags.empty()) throw Fatal("cloud: no part was uploaded");  // tar has an end marker: be exact
      complete(c, key_of(spec_.name), upload_id_, etags, sums);
      upload_id_.clear();
    } else {
      for (auto it = parts_.begin(); it != parts_.end();) {
        complete(c, key_of(fragment(it->first)), it->second.upload_id, {{1, it->second.etag}});
        it = parts_.erase(it);
      }
    }
    for (auto& f : side_files) {
      std::string key = key_of(f.name);
      completed_.push_back(key);
      if (conditional_ == Conditional::Honoured) {
        if (c.put_object_if_absent(bucket_, key, f.bytes, content_type_of(f.name)) == PutResult::Exists) taken(key);
      } else {
        c.put_object(bucket_, key, f.bytes, content_type_of(f.name));
      }
    }
    completed_.clear();  // committed: abort() must not delete them any more
  }

  // Aborts the uploads, deletes what this run made visible; names what is left.
  void abort() noexcept override {
    try {
      S3Client& c = client_.get();
      std::vector<std::pair<std::string, std::string>> uploads_left;
      std::vector<std::string> objects_left;
      if (!upload_id_.empty() && !c.abort_multipart(bucket_, key_of(spec_.name), upload_id_))
        uploads_left.emplace_back(key_of(spec_.name), upload_id_);
      upload_id_.clear();
      for (auto& [k, d] : parts_)
        if (!d.upload_id.empty() && !c.abort_multipart(bucket_, key_of(fragment(k)), d.upload_id))
          uploads_left.emplace_back(key_of(fragment(k)), d.upload_id);
      parts_.clear();
      for (auto& key : completed_) {
        try {
          c.delete_object(bucket_, key);
        } catch (const std::exception& e) {
          report(c, e.what());
          objects_left.push_back(key);
        }
      }
      completed_.clear();
      left_behind(c, objects_left, uploads_left);
    } catch (...) {
    }
  }
  std::vector<std::string> temp_paths() const override { return {}; }

 private:
  std::string key_of(const std::string& name) const { return prefix_ + name; }
  std::string fragment(uint64_t k) const { return fragment_name(spec_.name, k, 0); }

  // Completes an upload as `key`, conditionally where the server honours it; where it does not,
  // a HEAD afterwards catches another run that replaced the object in the meantime (a narrow
  // window stays: DESIGN §5).
  void complete(S3Client& c, const std::string& key, const std::string& id, const std::vector<std::pair<int, std::string>>& etags,
                const std::map<int, std::string>& sums = {}) {
    completed_.push_back(key);
    if (c.complete_multipart(bucket_, key, id, etags, conditional_ == Conditional::Honoured, sums) == PutResult::Exists) taken(key);
    if (conditional_ == Conditional::Honoured) return;
    std::vector<std::string> e;
    for (auto& p : etags) e.push_back(p.second);
    std::string want = multipart_etag(e);
    std::optional<S3Object> o = c.head_object(bucket_, key);
    if (!want.empty() && o && o->etag != want) {
      completed_.pop_back();  // the object there now is another run's
      throw Fatal("archive s3://" + bucket_ + "/" + key + " was written by another backup with the same name at the same time; choose another --name");
    }
  }
  [[noreturn]] void taken(const std::string& key) {
    completed_.pop_back();  // not ours: never delete it
    throw Fatal("archive s3://" + bucket_ + "/" + key + " already exists (another backup with the same name committed first); choose another --name");
  }

  // Probes If-None-Match: * with a small object of this run's own: created, then refused if the
  // server honours the condition. Removed again.
  Conditional probe_conditional(S3Client& c) {
    std::random_device rd;
    std::string key = key_of("." + spec_.name + ".pbackup-probe-" + std::to_string(rd()) + std::to_string(rd()));
    PutResult first = c.put_object_if_absent(bucket_, key, "probe", "text/plain");
    if (first == PutResult::Unsupported) return Conditional::Unsupported;
    Conditional r = Conditional::Ignored;
    try {
      r = c.put_object_if_absent(bucket_, key, "probe", "text/plain") == PutResult::Exists ? Conditional::Honoured : Conditional::Ignored;
    } catch (...) {
      c.delete_object(bucket_, key);
      throw;
    }
    c.delete_object(bucket_, key);
    return r;
  }

  // Says what could not be removed and how to remove it (through the client's notify: main sets
  // it to the log's warning lines).
  void left_behind(S3Client& c, const std::vector<std::string>& objects,
                   const std::vector<std::pair<std::string, std::string>>& uploads) const {
    for (auto& k : objects)
      report(c, "cloud: could not delete s3://" + bucket_ + "/" + k + " of this failed run; remove it with: aws s3 rm 's3://" + bucket_ + "/" + k + "'");
    for (auto& [k, id] : uploads)
      report(c, "cloud: multipart upload " + id + " of s3://" + bucket_ + "/" + k +
                    " is left in progress (billed, invisible to a listing); remove it with: pbackup cloud-cleanup --source 's3://" + bucket_ +
                    "/" + k + "' (or: aws s3api abort-multipart-upload --bucket " + bucket_ + " --key '" + k + "' --upload-id '" + id + "')");
  }

  DestinationSpec spec_;
  LazyS3Client client_;  // made from the spec's flags at setup
  std::string bucket_, prefix_, upload_id_;
  bool split_ = false;
  bool sha256_parts_ = false;  // the server keeps each part's SHA-256 (x-amz-checksum-sha256)
  uint64_t part_ = 0;
  Conditional conditional_ = Conditional::Ignored;
  std::mutex mu_;                            // hashes_: store_part runs on several threads
  std::map<uint64_t, std::string> hashes_;   // parts this rank uploaded
  std::map<uint64_t, PartDone> parts_;       // rank 0: every uploaded part
  std::vector<std::string> completed_;       // rank 0: objects this commit may have made visible
};

}  // namespace

std::unique_ptr<Destination> make_cloud_destination(const DestinationSpec& s) {
  return std::make_unique<CloudDestination>(s);
}

}  // namespace pbackup
