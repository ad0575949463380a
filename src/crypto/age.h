// The age file format (https://age-encryption.org/v1), framing only: the header (stanzas for
// X25519 recipients and scrypt passphrases, the header MAC), bech32 keys (age1..., and
// AGE-SECRET-KEY-1...), and the STREAM payload sealed chunk by chunk. Every primitive comes
// from OpenSSL 3 (X25519, ChaCha20-Poly1305, HKDF-SHA-256, HMAC-SHA-256, scrypt, RAND_bytes);
// nothing here is home-made cryptography.
//
// The payload is random-access: plaintext chunk k (64 KiB, the last one shorter or, for an
// empty payload, empty) is sealed with the payload key and nonce = 11-byte big-endian k plus a
// last-chunk flag byte, so any rank can seal or open chunk k knowing only k and the key, and
// plaintext byte p sits at ciphertext byte prefix + (p / 64 KiB) * (64 KiB + 16) + p % 64 KiB,
// where prefix is the header plus the 16-byte payload nonce.
//
// Secrets (file keys, payload keys, identities, passphrases) live in `Secret` buffers: their
// own pages, locked in memory where the system allows, left out of core dumps, wiped on
// destruction. No function here puts a secret into an exception message.
#pragma once
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace pbackup::age {

constexpr uint64_t kChunk = 64 * 1024;        // plaintext bytes per chunk
constexpr uint64_t kTag = 16;                 // Poly1305 tag per chunk
constexpr uint64_t kSealedChunk = kChunk + kTag;
constexpr size_t kNonceBytes = 16;            // payload nonce after the header
constexpr size_t kFileKeyBytes = 16;
constexpr size_t kKeyBytes = 32;
constexpr int kDefaultWorkFactor = 18;        // scrypt log2(N), as the age CLI
constexpr int kMaxWorkFactor = 20;            // refused above: 2^20 x 1 KiB = 1 GiB of scrypt memory
constexpr size_t kMaxHeaderBytes = 1 << 20;   // a header longer than this is refused

// Malformed input, a failed authentication, a missing identity. Never carries secret bytes.
class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// A secret byte buffer: page-aligned memory of its own, mlock'ed (best effort), excluded from
// core dumps (MADV_DONTDUMP), wiped with OPENSSL_cleanse when destroyed. Not copyable.
class Secret {
 public:
  Secret() = default;
  explicit Secret(size_t n);
  Secret(const void* p, size_t n);
  ~Secret();
  Secret(Secret&& o) noexcept;
  Secret& operator=(Secret&& o) noexcept;
  Secret(const Secret&) = delete;
  Secret& operator=(const Secret&) = delete;
  uint8_t* data() { return p_; }
  const uint8_t* data() const { return p_; }
  size_t size() const { return n_; }
  bool empty() const { return n_ == 0; }
  std::string_view view() const { return {reinterpret_cast<const char*>(p_), n_}; }

 private:
  void release() noexcept;
  uint8_t* p_ = nullptr;
  size_t n_ = 0, mapped_ = 0;
};

// Overwrites a string's bytes (OPENSSL_cleanse) and empties it: for copies of secrets that
// had to pass through ordinary strings (a message between ranks).
void wipe(std::string& s);

// Random bytes from the OS CSPRNG (RAND_bytes). For tests only, set_test_seed() makes them a
// deterministic stream derived from the seed (HKDF), so archives can be compared byte for byte.
void random_bytes(uint8_t* out, size_t n);
void set_test_seed(std::string_view seed);  // empty: back to RAND_bytes

// Where a file key goes: an X25519 public key, or a passphrase (scrypt).
struct Recipient {
  enum class Kind { X25519, Scrypt } kind = Kind::X25519;
  uint8_t public_key[32] = {};
  std::shared_ptr<const Secret> passphrase;
  int work_factor = kDefaultWorkFactor;
};
// What unwraps a file key: an X25519 secret key, or a passphrase.
struct Identity {
  enum class Kind { X25519, Scrypt } kind = Kind::X25519;
  std::shared_ptr<const Secret> secret_key;  // 32 bytes
  std::shared_ptr<const Secret> passphrase;
  int max_work_factor = kMaxWorkFactor;
};

// "age1..." -> recipient; Error (naming no secret) when it is not one.
Recipient parse_recipient(std::string_view text);
// A recipients file (as `age -R`): one "age1..." per line, '#' comments and empty lines
// skipped. `name` is for messages.
std::vector<Recipient> parse_recipients_file(std::string_view text, const std::string& name);
// An identity file (age-keygen's): "AGE-SECRET-KEY-1..." lines, '#' comments, empty lines.
std::vector<Identity> parse_identity_file(std::string_view text, const std::string& name);
Recipient passphrase_recipient(std::shared_ptr<const Secret> passphrase, int work_factor = kDefaultWorkFactor);
Identity passphrase_identity(std::shared_ptr<const Secret> passphrase);
// The public key of an X25519 identity, as "age1...".
std::string public_key_of(const Identity& id);
// A new X25519 identity ("AGE-SECRET-KEY-1..." inside a Secret) -- for tests.
Secret generate_identity_text();

// bech32 (BIP 173, no length limit as age): encode/decode with the human-readable part.
std::string bech32_encode(std::string_view hrp, const uint8_t* data, size_t n, bool upper);
// Returns false on a bad checksum, mixed case or bad characters; hrp is returned lower case.
bool bech32_decode(std::string_view text, std::string& hrp, std::vector<uint8_t>& data);

// Base64 without padding, as age writes it; decode is strict (canonical, no padding).
std::string b64_encode(const uint8_t* p, size_t n);
std::optional<std::vector<uint8_t>> b64_decode(std::string_view s);

// The key the STREAM payload is sealed with, and the header bytes around it.
struct Encryption {
  std::string prefix;                  // the header (through "--- MAC\n") and the 16-byte nonce
  std::shared_ptr<const Secret> payload_key;
};
// A new file key wrapped to every recipient (scrypt must be alone, as the spec says).
Encryption encrypt_to(const std::vector<Recipient>& recipients);
// The same with a given file key (tests and the test vectors).
Encryption encrypt_to(const std::vector<Recipient>& recipients, const Secret& file_key);

struct ParsedHeader {
  struct Stanza {
    std::string type;
    std::vector<std::string> args;
    std::vector<uint8_t> body;
  };
  std::vector<Stanza> stanzas;
  std::vector<uint8_t> mac;
  size_t mac_input_end = 0;   // bytes the MAC covers (through "---")
  size_t header_bytes = 0;    // through the "\n" after the MAC
};
// Parses the header at the start of `bytes`. nullopt: `bytes` ends before the header does
// (read more; nothing in a header is longer than kMaxHeaderBytes). Error when malformed.
std::optional<ParsedHeader> parse_header(std::string_view bytes);
// The payload key of a file whose first bytes are `bytes` (header and nonce, at least), using
// the first identity that unwraps a stanza; checks the header MAC. Error "no identity matched"
// or naming what is malformed. Returns the prefix length too.
struct Opened {
  uint64_t prefix = 0;
  std::shared_ptr<const Secret> payload_key;
};
Opened open_header(std::string_view bytes, const std::vector<Identity>& identities);

// Sizes: a payload of `plain` bytes is this many bytes after the prefix (at least one chunk).
uint64_t sealed_size(uint64_t plain);
// The plaintext size of a payload of `sealed` bytes; nullopt when no STREAM has that size.
std::optional<uint64_t> plain_size(uint64_t sealed);
uint64_t chunk_count(uint64_t plain);  // >= 1

// Seals one chunk (at most kChunk bytes; only the last may be shorter, or empty) into
// out[0 .. n + kTag). Thread-safe.
void seal_chunk(const Secret& payload_key, uint64_t index, bool last, const uint8_t* in, size_t n, uint8_t* out);
// Opens one sealed chunk of `n` bytes (kTag .. kSealedChunk) into out[0 .. n - kTag); false if
// it does not authenticate (damaged, swapped, wrong key, wrong last flag).
bool open_chunk(const Secret& payload_key, uint64_t index, bool last, const uint8_t* in, size_t n, uint8_t* out);

// Whole-buffer helpers (small side files such as the catalog, and tests).
std::string encrypt_buffer(const std::vector<Recipient>& recipients, std::string_view plain);
std::string decrypt_buffer(std::string_view file, const std::vector<Identity>& identities);

// Whether `bytes` starts like an age file.
bool looks_like_age(std::string_view bytes);

}  // namespace pbackup::age
