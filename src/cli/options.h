// Command-line parsing (cxxopts) for each subcommand. Parsing never touches MPI: every rank
// parses the same argv and reaches the same verdict.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "pbackup/options.h"

namespace pbackup {

enum class Command { Backup, Restore, List, Verify, Find, Compare, Report, CloudCleanup, Help };

struct Parsed {
  Command command = Command::Help;
  BackupOptions backup;
  RestoreOptions restore;
  CleanupOptions cleanup;
  std::string help;   // text to print (for --help)
  std::string error;  // non-empty: usage error, exit 2
};

Parsed parse_command_line(int argc, char** argv);
// "90s", "30m", "12h", "7d", "2w" in seconds; -1 when malformed or over 100 years.
int64_t parse_duration(const std::string& s);
std::string main_usage();

}  // namespace pbackup
