// Options of `pbackup backup|restore|list` (DESIGN §1), compatible with the original tool's
// flags. `--sources A B C` takes every following word up to the next option, as the original
// (argparse nargs='+') did; cxxopts handles the rest.
#include "cli/options.h"

#include <cxxopts.hpp>

#include <cerrno>
#include <cstdlib>

#include "core/select.h"
#include "pbackup/codec.h"
#include "pbackup/error.h"
#include "pbackup/destination.h"
#include "pbackup/format.h"
#include "pbackup/version.h"

namespace pbackup {
namespace {

std::string join(const std::vector<std::string>& v) {
  std::string s;
  for (auto& x : v) s += (s.empty() ? "" : ", ") + x;
  return s;
}

bool one_of(const std::string& v, const std::vector<std::string>& valid) {
  for (auto& x : valid)
    if (x == v) return true;
  return false;
}

LogLevel parse_level(const std::string& s, std::string& error) {
  if (s == "error") return LogLevel::Error;
  if (s == "warn") return LogLevel::Warn;
  if (s == "info") return LogLevel::Info;
  if (s == "debug") return LogLevel::Debug;
  error = "unknown --log-level '" + s + "' (valid: error, warn, info, debug)";
  return LogLevel::Warn;
}

// The whole number given to --NAME, which must lie in [lo, hi]; names the option and the range
// otherwise (cxxopts' own message names neither, and unsigned values wrapped silently).
uint64_t number_in(const cxxopts::ParseResult& r, const std::string& name, uint64_t lo, uint64_t hi, const std::string& why = "") {
  std::string v = r[name].as<std::string>();
  char* end = nullptr;
  errno = 0;
  unsigned long long n = v.empty() || v[0] < '0' || v[0] > '9' ? 0 : std::strtoull(v.c_str(), &end, 10);
  if (v.empty() || v[0] < '0' || v[0] > '9' || *end || errno || n < lo || n > hi)
    throw cxxopts::exceptions::exception("--" + name + " must be a whole number from " + std::to_string(lo) + " to " +
                                         std::to_string(hi) + why + " (got '" + v + "')");
  return n;
}

// Valid --level values per --algo (what each codec really does; nothing is clamped silently).
void level_range(const std::string& algo, uint64_t& lo, uint64_t& hi) {
  lo = 1;
  hi = algo == "gzip" ? 12 : algo == "zstd" ? 22 : 9;  // libdeflate 1-12; zip's zlib and bzip2 1-9
}

// Pulls "--NAME v1 v2 ..." (and "--NAME=v") out of args; returns the values.
std::vector<std::string> take_multi(std::vector<std::string>& args, const std::string& name) {
  std::vector<std::string> vals, rest;
  for (size_t i = 0; i < args.size(); ++i) {
    if (args[i] == "--" + name) {
      while (i + 1 < args.size() && args[i + 1].rfind("--", 0) != 0) vals.push_back(args[++i]);
      continue;
    }
    if (args[i].rfind("--" + name + "=", 0) == 0) {
      vals.push_back(args[i].substr(name.size() + 3));
      continue;
    }
    rest.push_back(args[i]);
  }
  args.swap(rest);
  return vals;
}

// Pulls every "--NAME VALUE" and "--NAME=VALUE" out of args, each value taken whole (patterns
// and paths may hold commas, which cxxopts' vectors would split).
std::vector<std::string> take_repeated(std::vector<std::string>& args, const std::string& name) {
  std::vector<std::string> vals, rest;
  for (size_t i = 0; i < args.size(); ++i) {
    if (args[i] == "--" + name && i + 1 < args.size()) vals.push_back(args[++i]);
    else if (args[i].rfind("--" + name + "=", 0) == 0) vals.push_back(args[i].substr(name.size() + 3));
    else rest.push_back(args[i]);
  }
  args.swap(rest);
  return vals;
}

cxxopts::ParseResult run_cxxopts(cxxopts::Options& o, std::vector<std::string>& args) {
  std::vector<char*> av;
  static std::string prog = "pbackup";
  av.push_back(prog.data());
  for (auto& a : args) av.push_back(a.data());
  return o.parse(static_cast<int>(av.size()), av.data());
}

void common(cxxopts::Options& o) {
  o.add_options()("s3-endpoint", "S3 endpoint URL (default: AWS_ENDPOINT_URL, else AWS)", cxxopts::value<std::string>())(
      "s3-region", "S3 region (default: AWS_REGION / AWS_DEFAULT_REGION, the AWS profile's, else us-east-1)", cxxopts::value<std::string>())(
      "s3-addressing", "S3 URL style: path (http://host/bucket/key) | virtual (http://bucket.host/key) (default: the AWS profile's "
                       "s3.addressing_style, else virtual for AWS, path for other endpoints)", cxxopts::value<std::string>())("threads", "threads per rank, 1-1024 (default: the cores this rank may use)", cxxopts::value<std::string>())(
      "log-level", "error | warn | info | debug", cxxopts::value<std::string>()->default_value("warn"))(
      "h,help", "show this help");
}

// `COMMAND --help`: the command's help text becomes the result instead of a run.
bool asked_help(const cxxopts::ParseResult& r, cxxopts::Options& o, Parsed& p) {
  if (!r.count("help")) return false;
  p.command = Command::Help;
  p.help = o.help();
  return true;
}

}  // namespace

std::string main_usage() {
  return "usage: pbackup <command> [options]\n"
         "\n"
         "Parallel backup and restore into standard archives (tar.gz, tar.bz2, tar.zst, zip).\n"
         "Run under mpirun or srun for several ranks, or plainly for one rank with all cores.\n"
         "\n"
         "commands:\n"
         "  backup    --sources DIR... --output-dir OUT --algo zip|gzip|bzip2|zstd\n"
         "  consolidate --source LEVEL --output-dir OUT   (a full backup from an incremental chain)\n"
         "  restore   --source ARCHIVE|FRAGMENT_DIR --restore-to DIR\n"
         "  list      --source ARCHIVE|FRAGMENT_DIR\n"
         "  verify    --source ARCHIVE|FRAGMENT_DIR\n"
         "  find      PATTERN --source ARCHIVE|DIR|s3://PREFIX...   (from catalogs)\n"
         "  compare   --source ARCHIVE [--against DIR] [--checksum]\n"
         "  report    --source ARCHIVE --output report.html   (timeline, throughput, sizes, warnings)\n"
         "  cloud-cleanup --source s3://BUCKET/PREFIX [--older-than DURATION] [--dry-run]\n"
         "\n"
         "`pbackup <command> --help` lists each command's options; `pbackup --version` the version.\n"
         "Exit status: 0 success, 1 some files were skipped or changed while read (each named),\n"
         "2 fatal error (nothing committed).\n";
}

static std::string s3_addressing_flag(const cxxopts::ParseResult& r) {
  std::string v = r["s3-addressing"].as<std::string>();
  if (v != "path" && v != "virtual") throw cxxopts::exceptions::exception("--s3-addressing must be path or virtual");
  return v;
}

int64_t parse_duration(const std::string& s) {
  if (s.size() < 2 || s.size() > 12) return -1;
  int64_t n = 0;
  for (size_t i = 0; i + 1 < s.size(); ++i) {
    if (s[i] < '0' || s[i] > '9') return -1;
    n = n * 10 + (s[i] - '0');
  }
  int64_t unit = s.back() == 's' ? 1 : s.back() == 'm' ? 60 : s.back() == 'h' ? 3600 : s.back() == 'd' ? 86400 : s.back() == 'w' ? 604800 : 0;
  if (unit == 0 || n > 100LL * 366 * 86400 / unit) return -1;
  return n * unit;
}

Parsed parse_command_line(int argc, char** argv) {
  Parsed p;
  if (argc < 2) {
    p.error = "no command given\n\n" + main_usage();
    return p;
  }
  std::string cmd = argv[1];
  if (cmd == "-h" || cmd == "--help" || cmd == "help") {
    p.help = main_usage();
    return p;
  }
  if (cmd == "--version" || cmd == "version") {
    p.help = std::string("pbackup ") + version_string() + "\n";
    return p;
  }
  std::vector<std::string> args(argv + 2, argv + argc);
  std::string cmdline = "pbackup";
  for (int i = 1; i < argc; ++i) cmdline += std::string(" ") + argv[i];
  try {
    if (cmd == "backup" || cmd == "consolidate") {
      p.command = Command::Backup;
      const bool con = cmd == "consolidate";  // a backup whose entries and bytes come from a chain
      BackupOptions& b = p.backup;
      b.command_line = cmdline;
      if (!con) b.sources = take_multi(args, "sources");
      b.excludes = take_repeated(args, "exclude");
      b.exclude_from = take_repeated(args, "exclude-from");
      b.keys.recipients = take_repeated(args, "encrypt-to");
      b.keys.recipient_files = take_repeated(args, "encrypt-to-file");
      b.keys.identity_files = take_repeated(args, "identity");  // only to read an encrypted --incremental-from
      cxxopts::Options o(con ? "pbackup consolidate" : "pbackup backup",
                         con ? "Make a full backup of the tree at an incremental level from its chain's archives (never the live tree), in parallel."
                             : "Back up directory trees into one archive, in parallel.");
      // Where and how the archive is written: the same for a backup and a consolidate (whose
      // output is a full backup in a tar format).
      auto output_options = [&](const char* algos, const char* levels) {
        o.add_options()("output-dir", "directory the archive is written to, or s3://BUCKET/PREFIX", cxxopts::value<std::string>())(
            "s3-part-mb", "cloud: multipart part size in MiB, 5-5120 (default 16; grown to stay within 10,000 parts)", cxxopts::value<std::string>())(
            "algo", algos, cxxopts::value<std::string>()->default_value("gzip"))(
            "dest-type", "hdd (one file) | usb_split (fragments of --split-chunk-mb MiB) | cloud (S3; implied by s3://)", cxxopts::value<std::string>()->default_value("hdd"))(
            "split-chunk-mb", "fragment size in MiB (needs --dest-type usb_split, or cloud: one object per fragment)", cxxopts::value<std::string>())(
            "name", "archive base name (default backup_YYYYMMDD_HHMMSS)", cxxopts::value<std::string>())(
            "block-mb", "input MiB per independently compressed block, 1-1024 (default 4)", cxxopts::value<std::string>())(
            "level", levels, cxxopts::value<std::string>())(
            "progress", "print progress lines every 5 s (default)")("no-progress", "no progress lines")(
            "json", "print the summary as one JSON object on stdout (archive, counts, bytes, seconds, warnings, exit code)");
      };
      if (con) {
        o.add_options()("source", "the level to consolidate: its archive, folder or s3:// URL (its chain is found beside it)",
                        cxxopts::value<std::string>());
        output_options("gzip | bzip2 | zstd (tar formats)", "compression level: gzip 1-12 (default 6), bzip2 1-9 (9), zstd 1-22 (3)");
      } else {
        o.add_options()("sources", "directories (or files) to back up; each is stored under its base name", cxxopts::value<std::string>());
        output_options("zip | gzip | bzip2 | zstd", "compression level: gzip 1-12 (default 6), bzip2 1-9 (9), zstd 1-22 (3), zip 1-9 (6)");
        o.add_options()(
            "exclude", "leave out paths matching this glob (repeatable): '*.o' any base name, 'cache/' directories only, "
                       "'proj/tmp' (with '/') anchored to the stored path, '**' crosses directories", cxxopts::value<std::string>())(
            "exclude-from", "read --exclude patterns from FILE, one per line ('#' comments, blank lines skipped)", cxxopts::value<std::string>())(
            "files-from", "back up exactly the paths listed in FILE ('-': stdin), each under the root of --sources it lies in",
            cxxopts::value<std::string>())("null", "--files-from items are NUL-separated (find -print0, lfs find -0)")(
            "one-file-system", "do not descend into directories on other file systems (mount points are stored)")(
            "dry-run", "scan and select only: print the paths that would be stored, their count and bytes; write nothing")(
            "incremental-from", "an incremental level: store only what changed since PREV (the previous level's archive, its folder "
                                "or s3:// URL; only its catalog is read); tar formats", cxxopts::value<std::string>())(
            "identity", "with --incremental-from: age identity file to read an encrypted PREV's catalog (repeatable; "
                        "a passphrase-encrypted PREV opens with --passphrase-file; the level must be encrypted too)", cxxopts::value<std::string>())(
            "encrypt-to", "encrypt the archive (and its catalog and manifest) with age to this recipient, age1... (repeatable); "
                          "the archive is written as BASE.EXT.age", cxxopts::value<std::string>())(
            "encrypt-to-file", "encrypt to the recipients listed in FILE, one age1... per line (as age -R; repeatable)",
            cxxopts::value<std::string>())(
            "passphrase-file", "encrypt with the passphrase in FILE (age scrypt; its first line without the newline)",
            cxxopts::value<std::string>())(
            "resume", "keep a journal of the rounds written (hdd, usb_split; needs --name and a tar format), so that a run "
                      "stopped by a signal (a Slurm time limit) is continued by the same command with --resume");
      }
      common(o);
      auto r = run_cxxopts(o, args);
      if (asked_help(r, o, p)) return p;
      if (!r.unmatched().empty()) throw cxxopts::exceptions::exception("unexpected argument '" + r.unmatched()[0] + "'");
      b.resume = r.count("resume") > 0;
      if (con) {
        if (!r.count("source")) throw cxxopts::exceptions::exception("--source is required (the level to consolidate)");
        b.consolidate_from = r["source"].as<std::string>();
        b.sources = {"(consolidate)"};  // none is read: the placeholder passes the checks below
        if (r["algo"].as<std::string>() == "zip") throw cxxopts::exceptions::exception("consolidate writes a tar format (--algo gzip, bzip2 or zstd)");
        // taken from the arguments before the parse: refused rather than silently applied
        if (!b.excludes.empty() || !b.exclude_from.empty())
          throw cxxopts::exceptions::exception("consolidate takes the whole tree of the level: no --exclude/--exclude-from");
        if (!b.keys.recipients.empty() || !b.keys.recipient_files.empty() || !b.keys.identity_files.empty())
          throw cxxopts::exceptions::exception("consolidate does not handle encryption yet (no --encrypt-to, --encrypt-to-file, --identity)");
      }
      if (b.sources.empty())
        throw cxxopts::exceptions::exception(r.count("files-from") ? "--files-from needs --sources (the roots the listed paths lie under)"
                                                                   : "--sources is required");
      if (r.count("files-from")) b.files_from = r["files-from"].as<std::string>();
      if (r.count("null") && b.files_from.empty()) throw cxxopts::exceptions::exception("--null needs --files-from");
      b.null_separated = r.count("null") > 0;
      b.one_file_system = r.count("one-file-system") > 0;
      b.dry_run = r.count("dry-run") > 0;
      if (r.count("incremental-from")) b.incremental_from = r["incremental-from"].as<std::string>();
      if (!b.keys.identity_files.empty() && b.incremental_from.empty())
        throw cxxopts::exceptions::exception("--identity needs --incremental-from (a backup only reads an encrypted previous level)");
      b.json = r.count("json") > 0;
      if (b.json && b.dry_run) throw cxxopts::exceptions::exception("--json and --dry-run cannot be combined (--dry-run prints paths)");
      if (!r.count("output-dir")) throw cxxopts::exceptions::exception("--output-dir is required");
      b.output_dir = r["output-dir"].as<std::string>();
      b.algo = r["algo"].as<std::string>();
      if (!one_of(b.algo, algo_names()))
        throw cxxopts::exceptions::exception("unknown --algo '" + b.algo + "' (valid: " + join(algo_names()) + ")");
      b.dest_type = r["dest-type"].as<std::string>();
      bool s3 = b.output_dir.rfind("s3://", 0) == 0;
      if (s3 && !r.count("dest-type")) b.dest_type = "cloud";
      if (s3 != (b.dest_type == "cloud"))
        throw cxxopts::exceptions::exception(s3 ? "--output-dir s3://... needs --dest-type cloud (or no --dest-type)"
                                                : "--dest-type cloud needs --output-dir s3://BUCKET/PREFIX");
      if (r.count("s3-part-mb")) b.s3_part_mb = number_in(r, "s3-part-mb", 5, 5120, " (S3's part size limits)");
      if (r.count("s3-endpoint")) b.s3_endpoint = r["s3-endpoint"].as<std::string>();
      if (r.count("s3-region")) b.s3_region = r["s3-region"].as<std::string>();
      if (r.count("s3-addressing")) b.s3_addressing = s3_addressing_flag(r);
      std::vector<std::string> dests;
      for (auto& d : destination_names())
        if (d != "memory") dests.push_back(d);
      if (!one_of(b.dest_type, dests))
        throw cxxopts::exceptions::exception("unknown --dest-type '" + b.dest_type + "' (valid: " + join(dests) + ")");
      if (r.count("split-chunk-mb")) {
        // 2^40 MiB: far beyond any file system, and `<< 20` cannot overflow
        b.split_chunk_mb = number_in(r, "split-chunk-mb", 1, 1ull << 40, " MiB");
        if (b.dest_type != "usb_split" && b.dest_type != "cloud")
          throw cxxopts::exceptions::exception("--split-chunk-mb needs --dest-type usb_split (fragments) or cloud; with --dest-type " +
                                               b.dest_type + " the archive is one file");
      } else if (b.dest_type == "usb_split") {
        throw cxxopts::exceptions::exception("--dest-type usb_split needs --split-chunk-mb N (the fragment size in MiB, e.g. 4000 for FAT32)");
      }
      if (r.count("name")) {
        b.name = r["name"].as<std::string>();
        if (b.name.empty() || b.name.find('/') != std::string::npos || b.name[0] == '.')
          throw cxxopts::exceptions::exception("--name must be a plain file name without '/' and not starting with '.'");
      }
      if (r.count("passphrase-file")) b.keys.passphrase_file = r["passphrase-file"].as<std::string>();
      if (b.keys.encrypting() && b.algo == "zip")
        throw cxxopts::exceptions::exception("encryption needs a tar format (--algo gzip, bzip2 or zstd), not zip");
      if (!b.keys.passphrase_file.empty() && (!b.keys.recipients.empty() || !b.keys.recipient_files.empty()))
        throw cxxopts::exceptions::exception("--passphrase-file cannot be combined with --encrypt-to or --encrypt-to-file (age allows a passphrase alone)");
      if (r.count("block-mb")) b.block_mb = number_in(r, "block-mb", 1, 1024);
      if (r.count("level")) {
        uint64_t lo, hi;
        level_range(b.algo, lo, hi);
        b.level = static_cast<int>(number_in(r, "level", lo, hi, " for --algo " + b.algo));
      }
      if (r.count("threads")) b.threads = static_cast<int>(number_in(r, "threads", 1, 1024));
      if (r.count("progress")) b.progress = 1;
      if (r.count("no-progress")) b.progress = 0;
      if (b.resume) {  // DESIGN §7 "Resume": what a journal can continue
        if (b.dest_type == "cloud")
          throw cxxopts::exceptions::exception("--resume is not supported for --dest-type cloud yet: it would need the multipart upload "
                                               "id, every uploaded part's ETag and the chained SHA-256 state in the journal");
        if (b.algo == "zip") throw cxxopts::exceptions::exception("--resume needs a tar format (--algo gzip, bzip2 or zstd): zip's central directory is built from every entry at the end");
        if (b.keys.encrypting()) throw cxxopts::exceptions::exception("--resume cannot be combined with encryption (the age chunks straddling rounds are not journaled)");
        if (b.name.empty()) throw cxxopts::exceptions::exception("--resume needs --name (the default name holds the start time, so a second run would not find the first one's journal)");
        if (b.dry_run) throw cxxopts::exceptions::exception("--resume and --dry-run cannot be combined (--dry-run writes nothing)");
      }
      b.log_level = parse_level(r["log-level"].as<std::string>(), p.error);
    } else if (cmd == "restore" || cmd == "list" || cmd == "verify" || cmd == "find" || cmd == "compare" || cmd == "report") {
      p.command = cmd == "restore" ? Command::Restore : cmd == "list" ? Command::List : cmd == "verify" ? Command::Verify
                  : cmd == "find" ? Command::Find : cmd == "report" ? Command::Report : Command::Compare;
      RestoreOptions& x = p.restore;
      if (cmd == "find") x.find_sources = take_multi(args, "source");
      x.keys.identity_files = take_repeated(args, "identity");
      if (cmd == "restore") {  // --only PATH, repeatable; taken whole (paths may hold commas)
        std::vector<std::string> rest;
        for (size_t i = 0; i < args.size(); ++i) {
          if (args[i] == "--only" && i + 1 < args.size()) x.only.push_back(args[++i]);
          else if (args[i].rfind("--only=", 0) == 0) x.only.push_back(args[i].substr(7));
          else rest.push_back(args[i]);
        }
        args.swap(rest);
        for (auto& o : x.only)
          while (o.size() > 1 && o.back() == '/') o.pop_back();
      }
      cxxopts::Options o("pbackup " + cmd,
                         cmd == "restore" ? "Restore an archive (ours or any tar/zip libarchive reads), from a file or a fragment set."
                         : cmd == "list"  ? "List the members of an archive, one per line (names with control characters escaped)."
                         : cmd == "find"  ? "Print ARCHIVE<TAB>PATH for every entry matching PATTERN, from the catalogs of the backups given."
                         : cmd == "compare" ? "Compare an archive with the live tree (like tar --compare); exit 0 identical, 1 differences, 2 error."
                         : cmd == "report" ? "Write one self-contained HTML page about a backup: per-rank timeline, throughput, sizes and compression by directory, largest files, warnings."
                                          : "Check an archive against its manifest: fragments present, sizes, SHA-256, every block.");
      o.add_options()("source", cmd == "find" ? "archives, folders holding backups, or s3:// prefixes (several allowed)"
                                              : "archive file, one of its fragments, or the directory holding the fragments", cxxopts::value<std::string>())(
          "original-base-filename", "archive name to pick when the directory holds several sets (e.g. backup_20261126_101010.tar.gz)",
          cxxopts::value<std::string>())("is-split", "accepted for compatibility (split sets are found by themselves)")(
          "identity", "age identity file (AGE-SECRET-KEY-1... lines, as age-keygen writes) for an encrypted archive (repeatable)",
          cxxopts::value<std::string>())("passphrase-file", "FILE whose first line is the passphrase of an encrypted archive: age (scrypt), or a foreign zip (ZipCrypto, WinZip AES), 7z or RAR; never printed",
                                       cxxopts::value<std::string>());
      if (cmd == "restore")
        o.add_options()("restore-to", "directory to restore into (created if missing)", cxxopts::value<std::string>())(
            "only", "restore only this member or directory, or the paths a glob matches (repeatable); with a manifest only its blocks are read",
            cxxopts::value<std::string>())("only-from", "read --only paths or globs from FILE, one per line", cxxopts::value<std::string>())(
            "keep-old-files", "do not replace existing files; each one is an error (exit 2)")(
            "skip-old-files", "do not replace existing files; skip them silently")(
            "keep-newer-files", "do not replace existing files that are newer than the archive's copy")(
            "numeric-owner", "as root, restore owners by the archive's numeric ids only (default: by user/group name where it exists here, as GNU tar)")(
            "every-node", "when --restore-to is a node-local directory (not shared by all ranks): restore a complete copy on every node (the archive is read once and copied to each node)");
      if (cmd == "restore" || cmd == "verify")
        o.add_options()("progress", "print progress lines every 5 s (default)")("no-progress", "no progress lines");
      if (cmd == "restore" || cmd == "list")
        o.add_options()(
            "stall-timeout", "archives streamed through libarchive: stop with exit 2 after SECONDS without progress (0: never)",
            cxxopts::value<std::string>()->default_value("60"))(
            "stream-memory-limit", "archives streamed through libarchive: stop with exit 2 past MIB of memory (0: no limit)",
            cxxopts::value<std::string>()->default_value("4096"));
      if (cmd == "find") o.custom_help("PATTERN --source PATH... [OPTION...]");
      if (cmd == "list") o.add_options()("l,long", "one line per entry like tar tvf (mode, owner, size, date, name), from the catalog");
      if (cmd == "report") o.add_options()("output", "the HTML file to write (replaced if it exists)", cxxopts::value<std::string>());
      if (cmd != "find" && cmd != "report")
        o.add_options()("json", cmd == "list" ? "one JSON object per member (JSON lines), then the summary object, on stdout"
                                              : "print the summary as one JSON object on stdout (archive, counts, bytes, seconds, warnings, exit code)");
      if (cmd == "compare")
        o.add_options()("against", "directory holding the stored roots (default: where the sources were, from the manifest)",
                        cxxopts::value<std::string>())("checksum", "compare file contents too");
      common(o);
      auto r = run_cxxopts(o, args);
      if (asked_help(r, o, p)) return p;
      std::vector<std::string> extra = r.unmatched();
      if (cmd == "find") {
        if (extra.empty()) throw cxxopts::exceptions::exception("find needs a PATTERN");
        x.pattern = extra.front();
        extra.erase(extra.begin());
        if (x.find_sources.empty()) throw cxxopts::exceptions::exception("--source is required (archives or folders holding backups)");
      }
      if (!extra.empty()) throw cxxopts::exceptions::exception("unexpected argument '" + extra[0] + "'");
      if (cmd != "find" && !r.count("source")) throw cxxopts::exceptions::exception("--source is required");
      if (cmd != "find") x.source = r["source"].as<std::string>();
      if (cmd == "list") x.long_list = r.count("long") > 0;
      if (cmd == "restore" || cmd == "list") {
        x.stall_timeout_s = static_cast<int>(number_in(r, "stall-timeout", 0, 86400 * 7));
        x.stream_memory_mib = number_in(r, "stream-memory-limit", 0, uint64_t{1} << 30);
      }
      if (cmd != "find" && cmd != "report") x.json = r.count("json") > 0;
      if (cmd == "restore" || cmd == "verify") x.progress = r.count("no-progress") == 0;
      if (cmd == "report") {
        if (!r.count("output")) throw cxxopts::exceptions::exception("--output FILE.html is required");
        x.output = r["output"].as<std::string>();
      }
      if (cmd == "compare") {
        if (r.count("against")) x.against = r["against"].as<std::string>();
        x.checksum = r.count("checksum") > 0;
      }
      if (cmd == "restore") {
        if (r.count("only-from")) {
          x.only_from = r["only-from"].as<std::string>();
          try {  // every rank reads it, as it reads the archive
            for (auto& o : read_pattern_file(x.only_from)) x.only.push_back(o);
          } catch (const Fatal& f) {
            throw cxxopts::exceptions::exception(std::string("--only-from: ") + f.what());
          }
          if (x.only.empty()) throw cxxopts::exceptions::exception("--only-from " + x.only_from + " lists no paths");
        }
        int n = static_cast<int>(r.count("keep-old-files") + r.count("skip-old-files") + r.count("keep-newer-files"));
        if (n > 1) throw cxxopts::exceptions::exception("choose one of --keep-old-files, --skip-old-files, --keep-newer-files");
        if (r.count("keep-old-files")) x.existing = RestoreOptions::Existing::KeepOld;
        if (r.count("skip-old-files")) x.existing = RestoreOptions::Existing::SkipOld;
        if (r.count("keep-newer-files")) x.existing = RestoreOptions::Existing::KeepNewer;
      }
      if (cmd == "restore") {
        if (!r.count("restore-to")) throw cxxopts::exceptions::exception("--restore-to is required");
        x.restore_to = r["restore-to"].as<std::string>();
        x.numeric_owner = r.count("numeric-owner") > 0;
        x.every_node = r.count("every-node") > 0;
      }
      x.is_split = r.count("is-split") > 0;
      if (r.count("passphrase-file")) x.keys.passphrase_file = r["passphrase-file"].as<std::string>();
      if (r.count("original-base-filename")) x.original_base_filename = r["original-base-filename"].as<std::string>();
      if (r.count("threads")) x.threads = static_cast<int>(number_in(r, "threads", 1, 1024));
      if (r.count("s3-endpoint")) x.s3_endpoint = r["s3-endpoint"].as<std::string>();
      if (r.count("s3-region")) x.s3_region = r["s3-region"].as<std::string>();
      if (r.count("s3-addressing")) x.s3_addressing = s3_addressing_flag(r);
      x.log_level = parse_level(r["log-level"].as<std::string>(), p.error);
    } else if (cmd == "cloud-cleanup") {
      p.command = Command::CloudCleanup;
      CleanupOptions& c = p.cleanup;
      cxxopts::Options o("pbackup cloud-cleanup",
                         "List and abort the S3 multipart uploads in progress under a prefix (left by killed or failed backups); "
                         "completed objects are never touched.");
      o.add_options()("source", "s3://BUCKET/PREFIX: uploads whose key starts with PREFIX", cxxopts::value<std::string>())(
          "older-than", "only uploads started at least this long ago: 90s, 30m, 12h, 7d, 2w (default: all)", cxxopts::value<std::string>())(
          "dry-run", "list what would be aborted; abort nothing");
      common(o);
      auto r = run_cxxopts(o, args);
      if (asked_help(r, o, p)) return p;
      if (!r.unmatched().empty()) throw cxxopts::exceptions::exception("unexpected argument '" + r.unmatched()[0] + "'");
      if (!r.count("source")) throw cxxopts::exceptions::exception("--source s3://BUCKET/PREFIX is required");
      c.source = r["source"].as<std::string>();
      if (c.source.rfind("s3://", 0) != 0) throw cxxopts::exceptions::exception("--source must be s3://BUCKET/PREFIX");
      if (r.count("older-than")) {
        c.older_than_s = parse_duration(r["older-than"].as<std::string>());
        if (c.older_than_s < 0)
          throw cxxopts::exceptions::exception("--older-than '" + r["older-than"].as<std::string>() + "': expected a number with s, m, h, d or w (e.g. 7d)");
      }
      c.dry_run = r.count("dry-run") > 0;
      if (r.count("s3-endpoint")) c.s3_endpoint = r["s3-endpoint"].as<std::string>();
      if (r.count("s3-region")) c.s3_region = r["s3-region"].as<std::string>();
      if (r.count("s3-addressing")) c.s3_addressing = s3_addressing_flag(r);
      c.log_level = parse_level(r["log-level"].as<std::string>(), p.error);
    } else {
      p.error = "unknown command '" + cmd + "' (valid: backup, restore, list, verify, find, compare, report, cloud-cleanup)";
    }
  } catch (const cxxopts::exceptions::exception& e) {
    p.error = std::string(e.what()) + " (see: pbackup " + cmd + " --help)";
  }
  return p;
}

}  // namespace pbackup
