// backup --resume: the journal of durable blocks, and taking up an interrupted run (resume.h).
#include "core/resume.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <nlohmann/json.hpp>

#include "core/backup_stages.h"
#include "core/file_list.h"
#include "core/forward.h"
#include "core/part_exchange.h"
#include "pbackup/error.h"
#include "pbackup/sha256.h"
#include "pbackup/version.h"
#include "pbackup/wire.h"
#include "util/file_util.h"

namespace pbackup {
namespace {

constexpr int kJournalVersion = 1;

std::string to_hex(std::string_view s) {
  static const char* d = "0123456789abcdef";
  std::string o;
  o.reserve(2 * s.size());
  for (unsigned char c : s) {
    o.push_back(d[c >> 4]);
    o.push_back(d[c & 15]);
  }
  return o;
}

bool from_hex(const std::string& h, std::string& out) {
  if (h.size() % 2) return false;
  out.clear();
  for (size_t i = 0; i < h.size(); i += 2) {
    int v = 0;
    for (size_t j = i; j < i + 2; ++j) {
      const char c = h[j];
      v = v * 16 + (c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1000);
    }
    if (v < 0) return false;
    out.push_back(static_cast<char>(v));
  }
  return true;
}

bool is_hex(const std::string& s, size_t n) {
  std::string raw;
  return s.size() == n && from_hex(s, raw);
}

// What changes the archive's bytes besides the tree: the tool, the roots, the format and its
// level, the block size, the destination's shape, the selection and the level it is based on.
std::string command_print(const BackupRun& run) {
  const BackupOptions& o = run.opt;
  std::vector<std::string> v{version_string(), o.algo, std::to_string(o.level), std::to_string(o.block_mb), o.dest_type,
                             std::to_string(o.split_chunk_mb), run.setup.archive, o.files_from, o.null_separated ? "0" : "n",
                             o.one_file_system ? "x" : "-", "incremental-from", o.incremental_from};
  for (const Root& r : run.setup.roots) v.insert(v.end(), {"root", r.disk, r.name});
  for (const auto& e : o.excludes) v.insert(v.end(), {"exclude", e});
  for (const auto& e : o.exclude_from) v.insert(v.end(), {"exclude-from", e});
  return sha256_hex(to_wire(v)).substr(0, 32);
}

// A block's print: its place in the container stream, its pieces and what the container
// stores of their entries (device and inode numbers left out: a copy of the tree elsewhere
// gives the same archive).
BlockPrint block_print(const Block& b, const EntryList& entries) {
  Sha256 h;
  Block shape = b;
  h.update(to_wire(shape));
  for (const Piece& p : b.pieces) {
    Entry e = entries.at(p.entry);
    e.dev = e.ino = 0;
    e.nlink = 0;
    h.update(to_wire(e));
  }
  std::string raw;
  from_hex(h.hex().substr(0, 32), raw);
  BlockPrint out{};
  std::memcpy(out.data(), raw.data(), out.size());
  return out;
}

std::string print_hex(const BlockPrint& p) { return to_hex(std::string_view(reinterpret_cast<const char*>(p.data()), p.size())); }

// A journal number: an unsigned integer that fits 64 bits. A float (1e300: converting it is
// undefined), a negative number (-1 would read as 2^64-1) or one past 2^64 (read as a float) is
// damage, never converted.
uint64_t u64_at(const nlohmann::json& j, const char* key) {
  const nlohmann::json& v = j.at(key);
  if (!v.is_number_unsigned()) throw std::runtime_error(std::string(key) + " is not an unsigned 64-bit integer");
  return v.get<uint64_t>();
}

// One complete line of the journal; false (with old.why) ends the reading.
bool take_line(const JournalExpect& expect, const std::string& line, size_t n, JournalRead& old) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(line);
  } catch (const std::exception&) {
    old.why = "its line " + std::to_string(n) + " is damaged";
    return false;
  }
  try {
    if (n == 1) {
      if (!j.is_object() || !j.contains("pbackup_journal") || !j.at("pbackup_journal").is_number_unsigned() ||
          j.at("pbackup_journal").get<uint64_t>() != kJournalVersion)
        throw std::runtime_error("not a pbackup journal");
      std::string tag = j.at("tag").get<std::string>();
      if (!is_hex(tag, 16)) throw std::runtime_error("bad tag");
      old.tag = tag;
      if (!expect.same_command(j.at("command").get<std::string>()))
        old.why = "it was written by a different command (sources, options or pbackup version)";
      return old.why.empty();
    }
    if (j.contains("damaged")) {
      for (const auto& d : j.at("damaged")) {
        std::string p;
        if (!from_hex(d.get<std::string>(), p)) throw std::runtime_error("bad path");
        old.damaged.push_back(std::move(p));
      }
      return true;
    }
    JournalBlock b{u64_at(j, "b"), u64_at(j, "raw"), u64_at(j, "offset"), u64_at(j, "size"), j.at("sha256").get<std::string>()};
    const std::string print = j.at("print").get<std::string>();
    if (b.id != old.blocks.size() || b.offset != old.end || b.size == 0 || b.size > UINT64_MAX - old.end || !is_hex(b.sha256, 64))
      throw std::runtime_error("blocks out of order");
    if (b.id >= expect.blocks) {
      old.why = "the tree now makes " + std::to_string(expect.blocks) + " blocks, fewer than the " + std::to_string(b.id + 1) + " written";
      return false;
    }
    old.why = expect.differs(b, print);
    if (!old.why.empty()) return false;
    old.end += b.size;
    old.blocks.push_back(std::move(b));
    return true;
  } catch (const std::exception& e) {
    old.why = "its line " + std::to_string(n) + " is damaged (" + e.what() + ")";
    return false;
  }
}

// The interrupted run's journal, read and checked against this run's plan.
struct OldRun : JournalRead {
  bool found = false;
};

// Two runs of the same command at once must not share the temporary file: each holds a lock
// on its journal (an open file description lock, which NFS passes on) for its whole run.
void lock_journal(int fd, const std::string& path) {
  struct flock l {};
  l.l_type = F_WRLCK;
  l.l_whence = SEEK_SET;
  if (::fcntl(fd, F_OFD_SETLK, &l) == 0) return;
  if (errno == EAGAIN || errno == EACCES)
    throw Fatal("journal " + quote(path) + " is in use by another run of the same command (it holds its lock)");
  throw_sys("cannot lock", path, errno);
}

// The journal `fd` (locked) of an interrupted run.
OldRun read_journal(const BackupRun& run, int fd) {
  OldRun old;
  const std::string& path = run.resume->path;
  old.found = true;
  JournalExpect expect;
  const std::string command = command_print(run);
  expect.same_command = [&](const std::string& c) { return c == command; };
  expect.blocks = run.plan.size();
  expect.differs = [&](const JournalBlock& b, const std::string& print) -> std::string {
    const BlockInfo& info = run.plan[b.id];
    if (print == print_hex(run.resume->prints.at(b.id)) && b.raw == info.raw_bytes) return "";
    return "block " + std::to_string(b.id) + " (from " + quote(info.first) +
           ") changed since it was written: an entry in it was added, removed or changed (size, mtime, mode, owner)";
  };
  char chunk[1 << 16];
  std::string failed;
  JournalRead r = parse_journal([&]() -> std::string_view {
    for (;;) {
      ssize_t got = ::read(fd, chunk, sizeof chunk);
      if (got < 0 && errno == EINTR) continue;
      if (got < 0) failed = sys_message("cannot read", path, errno);
      return got > 0 ? std::string_view(chunk, static_cast<size_t>(got)) : std::string_view();
    }
  }, expect);
  static_cast<JournalRead&>(old) = std::move(r);
  if (!failed.empty()) old.why = failed;
  return old;
}

// A destination like run.dest, rank 0's, for the interrupted run's temporary files.
std::unique_ptr<Destination> old_destination(BackupRun& run, const OldRun& old) {
  DestinationSpec spec = run.spec;
  spec.resume_tag = old.tag;
  spec.resume_bytes = old.end;
  return with_forwarding(with_part_exchange(make_destination(spec)), run.writer_of, run.comm.rank());
}

void write_journal(ResumeState& rs, const std::string& lines) {
  struct stat st {};
  if (::fstat(rs.journal.get(), &st) != 0) throw_sys("cannot stat", rs.path, errno);
  pwrite_all(rs.journal.get(), lines, static_cast<uint64_t>(st.st_size), rs.path);
  if (::fdatasync(rs.journal.get()) != 0) throw_sys("cannot sync", rs.path, errno);
}

}  // namespace

JournalRead parse_journal(const std::function<std::string_view()>& next, const JournalExpect& expect) {
  JournalRead old;
  std::string buf;
  uint64_t at = 0;  // bytes of the journal consumed
  size_t n = 0;
  bool go = true;
  while (go) {
    const std::string_view got = next();
    if (got.empty()) break;
    buf.append(got);
    size_t start = 0;
    for (size_t nl; go && (nl = buf.find('\n', start)) != std::string::npos; start = nl + 1) {
      go = take_line(expect, buf.substr(start, nl - start), ++n, old);
      if (go) at += nl + 1 - start;
    }
    buf.erase(0, start);
    if (go && buf.size() > expect.max_line) {
      old.why = "its line " + std::to_string(n + 1) + " is too long";
      return old;
    }
  }
  old.good_bytes = at;  // a last line without its newline was cut short by the signal: ignored
  if (old.why.empty() && old.tag.empty()) old.why = "it is empty";
  return old;
}

JournalRead parse_journal(std::string_view text, const JournalExpect& expect) {
  bool given = false;
  return parse_journal([&]() -> std::string_view {
    if (given) return {};
    given = true;
    return text;
  }, expect);
}

std::string journal_path(const std::string& output_dir, const std::string& archive) {
  return output_dir + "/." + archive + ".pbackup-journal";
}

void gather_prints(BackupRun& run) {
  const uint64_t count = run.comm.sum(run.blocks.size());
  const uint64_t rounds = run.comm.max((run.blocks.size() + kListBatchEntries - 1) / kListBatchEntries);
  if (run.root) run.resume->prints.assign(count, BlockPrint{});
  constexpr size_t kRecord = 8 + sizeof(BlockPrint);
  for (uint64_t k = 0; k < rounds; ++k) {
    std::string mine;  // per block: its id (8 bytes, little-endian) and its print
    for (size_t i = k * kListBatchEntries; i < run.blocks.size() && i < (k + 1) * kListBatchEntries; ++i) {
      uint64_t id = run.blocks[i].id;
      for (int b = 0; b < 8; ++b) mine.push_back(static_cast<char>(id >> (8 * b)));
      BlockPrint p = block_print(run.blocks[i], run.entries);
      mine.append(reinterpret_cast<const char*>(p.data()), p.size());
    }
    for (const std::string& bytes : run.comm.gather(mine, 0)) {
      if (bytes.size() % kRecord) throw std::runtime_error("internal message: block prints");
      for (size_t at = 0; at < bytes.size(); at += kRecord) {
        uint64_t id = 0;
        for (int b = 0; b < 8; ++b) id |= static_cast<uint64_t>(static_cast<unsigned char>(bytes[at + b])) << (8 * b);
        if (id >= count) throw std::runtime_error("internal message: block print " + std::to_string(id) + " out of range");
        std::memcpy(run.resume->prints[id].data(), bytes.data() + at + 8, sizeof(BlockPrint));
      }
    }
  }
}

std::string prepare_resumable(BackupRun& run) {
  ResumeState& rs = *run.resume;
  OldRun old;
  Fd held(::open(rs.path.c_str(), O_RDWR | O_NOFOLLOW | O_CLOEXEC));
  if (held) {
    lock_journal(held.get(), rs.path);
    old = read_journal(run, held.get());
  } else if (errno != ENOENT) {
    old.found = true;
    old.why = sys_message("cannot open", rs.path, errno);
  }
  if (old.found && old.why.empty()) {
    std::unique_ptr<Destination> d = old_destination(run, old);
    try {
      std::string prepared = d->prepare();
      if (::ftruncate(held.get(), static_cast<off_t>(old.good_bytes)) != 0) throw_sys("cannot truncate", rs.path, errno);
      rs.journal = std::move(held);
      run.dest = std::move(d);
      rs.prefix = std::move(old.blocks);
      rs.damaged = std::move(old.damaged);
      uint64_t raw = 0;
      for (const JournalBlock& b : rs.prefix) raw += b.raw;
      run.log.notice("resuming the interrupted run: " + std::to_string(rs.prefix.size()) + " of " + std::to_string(run.plan.size()) +
                     " blocks (" + std::to_string(raw) + " input bytes, " + std::to_string(old.end) + " archive bytes) were written");
      return prepared;
    } catch (const std::exception& e) {
      old.why = e.what();
      if (rs.journal) held = std::move(rs.journal);  // still locked until the new journal is
      d->abort();
    }
  } else if (old.found && !old.tag.empty()) {
    std::unique_ptr<Destination> d = old_destination(run, old);
    try {
      d->prepare();
    } catch (const std::exception&) {
    }
    d->abort();  // its temporary files (this name's, that tag's), whatever prepare() found
  }
  if (old.found) {
    run.log.notice("cannot continue the interrupted run of " + quote(run.setup.archive) + " (journal " + quote(rs.path) + "): " + old.why +
                   "; starting over");
    if (::unlink(rs.path.c_str()) != 0 && errno != ENOENT) throw_sys("cannot remove", rs.path, errno);
  }
  std::string prepared = run.dest->prepare();
  nlohmann::json h{{"pbackup_journal", kJournalVersion}, {"archive", run.setup.archive}, {"tag", prepared}, {"command", command_print(run)}};
  // the tag is the destination's prepare() result for hdd and usb_split (16 hex digits)
  if (!is_hex(prepared, 16)) throw Fatal("--resume: the destination cannot be resumed");
  rs.journal = open_or_throw(rs.path, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
  lock_journal(rs.journal.get(), rs.path);
  held.reset();  // the old journal's lock, kept until the new one is locked
  write_journal(rs, h.dump() + "\n");
  fsync_dir(run.opt.output_dir);
  return prepared;
}

void journal_append(BackupRun& run, const std::vector<JournalBlock>& blocks, const std::vector<std::string>& damaged) {
  ResumeState& rs = *run.resume;
  if (!rs.journal || (blocks.empty() && damaged.empty())) return;
  std::string lines;
  for (const JournalBlock& b : blocks) {
    nlohmann::json j{{"b", b.id},         {"raw", b.raw},           {"offset", b.offset},
                     {"size", b.size},    {"sha256", b.sha256},     {"print", print_hex(rs.prints.at(b.id))}};
    lines += j.dump() + "\n";
  }
  if (!damaged.empty()) {
    nlohmann::json d = nlohmann::json::array();
    for (const auto& p : damaged) d.push_back(to_hex(p));
    lines += nlohmann::json{{"damaged", d}}.dump() + "\n";
  }
  write_journal(rs, lines);
}

void remove_journal(BackupRun& run) noexcept {
  if (!run.resume || !run.resume->journal) return;
  run.resume->journal.reset();
  ::unlink(run.resume->path.c_str());
}

}  // namespace pbackup
