// Restore and list through libarchive, which reads any tar flavour, zip, and every codec
// (ours or anyone's). Extraction happens inside --restore-to and never writes outside it:
// members with '..' components are refused, leading '/' is removed (as GNU tar does), and
// libarchive's secure flags refuse writing through symlinks; hard-link targets get the same
// checks. Directory modes and times are applied last (libarchive defers them to close).
// One rank restores; the others wait for its verdict (parallel restore by blocks is separate).
// gzip is decompressed by our GunzipStream (libarchive's gzip filter checks no CRC), and every
// write error is fatal and names the file (libarchive reports a failed write as a warning).
#include <archive.h>
#include <nlohmann/json.hpp>
#include <archive_entry.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <ctime>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <thread>
#include <utility>

#include "codec/gunzip_stream.h"
#include "core/restore_nodes.h"
#include "core/catalog.h"
#include "core/incremental.h"
#include "core/extract.h"
#include "core/messages.h"
#include "core/parallel_restore.h"
#include "core/query.h"
#include "core/select.h"
#include "core/xattr.h"
#include "format/pax.h"
#include "pbackup/error.h"
#include "pbackup/pipeline.h"
#include "pbackup/source.h"
#include "util/file_util.h"
#include "util/units.h"

namespace pbackup {
namespace {

// Progress of the stream through libarchive: bumped for every entry, data block and input byte
// read past the furthest one so far (re-reading the same bytes is no progress).
std::atomic<uint64_t> g_stream_progress{0};
void stream_progress() { g_stream_progress.fetch_add(1, std::memory_order_relaxed); }
// Only time inside libarchive's read calls counts toward the stall: a slow disk being written,
// or `list` blocked on a pipe nobody reads yet, is not libarchive looping.
std::atomic<bool> g_in_read{false};
template <class F>
auto reading(F f) {
  g_in_read.store(true, std::memory_order_relaxed);
  struct Done {
    ~Done() { g_in_read.store(false, std::memory_order_relaxed); }
  } done;
  return f();
}

// libarchive 3.6.2 loops forever or takes memory without bound on some crafted archives (an ISO
// whose Rock Ridge CE records point at one another: 2.6 GB in 8 s; a XAR with a double link: a
// busy loop; gzip inside gzip, each layer decompressed by libarchive). A thread stuck inside
// libarchive cannot be interrupted, so when the stream makes no progress for --stall-timeout
// seconds, or the process's resident size passes --stream-memory-limit, this watchdog says so
// and ends the process with exit 2 (under mpirun the launcher then ends the other ranks).
class StreamWatchdog {
 public:
  StreamWatchdog(const RestoreOptions& opt, Log& log) : opt_(opt), log_(log) {
    if (opt.stall_timeout_s > 0 || opt.stream_memory_mib > 0) thread_ = std::thread([this] { watch(); });
  }
  StreamWatchdog(const StreamWatchdog&) = delete;
  StreamWatchdog& operator=(const StreamWatchdog&) = delete;
  ~StreamWatchdog() {
    {
      std::lock_guard<std::mutex> l(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    if (thread_.joinable()) thread_.join();
  }

 private:
  static uint64_t resident_mib() {
    std::ifstream f("/proc/self/statm");
    uint64_t size = 0, rss = 0;
    if (!(f >> size >> rss)) return 0;
    return rss * static_cast<uint64_t>(::sysconf(_SC_PAGESIZE)) >> 20;
  }
  void watch() {
    using clock = std::chrono::steady_clock;
    uint64_t seen = g_stream_progress.load();
    auto since = clock::now();
    std::unique_lock<std::mutex> l(mu_);
    while (!cv_.wait_for(l, std::chrono::milliseconds(100), [this] { return stop_; })) {
      std::string why;
      const uint64_t now = g_stream_progress.load();
      if (now != seen || !g_in_read.load(std::memory_order_relaxed)) {
        seen = now;
        since = clock::now();
      } else if (opt_.stall_timeout_s > 0 && clock::now() - since >= std::chrono::seconds(opt_.stall_timeout_s)) {
        why = "no progress in " + std::to_string(opt_.stall_timeout_s) +
              " s (no new entry, data or input: libarchive loops on some damaged or crafted archives); "
              "stopped (--stall-timeout SECONDS changes the limit)";
      }
      const uint64_t mib = opt_.stream_memory_mib ? resident_mib() : 0;
      if (why.empty() && opt_.stream_memory_mib > 0 && mib > opt_.stream_memory_mib)
        why = "reading it took " + std::to_string(mib) + " MiB of memory, past the limit of " +
              std::to_string(opt_.stream_memory_mib) +
              " MiB (libarchive grows without bound on some damaged or crafted archives); "
              "stopped (--stream-memory-limit MIB changes the limit)";
      if (!why.empty()) {
        remove_temp_files_now();  // the member being written is incomplete: not left looking restored
        log_.error("archive " + quote(opt_.source) + ": " + why);
        std::fflush(nullptr);
        std::_Exit(kExitFatal);
      }
    }
  }
  const RestoreOptions& opt_;
  Log& log_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::thread thread_;
};

struct ReadArchive {
  archive* a = archive_read_new();
  ReadArchive() = default;
  ReadArchive(const ReadArchive&) = delete;
  ReadArchive& operator=(const ReadArchive&) = delete;
  ~ReadArchive() { archive_read_free(a); }
};
struct WriteDisk {
  archive* a = archive_write_disk_new();
  WriteDisk() = default;
  WriteDisk(const WriteDisk&) = delete;
  WriteDisk& operator=(const WriteDisk&) = delete;
  ~WriteDisk() { archive_write_free(a); }
};

// Reads a set of files as one seekable stream (libarchive callbacks). libarchive's own
// archive_read_open_filenames stops the gzip filter at the first file boundary, so fragments
// are joined here.
class JoinedFiles {
 public:
  explicit JoinedFiles(const ArchiveSource& s) : s_(s), total_(source_size(s)) {}
  static la_ssize_t read(archive* a, void* self, const void** out) {
    auto* j = static_cast<JoinedFiles*>(self);
    if (j->s_.cipher) {  // encrypted: 1 MiB of plaintext at a time, each chunk authenticated first
      try {
        j->plain_ = read_range(j->s_, j->pos_, std::min<uint64_t>(1 << 20, j->total_ - j->pos_));
      } catch (const std::exception& e) {
        archive_set_error(a, EIO, "%s", e.what());
        return -1;
      }
      j->pos_ += j->plain_.size();
      *out = j->plain_.data();
      return static_cast<la_ssize_t>(j->plain_.size());
    }
    uint64_t base = 0;
    for (size_t i = 0; i < j->s_.files.size(); ++i) {
      if (j->pos_ < base + j->s_.sizes[i]) {
        try {
          if (j->open_ != i) {
            j->reader_ = j->s_.store->open(j->s_.files[i]);
            j->open_ = i;
          }
          uint64_t within = j->pos_ - base;
          std::string_view piece = j->reader_->read(within, j->s_.sizes[i] - within);
          j->pos_ += piece.size();
          if (j->pos_ > j->furthest_) {
            j->furthest_ = j->pos_;
            stream_progress();
          }
          *out = piece.data();
          return static_cast<la_ssize_t>(piece.size());
        } catch (const std::exception& e) {
          archive_set_error(a, EIO, "%s", e.what());
          return -1;
        }
      }
      base += j->s_.sizes[i];
    }
    return 0;
  }
  static la_int64_t skip(archive*, void* self, la_int64_t request) {
    auto* j = static_cast<JoinedFiles*>(self);
    uint64_t n = std::min<uint64_t>(static_cast<uint64_t>(request), j->total_ - j->pos_);
    j->pos_ += n;
    return static_cast<la_int64_t>(n);
  }
  static la_int64_t seek(archive*, void* self, la_int64_t offset, int whence) {
    auto* j = static_cast<JoinedFiles*>(self);
    int64_t base = whence == SEEK_SET ? 0 : whence == SEEK_CUR ? static_cast<int64_t>(j->pos_) : static_cast<int64_t>(j->total_);
    int64_t to = base + offset;
    if (to < 0 || to > static_cast<int64_t>(j->total_)) return ARCHIVE_FATAL;
    j->pos_ = static_cast<uint64_t>(to);
    return to;
  }

 private:
  const ArchiveSource& s_;
  uint64_t pos_ = 0, total_ = 0, furthest_ = 0;
  size_t open_ = ~size_t{0};
  std::unique_ptr<StoreReader> reader_;  // file open_, read in order (store.h)
  std::string plain_;                    // decrypted bytes handed out last (encrypted archives)
};

// The formats restore and list read: real archive formats only. Not libarchive's "all": its
// mtree reader takes a short text file for a list of entries (and creates files from it), and
// raw/empty would turn anything into "0 entries restored". GNU tar refuses such input; so do we.
void support_archive_formats(archive* a) {
  archive_read_support_format_tar(a);  // ustar, pax, GNU, v7
  archive_read_support_format_zip(a);
  archive_read_support_format_cpio(a);
  archive_read_support_format_7zip(a);
  archive_read_support_format_ar(a);
  archive_read_support_format_xar(a);
  archive_read_support_format_iso9660(a);
  archive_read_support_format_rar(a);
  archive_read_support_format_rar5(a);
  archive_read_support_format_cab(a);
  archive_read_support_format_lha(a);
}

// Opens the archive (one file, or a fragment set read in order as one stream). gzip is
// decompressed by our own GunzipStream, which checks every member's CRC-32 and size (the
// libarchive gzip filter checks neither); libarchive's filters do the other codecs (bzip2, zstd
// and xz check their own CRCs or checksums there).
struct OpenArchive {
  ArchiveSource source;
  std::unique_ptr<JoinedFiles> joined;
  std::unique_ptr<GunzipStream> gunzip;
  static la_ssize_t read_gunzipped(archive* a, void* self, const void** out) {
    auto* o = static_cast<OpenArchive*>(self);
    try {
      std::string_view piece = o->gunzip->next();
      *out = piece.data();
      return static_cast<la_ssize_t>(piece.size());
    } catch (const std::exception& e) {
      archive_set_error(a, EIO, "%s", e.what());
      return -1;
    }
  }
};
// --passphrase-file: the first line of FILE (without its line end) is handed to libarchive for
// encrypted zip members (ZipCrypto, WinZip AES) and encrypted 7z/RAR. It is never printed.
void add_passphrase(archive* a, const std::string& file) {
  std::ifstream f(file, std::ios::binary);
  if (!f) throw Fatal("cannot read passphrase file " + quote(file) + ": " + std::strerror(errno));
  std::string pass;  // at most 1 MiB, as for age (a device or a huge file is not read without end)
  for (char c; f.get(c) && c != '\n';) {
    if (pass.size() >= (1u << 20)) {
      std::fill(pass.begin(), pass.end(), '\0');
      throw Fatal("passphrase file " + quote(file) + ": its first line is longer than 1 MiB");
    }
    pass.push_back(c);
  }
  if (!pass.empty() && pass.back() == '\r') pass.pop_back();
  if (pass.empty()) throw Fatal("passphrase file " + quote(file) + " holds no passphrase on its first line");
  int rc = archive_read_add_passphrase(a, pass.c_str());
  std::fill(pass.begin(), pass.end(), '\0');
  if (rc != ARCHIVE_OK) throw Fatal("libarchive: cannot take the passphrase");
}

// libarchive's word for an encrypted member it cannot read, with what to do about it.
std::string passphrase_hint(const RestoreOptions& opt, const char* err) {
  std::string e = err ? err : "";
  if (e.find("assphrase") == std::string::npos && e.find("ncrypt") == std::string::npos) return "";
  return opt.keys.passphrase_file.empty() ? " (the member is encrypted: give its passphrase with --passphrase-file FILE)"
                                     : " (the member is encrypted: the passphrase in " + quote(opt.keys.passphrase_file) + " does not open it)";
}

void open_for_reading(ReadArchive& r, OpenArchive& o, const RestoreOptions& opt) {
  const std::string& source = opt.source;
  if (!r.a) throw Fatal("libarchive: out of memory");
  if (!opt.keys.passphrase_file.empty()) add_passphrase(r.a, opt.keys.passphrase_file);
  o.source = resolve_source(source, opt.original_base_filename, {opt.s3_endpoint, opt.s3_region, opt.s3_addressing}, false, opt.keys);
  o.joined = std::make_unique<JoinedFiles>(o.source);
  archive_read_support_filter_all(r.a);
  support_archive_formats(r.a);
  const void* head = nullptr;
  la_ssize_t n = JoinedFiles::read(r.a, o.joined.get(), &head);
  if (n < 0) throw Fatal("cannot open archive " + quote(source) + ": " + archive_error_string(r.a));
  JoinedFiles::seek(r.a, o.joined.get(), 0, SEEK_SET);
  if (GunzipStream::looks_like_gzip(std::string_view(static_cast<const char*>(head), static_cast<size_t>(n)))) {
    archive* a = r.a;
    JoinedFiles* j = o.joined.get();
    o.gunzip = std::make_unique<GunzipStream>([a, j]() {
      const void* p = nullptr;
      la_ssize_t got = JoinedFiles::read(a, j, &p);
      if (got < 0) throw Fatal(archive_error_string(a));
      return std::string_view(static_cast<const char*>(p), static_cast<size_t>(got));
    });
    archive_read_set_read_callback(r.a, OpenArchive::read_gunzipped);
    archive_read_set_callback_data(r.a, &o);
  } else {
    archive_read_set_read_callback(r.a, JoinedFiles::read);
    archive_read_set_skip_callback(r.a, JoinedFiles::skip);
    archive_read_set_seek_callback(r.a, JoinedFiles::seek);
    archive_read_set_callback_data(r.a, o.joined.get());
  }
  if (reading([&] { return archive_read_open1(r.a); }) != ARCHIVE_OK)
    throw Fatal("cannot open archive " + quote(source) + ": " + archive_error_string(r.a));
}

// libarchive stops at the tar end marker; the rest of a gzip stream is read too, so every
// member's CRC is checked and trailing garbage is reported as damage.
void read_to_end(OpenArchive& o) {
  if (!o.gunzip) return;
  try {
    while (!reading([&] { return o.gunzip->next(); }).empty()) {
    }
  } catch (const Fatal& f) {
    throw Fatal("archive " + quote(o.source.name) + " is damaged after its last member: " + f.what());
  }
}

// "archive X is damaged or truncated near byte N (fragment F): reason"
std::string damage(const ReadArchive& r, const OpenArchive& o, const std::string& where) {
  const ArchiveSource& s = o.source;
  uint64_t at = o.gunzip ? o.gunzip->compressed_offset()
                         : static_cast<uint64_t>(std::max<la_int64_t>(0, archive_filter_bytes(r.a, -1)));
  std::string msg = "archive " + quote(s.name) + " is damaged or truncated" + where + " near byte " + std::to_string(at);
  if (s.files.size() > 1) msg += " (fragment " + quote(file_at(s, at ? at - 1 : 0)) + ")";
  const char* e = archive_error_string(r.a);
  return msg + ": " + (e ? e : "unknown error");
}

// "archive X: 'NAME' cannot be read (near byte N): reason": one entry libarchive gives up on
// while the stream itself goes on.
std::string unreadable_message(const ReadArchive& r, const OpenArchive& o, const std::string& name) {
  uint64_t at = o.gunzip ? o.gunzip->compressed_offset()
                         : static_cast<uint64_t>(std::max<la_int64_t>(0, archive_filter_bytes(r.a, -1)));
  const char* e = archive_error_string(r.a);
  return "archive " + quote(o.source.name) + ": " + quote(name) + " cannot be read (near byte " + std::to_string(at) +
         "): " + (e ? e : "unknown error");
}

// Entries libarchive gives up on must move the stream on: the same input position for this many
// failed headers in a row means it cannot get past one (and the watchdog would never fire, as
// each attempt looks like a new entry).
class FailedHeaders {
 public:
  void check(const ReadArchive& r, const OpenArchive& o) {
    const la_int64_t at = archive_filter_bytes(r.a, -1);
    same_ = at == at_ ? same_ + 1 : 0;
    at_ = at;
    if (same_ >= 100) throw Fatal("archive " + quote(o.source.name) + ": libarchive does not get past byte " + std::to_string(at) + " (100 unreadable entries there in a row)");
  }

 private:
  la_int64_t at_ = -1;
  int same_ = 0;
};

// libarchive's message for the last write error, with strerror when it gives only an errno.
std::string write_error(const WriteDisk& w) {
  const char* msg = archive_error_string(w.a);
  int err = archive_errno(w.a);
  std::string s = msg ? msg : "write failed";
  if (err > 0 && s.find(std::strerror(err)) == std::string::npos) s += std::string(": ") + std::strerror(err);
  return s;
}

// The xattr and ACL records of a libarchive entry (it parses SCHILY.xattr.*, LIBARCHIVE.xattr.*
// and SCHILY.acl.*), in the form Extractor::apply_xattrs takes.
std::string entry_xattr_records(archive_entry* e) {
  std::string recs;
  for (int type : {ARCHIVE_ENTRY_ACL_TYPE_ACCESS, ARCHIVE_ENTRY_ACL_TYPE_DEFAULT}) {
    if (!(archive_entry_acl_types(e) & type)) continue;
    char* text = archive_entry_acl_to_text(e, nullptr, type);
    if (!text) continue;
    std::string t(text);
    std::free(text);
    if (!t.empty()) add_pax_record(recs, type == ARCHIVE_ENTRY_ACL_TYPE_ACCESS ? kAclAccessKey : kAclDefaultKey, t + "\n");
  }
  if (archive_entry_xattr_reset(e) > 0) {
    const char* name;
    const void* value;
    size_t size;
    while (archive_entry_xattr_next(e, &name, &value, &size) == ARCHIVE_OK)
      // libarchive hands SCHILY names over as stored: GNU tar's %3D / %25 are undone by
      // decode_xattr_name when the records are applied.
      add_pax_record(recs, std::string(kXattrKey) + name, std::string_view(static_cast<const char*>(value), size));
  }
  return recs;
}

// libarchive keeps an entry's mode inside its ACL and sets the group bits from the access
// ACL's group:: entry when it parses SCHILY.acl.access; with a mask (every extended ACL has
// one) the group bits are the mask's, as in the header (GNU tar restores a directory 0775
// whose ACL says group::r-x,mask::rwx as 0775, not 0755). Puts the mask's bits back; call it
// after entry_xattr_records (the ACL text is made from the mode).
void mode_from_acl_mask(archive_entry* e, const std::string& recs) {
  bool found = false;
  for_each_pax_record(recs, [&](std::string_view k, std::string_view v) {
    if (k != kAclAccessKey || found) return;
    for (size_t at = 0; at < v.size();) {
      size_t end = v.find_first_of(",\n", at);
      if (end == std::string_view::npos) end = v.size();
      std::string_view ent = v.substr(at, end - at);
      at = end + 1;
      if (ent.substr(0, 6) != "mask::" || ent.size() < 9) continue;
      mode_t bits = (ent[6] == 'r' ? 4 : 0) | (ent[7] == 'w' ? 2 : 0) | (ent[8] == 'x' ? 1 : 0);
      archive_entry_set_perm(e, (archive_entry_perm(e) & ~mode_t{070}) | (bits << 3));
      found = true;
      return;
    }
  });
}

// Runs `body` inside `dir` and always returns to the original working directory.
template <class F>
int in_directory(const std::string& dir, F body) {
  int cwd = ::open(".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (cwd < 0) throw_sys("cannot open", ".", errno);
  if (::chdir(dir.c_str()) != 0) {
    int err = errno;
    ::close(cwd);
    throw_sys("cannot enter restore directory", dir, err);
  }
  int rc;
  try {
    rc = body();
  } catch (...) {
    if (::fchdir(cwd) != 0) {}
    ::close(cwd);
    throw;
  }
  if (::fchdir(cwd) != 0) {}
  ::close(cwd);
  return rc;
}


// --keep-old-files, --skip-old-files, --keep-newer-files (GNU tar): whether the member `name`
// (relative to the restore directory, the working directory here) must leave what is there
// alone. Directories are always merged into, as tar does.
bool keep_existing(const RestoreOptions& opt, const std::string& name, archive_entry* e, Log& log, bool& failed) {
  using X = RestoreOptions::Existing;
  if (opt.existing == X::Overwrite) return false;
  struct stat st {};
  if (::lstat(name.c_str(), &st) != 0 || S_ISDIR(st.st_mode)) return false;
  if (opt.existing == X::KeepOld) {
    log.error(quote(opt.restore_to + "/" + name) + ": already exists; not replaced (--keep-old-files)");
    failed = true;
    return true;
  }
  if (opt.existing == X::SkipOld) return true;
  const int64_t sec = archive_entry_mtime(e);
  const long nsec = archive_entry_mtime_nsec(e);
  if (st.st_mtim.tv_sec > sec || (st.st_mtim.tv_sec == sec && st.st_mtim.tv_nsec >= nsec)) {
    log.notice(quote(opt.restore_to + "/" + name) + ": is newer or as old as the archive's copy; kept (--keep-newer-files)");
    return true;
  }
  return false;
}

// The same decision for the parallel tar path, made by rank 0 from the catalog before any block
// is restored (a file restored by this run never counts as existing): the paths to leave alone,
// sorted. Returns false when the archive has no catalog (then the restore streams).
bool paths_to_keep(const ArchiveSource& s, const RestoreOptions& opt, Log& log, std::vector<std::string>& keep, uint64_t& errors) {
  using X = RestoreOptions::Existing;
  return read_archive_catalog(s, [&](const CatalogRecord& r) {
    if (r.type == EntryType::Dir || !path_selected(r.path, opt.only)) return;
    struct stat st {};
    const std::string disk = opt.restore_to + "/" + r.path;
    if (::lstat(disk.c_str(), &st) != 0 || S_ISDIR(st.st_mode)) return;
    if (opt.existing == X::KeepOld) {
      log.error(quote(disk) + ": already exists; not replaced (--keep-old-files)");
      ++errors;
    } else if (opt.existing == X::KeepNewer) {
      if (st.st_mtim.tv_sec < r.mtime_sec || (st.st_mtim.tv_sec == r.mtime_sec && static_cast<uint32_t>(st.st_mtim.tv_nsec) < r.mtime_nsec)) return;
      log.notice(quote(disk) + ": is newer or as old as the archive's copy; kept (--keep-newer-files)");
    }
    keep.push_back(r.path);
  });
}

int restore_one_rank(const RestoreOptions& opt, Log& log) {
  const auto t0 = std::chrono::steady_clock::now();
  StreamWatchdog watchdog(opt, log);
  OpenArchive oa;
  ReadArchive in;
  open_for_reading(in, oa, opt);
  // The first header before anything is created: input that is no archive creates nothing.
  archive_entry* e = nullptr;
  int first = reading([&] { return archive_read_next_header(in.a, &e); });
  if (first == ARCHIVE_FATAL) throw Fatal(damage(in, oa, ""));
  make_dirs(opt.restore_to, "cannot create restore directory");

  WriteDisk out;
  int flags = ARCHIVE_EXTRACT_TIME | ARCHIVE_EXTRACT_PERM | ARCHIVE_EXTRACT_SECURE_SYMLINKS |
              ARCHIVE_EXTRACT_SECURE_NODOTDOT | ARCHIVE_EXTRACT_SECURE_NOABSOLUTEPATHS;
  if (::geteuid() == 0) flags |= ARCHIVE_EXTRACT_OWNER;
  archive_write_disk_set_options(out.a, flags);
  if (!opt.numeric_owner) archive_write_disk_set_standard_lookup(out.a);  // names first, as GNU tar
  // xattrs and ACLs go on through our own O_NOFOLLOW fds (extract.cpp), as on the parallel paths.
  // Directories get theirs after archive_write_close, when nothing more is created below them
  // (a default ACL applied early would be inherited by members that had none) and libarchive
  // has set their modes (a later chmod would rewrite the ACL mask).
  Extractor meta(opt.restore_to, &log);
  DeferredXattrs dir_xattrs(kMaxDeferredXattrBytes);
  bool told_early = false;
  auto apply = [&](const std::string& name, char type, const std::string& recs) {
    try {
      meta.apply_xattrs(name, type, recs);
    } catch (const std::exception& ex) {
      log.warn(std::string(ex.what()) + "; extended attributes not restored");
    }
  };

  uint64_t unreadable = 0;
  FailedHeaders failed_headers;
  std::atomic<uint64_t> entries{0}, bytes{0};  // read by the progress ticker
  const bool tty = ::isatty(2);
  std::optional<Ticker> ticker;
  if (opt.progress)
    ticker.emplace(progress_interval(tty), [&] {  // a stream has no total: what is done so far
    std::fprintf(stderr, "%spbackup: restore (streaming): %llu entries, %s written%s", tty ? "\r" : ("[" + log_timestamp() + "] ").c_str(),
                 static_cast<unsigned long long>(entries.load()), human_bytes(bytes.load()).c_str(), tty ? "\033[K" : "\n");
    std::fflush(stderr);
  });
  bool member_failed = false;
  // An entry libarchive cannot read (ARCHIVE_FAILED or a warning on its data: an unsupported
  // method, an encrypted member, a CRC mismatch) is named, left out, and counted; the restore
  // goes on with the next entry, as bsdtar does. Only ARCHIVE_FATAL (the stream itself is
  // broken) stops it at once.
  auto unreadable_entry = [&](const std::string& what) {
    log.error(what + "; not restored");
    ++unreadable;
    member_failed = true;
  };
  std::vector<bool> matched(opt.only.size(), false);
  // The regular files this restore created (device, inode): a hard link that carries data (pax,
  // cpio) writes into its target's inode, which must be one of these, never a file that was in
  // the restore directory before (perhaps a hard link to a file outside it).
  std::set<std::pair<dev_t, ino_t>> made;
  const std::string src = quote(opt.source);
  int rc = in_directory(opt.restore_to, [&]() -> int {
    for (bool have_first = true;; have_first = false) {
      if (interrupted()) throw Fatal("interrupted");
      int r = have_first ? first : reading([&] { return archive_read_next_header(in.a, &e); });
      if (r == ARCHIVE_EOF) break;
      if (r == ARCHIVE_OK || r == ARCHIVE_WARN) stream_progress();
      if (r == ARCHIVE_WARN) log.warn(src + ": " + archive_error_string(in.a));
      else if (r == ARCHIVE_FAILED) {  // this entry only: the next one can be read
        failed_headers.check(in, oa);
        const char* p = e ? archive_entry_pathname(e) : nullptr;
        const std::string n = p ? p : "(an entry without a name)";
        unreadable_entry(unreadable_message(in, oa, n) + passphrase_hint(opt, archive_error_string(in.a)));
        continue;
      } else if (r != ARCHIVE_OK)
        throw Fatal(damage(in, oa, ""));
      std::string name = archive_entry_pathname(e) ? archive_entry_pathname(e) : "";
      std::string why;
      bool ok = sanitize_member(name, why);
      if (!why.empty() && ok) log.notice(quote(name) + ": " + why);
      const char* hl = archive_entry_hardlink(e);
      std::string link = hl ? hl : "";
      std::string link_why;
      if (ok && hl && !sanitize_member(link, link_why)) {
        ok = false;
        why = "hard link target " + quote(hl) + ": " + link_why;
      }
      if (!ok) {
        if (!why.empty()) {
          log.error(quote(archive_entry_pathname(e)) + ": " + why + "; not extracted");
          member_failed = true;
        }
        continue;
      }
      if (!path_selected(name, opt.only)) continue;
      for (size_t k = 0; k < opt.only.size(); ++k)
        if (path_selected(name, {opt.only[k]})) matched[k] = true;
      if (keep_existing(opt, name, e, log, member_failed)) continue;
      if (hl && archive_entry_size(e) > 0) {
        struct stat st {};
        if (::lstat(link.c_str(), &st) != 0 || !S_ISREG(st.st_mode) || !made.count({st.st_dev, st.st_ino})) {
          log.error(quote(name) + ": a hard link carrying data to " + quote(link) +
                    ", which is not a file this restore created; not extracted (nothing is written through it)");
          member_failed = true;
          continue;
        }
      }
      archive_entry_set_pathname(e, name.c_str());
      if (hl) archive_entry_set_hardlink(e, link.c_str());
      const std::string recs = hl ? std::string() : entry_xattr_records(e);
      if (!recs.empty()) mode_from_acl_mask(e, recs);
      r = archive_write_header(out.a, e);
      if (r < ARCHIVE_WARN) {
        log.error(quote(name) + ": " + archive_error_string(out.a) + "; not extracted");
        member_failed = true;
        if (r == ARCHIVE_FATAL) throw Fatal("cannot go on after " + quote(name));
        continue;
      }
      if (r == ARCHIVE_WARN) log.warn(quote(name) + ": " + archive_error_string(out.a), name);
      bool data_failed = false;
      struct Partial {  // until the member is complete, a process ended early removes it
        explicit Partial(const std::string& n) { set_partial_file(n); }
        ~Partial() { set_partial_file(""); }
      } partial(!hl && archive_entry_filetype(e) == AE_IFREG ? name : std::string());
      if (archive_entry_size(e) > 0) {
        const void* buf;
        size_t size;
        la_int64_t offset;
        // The member's data failed: close and remove its partial file, so nothing damaged is
        // left looking restored; the words to add to the message.
        auto drop_partial = [&]() -> std::string {
          archive_write_finish_entry(out.a);
          return ::unlink(name.c_str()) == 0 ? " (the partial file was removed)" : "";
        };
        while (true) {
          if (interrupted()) {  // a big member: stop within the signal's grace, not after it
            drop_partial();
            throw Fatal("interrupted");
          }
          r = reading([&] { return archive_read_data_block(in.a, &buf, &size, &offset); });
          stream_progress();
          if (r == ARCHIVE_EOF) break;
          if (r == ARCHIVE_FATAL) {  // the stream itself is broken: stop, but leave nothing damaged on disk
            std::string why = damage(in, oa, " (in " + quote(name) + ")");
            throw Fatal(why + drop_partial());
          }
          if (r != ARCHIVE_OK) {  // libarchive reports a zip member's CRC mismatch as a warning
            std::string what = unreadable_message(in, oa, name) + passphrase_hint(opt, archive_error_string(in.a));
            unreadable_entry(what + drop_partial());
            data_failed = true;
            break;
          }
          // A forged sparse map can place data past the file's size; archive_write_disk then
          // computes a negative length and writes from past the end of the buffer.
          const uint64_t whole = static_cast<uint64_t>(archive_entry_size(e));
          if (offset < 0 || static_cast<uint64_t>(offset) > whole || size > whole - static_cast<uint64_t>(offset)) {
            const std::string removed = drop_partial();
            throw Fatal("archive " + quote(opt.source) + " is damaged: " + quote(name) + " has data at bytes " +
                        std::to_string(offset) + ".." + std::to_string(offset + static_cast<la_int64_t>(size)) +
                        ", past its size of " + std::to_string(whole) + removed);
          }
          // libarchive reports a failed or short write (a full disk) as ARCHIVE_WARN: any
          // result but OK means the file is not what the archive holds.
          // The partial file is removed, so nothing is left looking restored.
          if (archive_write_data_block(out.a, buf, size, offset) != ARCHIVE_OK) {
            std::string why = write_error(out);  // before drop_partial closes it
            throw Fatal("cannot write " + quote(opt.restore_to + "/" + name) + ": " + why + drop_partial());
          }
          bytes += size;
        }
      }
      if (data_failed) continue;
      // Finishing writes the rest (a trailing hole is made by ftruncate) and the metadata; a
      // WARN here is a file or its metadata not restored as the archive holds it.
      r = archive_write_finish_entry(out.a);
      if (r == ARCHIVE_FATAL) throw Fatal("cannot finish " + quote(opt.restore_to + "/" + name) + ": " + write_error(out));
      if (r != ARCHIVE_OK) {
        log.error(quote(opt.restore_to + "/" + name) + ": " + write_error(out));
        member_failed = true;
      }
      struct stat st {};
      if (!hl && archive_entry_filetype(e) == AE_IFREG && ::lstat(name.c_str(), &st) == 0 && S_ISREG(st.st_mode))
        made.insert({st.st_dev, st.st_ino});
      if (!hl) {
        if (!recs.empty()) {
          mode_t ft = archive_entry_filetype(e);
          char type = ft == AE_IFDIR ? '5' : ft == AE_IFIFO ? '6' : ft == AE_IFREG ? '0' : '2';
          if (type == '5' && !dir_xattrs.add(name, recs)) {
            if (!told_early)
              log.warn("directories' extended attributes and ACLs past " + std::to_string(kMaxDeferredXattrBytes >> 20) +
                       " MiB are applied when each directory is made (from " + quote(name) + " on): default ACLs may reach members restored below them");
            told_early = true;
            apply(name, type, recs);
          } else if (type != '5') {
            apply(name, type, recs);
          }
        }
      }
      ++entries;
    }
    read_to_end(oa);
    if (archive_write_close(out.a) != ARCHIVE_OK) {
      log.error(std::string("setting directory modes and times: ") + archive_error_string(out.a));
      member_failed = true;
    }
    for (auto& [name, recs] : dir_xattrs.items()) apply(name, '5', recs);
    return 0;
  });
  (void)rc;
  for (size_t k = 0; k < opt.only.size(); ++k)
    if (!matched[k]) {
      log.error(quote(opt.only[k]) + ": not found in archive");
      member_failed = true;
    }
  if (unreadable)
    log.error(std::to_string(unreadable) + (unreadable == 1 ? " entry" : " entries") + " of " + quote(opt.source) +
              " could not be read (named above) and were not restored");
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  ticker.reset();
  std::fprintf(stderr, "%spbackup: restored %llu entries, %s in %.2f s (%s/s) into %s\n", tty ? "\r\033[K" : "",
               static_cast<unsigned long long>(entries.load()), human_bytes(bytes).c_str(), secs,
               human_bytes(static_cast<uint64_t>(bytes / std::max(secs, 1e-9))).c_str(), quote(opt.restore_to).c_str());
  RunSummary& sum = run_summary();
  sum.archive = opt.source;
  sum.entries = entries;
  sum.bytes_out = bytes;
  sum.seconds = secs;
  if (member_failed) return kExitFatal;
  return log.warnings() ? kExitWarnings : kExitOk;
}

}  // namespace

// Rank 0, after a restore from an archive whose manifest lists damaged files (read.cpp): they
// hold zeros, so they are removed (or never were there) and named; the restore exits 2.
// The time from which files this restore writes have their ctime: the ctime of a file made in
// the restore directory now (the file system's clock, which on a shared file system may not be
// this node's), else this node's coarse clock, which file times also come from.
static timespec restore_started(const std::string& dir) {
  timespec now{};
  ::clock_gettime(CLOCK_REALTIME_COARSE, &now);
  try {
    make_dirs(dir, "cannot create restore directory");
  } catch (const Fatal&) {
    return now;
  }
  std::string probe = dir + "/.pbackup-probe-XXXXXX";
  Fd fd(::mkostemp(probe.data(), O_CLOEXEC));
  if (!fd) return now;
  ::unlink(probe.c_str());
  struct stat st {};
  return ::fstat(fd.get(), &st) == 0 ? st.st_ctim : now;
}

// Only names this restore wrote are removed (changed since `start`), and no directory is made
// looking for them: a hostile list cannot delete what was in the restore directory before.
static int drop_damaged(const RestoreOptions& opt, const std::vector<std::string>& damaged, const timespec& start, Log& log, int rc) {
  std::unique_ptr<Extractor> x;
  for (std::string name : damaged) {
    std::string why;
    if (!sanitize_member(name, why) || !path_selected(name, opt.only)) continue;
    try {
      if (!x) x = std::make_unique<Extractor>(opt.restore_to);
      x->remove_damaged(name, start);
    } catch (const std::exception& e) {
      log.error(e.what());
    }
    log.error(quote(name) + ": damaged at backup time (could not be read in full; the archive holds zeros for it): not restored");
    if (rc < kExitFatal) rc = kExitFatal;
  }
  return rc;
}

int run_restore(Comm& comm, const RestoreOptions& opt, Log& log) {
  if (comm.size() > 1 && !opt.node_local_copy) {  // before anything is written: does every rank see --restore-to?
    const int rc = restore_across_nodes(comm, opt, log);
    if (rc >= 0) return rc;
  }
  // Rank 0 finds the archive; with our manifest (tar) every rank restores blocks, a zip with a
  // sound central directory is restored member by member on every rank, otherwise rank 0
  // streams it through libarchive and the others wait for its verdict.
  std::string plan_bytes;
  std::vector<std::string> damaged;  // rank 0: from the manifest
  timespec start{};  // see restore_started
  uint64_t keep_errors = 0;  // rank 0: --keep-old-files found existing files
  if (comm.rank() == 0) {
    RestoreWay plan;
    try {
      plan.source = resolve_source(opt.source, opt.original_base_filename, {opt.s3_endpoint, opt.s3_region, opt.s3_addressing}, false, opt.keys);
      if (plan.source.manifest) damaged = plan.source.manifest->damaged;
      if (!damaged.empty()) start = restore_started(opt.restore_to);
      std::string why_not;
      const bool keeping = opt.existing != RestoreOptions::Existing::Overwrite;
      if (can_restore_in_parallel(plan.source) && (!keeping || paths_to_keep(plan.source, opt, log, plan.leave, keep_errors)))
        plan.mode = RestoreWay::kTarBlocks;
      else if (zip_restores_in_parallel(plan.source, why_not)) plan.mode = RestoreWay::kZipMembers;
      else {
        plan.mode = RestoreWay::kStream;
        log.debug("streaming the archive through libarchive: " + why_not);
      }
    } catch (const Fatal& f) {
      log.error(f.what());
      plan = RestoreWay{RestoreWay::kFailed, {}, {}};
    }
    plan_bytes = to_wire(plan);
  }
  comm.broadcast(plan_bytes, 0);
  RestoreWay plan = from_wire<RestoreWay>(plan_bytes);
  if (plan.mode == RestoreWay::kFailed) return comm.rank() == 0 ? kExitFatal : kExitOk;
  int rc = kExitOk;
  if (plan.source.manifest && !plan.source.manifest->chain.empty()) {  // an incremental level (issue 15)
    rc = restore_chain(comm, plan.source, opt, log);
    // its damaged files are all its own: a damaged record is never carried to a later level
    if (comm.rank() == 0 && !damaged.empty() && rc <= kExitFatal) rc = drop_damaged(opt, damaged, start, log, rc);
    return rc;
  }
  // Keeping existing files: decided up front from the catalog for the parallel tar path (the
  // paths to leave alone travel with the plan), member by member on the stream otherwise.
  bool stream = plan.mode == RestoreWay::kStream ||
                (plan.mode == RestoreWay::kZipMembers && opt.existing != RestoreOptions::Existing::Overwrite);
  if (!stream) {
    ArchiveSource& s = plan.source;
    attach_store(s, {opt.s3_endpoint, opt.s3_region, opt.s3_addressing});
    RestoreOptions o = opt;
    o.leave = std::move(plan.leave);
    std::sort(o.leave.begin(), o.leave.end());
    try {
      rc = plan.mode == RestoreWay::kTarBlocks ? run_parallel_restore(comm, s, o, log) : run_parallel_zip_restore(comm, s, o, log);
      stream = rc == kExitRestream;  // names twice: stream it, so the last member wins
    } catch (const Fatal& f) {
      log.error(f.what());
      rc = interrupted() ? 128 + interrupt_signal() : kExitFatal;
    }
  }
  if (stream) {
    rc = kExitOk;
    if (comm.rank() == 0) {
      try {
        rc = restore_one_rank(opt, log);
      } catch (const Fatal& f) {
        log.error(f.what());
        rc = interrupted() ? 128 + interrupt_signal() : kExitFatal;
      }
    }
    std::string verdict = std::to_string(rc);
    comm.broadcast(verdict, 0);
    if (comm.rank() != 0) rc = kExitOk;
  }
  if (comm.rank() == 0 && !damaged.empty() && rc <= kExitFatal) rc = drop_damaged(opt, damaged, start, log, rc);
  if (keep_errors && !stream && rc < kExitFatal) rc = kExitFatal;
  return rc;
}

void stream_members(const RestoreOptions& opt,
                    const std::function<void(archive_entry*, const std::function<std::string_view(uint64_t&)>&)>& each) {
  Log log(0, LogLevel::Error, 1);  // errors only: those are all it says
  StreamWatchdog watchdog(opt, log);
  OpenArchive oa;
  ReadArchive in;
  open_for_reading(in, oa, opt);
  archive_entry* e;
  uint64_t unreadable = 0;
  FailedHeaders failed_headers;
  while (true) {
    int r = reading([&] { return archive_read_next_header(in.a, &e); });
    if (r == ARCHIVE_EOF) break;
    if (r == ARCHIVE_OK || r == ARCHIVE_WARN) stream_progress();
    if (r == ARCHIVE_FAILED) {  // this entry only: named, and the others still listed
      failed_headers.check(in, oa);
      const char* p = e ? archive_entry_pathname(e) : nullptr;
      log.error(unreadable_message(in, oa, p ? p : "(an entry without a name)") + passphrase_hint(opt, archive_error_string(in.a)));
      ++unreadable;
      continue;
    }
    if (r < ARCHIVE_WARN) throw Fatal(damage(in, oa, ""));
    const std::string name = archive_entry_pathname(e) ? archive_entry_pathname(e) : "";
    each(e, [&](uint64_t& offset) -> std::string_view {
      const void* buf;
      size_t size;
      la_int64_t off;
      int rr = reading([&] { return archive_read_data_block(in.a, &buf, &size, &off); });
      stream_progress();
      if (rr == ARCHIVE_EOF) return {};
      if (rr != ARCHIVE_OK) throw Fatal(damage(in, oa, " (in " + quote(name) + ")") + passphrase_hint(opt, archive_error_string(in.a)));
      offset = static_cast<uint64_t>(off);
      return {static_cast<const char*>(buf), size};
    });
  }
  read_to_end(oa);
  if (unreadable)
    throw Fatal(std::to_string(unreadable) + (unreadable == 1 ? " entry" : " entries") + " of " + quote(opt.source) +
                " could not be read (named above)");
}

namespace {
// list --json: one member as a JSON line (bad UTF-8 bytes in names replaced by U+FFFD).
std::string json_line(const CatalogRecord& r) {
  static const char* const kTypes[] = {"file", "directory", "symlink", "hardlink", "fifo"};
  nlohmann::ordered_json j;
  j["path"] = r.path;
  j["type"] = static_cast<size_t>(r.type) < std::size(kTypes) ? kTypes[static_cast<size_t>(r.type)] : "other";
  j["size"] = r.size;
  j["mode"] = r.mode;
  j["uid"] = r.uid;
  j["gid"] = r.gid;
  j["mtime"] = r.mtime_sec;
  if (!r.link.empty()) j["link"] = r.link;
  return j.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
}
}  // namespace

int run_list(Comm& comm, const RestoreOptions& opt, Log& log) {
  int rc = kExitOk;
  if (comm.rank() == 0) {
    try {
      auto t0 = std::chrono::steady_clock::now();
      RunSummary& sum = run_summary();
      sum.archive = opt.source;
      sum.entries = sum.files = sum.dirs = sum.bytes_out = 0;
      if (opt.json) {  // members as JSON lines, counted for the summary object main prints last
        auto one = [&](const CatalogRecord& r) {
          std::string line = json_line(r) + "\n";
          std::fwrite(line.data(), 1, line.size(), stdout);
          ++sum.entries;
          if (r.type == EntryType::File || r.type == EntryType::Hardlink) ++sum.files;
          if (r.type == EntryType::Dir) ++sum.dirs;
          if (r.type == EntryType::File) sum.bytes_out += r.size;
        };
        ArchiveSource s = resolve_source(opt.source, opt.original_base_filename, {opt.s3_endpoint, opt.s3_region, opt.s3_addressing}, false, opt.keys);
        if (s.manifest && !s.manifest->chain.empty()) {  // an incremental level: the whole tree, from its catalog
          if (!read_archive_catalog(s, one)) throw Fatal(quote(s.name) + ": an incremental level without its catalog");
        } else {
          stream_members(opt, [&](archive_entry* e, const std::function<std::string_view(uint64_t&)>&) { one(record_of(e)); });
        }
        sum.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      } else if (opt.long_list && list_long_from_catalog(resolve_source(opt.source, opt.original_base_filename, {opt.s3_endpoint, opt.s3_region, opt.s3_addressing}, false, opt.keys))) {
        // list --long: from the catalog when the archive has one (reads <1% of the bytes)
        std::fflush(stdout);
        std::string verdict = "0";
        comm.broadcast(verdict, 0);
        return kExitOk;
      } else if (!opt.long_list && list_chain_from_catalog(resolve_source(opt.source, opt.original_base_filename, {opt.s3_endpoint, opt.s3_region, opt.s3_addressing}, false, opt.keys))) {
        // an incremental level: the whole tree at that level, from its catalog
      } else {
        stream_members(opt, [&](archive_entry* e, const std::function<std::string_view(uint64_t&)>&) {
          const char* p = archive_entry_pathname(e);
          std::string line = opt.long_list ? long_line(record_of(e)) : escape_name(p ? p : "");
          line += '\n';
          std::fwrite(line.data(), 1, line.size(), stdout);
        });
      }
      std::fflush(stdout);
    } catch (const Fatal& f) {
      std::fflush(stdout);
      log.error(f.what());
      rc = kExitFatal;
    }
  }
  std::string verdict = std::to_string(rc);
  comm.broadcast(verdict, 0);
  return comm.rank() == 0 ? rc : kExitOk;
}

}  // namespace pbackup
