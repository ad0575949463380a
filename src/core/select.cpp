// Selection and globbing (see select.h). The matcher is our own small one because fnmatch(3)
// has no `**`; bracket classes are still handed to fnmatch, one character at a time.
#include "core/select.h"

#include <fcntl.h>
#include <fnmatch.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "core/file_list.h"
#include "pbackup/error.h"
#include "pbackup/pipeline.h"

namespace pbackup {
namespace {

// One pattern element: a run of stars (`**` when two or more), `?`, a bracket class, or a literal.
struct Tok {
  enum Kind { Star, Any, Class, Lit } kind;
  bool dbl = false;  // Star: `**` crosses '/'
  char c = 0;        // Lit
  bool escaped = false;  // Lit written with a backslash (so "**\/" is no "**/")
  std::string cls;   // Class: the whole "[...]" for fnmatch
};

// Length of a bracket expression starting at p ('['), or 0 when it has no closing ']'.
size_t bracket_len(const char* p) {
  size_t i = 1;
  if (p[i] == '!' || p[i] == '^') ++i;
  if (p[i] == ']') ++i;
  for (; p[i]; ++i)
    if (p[i] == ']') return i + 1;
  return 0;
}

std::vector<Tok> tokenize(const std::string& pattern) {
  std::vector<Tok> toks;
  for (const char* p = pattern.c_str(); *p;) {
    if (*p == '*') {
      const char* q = p;
      while (*q == '*') ++q;
      toks.push_back(Tok{Tok::Star, q - p > 1, 0, false, {}});
      p = q;
    } else if (*p == '?') {
      toks.push_back(Tok{Tok::Any, false, 0, false, {}});
      ++p;
    } else if (size_t n = *p == '[' ? bracket_len(p) : 0) {
      toks.push_back(Tok{Tok::Class, false, 0, false, std::string(p, n)});
      p += n;
    } else {
      bool esc = *p == '\\' && p[1];
      if (esc) ++p;
      toks.push_back(Tok{Tok::Lit, false, *p, esc, {}});
      ++p;
    }
  }
  return toks;
}

// Dynamic programming over (pattern element, text position), last element first: time
// O(elements x text) and three rows of memory whatever the pattern, so a pattern like
// "*a*a*a*a*a*b" on long names neither runs for ages nor has to give up (a give-up budget
// answered "no match" for names that do match).
bool match(const std::vector<Tok>& toks, const std::string& t) {
  const size_t n = t.size();
  // next2 = row i+2, next = row i+1, cur = row i; row[j]: elements i.. match t[j..]
  std::vector<char> next2(n + 1, 0), next(n + 1, 0), cur(n + 1, 0);
  next[n] = 1;  // the end of the pattern matches the end of the text
  for (size_t i = toks.size(); i-- > 0;) {
    const Tok& k = toks[i];
    if (k.kind == Tok::Star) {
      const bool last = i + 1 == toks.size();
      const bool slash_next = !last && toks[i + 1].kind == Tok::Lit && toks[i + 1].c == '/' && !toks[i + 1].escaped;
      cur[n] = last ? 1 : next[n];
      if (!cur[n] && k.dbl && slash_next && (n == 0 || t[n - 1] == '/')) cur[n] = next2[n];
      for (size_t j = n; j-- > 0;) {
        const bool cross = k.dbl || t[j] != '/';
        bool m = last ? (cross && cur[j + 1]) : (next[j] || (cross && cur[j + 1]));
        // "**/" also matches no directory at all ("a/**/b" matches "a/b")
        if (!m && k.dbl && slash_next && (j == 0 || t[j - 1] == '/')) m = next2[j];
        cur[j] = m;
      }
    } else {
      cur[n] = 0;
      for (size_t j = 0; j < n; ++j) {
        bool ok;
        if (k.kind == Tok::Lit) ok = t[j] == k.c;
        else if (t[j] == '/') ok = false;
        else if (k.kind == Tok::Any) ok = true;
        else {
          char one[2] = {t[j], 0};
          ok = ::fnmatch(k.cls.c_str(), one, 0) == 0;
        }
        cur[j] = ok && next[j + 1];
      }
    }
    std::swap(next2, next);
    std::swap(next, cur);
  }
  return next[0];
}

void encode_strings(ByteWriter& w, const std::vector<std::string>& v) {
  w.u64(v.size());
  for (auto& s : v) w.str(s);
}

}  // namespace

bool glob_match(const std::string& pattern, const std::string& text) {
  return match(tokenize(pattern), text);
}

bool has_glob(const std::string& s) { return s.find_first_of("*?[") != std::string::npos; }

bool pattern_matches_path(const std::string& pattern, const std::string& path, bool is_dir) {
  std::string p = pattern;
  bool dir_only = false;
  while (p.size() > 1 && p.back() == '/') {
    p.pop_back();
    dir_only = true;
  }
  if (dir_only && !is_dir) return false;
  bool anchored = false;
  while (p.size() > 1 && p[0] == '/') {
    p.erase(0, 1);
    anchored = true;
  }
  if (p.find('/') != std::string::npos || p.find("**") != std::string::npos) anchored = true;
  if (anchored) return glob_match(p, path);
  size_t slash = path.rfind('/');
  return glob_match(p, slash == std::string::npos ? path : path.substr(slash + 1));
}

bool Selection::excluded(const std::string& path, bool is_dir) const {
  for (auto& x : excludes)
    if (pattern_matches_path(x, path, is_dir)) return true;
  return false;
}

namespace {
constexpr size_t kMaxListItem = 1u << 20;  // a path or pattern longer than this is no path

// Calls f(item) for each `sep`-terminated item of `file` ("-": stdin), read in 64 KiB pieces:
// memory is one item, whatever the file is (a --files-from of /dev/zero once read until the
// machine ran out of memory). Throws Fatal naming the file.
template <class F>
void for_each_item(const std::string& file, char sep, F f) {
  const std::string shown = file == "-" ? "standard input" : file;
  int fd = file == "-" ? 0 : ::open(file.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw Fatal(sys_message("cannot open", file, errno));
  struct Closer {
    int fd;
    ~Closer() {
      if (fd > 0) ::close(fd);
    }
  } closer{fd};
  std::string item;
  char buf[1 << 16];
  while (true) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw Fatal(sys_message("cannot read", shown, errno));
    if (n == 0) break;
    for (const char* p = buf; p < buf + n;) {
      const char* e = static_cast<const char*>(std::memchr(p, sep, static_cast<size_t>(buf + n - p)));
      const char* end = e ? e : buf + n;
      item.append(p, static_cast<size_t>(end - p));
      if (item.size() > kMaxListItem)
        throw Fatal(quote(shown) + ": an item longer than " + std::to_string(kMaxListItem) + " bytes (" +
                    (sep ? "lines" : "NUL-separated names") + " expected)");
      if (!e) break;
      f(std::move(item));
      item.clear();
      p = e + 1;
    }
  }
  if (!item.empty()) f(std::move(item));
}
}  // namespace

std::vector<std::string> read_pattern_file(const std::string& file) {
  std::vector<std::string> out;
  for_each_item(file, '\n', [&](std::string line) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (!line.empty() && line[0] != '#') out.push_back(std::move(line));
  });
  return out;
}

std::vector<std::string> read_file_list(const std::string& file, bool null) {
  std::vector<std::string> out;
  for_each_item(file, null ? '\0' : '\n', [&](std::string item) {
    if (!item.empty()) out.push_back(std::move(item));
  });
  return out;
}

bool share_selection(Comm& comm, const BackupOptions& opt, Selection& sel, Log& log) {
  std::string msg;
  if (comm.rank() == 0) {
    ByteWriter w;
    try {
      sel.excludes = opt.excludes;
      for (auto& f : opt.exclude_from) {
        auto more = read_pattern_file(f);
        sel.excludes.insert(sel.excludes.end(), more.begin(), more.end());
      }
      if (!opt.files_from.empty()) {
        sel.files = read_file_list(opt.files_from, opt.null_separated);
        if (sel.files.empty()) throw Fatal("--files-from " + quote(opt.files_from) + ": lists no paths");
      }
      w.str("");
    } catch (const Fatal& f) {
      w = ByteWriter();
      w.str(f.what());
    }
    encode_strings(w, sel.excludes);
    msg = w.take();
  }
  comm.broadcast(msg, 0);
  ByteReader r(msg);
  std::string error = r.str();
  if (!error.empty()) {
    if (comm.rank() == 0) log.error(error);
    return false;
  }
  sel.excludes.clear();
  for (uint64_t i = 0, n = r.u64(); i < n; ++i) sel.excludes.push_back(r.str());
  sel.one_file_system = opt.one_file_system;
  return true;
}

std::string escape_name(const std::string& path) {
  std::string out;
  out.reserve(path.size());
  for (unsigned char c : path) {
    if (c == '\\') out += "\\\\";
    else if (c == '\n') out += "\\n";
    else if (c == '\t') out += "\\t";
    else if (c < 0x20 || c == 0x7f) {
      char b[8];
      std::snprintf(b, sizeof b, "\\%03o", c);
      out += b;
    } else out += static_cast<char>(c);
  }
  return out;
}

int run_dry_run(Comm& comm, const std::vector<Root>& roots, const Selection& sel, Log& log) {
  EntryList entries = scan(comm, roots, log, &sel);
  sort_by_path(comm, entries);
  mark_hardlinks(comm, entries);
  uint64_t warnings = comm.sum(log.warnings());
  // rank 0 prints the list as it comes, in order (one batch of another rank's at a time)
  uint64_t count = 0, files = 0, dirs = 0, other = 0, bytes = 0;
  visit_in_order(comm, entries, [&](Entry&& e) {
    std::string line = escape_name(e.path);
    if (e.type == EntryType::Dir) line += '/';
    line += '\n';
    std::fwrite(line.data(), 1, line.size(), stdout);
    ++count;
    if (e.type == EntryType::File) {
      ++files;
      bytes += e.size;
    } else if (e.type == EntryType::Hardlink) ++files;
    else if (e.type == EntryType::Dir) ++dirs;
    else ++other;
  });
  if (comm.rank() != 0) return warnings ? kExitWarnings : kExitOk;
  std::fflush(stdout);
  std::fprintf(stderr,
               "pbackup: dry run: %llu entries would be stored (%llu files, %llu directories, %llu other), "
               "%llu bytes of file data; nothing written\n",
               static_cast<unsigned long long>(count), static_cast<unsigned long long>(files),
               static_cast<unsigned long long>(dirs), static_cast<unsigned long long>(other),
               static_cast<unsigned long long>(bytes));
  return warnings ? kExitWarnings : kExitOk;
}

}  // namespace pbackup
