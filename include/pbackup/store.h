// The read side of where archives live (restic's backend shape): named objects -- local files by
// path, or the objects of one S3 bucket by key -- that can be sized, listed, read by range and
// opened for reading in order. Restore, list and verify find and read archives through a Store
// (pbackup/source.h); the write side is pbackup/destination.h. One implementation per kind:
// src/dest/local_store.cpp and src/dest/s3_store.cpp, both run through the read-side
// conformance suite (tests/conformance/store_conformance.h).
#pragma once
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace pbackup {

// An object opened for reading in order (restore's streaming reader).
class StoreReader {
 public:
  virtual ~StoreReader() = default;
  // Some bytes from `offset`, at most `max` and at least one when max > 0: as many as one read
  // brings (a local file: one read of up to 1 MiB; S3: one ranged GET of up to 8 MiB). The view
  // is valid until the next call. Fatal naming the object if it cannot be read or ends first.
  virtual std::string_view read(uint64_t offset, uint64_t max) = 0;
};

class Store {
 public:
  virtual ~Store() = default;
  // The size of object `name`, or nullopt if there is none (a local directory is not one).
  virtual std::optional<uint64_t> size(const std::string& name) = 0;
  // Bytes [offset, offset+n) of `name`; Fatal naming it if it is shorter or cannot be read.
  virtual std::string read_range(const std::string& name, uint64_t offset, uint64_t n) = 0;
  // The whole object (a manifest); Fatal naming it if it cannot be read.
  virtual std::string read_all(const std::string& name) = 0;
  // The names of the objects directly in `dir`, without hidden ones (a leading '.'), sorted.
  // Fatal if `dir` cannot be listed.
  virtual std::vector<std::string> list(const std::string& dir) = 0;
  // Opens `name` for reading in order; Fatal naming it if it cannot be opened.
  virtual std::unique_ptr<StoreReader> open(const std::string& name) = 0;
  // The name of `leaf` in `dir` ("dir/leaf"; an S3 store's top level is "").
  virtual std::string join(const std::string& dir, const std::string& leaf) const = 0;
  // How messages name object `name`: the path, or "s3://bucket/key".
  virtual std::string display(const std::string& name) const = 0;
  // The S3 bucket, or "" for local files (how a resolved source names its store to other ranks).
  virtual std::string bucket() const = 0;
};

// --s3-endpoint / --s3-region as given (empty: the environment's AWS_* settings apply).
struct S3Flags {
  std::string endpoint, region;
  std::string addressing;  // --s3-addressing path|virtual, "" otherwise
};

// Local files, named by path.
std::shared_ptr<Store> make_local_store();
// The objects of one S3 bucket, named by key, read by a client of its own made from `flags` and
// the AWS_* environment when first needed.
std::shared_ptr<Store> make_s3_store(const std::string& bucket, const S3Flags& flags);
// make_local_store() for bucket "", make_s3_store otherwise.
std::shared_ptr<Store> make_store(const std::string& bucket, const S3Flags& flags);

}  // namespace pbackup
