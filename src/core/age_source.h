// Reading age-encrypted archives (issue 16) and loading the keys for both directions.
//
// An encrypted source keeps its ciphertext files as they are (fragment checks read them raw);
// its `cipher` says where the STREAM payload starts and holds the payload key, and read_range
// (source.h) then returns plaintext: it reads the 64 KiB chunks covering the range, opens
// each one (Poly1305 checks it before a byte of it is used) and fails naming the chunk and the
// fragment it lies in. Any rank can do this for any range, so restore, list, verify and --only
// decrypt in parallel and read only the chunks they need.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "crypto/age.h"
#include "pbackup/options.h"
#include "pbackup/source.h"

namespace pbackup {

struct SourceCipher {
  uint64_t prefix = 0;      // header and nonce: the payload starts here in the ciphertext
  uint64_t plain_size = 0;  // plaintext bytes of the payload
  std::shared_ptr<const age::Secret> key;
  // The rank that opened the archive only (not sent to other ranks): to open its side files
  // (the catalog), which are age files of their own.
  std::vector<age::Identity> identities;
};

// --encrypt-to / --encrypt-to-file / --passphrase-file as recipients (Fatal naming the file).
std::vector<age::Recipient> load_recipients(const AgeKeys& keys);
// --identity / --passphrase-file as identities (Fatal naming the file).
std::vector<age::Identity> load_identities(const AgeKeys& keys);

// Where an encrypted archive's sealed manifest lies: X.manifest.age beside X.manifest.json
// (Fatal for a manifest path not ending so).
std::string sealed_manifest_path(const std::string& manifest_path);

// After resolve_source: when the archive is encrypted (its manifest says so, or it starts
// like an age file), opens its header with the keys (Fatal when there are none or none
// matches), puts the sealed manifest (decrypted and checked) in place of the name-free one,
// and sets s.cipher. Nothing happens for an archive that is not encrypted.
void open_encryption(ArchiveSource& s, const AgeKeys& keys);

// Plaintext bytes [offset, offset+n) of an encrypted source. Fatal when a chunk does not
// authenticate.
std::string decrypt_range(const ArchiveSource& s, uint64_t offset, uint64_t n);
// The ciphertext offset of plaintext byte `offset`.
uint64_t cipher_offset(const SourceCipher& c, uint64_t offset);

// A side file (the catalog) that may be age-encrypted: decrypted with the keys when it is.
std::string maybe_decrypt_side_file(std::string bytes, const AgeKeys& keys, const std::string& name);

}  // namespace pbackup
