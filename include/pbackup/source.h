// Where restore, list and verify read an archive from: one file, or a set of fragments found
// by themselves in a directory (with or without our manifest), read in order as one stream.
#pragma once
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "pbackup/manifest.h"
#include "pbackup/options.h"
#include "pbackup/store.h"
#include "pbackup/wire.h"

namespace pbackup {

struct SourceCipher;  // an age-encrypted archive's payload key and layout (src/core/age_source.h)

struct ArchiveSource {
  std::string bucket;               // non-empty: files are object keys in this S3 bucket
  std::shared_ptr<Store> store;     // where the files are read from (not sent: made from bucket)
  std::vector<std::string> files;   // in order; their concatenation is the archive
  std::vector<uint64_t> sizes;      // actual sizes on disk
  std::optional<Manifest> manifest;
  std::string manifest_path;
  std::string name;                 // archive name, for messages
  // Set when the archive is age-encrypted and was opened with a key: read_range then returns
  // plaintext (authenticated chunk by chunk); read_file_range still reads the files raw.
  std::shared_ptr<const SourceCipher> cipher;
};

// `source` is an archive file, a fragment of a set, or a directory holding one set (or several,
// then `base_name` picks one: the archive name, e.g. backup_20261126_101010.tar.gz).
// Throws Fatal naming what is missing or ambiguous.
// With `lenient`, missing or short fragments listed in the manifest do not throw: they are
// kept in `files` with their actual size (0 if missing) for verify to report one by one.
// An s3:// source is read with a client made from `s3` and the environment.
// An age-encrypted archive is opened with `keys` (Fatal when none matches or none is given).
ArchiveSource resolve_source(const std::string& source, const std::string& base_name, const S3Flags& s3,
                             bool lenient = false, const AgeKeys& keys = AgeKeys{});

// Which file of the set holds archive byte `offset` (for messages about damage; a plaintext
// offset for an encrypted archive); file_at_raw takes an offset in the files as stored.
std::string file_at(const ArchiveSource& s, uint64_t offset);
std::string file_at_raw(const ArchiveSource& s, uint64_t offset);
// The archive's size: the plaintext size for an encrypted archive.
uint64_t source_size(const ArchiveSource& s);

// Archive bytes [offset, offset+n), read across the files of a set (decrypted and
// authenticated when the archive is encrypted). Throws Fatal if short or damaged.
std::string read_range(const ArchiveSource& s, uint64_t offset, uint64_t n);
// The same over the files as stored, never decrypted.
std::string read_raw_range(const ArchiveSource& s, uint64_t offset, uint64_t n);
// Bytes [offset, offset+n) of file i alone (a ranged GET for S3).
std::string read_file_range(const ArchiveSource& s, size_t i, uint64_t offset, uint64_t n);
// Display name of file i ("s3://bucket/key" or the path).
std::string display(const ArchiveSource& s, size_t i);
// Whether file i exists (verify reports missing fragments one by one).
bool file_exists(const ArchiveSource& s, size_t i);
// Gives a source received from rank 0 its own store (made from its bucket and `s3`).
void attach_store(ArchiveSource& s, const S3Flags& s3);

// The cipher as bytes between ranks (the payload key included: it travels only inside the job).
std::string cipher_to_wire(const SourceCipher* c);
std::shared_ptr<const SourceCipher> cipher_from_wire(const std::string& bytes);

// For handing a resolved source from rank 0 to the others (the manifest travels as its JSON;
// the store does not travel: the receiver makes its own with attach_store).
template <class Ar>
void fields(Ar& a, ArchiveSource& s) {
  a(s.bucket), a(s.name), a(s.manifest_path);
  std::string json;
  if constexpr (Ar::kWriting) json = s.manifest ? manifest_to_json(*s.manifest) : "";
  a(json);
  if constexpr (!Ar::kWriting)
    if (!json.empty()) s.manifest = manifest_from_json(json);
  a(s.files), a(s.sizes);
  std::string cipher;
  if constexpr (Ar::kWriting) cipher = cipher_to_wire(s.cipher.get());
  a(cipher);
  if constexpr (!Ar::kWriting) s.cipher = cipher_from_wire(cipher);
  if constexpr (!Ar::kWriting)
    if (s.files.size() != s.sizes.size()) throw std::runtime_error("internal message: archive source lists differ in length");
}

}  // namespace pbackup
