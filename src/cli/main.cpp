// pbackup's entry point: parse, pick the Comm (MPI when started by a launcher, one local rank
// otherwise), run one pipeline, print the summary, exit with GNU tar's codes.
#include <clocale>
#include <cstdio>
#include <chrono>
#include <exception>
#include <thread>

#include <unistd.h>

#include "cli/options.h"
#include "core/cloud_cleanup.h"
#include "core/query.h"
#include "mpi/mpi_comm.h"
#include "pbackup/error.h"
#include "pbackup/pipeline.h"

using namespace pbackup;

namespace {

void print_summary(const BackupStats& s) {
  double ratio = s.bytes_out ? static_cast<double>(s.bytes_in) / s.bytes_out : 0;
  std::fprintf(stderr,
               "pbackup: %s: %llu files, %llu directories, %llu other; %.1f MB in, %.1f MB out "
               "(ratio %.2f); %.2f s, %.1f MB/s; %llu warnings\n",
               s.archive.c_str(), static_cast<unsigned long long>(s.files), static_cast<unsigned long long>(s.dirs),
               static_cast<unsigned long long>(s.other), s.bytes_in / 1e6, s.bytes_out / 1e6, ratio, s.seconds,
               s.bytes_in / 1e6 / std::max(s.seconds, 1e-9), static_cast<unsigned long long>(s.warnings));
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
  try {
    if (p.command == Command::Backup) {
      Log log(comm.rank(), p.backup.log_level, comm.size());
      S3ReportsToLog s3_reports(log);
      BackupStats stats;
      rc = run_backup(comm, p.backup, log, stats);
      if (comm.rank() == 0) {
        if (rc <= kExitWarnings && !p.backup.dry_run) print_summary(stats);
        else if (rc > 128)
          std::fprintf(stderr, "pbackup: interrupted by %s (signal %d): stopped, temporary files removed, no archive written\n",
                       signal_name(rc - 128), rc - 128);
      }
    } else if (p.command == Command::Restore) {
      Log log(comm.rank(), p.restore.log_level, comm.size());
      S3ReportsToLog s3_reports(log);
      rc = run_restore(comm, p.restore, log);
    } else if (p.command == Command::Find) {
      Log log(comm.rank(), p.restore.log_level, comm.size());
      S3ReportsToLog s3_reports(log);
      rc = run_find(comm, p.restore, log);
    } else if (p.command == Command::Compare) {
      Log log(comm.rank(), p.restore.log_level, comm.size());
      S3ReportsToLog s3_reports(log);
      rc = run_compare(comm, p.restore, log);
    } else if (p.command == Command::CloudCleanup) {
      Log log(comm.rank(), p.cleanup.log_level, comm.size());
      S3ReportsToLog s3_reports(log);
      rc = comm.rank() == 0 ? run_cloud_cleanup(p.cleanup, log) : kExitOk;  // one rank talks to S3
    } else if (p.command == Command::List) {
      Log log(comm.rank(), p.restore.log_level, comm.size());
      S3ReportsToLog s3_reports(log);
      rc = run_list(comm, p.restore, log);
    } else {
      Log log(comm.rank(), p.restore.log_level, comm.size());
      S3ReportsToLog s3_reports(log);
      rc = run_verify(comm, p.restore, log);
    }
  } catch (const std::exception& e) {
    if (comm.size() > 1)
      std::fprintf(stderr, "pbackup: rank %d (%s): error: %s\n", comm.rank(), host_name().c_str(), e.what());
    else
      std::fprintf(stderr, "pbackup: error: %s\n", e.what());
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
