// age framing over OpenSSL 3 primitives (see age.h and https://age-encryption.org/v1).
#include "crypto/age.h"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/kdf.h>
#include <openssl/params.h>
#include <openssl/rand.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cstring>
#include <mutex>
#include <new>

namespace pbackup::age {
namespace {

constexpr std::string_view kIntro = "age-encryption.org/v1\n";
constexpr std::string_view kX25519Label = "age-encryption.org/v1/X25519";
constexpr std::string_view kScryptLabel = "age-encryption.org/v1/scrypt";
constexpr size_t kColumns = 64;

struct CipherCtxFree {
  void operator()(EVP_CIPHER_CTX* c) const { EVP_CIPHER_CTX_free(c); }
};
struct KdfFree {
  void operator()(EVP_KDF* k) const { EVP_KDF_free(k); }
};
struct KdfCtxFree {
  void operator()(EVP_KDF_CTX* c) const { EVP_KDF_CTX_free(c); }
};
struct PkeyFree {
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};
struct PkeyCtxFree {
  void operator()(EVP_PKEY_CTX* c) const { EVP_PKEY_CTX_free(c); }
};
using CipherCtx = std::unique_ptr<EVP_CIPHER_CTX, CipherCtxFree>;
using Kdf = std::unique_ptr<EVP_KDF, KdfFree>;
using KdfCtx = std::unique_ptr<EVP_KDF_CTX, KdfCtxFree>;
using Pkey = std::unique_ptr<EVP_PKEY, PkeyFree>;
using PkeyCtx = std::unique_ptr<EVP_PKEY_CTX, PkeyCtxFree>;

[[noreturn]] void openssl_failed(const char* what) { throw Error(std::string("OpenSSL: ") + what + " failed"); }

// HKDF-SHA-256(ikm, salt, info) into out[0..n).
void hkdf(const uint8_t* ikm, size_t ikm_n, const uint8_t* salt, size_t salt_n, std::string_view info, uint8_t* out,
          size_t n) {
  Kdf kdf(EVP_KDF_fetch(nullptr, "HKDF", nullptr));
  if (!kdf) openssl_failed("HKDF fetch");
  KdfCtx ctx(EVP_KDF_CTX_new(kdf.get()));
  if (!ctx) openssl_failed("HKDF context");
  OSSL_PARAM params[5];
  size_t i = 0;
  char digest[] = "SHA256";
  params[i++] = OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, digest, 0);
  params[i++] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, const_cast<uint8_t*>(ikm), ikm_n);
  if (salt_n) params[i++] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT, const_cast<uint8_t*>(salt), salt_n);
  params[i++] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, const_cast<char*>(info.data()), info.size());
  params[i] = OSSL_PARAM_construct_end();
  if (EVP_KDF_derive(ctx.get(), out, n, params) != 1) openssl_failed("HKDF");
}

void scrypt(const Secret& pass, const uint8_t* salt, size_t salt_n, int log_n, uint8_t* out, size_t n) {
  Kdf kdf(EVP_KDF_fetch(nullptr, "SCRYPT", nullptr));
  if (!kdf) openssl_failed("scrypt fetch");
  KdfCtx ctx(EVP_KDF_CTX_new(kdf.get()));
  if (!ctx) openssl_failed("scrypt context");
  uint64_t nn = uint64_t(1) << log_n;
  uint32_t r = 8, p = 1;
  uint64_t maxmem = (uint64_t(129) * r * nn) + (16 << 20);
  OSSL_PARAM params[] = {
      OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_PASSWORD, const_cast<uint8_t*>(pass.data()), pass.size()),
      OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT, const_cast<uint8_t*>(salt), salt_n),
      OSSL_PARAM_construct_uint64(OSSL_KDF_PARAM_SCRYPT_N, &nn),
      OSSL_PARAM_construct_uint32(OSSL_KDF_PARAM_SCRYPT_R, &r),
      OSSL_PARAM_construct_uint32(OSSL_KDF_PARAM_SCRYPT_P, &p),
      OSSL_PARAM_construct_uint64(OSSL_KDF_PARAM_SCRYPT_MAXMEM, &maxmem),
      OSSL_PARAM_construct_end()};
  if (EVP_KDF_derive(ctx.get(), out, n, params) != 1) openssl_failed("scrypt (out of memory?)");
}

// ChaCha20-Poly1305 with a 12-byte nonce, no associated data: out = ciphertext || tag.
void aead_seal(const uint8_t* key, const uint8_t nonce[12], const uint8_t* in, size_t n, uint8_t* out) {
  CipherCtx c(EVP_CIPHER_CTX_new());
  int len = 0;
  if (!c || EVP_EncryptInit_ex(c.get(), EVP_chacha20_poly1305(), nullptr, nullptr, nullptr) != 1 ||
      EVP_CIPHER_CTX_ctrl(c.get(), EVP_CTRL_AEAD_SET_IVLEN, 12, nullptr) != 1 ||
      EVP_EncryptInit_ex(c.get(), nullptr, nullptr, key, nonce) != 1)
    openssl_failed("ChaCha20-Poly1305 init");
  if (n && EVP_EncryptUpdate(c.get(), out, &len, in, static_cast<int>(n)) != 1) openssl_failed("ChaCha20-Poly1305");
  int fin = 0;
  if (EVP_EncryptFinal_ex(c.get(), out + len, &fin) != 1 ||
      EVP_CIPHER_CTX_ctrl(c.get(), EVP_CTRL_AEAD_GET_TAG, static_cast<int>(kTag), out + n) != 1)
    openssl_failed("ChaCha20-Poly1305 final");
}

// in = ciphertext || tag (n >= kTag); false when it does not authenticate (out then wiped).
bool aead_open(const uint8_t* key, const uint8_t nonce[12], const uint8_t* in, size_t n, uint8_t* out) {
  if (n < kTag) return false;
  size_t m = n - kTag;
  CipherCtx c(EVP_CIPHER_CTX_new());
  int len = 0;
  if (!c || EVP_DecryptInit_ex(c.get(), EVP_chacha20_poly1305(), nullptr, nullptr, nullptr) != 1 ||
      EVP_CIPHER_CTX_ctrl(c.get(), EVP_CTRL_AEAD_SET_IVLEN, 12, nullptr) != 1 ||
      EVP_DecryptInit_ex(c.get(), nullptr, nullptr, key, nonce) != 1)
    openssl_failed("ChaCha20-Poly1305 init");
  if (m && EVP_DecryptUpdate(c.get(), out, &len, in, static_cast<int>(m)) != 1) openssl_failed("ChaCha20-Poly1305");
  if (EVP_CIPHER_CTX_ctrl(c.get(), EVP_CTRL_AEAD_SET_TAG, static_cast<int>(kTag), const_cast<uint8_t*>(in + m)) != 1)
    openssl_failed("ChaCha20-Poly1305 tag");
  int fin = 0;
  if (EVP_DecryptFinal_ex(c.get(), out + len, &fin) != 1) {
    if (m) OPENSSL_cleanse(out, m);
    return false;
  }
  return true;
}

// X25519(secret, peer) into out; false for a low-order peer (all-zero shared secret).
bool x25519(const uint8_t* secret, const uint8_t* peer, uint8_t out[32]) {
  Pkey priv(EVP_PKEY_new_raw_private_key(EVP_PKEY_X25519, nullptr, secret, 32));
  Pkey pub(EVP_PKEY_new_raw_public_key(EVP_PKEY_X25519, nullptr, peer, 32));
  if (!priv || !pub) openssl_failed("X25519 key");
  PkeyCtx c(EVP_PKEY_CTX_new(priv.get(), nullptr));
  size_t len = 32;
  if (!c || EVP_PKEY_derive_init(c.get()) != 1) openssl_failed("X25519 init");
  if (EVP_PKEY_derive_set_peer(c.get(), pub.get()) != 1 || EVP_PKEY_derive(c.get(), out, &len) != 1 || len != 32)
    return false;
  uint8_t acc = 0;
  for (int i = 0; i < 32; ++i) acc |= out[i];
  return acc != 0;
}

void x25519_public(const uint8_t* secret, uint8_t out[32]) {
  Pkey priv(EVP_PKEY_new_raw_private_key(EVP_PKEY_X25519, nullptr, secret, 32));
  size_t len = 32;
  if (!priv || EVP_PKEY_get_raw_public_key(priv.get(), out, &len) != 1 || len != 32) openssl_failed("X25519 public key");
}

std::mutex g_seed_mu;
std::unique_ptr<Secret> g_seed;
uint64_t g_seed_counter = 0;

const char* kBech32 = "qpzry9x8gf2tvdw0s3jn54khce6mua7l";

uint32_t polymod(const std::vector<uint8_t>& v) {
  static const uint32_t gen[5] = {0x3b6a57b2, 0x26508e6d, 0x1ea119fa, 0x3d4233dd, 0x2a1462b3};
  uint32_t chk = 1;
  for (uint8_t x : v) {
    uint32_t top = chk >> 25;
    chk = ((chk & 0x1ffffff) << 5) ^ x;
    for (int i = 0; i < 5; ++i)
      if ((top >> i) & 1) chk ^= gen[i];
  }
  return chk;
}

std::vector<uint8_t> hrp_expand(std::string_view hrp) {
  std::vector<uint8_t> v;
  for (char c : hrp) v.push_back(static_cast<uint8_t>(c) >> 5);
  v.push_back(0);
  for (char c : hrp) v.push_back(static_cast<uint8_t>(c) & 31);
  return v;
}

bool convert_bits(const uint8_t* in, size_t n, int from, int to, bool pad, std::vector<uint8_t>& out) {
  uint32_t acc = 0;
  int bits = 0;
  const uint32_t maxv = (1u << to) - 1;
  for (size_t i = 0; i < n; ++i) {
    if (in[i] >> from) return false;
    acc = (acc << from) | in[i];
    bits += from;
    while (bits >= to) {
      bits -= to;
      out.push_back(static_cast<uint8_t>((acc >> bits) & maxv));
    }
  }
  if (pad) {
    if (bits) out.push_back(static_cast<uint8_t>((acc << (to - bits)) & maxv));
  } else if (bits >= from || ((acc << (to - bits)) & maxv)) {
    return false;
  }
  return true;
}

std::string lower(std::string_view s) {
  std::string r(s);
  for (char& c : r) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return r;
}

// The lines of a keys file, numbered, without '#' comments, blank lines and a final '\r'.
template <class F>
void each_key_line(std::string_view text, F f) {
  size_t lineno = 0;
  while (!text.empty()) {
    size_t nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    text = nl == std::string_view::npos ? std::string_view() : text.substr(nl + 1);
    ++lineno;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    while (!line.empty() && (line.back() == ' ' || line.back() == '\t')) line.remove_suffix(1);
    while (!line.empty() && (line.front() == ' ' || line.front() == '\t')) line.remove_prefix(1);
    if (line.empty() || line.front() == '#') continue;
    f(line, lineno);
  }
}

bool is_vchar_arg(std::string_view a) {
  if (a.empty()) return false;
  for (char c : a)
    if (c < 33 || c > 126) return false;
  return true;
}

bool is_b64_char(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' || c == '/';
}

// "18" -> 18; only plain decimal digits, no leading zero, 1..30.
std::optional<int> parse_work_factor(std::string_view s) {
  if (s.empty() || s.size() > 2 || s[0] == '0') return std::nullopt;
  int v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return std::nullopt;
    v = v * 10 + (c - '0');
  }
  if (v < 1 || v > 30) return std::nullopt;
  return v;
}

std::string stanza_text(std::string_view type, const std::vector<std::string>& args, const uint8_t* body, size_t n) {
  std::string s = "-> ";
  s += type;
  for (const auto& a : args) s += " " + a;
  s += "\n";
  std::string b = b64_encode(body, n);
  size_t i = 0;
  for (; i + kColumns <= b.size(); i += kColumns) s += b.substr(i, kColumns) + "\n";
  s += b.substr(i) + "\n";  // the last line is shorter than 64 columns (maybe empty)
  return s;
}

void header_mac(const Secret& file_key, std::string_view covered, uint8_t out[32]) {
  Secret mac_key(32);
  hkdf(file_key.data(), file_key.size(), nullptr, 0, "header", mac_key.data(), 32);
  unsigned len = 32;
  if (!HMAC(EVP_sha256(), mac_key.data(), 32, reinterpret_cast<const uint8_t*>(covered.data()), covered.size(), out, &len))
    openssl_failed("HMAC");
}

std::shared_ptr<const Secret> payload_key_of(const Secret& file_key, const uint8_t* nonce) {
  auto k = std::make_shared<Secret>(kKeyBytes);
  hkdf(file_key.data(), file_key.size(), nonce, kNonceBytes, "payload", k->data(), kKeyBytes);
  return k;
}

// The file key from one stanza for one identity, or nullopt when they do not match.
std::optional<Secret> unwrap(const ParsedHeader::Stanza& s, const Identity& id) {
  static const uint8_t zero_nonce[12] = {};
  if (s.type == "X25519" && id.kind == Identity::Kind::X25519) {
    if (s.args.size() != 1) throw Error("malformed X25519 stanza: wrong number of arguments");
    auto share = b64_decode(s.args[0]);
    if (!share || share->size() != 32) throw Error("malformed X25519 stanza: bad ephemeral share");
    if (s.body.size() != kFileKeyBytes + kTag) throw Error("malformed X25519 stanza: bad body size");
    Secret shared(32), wrap_key(32);
    if (!x25519(id.secret_key->data(), share->data(), shared.data())) throw Error("malformed X25519 stanza: low-order share");
    uint8_t salt[64];
    std::memcpy(salt, share->data(), 32);
    x25519_public(id.secret_key->data(), salt + 32);
    hkdf(shared.data(), 32, salt, 64, kX25519Label, wrap_key.data(), 32);
    Secret fk(kFileKeyBytes);
    if (!aead_open(wrap_key.data(), zero_nonce, s.body.data(), s.body.size(), fk.data())) return std::nullopt;
    return fk;
  }
  if (s.type == "scrypt" && id.kind == Identity::Kind::Scrypt) {
    if (s.args.size() != 2) throw Error("malformed scrypt stanza: wrong number of arguments");
    auto salt = b64_decode(s.args[0]);
    if (!salt || salt->size() != 16) throw Error("malformed scrypt stanza: bad salt");
    auto wf = parse_work_factor(s.args[1]);
    if (!wf) throw Error("malformed scrypt stanza: bad work factor");
    if (s.body.size() != kFileKeyBytes + kTag) throw Error("malformed scrypt stanza: bad body size");
    if (*wf > id.max_work_factor)
      throw Error("scrypt work factor " + std::to_string(*wf) + " is over the limit " + std::to_string(id.max_work_factor));
    std::string label(kScryptLabel);
    label.append(reinterpret_cast<const char*>(salt->data()), salt->size());
    Secret key(32);
    scrypt(*id.passphrase, reinterpret_cast<const uint8_t*>(label.data()), label.size(), *wf, key.data(), 32);
    Secret fk(kFileKeyBytes);
    if (!aead_open(key.data(), zero_nonce, s.body.data(), s.body.size(), fk.data())) return std::nullopt;
    return fk;
  }
  return std::nullopt;
}

}  // namespace

// ---- Secret ----

Secret::Secret(size_t n) {
  if (!n) return;
  size_t page = static_cast<size_t>(::sysconf(_SC_PAGESIZE));
  mapped_ = (n + page - 1) / page * page;
  void* p = ::mmap(nullptr, mapped_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) throw std::bad_alloc();
  (void)::mlock(p, mapped_);  // best effort: RLIMIT_MEMLOCK may forbid it
  (void)::madvise(p, mapped_, MADV_DONTDUMP);
  p_ = static_cast<uint8_t*>(p);
  n_ = n;
}

Secret::Secret(const void* p, size_t n) : Secret(n) {
  if (n) std::memcpy(p_, p, n);
}

Secret::~Secret() { release(); }

Secret::Secret(Secret&& o) noexcept : p_(o.p_), n_(o.n_), mapped_(o.mapped_) { o.p_ = nullptr, o.n_ = o.mapped_ = 0; }

Secret& Secret::operator=(Secret&& o) noexcept {
  if (this != &o) {
    release();
    p_ = o.p_, n_ = o.n_, mapped_ = o.mapped_;
    o.p_ = nullptr, o.n_ = o.mapped_ = 0;
  }
  return *this;
}

void Secret::release() noexcept {
  if (!p_) return;
  OPENSSL_cleanse(p_, mapped_);
  (void)::munlock(p_, mapped_);
  ::munmap(p_, mapped_);
  p_ = nullptr, n_ = mapped_ = 0;
}

void wipe(std::string& s) {
  if (!s.empty()) OPENSSL_cleanse(s.data(), s.size());
  s.clear();
}

// ---- randomness ----

void random_bytes(uint8_t* out, size_t n) {
  std::lock_guard<std::mutex> lock(g_seed_mu);
  if (!g_seed) {
    if (RAND_bytes(out, static_cast<int>(n)) != 1) openssl_failed("RAND_bytes");
    return;
  }
  while (n) {  // test stream: HMAC-SHA-256(seed, counter)
    uint8_t block[32], ctr[8];
    uint64_t c = g_seed_counter++;
    for (int i = 0; i < 8; ++i) ctr[i] = static_cast<uint8_t>(c >> (56 - 8 * i));
    unsigned len = 32;
    if (!HMAC(EVP_sha256(), g_seed->data(), static_cast<int>(g_seed->size()), ctr, 8, block, &len)) openssl_failed("HMAC");
    size_t k = std::min<size_t>(n, 32);
    std::memcpy(out, block, k);
    out += k, n -= k;
  }
}

void set_test_seed(std::string_view seed) {
  std::lock_guard<std::mutex> lock(g_seed_mu);
  g_seed_counter = 0;
  if (seed.empty()) g_seed.reset();
  else g_seed = std::make_unique<Secret>(seed.data(), seed.size());
}

// ---- encodings ----

std::string b64_encode(const uint8_t* p, size_t n) {
  std::string out(4 * ((n + 2) / 3) + 1, '\0');
  int len = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()), p, static_cast<int>(n));
  out.resize(static_cast<size_t>(len));
  while (!out.empty() && out.back() == '=') out.pop_back();
  return out;
}

std::optional<std::vector<uint8_t>> b64_decode(std::string_view s) {
  if (s.size() % 4 == 1 || s.size() > (1u << 24)) return std::nullopt;
  for (char c : s)
    if (!is_b64_char(c)) return std::nullopt;
  std::string padded(s);
  while (padded.size() % 4) padded += '=';
  std::vector<uint8_t> out(padded.size() / 4 * 3 + 1);
  int len = EVP_DecodeBlock(out.data(), reinterpret_cast<const unsigned char*>(padded.data()), static_cast<int>(padded.size()));
  if (len < 0) return std::nullopt;
  size_t real = static_cast<size_t>(len) - (padded.size() - s.size());
  out.resize(real);
  if (b64_encode(out.data(), out.size()) != s) return std::nullopt;  // canonical only
  return out;
}

std::string bech32_encode(std::string_view hrp, const uint8_t* data, size_t n, bool upper) {
  std::vector<uint8_t> five;
  convert_bits(data, n, 8, 5, true, five);
  std::string h = lower(hrp);
  std::vector<uint8_t> v = hrp_expand(h);
  v.insert(v.end(), five.begin(), five.end());
  v.insert(v.end(), 6, 0);
  uint32_t mod = polymod(v) ^ 1;
  std::string out = h + "1";
  for (uint8_t x : five) out += kBech32[x];
  for (int i = 0; i < 6; ++i) out += kBech32[(mod >> (5 * (5 - i))) & 31];
  if (upper)
    for (char& c : out) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return out;
}

bool bech32_decode(std::string_view text, std::string& hrp, std::vector<uint8_t>& data) {
  bool has_lower = false, has_upper = false;
  for (char c : text) {
    if (c < 33 || c > 126) return false;
    if (c >= 'a' && c <= 'z') has_lower = true;
    if (c >= 'A' && c <= 'Z') has_upper = true;
  }
  if (has_lower && has_upper) return false;
  std::string s = lower(text);
  std::vector<uint8_t> five;
  struct Wipe {  // a secret key's text passes through here: no copy is left behind
    std::string& s;
    std::vector<uint8_t>& v;
    ~Wipe() {
      OPENSSL_cleanse(s.data(), s.size());
      if (!v.empty()) OPENSSL_cleanse(v.data(), v.size());
    }
  } wipe{s, five};
  size_t sep = s.rfind('1');
  if (sep == std::string::npos || sep == 0 || sep + 7 > s.size()) return false;
  hrp = s.substr(0, sep);
  five.reserve(s.size());  // no reallocation leaves a copy behind
  data.reserve(s.size());
  for (size_t i = sep + 1; i < s.size(); ++i) {
    const char* p = std::strchr(kBech32, s[i]);
    if (!p || !s[i]) return false;
    five.push_back(static_cast<uint8_t>(p - kBech32));
  }
  std::vector<uint8_t> v = hrp_expand(hrp);
  v.insert(v.end(), five.begin(), five.end());
  if (polymod(v) != 1) return false;
  five.resize(five.size() - 6);
  data.clear();
  return convert_bits(five.data(), five.size(), 5, 8, false, data);
}

// ---- keys ----

Recipient parse_recipient(std::string_view text) {
  std::string hrp;
  std::vector<uint8_t> data;
  if (!bech32_decode(text, hrp, data) || hrp != "age" || data.size() != 32) {
    // echoed only when it looks like a mistyped public key: anything else may be a secret (a
    // secret key given by mistake, a passphrase) that must not reach a log
    std::string t(text.substr(0, 15));
    for (char& c : t) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    if (t == "AGE-SECRET-KEY-")
      throw Error("this is a secret key (AGE-SECRET-KEY-1...), not a recipient: give its public key (age-keygen -y FILE); not printed");
    if (text.size() > 4 && text.substr(0, 4) == "age1" && text.size() <= 100 &&
        std::all_of(text.begin(), text.end(), [](char c) { return std::isalnum(static_cast<unsigned char>(c)); }))
      throw Error("not an age X25519 recipient (age1...): " + std::string(text) + " (mistyped? its checksum does not match)");
    throw Error("not an age X25519 recipient (age1...); the text given is not printed");
  }
  Recipient r;
  std::memcpy(r.public_key, data.data(), 32);
  return r;
}

std::vector<Recipient> parse_recipients_file(std::string_view text, const std::string& name) {
  std::vector<Recipient> out;
  each_key_line(text, [&](std::string_view line, size_t n) {
    try {
      out.push_back(parse_recipient(line));
    } catch (const Error&) {
      throw Error("recipients file " + name + " line " + std::to_string(n) + ": not an age X25519 recipient (age1...)");
    }
  });
  if (out.empty()) throw Error("recipients file " + name + " lists no recipient");
  return out;
}

std::vector<Identity> parse_identity_file(std::string_view text, const std::string& name) {
  std::vector<Identity> out;
  each_key_line(text, [&](std::string_view line, size_t n) {
    std::string hrp;
    std::vector<uint8_t> data;
    bool ok = bech32_decode(line, hrp, data) && hrp == "age-secret-key-" && data.size() == 32;
    // the line is a secret: never quoted in the message
    if (!ok) {
      OPENSSL_cleanse(data.data(), data.size());
      throw Error("identity file " + name + " line " + std::to_string(n) + ": not an age secret key (AGE-SECRET-KEY-1...)");
    }
    Identity id;
    id.secret_key = std::make_shared<Secret>(data.data(), 32);
    OPENSSL_cleanse(data.data(), data.size());
    out.push_back(std::move(id));
  });
  if (out.empty()) throw Error("identity file " + name + " holds no identity");
  return out;
}

Recipient passphrase_recipient(std::shared_ptr<const Secret> passphrase, int work_factor) {
  Recipient r;
  r.kind = Recipient::Kind::Scrypt;
  r.passphrase = std::move(passphrase);
  r.work_factor = work_factor;
  return r;
}

Identity passphrase_identity(std::shared_ptr<const Secret> passphrase) {
  Identity id;
  id.kind = Identity::Kind::Scrypt;
  id.passphrase = std::move(passphrase);
  return id;
}

std::string public_key_of(const Identity& id) {
  uint8_t pub[32];
  x25519_public(id.secret_key->data(), pub);
  return bech32_encode("age", pub, 32, false);
}

Secret generate_identity_text() {
  Secret sk(32);
  random_bytes(sk.data(), 32);
  std::string s = bech32_encode("AGE-SECRET-KEY-", sk.data(), 32, true);
  Secret out(s.data(), s.size());
  OPENSSL_cleanse(s.data(), s.size());
  return out;
}

// ---- header ----

Encryption encrypt_to(const std::vector<Recipient>& recipients) {
  Secret fk(kFileKeyBytes);
  random_bytes(fk.data(), fk.size());
  return encrypt_to(recipients, fk);
}

Encryption encrypt_to(const std::vector<Recipient>& recipients, const Secret& file_key) {
  static const uint8_t zero_nonce[12] = {};
  if (recipients.empty()) throw Error("no recipients");
  bool scrypt_r = std::any_of(recipients.begin(), recipients.end(), [](const Recipient& r) { return r.kind == Recipient::Kind::Scrypt; });
  if (scrypt_r && recipients.size() > 1) throw Error("a passphrase cannot be combined with other recipients");
  std::string h(kIntro);
  for (const auto& r : recipients) {
    uint8_t body[kFileKeyBytes + kTag];
    if (r.kind == Recipient::Kind::X25519) {
      Secret eph(32), shared(32), wrap_key(32);
      random_bytes(eph.data(), 32);
      uint8_t salt[64];
      x25519_public(eph.data(), salt);
      std::memcpy(salt + 32, r.public_key, 32);
      if (!x25519(eph.data(), r.public_key, shared.data())) throw Error("invalid X25519 recipient (low-order point)");
      hkdf(shared.data(), 32, salt, 64, kX25519Label, wrap_key.data(), 32);
      aead_seal(wrap_key.data(), zero_nonce, file_key.data(), kFileKeyBytes, body);
      h += stanza_text("X25519", {b64_encode(salt, 32)}, body, sizeof body);
    } else {
      uint8_t salt[16];
      random_bytes(salt, sizeof salt);
      std::string label(kScryptLabel);
      label.append(reinterpret_cast<const char*>(salt), sizeof salt);
      Secret key(32);
      scrypt(*r.passphrase, reinterpret_cast<const uint8_t*>(label.data()), label.size(), r.work_factor, key.data(), 32);
      aead_seal(key.data(), zero_nonce, file_key.data(), kFileKeyBytes, body);
      h += stanza_text("scrypt", {b64_encode(salt, 16), std::to_string(r.work_factor)}, body, sizeof body);
    }
  }
  h += "---";
  uint8_t mac[32];
  header_mac(file_key, h, mac);
  h += " " + b64_encode(mac, 32) + "\n";
  uint8_t nonce[kNonceBytes];
  random_bytes(nonce, sizeof nonce);
  Encryption e;
  e.payload_key = payload_key_of(file_key, nonce);
  e.prefix = h + std::string(reinterpret_cast<const char*>(nonce), sizeof nonce);
  return e;
}

std::optional<ParsedHeader> parse_header(std::string_view bytes) {
  size_t pos = 0;
  // The next line without its '\n'; nullopt when the bytes end first.
  auto next_line = [&]() -> std::optional<std::string_view> {
    size_t nl = bytes.find('\n', pos);
    if (nl != std::string_view::npos && nl > kMaxHeaderBytes) throw Error("age header longer than 1 MiB");
    if (nl == std::string_view::npos) {
      if (bytes.size() > kMaxHeaderBytes) throw Error("age header longer than 1 MiB");
      return std::nullopt;
    }
    std::string_view l = bytes.substr(pos, nl - pos);
    pos = nl + 1;
    return l;
  };
  if (bytes.size() < kIntro.size()) {
    if (kIntro.substr(0, bytes.size()) != bytes) throw Error("not an age file (no age-encryption.org/v1 header)");
    return std::nullopt;
  }
  if (bytes.substr(0, kIntro.size()) != kIntro) throw Error("not an age file (no age-encryption.org/v1 header)");
  pos = kIntro.size();
  ParsedHeader h;
  auto line = next_line();
  if (!line) return std::nullopt;
  while (true) {
    if (line->substr(0, 3) == "---") {
      h.mac_input_end = pos - line->size() - 1 + 3;
      if (line->size() != 4 + 43 || (*line)[3] != ' ') throw Error("malformed age header: bad MAC line");
      auto mac = b64_decode(line->substr(4));
      if (!mac || mac->size() != 32) throw Error("malformed age header: bad MAC");
      h.mac = std::move(*mac);
      h.header_bytes = pos;
      return h;
    }
    if (line->substr(0, 3) != "-> ") throw Error("malformed age header: a line is neither a stanza nor the MAC");
    ParsedHeader::Stanza s;
    std::string_view rest = line->substr(3);
    size_t a = 0;
    std::vector<std::string> words;
    while (true) {
      size_t sp = rest.find(' ', a);
      std::string_view w = rest.substr(a, sp == std::string_view::npos ? std::string_view::npos : sp - a);
      if (!is_vchar_arg(w)) throw Error("malformed age header: empty or invalid stanza argument");
      words.emplace_back(w);
      if (sp == std::string_view::npos) break;
      a = sp + 1;
    }
    s.type = words[0];
    s.args.assign(words.begin() + 1, words.end());
    std::string b64;
    while (true) {
      auto bl = next_line();
      if (!bl) return std::nullopt;
      if (bl->size() > kColumns) throw Error("malformed age header: stanza body line longer than 64 columns");
      b64 += *bl;
      if (bl->size() < kColumns) break;
    }
    auto body = b64_decode(b64);
    if (!body) throw Error("malformed age header: stanza body is not canonical base64");
    s.body = std::move(*body);
    h.stanzas.push_back(std::move(s));
    line = next_line();
    if (!line) return std::nullopt;
  }
}

Opened open_header(std::string_view bytes, const std::vector<Identity>& identities) {
  auto h = parse_header(bytes);
  if (!h) throw Error("age header is truncated");
  if (h->stanzas.empty()) throw Error("age header has no recipient stanza");
  bool has_scrypt = false;
  for (const auto& s : h->stanzas) has_scrypt |= s.type == "scrypt";
  if (has_scrypt && h->stanzas.size() > 1) throw Error("malformed age header: a scrypt stanza must be alone");
  std::optional<Secret> fk;
  for (const auto& id : identities) {
    for (const auto& s : h->stanzas)
      if ((fk = unwrap(s, id))) break;
    if (fk) break;
  }
  if (!fk) throw Error(has_scrypt ? "the passphrase does not decrypt this age file" : "no identity matched any of the age file's recipients");
  uint8_t mac[32];
  header_mac(*fk, bytes.substr(0, h->mac_input_end), mac);
  if (CRYPTO_memcmp(mac, h->mac.data(), 32) != 0) throw Error("age header MAC does not match (header damaged or altered)");
  if (bytes.size() < h->header_bytes + kNonceBytes) throw Error("age file ends in its payload nonce (truncated)");
  Opened o;
  o.prefix = h->header_bytes + kNonceBytes;
  o.payload_key = payload_key_of(*fk, reinterpret_cast<const uint8_t*>(bytes.data() + h->header_bytes));
  return o;
}

// ---- payload ----

uint64_t chunk_count(uint64_t plain) { return plain == 0 ? 1 : (plain - 1) / kChunk + 1; }

uint64_t sealed_size(uint64_t plain) { return plain + kTag * chunk_count(plain); }

std::optional<uint64_t> plain_size(uint64_t sealed) {
  if (sealed < kTag) return std::nullopt;
  uint64_t chunks = (sealed - 1) / kSealedChunk + 1;
  uint64_t last = sealed - (chunks - 1) * kSealedChunk;
  if (last < kTag || (chunks > 1 && last == kTag)) return std::nullopt;  // only a lone last chunk may be empty
  return sealed - chunks * kTag;
}

static void chunk_nonce(uint64_t index, bool last, uint8_t nonce[12]) {
  std::memset(nonce, 0, 12);
  for (int i = 0; i < 8; ++i) nonce[3 + i] = static_cast<uint8_t>(index >> (56 - 8 * i));
  nonce[11] = last ? 1 : 0;
}

void seal_chunk(const Secret& key, uint64_t index, bool last, const uint8_t* in, size_t n, uint8_t* out) {
  if (n > kChunk || (!last && n != kChunk)) throw Error("internal: STREAM chunk of wrong size");
  uint8_t nonce[12];
  chunk_nonce(index, last, nonce);
  aead_seal(key.data(), nonce, in, n, out);
}

bool open_chunk(const Secret& key, uint64_t index, bool last, const uint8_t* in, size_t n, uint8_t* out) {
  if (n < kTag || n > kSealedChunk || (!last && n != kSealedChunk)) return false;
  uint8_t nonce[12];
  chunk_nonce(index, last, nonce);
  return aead_open(key.data(), nonce, in, n, out);
}

std::string encrypt_buffer(const std::vector<Recipient>& recipients, std::string_view plain) {
  Encryption e = encrypt_to(recipients);
  std::string out = e.prefix;
  uint64_t chunks = chunk_count(plain.size());
  size_t base = out.size();
  out.resize(base + sealed_size(plain.size()));
  for (uint64_t k = 0; k < chunks; ++k) {
    uint64_t off = k * kChunk;
    size_t n = static_cast<size_t>(std::min<uint64_t>(kChunk, plain.size() - off));
    seal_chunk(*e.payload_key, k, k + 1 == chunks, reinterpret_cast<const uint8_t*>(plain.data()) + off, n,
               reinterpret_cast<uint8_t*>(out.data()) + base + k * kSealedChunk);
  }
  return out;
}

std::string decrypt_buffer(std::string_view file, const std::vector<Identity>& identities) {
  Opened o = open_header(file, identities);
  auto plain = plain_size(file.size() - o.prefix);
  if (!plain) throw Error("age payload has an impossible size (truncated or damaged)");
  std::string out(*plain, '\0');
  uint64_t chunks = chunk_count(*plain);
  for (uint64_t k = 0; k < chunks; ++k) {
    uint64_t off = o.prefix + k * kSealedChunk;
    size_t n = static_cast<size_t>(std::min<uint64_t>(kSealedChunk, file.size() - off));
    if (!open_chunk(*o.payload_key, k, k + 1 == chunks, reinterpret_cast<const uint8_t*>(file.data()) + off, n,
                    reinterpret_cast<uint8_t*>(out.data()) + k * kChunk))
      throw Error("age payload chunk " + std::to_string(k) + " does not authenticate (damaged or altered)");
  }
  return out;
}

bool looks_like_age(std::string_view bytes) { return bytes.substr(0, kIntro.size()) == kIntro; }

}  // namespace pbackup::age
