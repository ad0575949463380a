// Command-line parsing (cxxopts) for each subcommand. Parsing never touches MPI: every rank
// parses the same argv and reaches the same verdict.
#pragma once
#include <string>
#include <vector>

#include "pbackup/options.h"

namespace pbackup {

enum class Command { Backup, Restore, List, Verify, Find, Compare, Report, Help };

struct Parsed {
  Command command = Command::Help;
  BackupOptions backup;
  RestoreOptions restore;
  std::string help;   // text to print (for --help)
  std::string error;  // non-empty: usage error, exit 2
};

Parsed parse_command_line(int argc, char** argv);
std::string main_usage();

}  // namespace pbackup
