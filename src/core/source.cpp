// Finding an archive or a fragment set (see source.h). A set is NAME.partN files with N all
// digits, ordered by N; when NAME.manifest.json exists, its fragment list is authoritative
// and every listed fragment must be there with its recorded size.
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
#include <set>
#include <sstream>

#include "dest/file_util.h"
#include "pbackup/bytes.h"
#include "pbackup/error.h"

namespace pbackup {
namespace {

bool is_dir(const std::string& p) {
  struct stat st {};
  return ::stat(p.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}
bool exists(const std::string& p) {
  struct stat st {};
  return ::stat(p.c_str(), &st) == 0;
}
uint64_t size_of(const std::string& p) {
  struct stat st {};
  if (::stat(p.c_str(), &st) != 0) throw Fatal(sys_message("cannot open", p, errno));
  return static_cast<uint64_t>(st.st_size);
}

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

std::vector<std::string> list_dir(const std::string& dir) {
  std::vector<std::string> names;
  DIR* d = ::opendir(dir.c_str());
  if (!d) throw Fatal(sys_message("cannot open directory", dir, errno));
  while (struct dirent* de = ::readdir(d))
    if (de->d_name[0] != '.') names.push_back(de->d_name);
  ::closedir(d);
  std::sort(names.begin(), names.end());
  return names;
}

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Fatal(sys_message("cannot read", path, errno));
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// The set named `base` in `dir`.
ArchiveSource load_set(const std::string& dir, const std::string& base, bool lenient) {
  ArchiveSource s;
  s.name = base;
  std::string man = dir + "/" + base + ".manifest.json";
  if (exists(man)) {
    try {
      s.manifest = manifest_from_json(slurp(man));
    } catch (const Fatal& f) {
      throw Fatal("manifest " + quote(man) + ": " + f.what());
    }
    s.manifest_path = man;
    std::vector<std::string> problems;
    const bool single = s.manifest->fragments.size() == 1;
    for (const auto& f : s.manifest->fragments) {
      // A one-file archive is the file beside the manifest, even if both were renamed.
      std::string p = dir + "/" + (single ? base : f.name);
      struct stat st {};
      if (::stat(p.c_str(), &st) != 0) {
        problems.push_back("fragment " + quote(p) + " is missing");
        st.st_size = 0;
      }
      if (static_cast<uint64_t>(st.st_size) != f.size)
        problems.push_back("fragment " + quote(p) + " has " + std::to_string(st.st_size) + " bytes, the manifest says " +
                           std::to_string(f.size) + (static_cast<uint64_t>(st.st_size) < f.size ? " (truncated)" : ""));
      s.files.push_back(p);
      s.sizes.push_back(static_cast<uint64_t>(st.st_size));
    }
    if (!problems.empty() && !lenient) {
      std::string msg = "archive " + quote(base) + " is incomplete:";
      for (auto& p : problems) msg += "\n  " + p;
      throw Fatal(msg);
    }
    return s;
  }
  if (exists(dir + "/" + base) && !is_dir(dir + "/" + base)) {
    s.files.push_back(dir + "/" + base);
  } else {
    std::map<uint64_t, std::string> parts;
    for (const auto& n : list_dir(dir)) {
      std::string b;
      uint64_t k;
      if (split_part(n, b, k) && b == base) parts[k] = dir + "/" + n;
    }
    if (parts.empty()) throw Fatal("no archive " + quote(base) + " and no fragments " + quote(base + ".part*") + " in " + quote(dir));
    uint64_t expect = parts.begin()->first;
    for (auto& [k, p] : parts) {
      if (k != expect) throw Fatal("fragment " + std::to_string(expect) + " of " + quote(base) + " is missing (next found: " + quote(p) + ")");
      ++expect;
      s.files.push_back(p);
    }
  }
  for (auto& f : s.files) s.sizes.push_back(size_of(f));
  return s;
}

}  // namespace

ArchiveSource resolve_source(const std::string& source, const std::string& base_name, bool lenient) {
  // Absolute: restore reads the fragments after entering the restore directory.
  std::string src = source;
  if (!src.empty() && src[0] != '/') {
    char* cwd = ::getcwd(nullptr, 0);
    if (!cwd) throw Fatal(sys_message("cannot resolve", source, errno));
    src = std::string(cwd) + "/" + src;
    std::free(cwd);
  }
  while (src.size() > 1 && src.back() == '/') src.pop_back();
  if (is_dir(src)) {
    if (!base_name.empty()) return load_set(src, base_name, lenient);
    std::set<std::string> sets;
    for (const auto& n : list_dir(src)) {
      std::string b;
      uint64_t k;
      if (split_part(n, b, k)) sets.insert(b);
    }
    if (sets.empty()) {
      for (const auto& n : list_dir(src)) {
        const std::string suffix = ".manifest.json";
        if (n.size() > suffix.size() && n.compare(n.size() - suffix.size(), suffix.size(), suffix) == 0)
          sets.insert(n.substr(0, n.size() - suffix.size()));
      }
    }
    if (sets.empty()) throw Fatal("no archive fragments (NAME.part0001, ...) or manifests in " + quote(src));
    if (sets.size() > 1) {
      std::string names;
      for (auto& n : sets) names += "\n  " + n;
      throw Fatal(quote(src) + " holds several archives; pick one with --original-base-filename NAME:" + names);
    }
    return load_set(src, *sets.begin(), lenient);
  }
  std::string dir = src.find('/') == std::string::npos ? "." : src.substr(0, src.rfind('/'));
  if (dir.empty()) dir = "/";
  std::string file = src.substr(src.rfind('/') == std::string::npos ? 0 : src.rfind('/') + 1);
  std::string b;
  uint64_t k;
  if (exists(src) && split_part(file, b, k)) return load_set(dir, b, lenient);
  if (exists(src) || exists(src + ".part0001") || exists(src + ".manifest.json")) return load_set(dir, file, lenient);
  throw Fatal(sys_message("cannot open archive", src, ENOENT));
}

std::string file_at(const ArchiveSource& s, uint64_t offset) {
  for (size_t i = 0; i < s.files.size(); ++i) {
    if (offset < s.sizes[i]) return s.files[i];
    offset -= s.sizes[i];
  }
  return s.files.empty() ? "" : s.files.back();
}

std::string read_range(const ArchiveSource& s, uint64_t offset, uint64_t n) {
  std::string out(n, '\0');
  uint64_t done = 0, base = 0;
  for (size_t i = 0; i < s.files.size() && done < n; ++i) {
    uint64_t end = base + s.sizes[i];
    if (offset + done < end) {
      uint64_t within = offset + done - base;
      uint64_t take = std::min(n - done, s.sizes[i] - within);
      Fd fd = open_or_throw(s.files[i], O_RDONLY);
      uint64_t got = pread_full(fd.get(), out.data() + done, take, within, s.files[i]);
      if (got != take) throw Fatal(quote(s.files[i]) + " is shorter than expected");
      done += take;
    }
    base = end;
  }
  if (done != n) throw Fatal("archive ends before byte " + std::to_string(offset + n));
  return out;
}

std::string encode_source(const ArchiveSource& s) {
  ByteWriter w;
  w.str(s.name);
  w.str(s.manifest_path);
  w.str(s.manifest ? manifest_to_json(*s.manifest) : "");
  w.u64(s.files.size());
  for (size_t i = 0; i < s.files.size(); ++i) {
    w.str(s.files[i]);
    w.u64(s.sizes[i]);
  }
  return w.take();
}

ArchiveSource decode_source(const std::string& bytes) {
  ByteReader r(bytes);
  ArchiveSource s;
  s.name = r.str();
  s.manifest_path = r.str();
  std::string json = r.str();
  if (!json.empty()) s.manifest = manifest_from_json(json);
  for (uint64_t i = 0, n = r.u64(); i < n; ++i) {
    s.files.push_back(r.str());
    s.sizes.push_back(r.u64());
  }
  return s;
}

}  // namespace pbackup
