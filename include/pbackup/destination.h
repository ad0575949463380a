// Where archive bytes go. Every rank writes its own units at their offsets; rank 0 prepares
// temporary storage first (names unique to the run) and commits it last, or aborts it (removes
// it), so a failed or killed run never leaves something named like a finished archive, and a
// run never replaces a file it did not create (DESIGN §5, §7).
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace pbackup {

class Comm;

struct Fragment {
  std::string name;  // file or object name
  uint64_t size = 0;
  std::string sha256;
};

// A part a rank stored (store_part), as rank 0 learns of it.
struct StoredPart {
  uint64_t k = 0, size = 0;
  std::string sha256;
  std::string receipt;  // store_part's result (an S3 ETag and upload id)
};

// A small file written beside the archive at commit (checksum file, manifest).
struct SideFile {
  std::string name;
  std::string bytes;
};

class Destination {
 public:
  virtual ~Destination() = default;
  // The final archive name (without directory), e.g. "backup_20261126_101010.tar.gz".
  virtual std::string archive_name() const = 0;
  // Rank 0, before any write: checks the target and creates temporary storage under names of
  // this run's own. Returns what the other ranks need to know about it (the temporary names'
  // tag, a multipart upload id), handed to open().
  virtual std::string prepare() = 0;
  // Every rank (rank 0 too), after prepare, with prepare()'s result.
  virtual void open(const std::string& prepared) = 0;
  virtual void write_at(uint64_t offset, std::string_view bytes) = 0;
  // Every rank, together, after each round's writes: archive bytes below `settled` are all
  // written (no rank or structural write will touch them again).
  // `last`: nothing more will be written; `settled` is the archive's size.
  virtual void settle(Comm& comm, uint64_t settled, bool last) {}

  // A destination that cannot write at random offsets (an object store) says its part size
  // here and only stores whole parts: the core (core/part_exchange.h) keeps each rank's writes,
  // brings a finished part's pieces to its owner rank at settle() and hands it to store_part().
  // 0: the destination writes at offsets (write_at). May change in prepare()/open() (an object
  // store grows its parts for a large archive): read it after open().
  virtual uint64_t part_bytes() const { return 0; }
  // Rank 0, before prepare(): the archive will be at most about this many bytes (an estimate
  // from the input; the archive may still turn out larger).
  virtual void expect_size(uint64_t bytes) {}
  // Every rank, before parts [0, parts) are stored: throws Fatal if there would be too many.
  virtual void check_part_count(uint64_t parts) const {}
  // Stores part k (archive bytes [k * part_bytes(), ...), complete, with their SHA-256); the
  // owner rank, from several threads at once. Returns what commit needs (handed to rank 0's
  // parts_stored()); on failure leaves nothing of the part behind.
  virtual std::string store_part(uint64_t k, std::string_view bytes, const std::string& sha256);
  // Rank 0, after each settle: the parts every rank stored in it.
  virtual void parts_stored(const std::vector<StoredPart>& parts) {}
  // Every rank, after its last write: its data is durable when this returns.
  virtual void close() = 0;
  // How many fragments (files or objects) an archive of `total` bytes is stored in.
  virtual size_t fragment_count(uint64_t total) const = 0;
  // SHA-256 of fragment k as written; any rank, after every rank closed. Empty where the
  // destination keeps no per-fragment checksum (one big file: one rank would re-read it all).
  virtual std::string hash_fragment(size_t k, uint64_t total) = 0;
  // Rank 0 after every rank closed: the fragments the archive will be stored as (final names,
  // sizes, SHA-256s), for the manifest.
  virtual std::vector<Fragment> fragments(uint64_t total, const std::vector<std::string>& hashes) = 0;
  // Rank 0, last: makes the archive and its side files visible under their final names, all or
  // nothing. Everything is written and synced before the first final name appears; final names
  // are taken without replacing anything that exists (Fatal "... already exists" otherwise), the
  // side files after the archive, in the order given (the manifest last). On failure nothing of
  // this run keeps a final name; abort() then removes the temporary files.
  virtual void commit(uint64_t total, const std::vector<SideFile>& side_files) = 0;
  // Rank 0 on failure: removes every temporary object of this run. Safe to call more than once.
  virtual void abort() noexcept = 0;
  // Paths of temporary files, for the signal handler's last-resort cleanup (after open()).
  virtual std::vector<std::string> temp_paths() const = 0;
};

struct DestinationSpec {
  std::string type;        // hdd | usb_split | cloud | memory
  std::string output_dir;  // a directory, or s3://bucket/prefix for cloud
  std::string name;        // archive name with extension
  uint64_t split_bytes = 0;
  uint64_t part_bytes = 16ull << 20;  // cloud: multipart part size (docs/admin-guide.md, "Cloud")
  std::string s3_endpoint, s3_region;  // cloud: flags (environment otherwise)
  std::string s3_addressing;           // cloud: --s3-addressing path|virtual ("" otherwise)
  // --resume (hdd, usb_split; core/resume.h): every settle() makes the bytes written so far
  // durable (fdatasync), and rank 0's prepare() adopts an interrupted run's temporary files
  // (resume_tag) holding at least resume_bytes, instead of creating new ones.
  bool sync_rounds = false;
  std::string resume_tag;
  uint64_t resume_bytes = 0;
};

std::unique_ptr<Destination> make_destination(const DestinationSpec& spec);
std::vector<std::string> destination_names();

// Name of fragment k (0-based) of `count`: "NAME.part0001"; enough digits that the shell's
// sort order is the fragment order.
std::string fragment_name(const std::string& archive, size_t k, size_t count);

}  // namespace pbackup
