// Finding an archive or a fragment set (see source.h). A set is NAME.partN files with N all
// digits, ordered by N; when NAME.manifest.json exists, its fragment list is authoritative
// and every listed fragment must be there with its recorded size. Fragments are found on disk
// by the name the set has there: a set renamed from s.* to r.* is r.tar.gz.part0001, ... (the
// manifest's names are the original ones; only their ".partN" tail is used).
#include "pbackup/source.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>

#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cerrno>
#include <fstream>
#include <map>
#include <optional>
#include <set>
#include <sstream>

#include "dest/file_util.h"
#include "dest/s3_shared.h"
#include "pbackup/bytes.h"
#include "pbackup/error.h"

namespace pbackup {
namespace {

// Where fragments live: a local directory or an S3 prefix. Names are relative to `dir`.
class Store {
 public:
  virtual ~Store() = default;
  virtual std::optional<uint64_t> size(const std::string& dir, const std::string& name) = 0;  // nullopt: absent
  virtual std::string read_all(const std::string& dir, const std::string& name) = 0;
  virtual std::vector<std::string> list(const std::string& dir) = 0;  // names, sorted
  virtual std::string path(const std::string& dir, const std::string& name) = 0;
  virtual std::string bucket() const { return ""; }
};

class LocalStore final : public Store {
 public:
  std::optional<uint64_t> size(const std::string& dir, const std::string& name) override {
    struct stat st {};
    if (::stat(path(dir, name).c_str(), &st) != 0 || S_ISDIR(st.st_mode)) return std::nullopt;
    return static_cast<uint64_t>(st.st_size);
  }
  std::string read_all(const std::string& dir, const std::string& name) override {
    std::string p = path(dir, name);
    std::ifstream in(p, std::ios::binary);
    if (!in) throw Fatal(sys_message("cannot read", p, errno));
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }
  std::vector<std::string> list(const std::string& dir) override {
    std::vector<std::string> names;
    DIR* d = ::opendir(dir.c_str());
    if (!d) throw Fatal(sys_message("cannot open directory", dir, errno));
    while (struct dirent* de = ::readdir(d))
      if (de->d_name[0] != '.') names.push_back(de->d_name);
    ::closedir(d);
    std::sort(names.begin(), names.end());
    return names;
  }
  std::string path(const std::string& dir, const std::string& name) override { return dir + "/" + name; }
};

class S3Store final : public Store {
 public:
  explicit S3Store(std::string bucket) : bucket_(std::move(bucket)) {}
  std::optional<uint64_t> size(const std::string& dir, const std::string& name) override {
    auto o = shared_s3_client().head_object(bucket_, path(dir, name));
    if (!o) return std::nullopt;
    return o->size;
  }
  std::string read_all(const std::string& dir, const std::string& name) override {
    return shared_s3_client().get_object(bucket_, path(dir, name));
  }
  std::vector<std::string> list(const std::string& dir) override {
    std::vector<std::string> names;
    for (auto& o : shared_s3_client().list_objects(bucket_, dir.empty() ? "" : dir + "/")) {
      std::string rest = o.key.substr(dir.empty() ? 0 : dir.size() + 1);
      if (!rest.empty() && rest.find('/') == std::string::npos && rest[0] != '.') names.push_back(rest);
    }
    return names;
  }
  std::string path(const std::string& dir, const std::string& name) override { return dir.empty() ? name : dir + "/" + name; }
  std::string bucket() const override { return bucket_; }

 private:
  std::string bucket_;
};

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
ArchiveSource load_set(Store& st, const std::string& dir, const std::string& base, bool lenient) {
  ArchiveSource s;
  s.name = base;
  s.bucket = st.bucket();
  const std::string man = base + ".manifest.json";
  if (st.size(dir, man)) {
    // Parsed and checked for structure here, so restore, list and verify all get the checks.
    const std::string shown = st.bucket().empty() ? st.path(dir, man) : "s3://" + st.bucket() + "/" + st.path(dir, man);
    s.manifest = read_manifest(st.read_all(dir, man), shown);
    s.manifest_path = st.path(dir, man);
    std::vector<std::string> problems;
    for (const auto& f : s.manifest->fragments) {
      std::string name = base + fragment_tail(*s.manifest, f.name, man);
      std::string p = st.path(dir, name);
      auto size = st.size(dir, name);
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
  if (auto size = st.size(dir, base)) {
    // GNU tar and gzip refuse an empty file; libarchive would read it as an empty tar
    if (*size == 0) throw Fatal("archive " + quote(st.path(dir, base)) + " is empty (0 bytes): not an archive");
    s.files.push_back(st.path(dir, base));
    s.sizes.push_back(*size);
    return s;
  }
  std::map<uint64_t, std::string> parts;
  for (const auto& n : st.list(dir)) {
    std::string b;
    uint64_t k;
    if (split_part(n, b, k) && b == base) parts[k] = n;
  }
  if (parts.empty()) throw Fatal("no archive " + quote(base) + " and no fragments " + quote(base + ".part*") + " in " + quote(st.path(dir, "")));
  uint64_t expect = parts.begin()->first;
  for (auto& [k, n] : parts) {
    if (k != expect) throw Fatal("fragment " + std::to_string(expect) + " of " + quote(base) + " is missing (next found: " + quote(n) + ")");
    ++expect;
    s.files.push_back(st.path(dir, n));
    s.sizes.push_back(st.size(dir, n).value_or(0));
  }
  uint64_t total = 0;
  for (uint64_t z : s.sizes) total += z;
  if (total == 0) throw Fatal("fragments " + quote(st.path(dir, base + ".part*")) + " are empty (0 bytes): not an archive");
  return s;
}

// The one set a directory holds (or the one `base_name` names).
ArchiveSource load_dir(Store& st, const std::string& dir, const std::string& base_name, bool lenient) {
  if (!base_name.empty()) return load_set(st, dir, base_name, lenient);
  std::vector<std::string> names = st.list(dir);
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
  std::string where = st.path(dir, "");
  if (sets.empty()) throw Fatal("no archive fragments (NAME.part0001, ...) or manifests in " + quote(where));
  if (sets.size() > 1) {
    std::string list;
    for (auto& n : sets) list += "\n  " + n;
    throw Fatal(quote(where) + " holds several archives; pick one with --original-base-filename NAME:" + list);
  }
  return load_set(st, dir, *sets.begin(), lenient);
}

// A path or key: a directory/prefix, a fragment, or an archive (with or without fragments).
ArchiveSource load_any(Store& st, const std::string& src, bool is_dir, const std::string& base_name, bool lenient) {
  if (is_dir) return load_dir(st, src, base_name, lenient);
  size_t slash = src.rfind('/');
  std::string dir = slash == std::string::npos ? "" : src.substr(0, slash);
  std::string file = slash == std::string::npos ? src : src.substr(slash + 1);
  if (slash == 0) dir = "/";
  std::string b;
  uint64_t k;
  if (st.size(dir, file) && split_part(file, b, k)) return load_set(st, dir, b, lenient);
  if (st.size(dir, file) || st.size(dir, file + ".part0001") || st.size(dir, file + ".manifest.json"))
    return load_set(st, dir, file, lenient);
  throw Fatal(sys_message("cannot open archive", st.bucket().empty() ? src : "s3://" + st.bucket() + "/" + src, ENOENT));
}

}  // namespace

ArchiveSource resolve_source(const std::string& source, const std::string& base_name, bool lenient) {
  if (is_s3_url(source)) {
    S3Url u = S3Url::parse(source);
    S3Store st(u.bucket);
    std::string key = u.key;
    bool dir = key.empty() || key.back() == '/';
    while (!key.empty() && key.back() == '/') key.pop_back();
    if (!dir && !base_name.empty()) dir = !st.size("", key);
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
  LocalStore local;
  return load_any(local, src, dir, base_name, lenient);
}

std::string file_at(const ArchiveSource& s, uint64_t offset) {
  for (size_t i = 0; i < s.files.size(); ++i) {
    if (offset < s.sizes[i]) return display(s, i);
    offset -= s.sizes[i];
  }
  return s.files.empty() ? "" : display(s, s.files.size() - 1);
}

std::string display(const ArchiveSource& s, size_t i) {
  return s.bucket.empty() ? s.files.at(i) : "s3://" + s.bucket + "/" + s.files.at(i);
}

bool file_exists(const ArchiveSource& s, size_t i) {
  if (!s.bucket.empty()) return shared_s3_client().head_object(s.bucket, s.files.at(i)).has_value();
  return ::access(s.files.at(i).c_str(), F_OK) == 0;
}

std::string read_file_range(const ArchiveSource& s, size_t i, uint64_t offset, uint64_t n) {
  if (n == 0) return {};
  if (!s.bucket.empty()) return shared_s3_client().get_range(s.bucket, s.files.at(i), offset, n);
  std::string out(n, '\0');
  Fd fd = open_or_throw(s.files.at(i), O_RDONLY);
  uint64_t got = pread_full(fd.get(), out.data(), n, offset, s.files[i]);
  if (got != n) throw Fatal(quote(s.files[i]) + " is shorter than expected");
  return out;
}

std::string read_range(const ArchiveSource& s, uint64_t offset, uint64_t n) {
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

}  // namespace pbackup
