#include "util/units.h"

#include <cstdio>
#include <cstdlib>
#include <ctime>

namespace pbackup {

std::string human_bytes(uint64_t bytes) {
  static const char* const kUnits[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
  char s[32];
  if (bytes < 1024) {
    std::snprintf(s, sizeof s, "%llu B", static_cast<unsigned long long>(bytes));
    return s;
  }
  double v = static_cast<double>(bytes);
  int i = 0;
  while (v >= 1024 && i < 6) {
    v /= 1024;
    ++i;
  }
  // 3 significant digits; a value that rounds up to 1024 is shown as such rather than 1.00 next
  std::snprintf(s, sizeof s, v < 10 ? "%.2f %s" : v < 100 ? "%.1f %s" : "%.0f %s", v, kUnits[i]);
  return s;
}

std::string log_timestamp() {
  std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char s[32];
  std::strftime(s, sizeof s, "%Y-%m-%d %H:%M:%S", &tm);
  return s;
}

}  // namespace pbackup

namespace pbackup {

std::chrono::milliseconds progress_interval(bool tty) {
  if (const char* t = std::getenv("PBACKUP_TEST_PROGRESS_MS")) {
    long ms = std::atol(t);
    if (ms > 0 && ms < 3600000) return std::chrono::milliseconds(ms);
  }
  return std::chrono::milliseconds(tty ? 1000 : 5000);
}

}  // namespace pbackup
