// Logging with rank-tagged warnings and a warning counter that feeds the exit status.
#pragma once
#include <atomic>
#include <cstdint>
#include <mutex>
#include <string>
#include <vector>

namespace pbackup {

enum class LogLevel { Error = 0, Warn = 1, Info = 2, Debug = 3 };

// One warning as `--json` and the manifest report it: the file it is about (empty when it is
// about none) and the whole message.
struct LoggedWarning {
  std::string path, reason;
};

class Log {
 public:
  // `world`: the number of ranks; with more than one, error and warning lines say which rank
  // and host they come from ("pbackup: rank 1 (node7): error: ..."), since mpirun mixes the
  // ranks' stderr.
  Log(int rank, LogLevel level, int world = 1) : rank_(rank), world_(world), level_(level) {}
  void error(const std::string& msg);
  // A problem with one file (`path`, on disk or in the archive): the run goes on, the exit status
  // becomes 1. The first kMaxKeptWarnings are kept for --json and the manifest.
  void warn(const std::string& msg, const std::string& path = {});
  static constexpr size_t kMaxKeptWarnings = 10000;
  std::vector<LoggedWarning> kept_warnings();
  // A note that does not change the exit status (e.g. a socket skipped, as GNU tar does).
  void notice(const std::string& msg);
  void info(const std::string& msg);
  void debug(const std::string& msg);
  uint64_t warnings() const { return warnings_; }
  int rank() const { return rank_; }
  LogLevel level() const { return level_; }

 private:
  void line(const char* tag, const std::string& msg, bool with_rank);
  int rank_;
  int world_;
  LogLevel level_;
  std::atomic<uint64_t> warnings_{0};
  std::mutex mu_;
  std::vector<LoggedWarning> kept_;  // under mu_
};

}  // namespace pbackup
