// cloud destination: an S3-compatible object store. The archive is one object written by a
// multipart upload (or, with --split-chunk-mb, one object per fragment), and the manifest object
// is put last. An object store cannot be written at random offsets, so every rank keeps the
// bytes it wrote, and at each round's settle() the parts that are complete (every byte below
// the settled offset) are brought together on their owner rank (part k on rank k mod size,
// point to point, in one global order so the exchange cannot deadlock) and uploaded from there,
// several at a time. Memory per rank stays about one part plus a round's blocks.
// Nothing is visible before commit: parts of an unfinished multipart upload are not an object,
// and abort() (or a failed run) aborts the upload(s).
#include <algorithm>
#include <map>
#include <mutex>

#include "dest/registry.h"
#include "dest/s3_client.h"
#include "pbackup/bytes.h"
#include "pbackup/comm.h"
#include "pbackup/error.h"
#include "pbackup/sha256.h"
#include "util/parallel.h"

namespace pbackup {

namespace {

constexpr int kTagPart = 31;
constexpr uint64_t kMinPart = 5ull << 20, kMaxPart = 5ull << 30;

struct PartDone {  // what rank 0 learns about an uploaded part
  uint64_t k = 0, size = 0;
  std::string etag, sha256, upload_id, error;
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

  void write_at(uint64_t offset, std::string_view bytes) override {
    while (!bytes.empty()) {
      uint64_t k = offset / part_;
      uint64_t n = std::min<uint64_t>(bytes.size(), (k + 1) * part_ - offset);
      held_[k].emplace_back(offset, std::string(bytes.substr(0, n)));
      bytes.remove_prefix(n);
      offset += n;
    }
  }

  void settle(Comm& comm, uint64_t settled, bool last) override {
    const uint64_t end = last ? (settled + part_ - 1) / part_ : settled / part_;
    if (end <= done_) return;  // the same on every rank: no collective at all
    if (end > 10000 && !split_)
      throw Fatal("the archive needs more than 10,000 parts of " + std::to_string(part_ >> 20) + " MiB; use a larger --s3-part-mb");
    const int size = comm.size(), me = comm.rank();
    auto owner = [size](uint64_t k) { return static_cast<int>(k % static_cast<uint64_t>(size)); };

    // 1. who holds bytes of which finished part: every rank learns the transfer list
    ByteWriter have;
    for (auto it = held_.lower_bound(done_); it != held_.end() && it->first < end; ++it) have.u64(it->first);
    auto all = comm.gather(have.take(), 0);
    std::string plan;
    if (me == 0) {
      ByteWriter w;
      for (int r = 0; r < size; ++r) {
        ByteReader rr(all[r]);
        while (!rr.done()) {
          uint64_t k = rr.u64();
          if (owner(k) != r) {
            w.u64(k);
            w.u32(static_cast<uint32_t>(r));
          }
        }
      }
      plan = w.take();
    }
    comm.broadcast(plan, 0);

    // 2. move the bytes to the owners, in the plan's order (the same everywhere)
    ByteReader pr(plan);
    while (!pr.done()) {
      uint64_t k = pr.u64();
      int from = static_cast<int>(pr.u32()), to = owner(k);
      if (me == from) {
        ByteWriter w;
        for (auto& [off, bytes] : held_[k]) {
          w.u64(off);
          w.str(bytes);
        }
        held_.erase(k);
        comm.send(to, kTagPart, w.take());
      } else if (me == to) {
        std::string msg = comm.recv(from, kTagPart);
        ByteReader r(msg);
        while (!r.done()) {
          uint64_t off = r.u64();
          held_[k].emplace_back(off, r.str());
        }
      }
    }

    // 3. owners assemble and upload their parts, a few at a time
    std::vector<uint64_t> mine;
    for (uint64_t k = done_; k < end; ++k)
      if (owner(k) == me) mine.push_back(k);
    std::vector<PartDone> done = parallel_map(mine.size(), 4, [&](size_t i) {
      PartDone d;
      d.k = mine[i];
      try {
        std::string part = assemble(d.k, last ? settled : end * part_);
        d.size = part.size();
        d.sha256 = sha256_hex(part);
        S3Client& c = client_.get();
        if (split_) {  // each fragment its own one-part upload, completed at commit
          std::string key = key_of(fragment(d.k));
          d.upload_id = c.create_multipart(bucket_, key);
          d.etag = c.upload_part(bucket_, key, d.upload_id, 1, part);
        } else {
          d.etag = c.upload_part(bucket_, key_of(spec_.name), upload_id_, static_cast<int>(d.k + 1), part);
        }
      } catch (const std::exception& e) {
        d.error = e.what();
      }
      return d;
    });
    for (auto& d : done) hashes_[d.k] = d.sha256;

    // 4. rank 0 learns the ETags; everyone learns whether all went well
    ByteWriter rep;
    for (auto& d : done) {
      rep.u64(d.k);
      rep.u64(d.size);
      rep.str(d.etag);
      rep.str(d.sha256);
      rep.str(d.upload_id);
      rep.str(d.error);
    }
    auto reps = comm.gather(rep.take(), 0);
    std::string first_error;
    if (me == 0) {
      for (auto& m : reps) {
        ByteReader r(m);
        while (!r.done()) {
          PartDone d;
          d.k = r.u64();
          d.size = r.u64();
          d.etag = r.str();
          d.sha256 = r.str();
          d.upload_id = r.str();
          d.error = r.str();
          if (!d.error.empty() && first_error.empty()) first_error = d.error;
          parts_[d.k] = d;
        }
      }
    }
    comm.broadcast(first_error, 0);
    for (uint64_t k = done_; k < end; ++k) held_.erase(k);
    done_ = end;
    if (!first_error.empty()) throw Fatal(first_error);
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

  // Part k's bytes, which must cover [k*part, min((k+1)*part, limit)) exactly.
  std::string assemble(uint64_t k, uint64_t limit) {
    auto& pieces = held_[k];
    // By offset; at one offset the longer write first, so a header patch lands on its block.
    std::sort(pieces.begin(), pieces.end(), [](auto& a, auto& b) {
      return a.first != b.first ? a.first < b.first : a.second.size() > b.second.size();
    });
    uint64_t start = k * part_, stop = std::min((k + 1) * part_, limit);
    std::string out;
    out.reserve(stop - start);
    for (auto& [off, bytes] : pieces) {
      if (off < start + out.size()) {  // a later write over earlier bytes (zip header patch)
        uint64_t at = off - start;
        out.replace(at, std::min<uint64_t>(bytes.size(), out.size() - at), bytes.substr(0, out.size() - at));
        if (bytes.size() > out.size() - at) out.append(bytes.substr(out.size() - at));
        continue;
      }
      if (off != start + out.size()) throw Fatal("cloud: part " + std::to_string(k + 1) + " has a gap at byte " + std::to_string(start + out.size()));
      out += bytes;
    }
    if (out.size() != stop - start)
      throw Fatal("cloud: part " + std::to_string(k + 1) + " has " + std::to_string(out.size()) + " bytes, expected " + std::to_string(stop - start));
    return out;
  }

  DestinationSpec spec_;
  LazyS3Client client_;  // made from the spec's flags on first use (prepare, or a part's upload)
  std::string bucket_, prefix_, upload_id_;
  bool split_ = false;
  uint64_t part_ = 0, done_ = 0;
  std::map<uint64_t, std::vector<std::pair<uint64_t, std::string>>> held_;
  std::map<uint64_t, std::string> hashes_;   // parts this rank uploaded
  std::map<uint64_t, PartDone> parts_;       // rank 0: every uploaded part
  std::vector<std::string> completed_;       // rank 0: objects this commit made visible so far
};

}  // namespace

std::unique_ptr<Destination> make_cloud_destination(const DestinationSpec& s) {
  return std::make_unique<CloudDestination>(s);
}

}  // namespace pbackup
