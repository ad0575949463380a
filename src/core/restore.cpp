// Restore and list through libarchive, which reads any tar flavour, zip, and every codec
// (ours or anyone's). Extraction happens inside --restore-to and never writes outside it:
// members with '..' components are refused, leading '/' is removed (as GNU tar does), and
// libarchive's secure flags refuse writing through symlinks; hard-link targets get the same
// checks. Directory modes and times are applied last (libarchive defers them to close).
// One rank restores; the others wait for its verdict (parallel restore by blocks is separate).
// gzip is decompressed by our GunzipStream (libarchive's gzip filter checks no CRC), and every
// write error is fatal and names the file (libarchive reports a failed write as a warning).
#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <memory>

#include "codec/gunzip_stream.h"
#include "core/extract.h"
#include "core/parallel_restore.h"
#include "dest/file_util.h"
#include "format/pax.h"
#include "pbackup/error.h"
#include "pbackup/pipeline.h"
#include "pbackup/source.h"

namespace pbackup {
namespace {

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
  explicit JoinedFiles(const ArchiveSource& s) : s_(s), buf_(1 << 20) {
    for (uint64_t sz : s.sizes) total_ += sz;
  }
  static la_ssize_t read(archive* a, void* self, const void** out) {
    auto* j = static_cast<JoinedFiles*>(self);
    uint64_t base = 0;
    for (size_t i = 0; i < j->s_.files.size(); ++i) {
      if (j->pos_ < base + j->s_.sizes[i] && !j->s_.bucket.empty()) {  // S3: ranged GETs of 8 MiB
        try {
          uint64_t within = j->pos_ - base;
          j->chunk_ = read_file_range(j->s_, i, within, std::min<uint64_t>(8 << 20, j->s_.sizes[i] - within));
        } catch (const std::exception& e) {
          archive_set_error(a, EIO, "%s", e.what());
          return -1;
        }
        j->pos_ += j->chunk_.size();
        *out = j->chunk_.data();
        return static_cast<la_ssize_t>(j->chunk_.size());
      }
      if (j->pos_ < base + j->s_.sizes[i]) {
        if (j->open_ != i) {
          j->fd_ = Fd(::open(j->s_.files[i].c_str(), O_RDONLY | O_CLOEXEC));
          if (!j->fd_) {
            archive_set_error(a, errno, "cannot open %s: %s", j->s_.files[i].c_str(), std::strerror(errno));
            return -1;
          }
          j->open_ = i;
        }
        uint64_t within = j->pos_ - base;
        size_t want = static_cast<size_t>(std::min<uint64_t>(j->buf_.size(), j->s_.sizes[i] - within));
        ssize_t n;
        do n = ::pread(j->fd_.get(), j->buf_.data(), want, static_cast<off_t>(within));
        while (n < 0 && errno == EINTR);
        if (n < 0) {
          archive_set_error(a, errno, "cannot read %s: %s", j->s_.files[i].c_str(), std::strerror(errno));
          return -1;
        }
        if (n == 0) {
          archive_set_error(a, EIO, "%s ended early", j->s_.files[i].c_str());
          return -1;
        }
        j->pos_ += static_cast<uint64_t>(n);
        *out = j->buf_.data();
        return n;
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
  std::vector<char> buf_;
  uint64_t pos_ = 0, total_ = 0;
  size_t open_ = ~size_t{0};
  Fd fd_;
  std::string chunk_;
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
void open_for_reading(ReadArchive& r, OpenArchive& o, const std::string& source, const std::string& base) {
  if (!r.a) throw Fatal("libarchive: out of memory");
  o.source = resolve_source(source, base);
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
  if (archive_read_open1(r.a) != ARCHIVE_OK)
    throw Fatal("cannot open archive " + quote(source) + ": " + archive_error_string(r.a));
}

// libarchive stops at the tar end marker; the rest of a gzip stream is read too, so every
// member's CRC is checked and trailing garbage is reported as damage.
void read_to_end(OpenArchive& o) {
  if (!o.gunzip) return;
  try {
    while (!o.gunzip->next().empty()) {
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


int restore_one_rank(const RestoreOptions& opt, Log& log) {
  const auto t0 = std::chrono::steady_clock::now();
  OpenArchive oa;
  ReadArchive in;
  open_for_reading(in, oa, opt.source, opt.original_base_filename);
  // The first header before anything is created: input that is no archive creates nothing.
  archive_entry* e = nullptr;
  int first = archive_read_next_header(in.a, &e);
  if (first < ARCHIVE_WARN) throw Fatal(damage(in, oa, ""));
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
  std::vector<std::pair<std::string, std::string>> dir_xattrs;
  auto apply = [&](const std::string& name, char type, const std::string& recs) {
    try {
      meta.apply_xattrs(name, type, recs);
    } catch (const std::exception& ex) {
      log.warn(std::string(ex.what()) + "; extended attributes not restored");
    }
  };

  uint64_t entries = 0, bytes = 0;
  bool member_failed = false;
  std::vector<bool> matched(opt.only.size(), false);
  const std::string src = quote(opt.source);
  int rc = in_directory(opt.restore_to, [&]() -> int {
    for (bool have_first = true;; have_first = false) {
      if (interrupted()) throw Fatal("interrupted");
      int r = have_first ? first : archive_read_next_header(in.a, &e);
      if (r == ARCHIVE_EOF) break;
      if (r == ARCHIVE_WARN) log.warn(src + ": " + archive_error_string(in.a));
      else if (r != ARCHIVE_OK)
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
      archive_entry_set_pathname(e, name.c_str());
      if (hl) archive_entry_set_hardlink(e, link.c_str());
      r = archive_write_header(out.a, e);
      if (r < ARCHIVE_WARN) {
        log.error(quote(name) + ": " + archive_error_string(out.a) + "; not extracted");
        member_failed = true;
        if (r == ARCHIVE_FATAL) throw Fatal("cannot go on after " + quote(name));
        continue;
      }
      if (r == ARCHIVE_WARN) log.warn(quote(name) + ": " + archive_error_string(out.a));
      if (archive_entry_size(e) > 0) {
        const void* buf;
        size_t size;
        la_int64_t offset;
        while (true) {
          r = archive_read_data_block(in.a, &buf, &size, &offset);
          if (r == ARCHIVE_EOF) break;
          if (r != ARCHIVE_OK)  // libarchive reports a zip member's CRC mismatch as a warning
            throw Fatal(damage(in, oa, " (in " + quote(name) + ")"));
          // libarchive reports a failed or short write (a full disk) as ARCHIVE_WARN: any
          // result but OK means the file is not what the archive holds.
          // The partial file is removed, so nothing is left looking restored.
          if (archive_write_data_block(out.a, buf, size, offset) != ARCHIVE_OK) {
            std::string why = write_error(out);
            archive_write_finish_entry(out.a);  // closes it
            bool removed = ::unlink(name.c_str()) == 0;
            throw Fatal("cannot write " + quote(opt.restore_to + "/" + name) + ": " + why +
                        (removed ? " (the partial file was removed)" : ""));
          }
          bytes += size;
        }
      }
      // Finishing writes the rest (a trailing hole is made by ftruncate) and the metadata; a
      // WARN here is a file or its metadata not restored as the archive holds it.
      r = archive_write_finish_entry(out.a);
      if (r == ARCHIVE_FATAL) throw Fatal("cannot finish " + quote(opt.restore_to + "/" + name) + ": " + write_error(out));
      if (r != ARCHIVE_OK) {
        log.error(quote(opt.restore_to + "/" + name) + ": " + write_error(out));
        member_failed = true;
      }
      if (!hl) {
        std::string recs = entry_xattr_records(e);
        if (!recs.empty()) {
          mode_t ft = archive_entry_filetype(e);
          char type = ft == AE_IFDIR ? '5' : ft == AE_IFIFO ? '6' : ft == AE_IFREG ? '0' : '2';
          if (type == '5') dir_xattrs.emplace_back(name, std::move(recs));
          else apply(name, type, recs);
        }
      }
      ++entries;
    }
    read_to_end(oa);
    if (archive_write_close(out.a) != ARCHIVE_OK) {
      log.error(std::string("setting directory modes and times: ") + archive_error_string(out.a));
      member_failed = true;
    }
    for (auto& [name, recs] : dir_xattrs) apply(name, '5', recs);
    return 0;
  });
  (void)rc;
  for (size_t k = 0; k < opt.only.size(); ++k)
    if (!matched[k]) {
      log.error(quote(opt.only[k]) + ": not found in archive");
      member_failed = true;
    }
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::fprintf(stderr, "pbackup: restored %llu entries, %.1f MB in %.2f s (%.1f MB/s) into %s\n",
               static_cast<unsigned long long>(entries), bytes / 1e6, secs, bytes / 1e6 / std::max(secs, 1e-9),
               quote(opt.restore_to).c_str());
  if (member_failed) return kExitFatal;
  return log.warnings() ? kExitWarnings : kExitOk;
}

}  // namespace

// Rank 0, after a restore from an archive whose manifest lists damaged files (read.cpp): they
// hold zeros, so they are removed (or never were there) and named; the restore exits 2.
static int drop_damaged(const RestoreOptions& opt, const std::vector<std::string>& damaged, Log& log, int rc) {
  std::unique_ptr<Extractor> x;
  for (std::string name : damaged) {
    std::string why;
    if (!sanitize_member(name, why) || !path_selected(name, opt.only)) continue;
    try {
      if (!x) x = std::make_unique<Extractor>(opt.restore_to);
      x->remove_file(name);
    } catch (const std::exception& e) {
      log.error(e.what());
    }
    log.error(quote(name) + ": damaged at backup time (could not be read in full; the archive holds zeros for it): not restored");
    if (rc < kExitFatal) rc = kExitFatal;
  }
  return rc;
}

int run_restore(Comm& comm, const RestoreOptions& opt, Log& log) {
  // Rank 0 finds the archive; with our manifest (tar) every rank restores blocks, a zip with a
  // sound central directory is restored member by member on every rank, otherwise rank 0
  // streams it through libarchive and the others wait for its verdict.
  std::string plan;
  std::vector<std::string> damaged;  // rank 0: from the manifest
  if (comm.rank() == 0) {
    ByteWriter w;
    try {
      ArchiveSource s = resolve_source(opt.source, opt.original_base_filename);
      if (s.manifest) damaged = s.manifest->damaged;
      std::string why_not;
      if (can_restore_in_parallel(s)) w.u8(1);
      else if (zip_restores_in_parallel(s, why_not)) w.u8(3);
      else {
        w.u8(0);
        log.debug("streaming the archive through libarchive: " + why_not);
      }
      w.str(encode_source(s));
    } catch (const Fatal& f) {
      log.error(f.what());
      w = ByteWriter();
      w.u8(2);
    }
    plan = w.take();
  }
  comm.broadcast(plan, 0);
  ByteReader r(plan);
  uint8_t mode = r.u8();
  if (mode == 2) return comm.rank() == 0 ? kExitFatal : kExitOk;
  int rc = kExitOk;
  bool stream = mode == 0;
  if (!stream) {
    ArchiveSource s = decode_source(r.str());
    try {
      rc = mode == 1 ? run_parallel_restore(comm, s, opt, log) : run_parallel_zip_restore(comm, s, opt, log);
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
  if (comm.rank() == 0 && !damaged.empty() && rc <= kExitFatal) rc = drop_damaged(opt, damaged, log, rc);
  return rc;
}

int run_list(Comm& comm, const RestoreOptions& opt, Log& log) {
  int rc = kExitOk;
  if (comm.rank() == 0) {
    try {
      OpenArchive oa;
      ReadArchive in;
      open_for_reading(in, oa, opt.source, opt.original_base_filename);
      archive_entry* e;
      while (true) {
        int r = archive_read_next_header(in.a, &e);
        if (r == ARCHIVE_EOF) break;
        if (r < ARCHIVE_WARN) throw Fatal(damage(in, oa, ""));
        const char* p = archive_entry_pathname(e);
        std::fputs(p ? p : "", stdout);
        std::fputc('\n', stdout);
      }
      read_to_end(oa);
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
