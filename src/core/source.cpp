// Finding an archive or a fragment set (see source.h). A set is NAME.partN files with N all
// digits, ordered by N; when NAME.manifest.json exists, its fragment list is authoritative
// and every listed fragment must be there with its recorded size. Fragments are found on disk
// by the name the set has there: a set renamed from s.* to r.* is r.tar.gz.part0001, ... (the
// manifest's names are the original ones; only their ".partN" tail is used).
#include "pbackup/source.h"

#include <sys/stat.h>

#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cerrno>
#include <map>
#include <optional>
#include <set>

#include "core/age_source.h"
#include "dest/s3_client.h"
#include "pbackup/bytes.h"
#include "pbackup/error.h"

namespace pbackup {
namespace {

// "NAME.part0012" -> ("NAME", 12); false for other names.
bool split_part(const std::string& file, std::string& base, uint64_t& n) {
  auto pos = file.rfind(".part");
  if (pos == std::string::npos || pos + 5 == file.size()) return false;
  std::string digits = file.substr(pos + 5);
  if (digits.size() > 12 || !std::all_of(digits.begin(), digits.end(), ::isdigit)) return false;
  base = file.substr(0, pos);
  n = std::stoull(digits);
  return true;
}

// What follows the archive's name in a fragment's name: "" for a one-file archive, ".part0001"
// for a fragment. A manifest naming anything else (another directory, another archive) is
// refused, so a hostile manifest cannot make us read files outside the set.
std::string fragment_tail(const Manifest& m, const std::string& fragment, const std::string& manifest_name) {
  const std::string& a = m.archive;
  std::string tail;
  if (!a.empty() && fragment.size() >= a.size() && fragment.compare(0, a.size(), a) == 0) tail = fragment.substr(a.size());
  else if (m.fragments.size() == 1) return "";  // an old manifest without the archive's name
  else throw Fatal("manifest " + quote(manifest_name) + " lists fragment " + quote(fragment) + ", which is not a fragment of " + quote(a));
  const bool part = tail.size() > 5 && tail.size() <= 17 && tail.compare(0, 5, ".part") == 0 &&
                    std::all_of(tail.begin() + 5, tail.end(), [](char c) { return c >= '0' && c <= '9'; });
  if (!tail.empty() && !part)
    throw Fatal("manifest " + quote(manifest_name) + " lists fragment " + quote(fragment) + ", which is not a fragment of " + quote(a));
  return tail;
}

// The set named `base` in `dir`.
ArchiveSource load_set(const std::shared_ptr<Store>& store, const std::string& dir, const std::string& base, bool lenient) {
  Store& st = *store;
  ArchiveSource s;
  s.name = base;
  s.bucket = st.bucket();
  s.store = store;
  const std::string man = st.join(dir, base + ".manifest.json");
  if (st.size(man)) {
    // Parsed and checked for structure here, so restore, list and verify all get the checks.
    s.manifest = read_manifest(st.read_all(man), st.display(man));
    s.manifest_path = man;
    std::vector<std::string> problems;
    for (const auto& f : s.manifest->fragments) {
      std::string p = st.join(dir, base + fragment_tail(*s.manifest, f.name, base + ".manifest.json"));
      auto size = st.size(p);
      if (!size) problems.push_back("fragment " + quote(p) + " is missing");
      else if (*size != f.size)
        problems.push_back("fragment " + quote(p) + " has " + std::to_string(*size) + " bytes, the manifest says " +
                           std::to_string(f.size) + (*size < f.size ? " (truncated)" : ""));
      s.files.push_back(p);
      s.sizes.push_back(size.value_or(0));
    }
    if (!problems.empty() && !lenient) {
      std::string msg = "archive " + quote(base) + " is incomplete:";
      for (auto& p : problems) msg += "\n  " + p;
      throw Fatal(msg);
    }
    return s;
  }
  if (auto size = st.size(st.join(dir, base))) {
    // GNU tar and gzip refuse an empty file; libarchive would read it as an empty tar
    if (*size == 0) throw Fatal("archive " + quote(st.join(dir, base)) + " is empty (0 bytes): not an archive");
    s.files.push_back(st.join(dir, base));
    s.sizes.push_back(*size);
    return s;
  }
  std::map<uint64_t, std::string> parts;
  for (const auto& n : st.list(dir)) {
    std::string b;
    uint64_t k;
    if (split_part(n, b, k) && b == base) parts[k] = n;
  }
  if (parts.empty()) throw Fatal("no archive " + quote(base) + " and no fragments " + quote(base + ".part*") + " in " + quote(st.join(dir, "")));
  // Ours count from 1 (split(1) from 0): a set found from 2 on lost its first fragment, and an
  // uncompressed tar would restore from the second one on without a word.
  uint64_t expect = parts.begin()->first;
  if (expect > 1)
    throw Fatal("fragment 1 of " + quote(base) + " is missing (first found: " + quote(parts.begin()->second) + ")");
  for (auto& [k, n] : parts) {
    if (k != expect) throw Fatal("fragment " + std::to_string(expect) + " of " + quote(base) + " is missing (next found: " + quote(n) + ")");
    ++expect;
    s.files.push_back(st.join(dir, n));
    s.sizes.push_back(st.size(st.join(dir, n)).value_or(0));
  }
  uint64_t total = 0;
  for (uint64_t z : s.sizes) total += z;
  if (total == 0) throw Fatal("fragments " + quote(st.join(dir, base + ".part*")) + " are empty (0 bytes): not an archive");
  return s;
}

// The one set a directory holds (or the one `base_name` names).
ArchiveSource load_dir(const std::shared_ptr<Store>& st, const std::string& dir, const std::string& base_name, bool lenient) {
  if (!base_name.empty()) return load_set(st, dir, base_name, lenient);
  std::vector<std::string> names = st->list(dir);
  std::set<std::string> sets;
  for (const auto& n : names) {
    std::string b;
    uint64_t k;
    if (split_part(n, b, k)) sets.insert(b);
  }
  if (sets.empty()) {
    const std::string suffix = ".manifest.json";
    for (const auto& n : names)
      if (n.size() > suffix.size() && n.compare(n.size() - suffix.size(), suffix.size(), suffix) == 0)
        sets.insert(n.substr(0, n.size() - suffix.size()));
  }
  std::string where = st->join(dir, "");
  if (sets.empty()) throw Fatal("no archive fragments (NAME.part0001, ...) or manifests in " + quote(where));
  if (sets.size() > 1) {
    std::string list;
    for (auto& n : sets) list += "\n  " + n;
    throw Fatal(quote(where) + " holds several archives; pick one with --original-base-filename NAME:" + list);
  }
  return load_set(st, dir, *sets.begin(), lenient);
}

// A path or key: a directory/prefix, a fragment, or an archive (with or without fragments).
ArchiveSource load_any(const std::shared_ptr<Store>& st, const std::string& src, bool is_dir, const std::string& base_name, bool lenient) {
  if (is_dir) return load_dir(st, src, base_name, lenient);
  size_t slash = src.rfind('/');
  std::string dir = slash == std::string::npos ? "" : slash == 0 ? "/" : src.substr(0, slash);
  std::string file = slash == std::string::npos ? src : src.substr(slash + 1);
  std::string b;
  uint64_t k;
  auto at = [&](const std::string& leaf) { return st->size(st->join(dir, leaf)).has_value(); };
  if (at(file) && split_part(file, b, k)) return load_set(st, dir, b, lenient);
  if (at(file) || at(file + ".part0001") || at(file + ".manifest.json")) return load_set(st, dir, file, lenient);
  throw Fatal(sys_message("cannot open archive", st->display(src), ENOENT));
}

}  // namespace

ArchiveSource resolve_plain(const std::string& source, const std::string& base_name, const S3Flags& s3, bool lenient);

ArchiveSource resolve_source(const std::string& source, const std::string& base_name, const S3Flags& s3, bool lenient,
                             const AgeKeys& keys) {
  ArchiveSource s = resolve_plain(source, base_name, s3, lenient);
  open_encryption(s, keys);
  return s;
}

ArchiveSource resolve_plain(const std::string& source, const std::string& base_name, const S3Flags& s3, bool lenient) {
  if (is_s3_url(source)) {
    S3Url u = S3Url::parse(source);
    std::shared_ptr<Store> st = make_s3_store(u.bucket, s3);
    std::string key = u.key;
    bool dir = key.empty() || key.back() == '/';
    while (!key.empty() && key.back() == '/') key.pop_back();
    if (!dir && !base_name.empty()) dir = !st->size(key);
    // s3://b/p naming no archive is the prefix p/, as backup --output-dir s3://b/p takes it
    if (!dir && !key.empty() && !st->size(key) && !st->size(key + ".part0001") && !st->size(key + ".manifest.json")) dir = true;
    return load_any(st, key, dir, base_name, lenient);
  }
  // Absolute: restore reads the fragments after entering the restore directory.
  std::string src = source;
  if (!src.empty() && src[0] != '/') {
    char* cwd = ::getcwd(nullptr, 0);
    if (!cwd) throw Fatal(sys_message("cannot resolve", source, errno));
    src = std::string(cwd) + "/" + src;
    std::free(cwd);
  }
  while (src.size() > 1 && src.back() == '/') src.pop_back();
  struct stat st {};
  bool dir = ::stat(src.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
  return load_any(make_local_store(), src, dir, base_name, lenient);
}

std::string file_at(const ArchiveSource& s, uint64_t offset) {
  return file_at_raw(s, s.cipher ? cipher_offset(*s.cipher, offset) : offset);
}

uint64_t source_size(const ArchiveSource& s) {
  if (s.cipher) return s.cipher->plain_size;
  uint64_t n = 0;
  for (uint64_t z : s.sizes) n += z;
  return n;
}

std::string cipher_to_wire(const SourceCipher* c) {
  if (!c) return "";
  ByteWriter w;
  w.u64(c->prefix);
  w.u64(c->plain_size);
  w.str(c->key->view());
  return w.take();
}

std::shared_ptr<const SourceCipher> cipher_from_wire(const std::string& bytes) {
  if (bytes.empty()) return nullptr;
  ByteReader r(bytes);
  auto c = std::make_shared<SourceCipher>();
  c->prefix = r.u64();
  c->plain_size = r.u64();
  std::string key = r.str();
  c->key = std::make_shared<age::Secret>(key.data(), key.size());
  age::wipe(key);
  if (c->key->size() != age::kKeyBytes) throw std::runtime_error("internal message: bad payload key");
  return c;
}

std::string file_at_raw(const ArchiveSource& s, uint64_t offset) {
  for (size_t i = 0; i < s.files.size(); ++i) {
    if (offset < s.sizes[i]) return display(s, i);
    offset -= s.sizes[i];
  }
  return s.files.empty() ? "" : display(s, s.files.size() - 1);
}

std::string display(const ArchiveSource& s, size_t i) { return s.store->display(s.files.at(i)); }

bool file_exists(const ArchiveSource& s, size_t i) { return s.store->size(s.files.at(i)).has_value(); }

std::string read_file_range(const ArchiveSource& s, size_t i, uint64_t offset, uint64_t n) {
  return s.store->read_range(s.files.at(i), offset, n);
}

std::string read_range(const ArchiveSource& s, uint64_t offset, uint64_t n) {
  if (s.cipher) return decrypt_range(s, offset, n);
  return read_raw_range(s, offset, n);
}

std::string read_raw_range(const ArchiveSource& s, uint64_t offset, uint64_t n) {
  std::string out;
  out.reserve(n);
  uint64_t base = 0;
  for (size_t i = 0; i < s.files.size() && out.size() < n; ++i) {
    uint64_t end = base + s.sizes[i];
    if (offset + out.size() < end) {
      uint64_t within = offset + out.size() - base;
      out += read_file_range(s, i, within, std::min<uint64_t>(n - out.size(), s.sizes[i] - within));
    }
    base = end;
  }
  if (out.size() != n) throw Fatal("archive ends before byte " + std::to_string(offset + n));
  return out;
}

void attach_store(ArchiveSource& s, const S3Flags& s3) { s.store = make_store(s.bucket, s3); }

}  // namespace pbackup
