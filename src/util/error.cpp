// Error messages (pbackup/error.h): quoting, errno messages, the host name for per-rank errors.
#include <unistd.h>

#include <cstring>
#include <string>

#include "pbackup/error.h"

namespace pbackup {

std::string quote(const std::string& path) { return "'" + path + "'"; }

std::string sys_message(const std::string& what, const std::string& path, int err) {
  return what + " " + quote(path) + ": " + std::strerror(err);
}

void throw_sys(const std::string& what, const std::string& path, int err) {
  throw Fatal(sys_message(what, path, err));
}

std::string host_name() {
  static const std::string name = [] {
    char b[256] = {};
    if (::gethostname(b, sizeof b - 1) != 0) return std::string("?");
    return std::string(b);
  }();
  return name;
}

}  // namespace pbackup
