// Where archive bytes go. Every rank writes its own units at their offsets; rank 0 prepares
// temporary storage first and commits it (fsync + rename) last, or aborts it (removes it), so
// a failed or killed run never leaves something named like a finished archive (DESIGN §5, §7).
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace pbackup {

struct Fragment {
  std::string name;  // file or object name
  uint64_t size = 0;
  std::string sha256;
};

class Destination {
 public:
  virtual ~Destination() = default;
  // The final archive name (without directory), e.g. "backup_20261126_101010.tar.gz".
  virtual std::string archive_name() const = 0;
  // Rank 0, before any write: checks the target and creates temporary storage.
  virtual void prepare() = 0;
  // Every rank, after prepare.
  virtual void open() = 0;
  virtual void write_at(uint64_t offset, std::string_view bytes) = 0;
  // Every rank, after its last write: its data is durable when this returns.
  virtual void close() = 0;
  // Rank 0 after every rank closed: makes the archive visible under its final name(s).
  virtual std::vector<Fragment> commit(uint64_t total_size) = 0;
  // Writes the manifest (and checksum file) beside the archive; called after commit.
  virtual void put_side_file(const std::string& name, std::string_view bytes) = 0;
  // Rank 0 on failure: removes every temporary object. Safe to call more than once.
  virtual void abort() noexcept = 0;
  // Paths of temporary files, for the signal handler's last-resort cleanup.
  virtual std::vector<std::string> temp_paths() const = 0;
};

struct DestinationSpec {
  std::string type;        // hdd | usb_split | memory
  std::string output_dir;
  std::string name;        // archive name with extension
  uint64_t split_bytes = 0;
};

std::unique_ptr<Destination> make_destination(const DestinationSpec& spec);
std::vector<std::string> destination_names();

}  // namespace pbackup
