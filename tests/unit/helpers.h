// Shared test helpers: a temporary directory tree and reading an in-memory archive back with
// libarchive.
#pragma once
#include <archive.h>
#include <archive_entry.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>

#include "pbackup/options.h"

namespace testutil {

struct TempDir {
  std::filesystem::path path;
  TempDir() {
    char tmpl[] = "/tmp/pbackup-unit-XXXXXX";
    path = ::mkdtemp(tmpl);
  }
  ~TempDir() { std::filesystem::remove_all(path); }
};

inline void write_file(const std::filesystem::path& p, const std::string& data) {
  std::filesystem::create_directories(p.parent_path());
  std::ofstream(p, std::ios::binary) << data;
}

struct Member {
  std::string data, link, hardlink;
  int64_t mtime = 0;
  long mtime_nsec = 0;
  mode_t mode = 0;
  int64_t size = 0;
};

// path -> member, read with libarchive from bytes in memory (any format and codec).
inline std::map<std::string, Member> read_archive(const std::string& bytes) {
  std::map<std::string, Member> out;
  archive* a = archive_read_new();
  archive_read_support_filter_all(a);
  archive_read_support_format_all(a);
  if (archive_read_open_memory(a, bytes.data(), bytes.size()) != ARCHIVE_OK) {
    archive_read_free(a);
    throw std::runtime_error("cannot open archive in memory");
  }
  archive_entry* e;
  int r;
  while ((r = archive_read_next_header(a, &e)) == ARCHIVE_OK) {
    Member m;
    m.mode = archive_entry_mode(e);
    m.mtime = archive_entry_mtime(e);
    m.mtime_nsec = archive_entry_mtime_nsec(e);
    m.size = archive_entry_size(e);
    if (archive_entry_symlink(e)) m.link = archive_entry_symlink(e);
    if (archive_entry_hardlink(e)) m.hardlink = archive_entry_hardlink(e);
    char buf[65536];
    la_ssize_t n;
    while ((n = archive_read_data(a, buf, sizeof buf)) > 0) m.data.append(buf, static_cast<size_t>(n));
    if (n < 0) throw std::runtime_error(std::string("data error: ") + archive_error_string(a));
    out[archive_entry_pathname(e)] = m;
  }
  std::string err = r == ARCHIVE_EOF ? "" : archive_error_string(a);
  archive_read_free(a);
  if (!err.empty()) throw std::runtime_error("archive error: " + err);
  return out;
}

// Deterministic compressible bytes.
inline std::string pattern(size_t n, unsigned seed) {
  std::string s(n, '\0');
  uint32_t x = seed * 2654435761u + 1;
  for (size_t i = 0; i < n; ++i) {
    x = x * 1103515245u + 12345u;
    s[i] = static_cast<char>("abcdefgh    \n0123"[(x >> 16) % 17]);
  }
  return s;
}

// Options for a backup of `src` into the in-memory destination (tests/unit: read back with
// memory_object), 1 MiB blocks, no progress.
inline pbackup::BackupOptions memory_backup(const std::filesystem::path& src, const std::string& algo, const std::string& name,
                                            int threads = 2) {
  pbackup::BackupOptions o;
  o.sources = {src.string()};
  o.output_dir = "/tmp";
  o.algo = algo;
  o.dest_type = "memory";
  o.name = name;
  o.threads = threads;
  o.block_mb = 1;
  o.progress = 0;
  return o;
}

}  // namespace testutil
