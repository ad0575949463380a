// pbackup's entry point: parse, pick the Comm (MPI when started by a launcher, one local rank
// otherwise), run one pipeline, print the summary, exit with GNU tar's codes.
#include <clocale>
#include <cstdio>
#include <chrono>
#include <exception>
#include <thread>

#include <unistd.h>

#include <nlohmann/json.hpp>

#include "cli/options.h"
#include "core/cloud_cleanup.h"
#include "core/query.h"
#include "mpi/mpi_comm.h"
#include "pbackup/error.h"
#include "pbackup/pipeline.h"
#include "pbackup/wire.h"
#include "util/units.h"

using namespace pbackup;

namespace {

void print_summary(const BackupStats& s) {
  double ratio = s.bytes_out ? static_cast<double>(s.bytes_in) / s.bytes_out : 0;
  std::fprintf(stderr,
               "pbackup: %s: %llu files, %llu directories, %llu other; %s in, %s out "
               "(ratio %.2f); %.2f s, %s/s; %llu warnings\n",
               s.archive.c_str(), static_cast<unsigned long long>(s.files), static_cast<unsigned long long>(s.dirs),
               static_cast<unsigned long long>(s.other), human_bytes(s.bytes_in).c_str(), human_bytes(s.bytes_out).c_str(), ratio,
               s.seconds, human_bytes(static_cast<uint64_t>(s.bytes_in / std::max(s.seconds, 1e-9))).c_str(),
               static_cast<unsigned long long>(s.warnings));
}

using Json = nlohmann::ordered_json;

Json count_or_null(uint64_t v) { return v == RunSummary::kUnknown ? Json(nullptr) : Json(v); }

// --json: every rank calls it (the warnings of all ranks are gathered to rank 0), rank 0 prints
// one JSON object on stdout. Names that are not UTF-8 have their bad bytes replaced (U+FFFD).
void print_json(Comm& comm, Log& log, const std::string& command, int rc, const BackupStats* b) {
  std::vector<std::string> mine;  // path, reason, ...
  for (auto& w : log.kept_warnings()) {
    mine.push_back(std::move(w.path));
    mine.push_back(std::move(w.reason));
  }
  std::vector<std::string> all = comm.gather(to_wire(mine), 0);
  uint64_t total = comm.sum(log.warnings());
  if (comm.rank() != 0) return;
  const RunSummary& r = run_summary();
  Json j;
  j["command"] = command;
  if (b && rc == kExitFatal) {  // nothing committed: no counts
    j["archive"] = b->archive.empty() ? Json(nullptr) : Json(b->archive);
    for (const char* k : {"entries", "files", "directories", "other", "bytes_in", "bytes_out"}) j[k] = nullptr;
    j["seconds"] = b->seconds;
  } else if (b) {
    j["archive"] = b->archive;
    j["entries"] = b->files + b->dirs + b->other;
    j["files"] = b->files;
    j["directories"] = b->dirs;
    j["other"] = b->other;
    j["bytes_in"] = b->bytes_in;
    j["bytes_out"] = b->bytes_out;
    j["seconds"] = b->seconds;
  } else {
    j["archive"] = r.archive.empty() ? Json(nullptr) : Json(r.archive);
    j["entries"] = count_or_null(r.entries);
    j["files"] = count_or_null(r.files);
    j["directories"] = count_or_null(r.dirs);
    j["bytes_in"] = count_or_null(r.bytes_in);
    j["bytes_out"] = count_or_null(r.bytes_out);
    j["seconds"] = r.seconds;
  }
  if (command == "compare") {
    Json d = Json::array();
    for (auto& [path, what] : r.differences) d.push_back({{"path", path}, {"difference", what}});
    j["differences"] = d;
    j["differences_total"] = r.differences_total;
  }
  Json w = Json::array();
  for (const auto& msg : all) {
    auto v = from_wire<std::vector<std::string>>(msg);
    for (size_t i = 0; i + 1 < v.size(); i += 2) w.push_back({{"path", v[i]}, {"reason", v[i + 1]}});
  }
  j["warnings"] = w;
  j["warnings_total"] = total;
  j["exit_code"] = rc;
  std::string out = j.dump(-1, ' ', false, Json::error_handler_t::replace) + "\n";
  std::fwrite(out.data(), 1, out.size(), stdout);
  std::fflush(stdout);
}

const char* command_name(Command c) {
  switch (c) {
    case Command::Backup: return "backup";
    case Command::Restore: return "restore";
    case Command::List: return "list";
    case Command::Verify: return "verify";
    case Command::Compare: return "compare";
    case Command::Find: return "find";
    case Command::Report: return "report";
    default: return "";
  }
}

}  // namespace

int main(int argc, char** argv) {
  use_utf8_locale();
  Parsed p = parse_command_line(argc, argv);
  if (!p.error.empty()) {
    std::fprintf(stderr, "pbackup: %s\n", p.error.c_str());
    return kExitFatal;
  }
  if (p.command == Command::Help) {
    std::fputs(p.help.c_str(), stdout);
    return kExitOk;
  }
  LocalComm local;
  std::unique_ptr<Comm> mpi;
  if (launched_by_mpi()) mpi = make_mpi_comm(argc, argv);
  install_signal_handlers();  // after MPI_Init, so ours are the handlers in force
  Comm& comm = mpi ? *mpi : local;
  int rc = kExitFatal;
  bool json = p.command == Command::Backup ? p.backup.json : p.restore.json;
  std::unique_ptr<Log> json_log;  // the run's Log, kept for --json
  try {
    if (p.command == Command::Backup) {
      json_log = std::make_unique<Log>(comm.rank(), p.backup.log_level, comm.size());
      Log& log = *json_log;
      S3ReportsToLog s3_reports(log);
      BackupStats stats;
      rc = run_backup(comm, p.backup, log, stats);
      if (json && rc < 128) print_json(comm, log, p.backup.consolidate_from.empty() ? "backup" : "consolidate", rc, &stats);
      if (comm.rank() == 0) {
        if (rc <= kExitWarnings && !p.backup.dry_run) print_summary(stats);
        else if (rc > 128)
          std::fprintf(stderr, "pbackup: interrupted by %s (signal %d): stopped, %s, no archive written\n", signal_name(rc - 128), rc - 128,
                       p.backup.resume ? "the journal kept for --resume" : "temporary files removed");
      }
    } else if (p.command == Command::CloudCleanup) {
      Log log(comm.rank(), p.cleanup.log_level, comm.size());
      S3ReportsToLog s3_reports(log);
      rc = comm.rank() == 0 ? run_cloud_cleanup(p.cleanup, log) : kExitOk;  // one rank talks to S3
    } else {
      json_log = std::make_unique<Log>(comm.rank(), p.restore.log_level, comm.size());
      Log& log = *json_log;
      S3ReportsToLog s3_reports(log);
      if (p.command == Command::Restore) rc = run_restore(comm, p.restore, log);
      else if (p.command == Command::Find) rc = run_find(comm, p.restore, log);
      else if (p.command == Command::Compare) rc = run_compare(comm, p.restore, log);
      else if (p.command == Command::List) rc = run_list(comm, p.restore, log);
      else if (p.command == Command::Report) rc = run_report(comm, p.restore, log);
      else rc = run_verify(comm, p.restore, log);
      if (json && rc < 128) print_json(comm, log, command_name(p.command), rc, nullptr);
    }
  } catch (const std::exception& e) {
    if (comm.size() > 1)
      std::fprintf(stderr, "pbackup: rank %d (%s): error: %s\n", comm.rank(), host_name().c_str(), e.what());
    else
      std::fprintf(stderr, "pbackup: error: %s\n", e.what());
    if (json && comm.size() == 1) {  // one rank: monitoring still gets its object
      Json j;
      j["command"] = command_name(p.command);
      j["error"] = e.what();
      j["exit_code"] = kExitFatal;
      std::string out = j.dump(-1, ' ', false, Json::error_handler_t::replace) + "\n";
      std::fwrite(out.data(), 1, out.size(), stdout);
    }
    if (comm.size() > 1) mpi_abort(kExitFatal);
    return kExitFatal;
  }
  // Interrupted: leave without MPI_Finalize. It waits for the launcher, which does not answer
  // while it is killing the job (mpirun: between its SIGTERM and SIGKILL to the ranks), so the
  // ranks sat in it until the SIGKILL. Everything of the run is already removed; a short pause
  // lets mpirun forward what the ranks wrote to stderr (without it the last lines were lost).
  if (rc > 128 && comm.size() > 1) {
    std::fflush(nullptr);
    std::this_thread::sleep_for(std::chrono::milliseconds(250));
    ::_exit(rc);
  }
  return rc;
}
