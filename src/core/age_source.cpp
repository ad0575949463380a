// See age_source.h.
#include "core/age_source.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include "pbackup/error.h"
#include "pbackup/sha256.h"
#include "util/fd.h"

namespace pbackup {
namespace {

constexpr uint64_t kMaxKeyFile = 1 << 20;

// The whole of a small file holding secrets, straight into locked memory.
age::Secret read_secret_file(const std::string& path, const char* what) {
  Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) throw Fatal(sys_message(std::string("cannot open ") + what, path, errno));
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) throw Fatal(sys_message(std::string("cannot stat ") + what, path, errno));
  if (!S_ISREG(st.st_mode)) throw Fatal(std::string(what) + " " + quote(path) + ": not a regular file");
  if (static_cast<uint64_t>(st.st_size) > kMaxKeyFile) throw Fatal(std::string(what) + " " + quote(path) + ": larger than 1 MiB");
  age::Secret buf(static_cast<size_t>(st.st_size) + 1);
  uint64_t got = pread_full(fd.get(), reinterpret_cast<char*>(buf.data()), buf.size(), 0, path);
  if (got == buf.size()) throw Fatal(std::string(what) + " " + quote(path) + ": grew while read");
  age::Secret out(buf.data(), static_cast<size_t>(got));
  return out;
}

std::shared_ptr<const age::Secret> read_passphrase(const std::string& path) {
  age::Secret all = read_secret_file(path, "passphrase file");
  size_t n = 0;  // the first line, without its newline (and a '\r' before it)
  while (n < all.size() && all.data()[n] != '\n') ++n;
  if (n && all.data()[n - 1] == '\r') --n;
  if (n == 0) throw Fatal("passphrase file " + quote(path) + ": its first line is empty");
  return std::make_shared<age::Secret>(all.data(), n);
}

// Bytes [0, n) of the source's ciphertext, for the header.
std::string head_bytes(const ArchiveSource& s, uint64_t n) { return read_raw_range(s, 0, n); }

uint64_t raw_total(const ArchiveSource& s) {
  uint64_t t = 0;
  for (uint64_t z : s.sizes) t += z;
  return t;
}

}  // namespace

std::string sealed_manifest_path(const std::string& mp) {
  const std::string suffix = ".manifest.json";
  if (mp.size() <= suffix.size() || mp.compare(mp.size() - suffix.size(), suffix.size(), suffix) != 0)
    throw Fatal("internal: manifest path " + quote(mp));
  return mp.substr(0, mp.size() - suffix.size()) + ".manifest.age";
}

namespace {

// The whole manifest, from the sealed side file the name-free one points to.
Manifest open_sealed_manifest(const ArchiveSource& s, const std::vector<age::Identity>& ids) {
  const Manifest& red = *s.manifest;
  const std::string& mp = s.manifest_path;
  const std::string path = sealed_manifest_path(mp);
  const std::string shown = s.store->display(path);
  auto bad = [&](const std::string& why) { return Fatal("sealed manifest " + quote(shown) + ": " + why); };
  if (red.sealed_manifest.name.empty()) throw Fatal("manifest " + quote(s.store->display(mp)) + " of an encrypted archive names no sealed manifest");
  auto size = s.store->size(path);
  if (!size) throw bad("missing (the manifest lists it)");
  if (*size != red.sealed_manifest.size)
    throw bad("has " + std::to_string(*size) + " bytes, the manifest says " + std::to_string(red.sealed_manifest.size));
  std::string bytes = s.store->read_all(path);
  if (sha256_hex(bytes) != red.sealed_manifest.sha256) throw bad("SHA-256 differs from the manifest's (damaged or replaced)");
  std::string json;
  try {
    json = age::decrypt_buffer(bytes, ids);
  } catch (const age::Error& e) {
    throw bad(e.what());
  }
  Manifest full = read_manifest(json, shown);
  // the sealed copy must describe the same archive as the plaintext one
  bool same = full.encryption == "age" && full.sealed_manifest.name.empty() && full.archive_size == red.archive_size &&
              full.encrypted_size == red.encrypted_size && full.fragments.size() == red.fragments.size() &&
              full.blocks.size() == red.blocks.size();
  for (size_t i = 0; same && i < full.fragments.size(); ++i)
    same = full.fragments[i].name == red.fragments[i].name && full.fragments[i].size == red.fragments[i].size &&
           full.fragments[i].sha256 == red.fragments[i].sha256;
  for (size_t i = 0; same && i < full.blocks.size(); ++i)
    same = full.blocks[i].offset == red.blocks[i].offset && full.blocks[i].size == red.blocks[i].size &&
           (red.blocks[i].sha256.empty() || full.blocks[i].sha256 == red.blocks[i].sha256);  // empty since redaction drops them
  if (!same) throw bad("does not describe the same archive as " + quote(s.store->display(mp)));
  return full;
}

}  // namespace

std::vector<age::Recipient> load_recipients(const AgeKeys& keys) {
  std::vector<age::Recipient> out;
  for (const auto& r : keys.recipients) {
    try {
      out.push_back(age::parse_recipient(r));
    } catch (const age::Error& e) {
      throw Fatal(std::string("--encrypt-to: ") + e.what());
    }
  }
  for (const auto& f : keys.recipient_files) {
    age::Secret text = read_secret_file(f, "recipients file");  // not secret, but read the same way
    try {
      auto rs = age::parse_recipients_file(text.view(), quote(f));
      out.insert(out.end(), rs.begin(), rs.end());
    } catch (const age::Error& e) {
      throw Fatal(e.what());
    }
  }
  if (!keys.passphrase_file.empty()) {
    if (!out.empty()) throw Fatal("--passphrase-file cannot be combined with --encrypt-to or --encrypt-to-file (age allows a passphrase alone)");
    out.push_back(age::passphrase_recipient(read_passphrase(keys.passphrase_file)));
  }
  return out;
}

std::vector<age::Identity> load_identities(const AgeKeys& keys) {
  std::vector<age::Identity> out;
  for (const auto& f : keys.identity_files) {
    age::Secret text = read_secret_file(f, "identity file");
    try {
      auto ids = age::parse_identity_file(text.view(), quote(f));
      out.insert(out.end(), ids.begin(), ids.end());
    } catch (const age::Error& e) {
      throw Fatal(e.what());
    }
  }
  if (!keys.passphrase_file.empty()) out.push_back(age::passphrase_identity(read_passphrase(keys.passphrase_file)));
  return out;
}

void open_encryption(ArchiveSource& s, const AgeKeys& keys) {
  const uint64_t total = raw_total(s);
  bool encrypted = false;
  if (s.manifest) encrypted = !s.manifest->encryption.empty();
  else encrypted = total > 0 && age::looks_like_age(head_bytes(s, std::min<uint64_t>(total, 64)));
  if (!encrypted) return;
  if (!keys.decrypting())
    throw Fatal("archive " + quote(s.name) + " is encrypted (age): give --identity FILE or --passphrase-file FILE");
  std::vector<age::Identity> ids = load_identities(keys);
  auto fail = [&](const std::string& why) { return Fatal("archive " + quote(s.name) + ": " + why); };
  // the header: read more until it ends (it is at most 1 MiB)
  std::string head;
  std::optional<age::ParsedHeader> h;
  for (uint64_t want = 4096;; want *= 4) {
    head = head_bytes(s, std::min(total, want));
    try {
      h = age::parse_header(head);
    } catch (const age::Error& e) {
      throw fail(e.what());
    }
    if (h || head.size() == total || want > age::kMaxHeaderBytes) break;
  }
  if (!h) throw fail("the age header is truncated");
  if (head.size() < h->header_bytes + age::kNonceBytes) head = head_bytes(s, std::min<uint64_t>(total, h->header_bytes + age::kNonceBytes));
  age::Opened o;
  try {
    o = age::open_header(head, ids);
  } catch (const age::Error& e) {
    throw fail(e.what());
  }
  auto c = std::make_shared<SourceCipher>();
  c->prefix = o.prefix;
  c->key = o.payload_key;
  c->identities = ids;
  if (s.manifest) {  // its sizes: a short fragment is then a damaged chunk verify can name
    if (s.manifest->encrypted_size != o.prefix + age::sealed_size(s.manifest->archive_size))
      throw fail("the manifest's encrypted_size does not match the age header's length");
    c->plain_size = s.manifest->archive_size;
    s.manifest = open_sealed_manifest(s, ids);
  } else {
    auto plain = age::plain_size(total - o.prefix);
    if (!plain) throw fail("the encrypted payload has an impossible size (truncated or damaged)");
    c->plain_size = *plain;
  }
  s.cipher = c;
}

uint64_t cipher_offset(const SourceCipher& c, uint64_t offset) {
  return c.prefix + offset / age::kChunk * age::kSealedChunk + offset % age::kChunk;
}

std::string decrypt_range(const ArchiveSource& s, uint64_t offset, uint64_t n) {
  const SourceCipher& c = *s.cipher;
  if (offset > c.plain_size || n > c.plain_size - offset) throw Fatal("archive ends before byte " + std::to_string(offset + n));
  if (n == 0) return "";
  const uint64_t first = offset / age::kChunk, last = (offset + n - 1) / age::kChunk;
  const uint64_t chunks = age::chunk_count(c.plain_size);
  const uint64_t raw_off = c.prefix + first * age::kSealedChunk;
  const uint64_t raw_end = std::min(c.prefix + (last + 1) * age::kSealedChunk, c.prefix + age::sealed_size(c.plain_size));
  std::string raw = read_raw_range(s, raw_off, raw_end - raw_off);
  std::string out((last - first + 1) * age::kChunk, '\0');
  for (uint64_t k = first; k <= last; ++k) {
    const uint64_t at = (k - first) * age::kSealedChunk;
    const size_t len = static_cast<size_t>(std::min<uint64_t>(age::kSealedChunk, raw.size() - at));
    if (!age::open_chunk(*c.key, k, k + 1 == chunks, reinterpret_cast<const uint8_t*>(raw.data()) + at, len,
                         reinterpret_cast<uint8_t*>(out.data()) + (k - first) * age::kChunk)) {
      const uint64_t where = raw_off + at;
      std::string frag = s.files.size() > 1 ? ", fragment " + quote(file_at_raw(s, where)) : "";
      throw Fatal("encrypted chunk " + std::to_string(k) + " (archive bytes " + std::to_string(where) + ".." +
                  std::to_string(where + len) + frag + ") does not authenticate: damaged, truncated or altered");
    }
  }
  return out.substr(offset - first * age::kChunk, n);
}

std::string maybe_decrypt_side_file(std::string bytes, const AgeKeys& keys, const std::string& name) {
  if (!age::looks_like_age(bytes)) return bytes;
  if (!keys.decrypting()) throw Fatal(name + " is encrypted (age): give --identity FILE or --passphrase-file FILE");
  try {
    return age::decrypt_buffer(bytes, load_identities(keys));
  } catch (const age::Error& e) {
    throw Fatal(name + ": " + e.what());
  }
}

}  // namespace pbackup
