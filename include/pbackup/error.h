// Errors and the exit codes they map to (as GNU tar: 0 ok, 1 some files differ/skipped,
// 2 fatal). Messages carry the path and the reason; helpers format errno for the call site.
#pragma once
#include <stdexcept>
#include <string>

namespace pbackup {

enum ExitCode { kExitOk = 0, kExitWarnings = 1, kExitFatal = 2 };

class Fatal : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// "'path': reason" with strerror(err).
std::string sys_message(const std::string& what, const std::string& path, int err);
[[noreturn]] void throw_sys(const std::string& what, const std::string& path, int err);

// This machine's name, for messages that say which rank and host failed.
std::string host_name();

// Quotes a path for messages.
std::string quote(const std::string& path);

}  // namespace pbackup
