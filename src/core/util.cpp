// Small shared pieces: logging, entry ordering and serialization, the one-rank Comm.
// (Error messages and SHA-256 are in src/util.)
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <iostream>

#include "pbackup/comm.h"
#include "pbackup/entry.h"
#include "pbackup/error.h"
#include "pbackup/log.h"
#include "pbackup/sha256.h"

namespace pbackup {

// ---- Log ----
void Log::line(const char* tag, const std::string& msg, bool with_rank) {
  std::string s = "pbackup: ";
  if (with_rank && world_ > 1) s += "rank " + std::to_string(rank_) + " (" + host_name() + "): ";
  if (*tag) s += std::string(tag) + ": ";
  s += msg;
  s += "\n";
  std::lock_guard<std::mutex> lock(mu_);
  std::fwrite(s.data(), 1, s.size(), stderr);
  std::fflush(stderr);
}
void Log::error(const std::string& msg) { line("error", msg, true); }
void Log::warn(const std::string& msg, const std::string& path) {
  ++warnings_;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (kept_.size() < kMaxKeptWarnings) kept_.push_back({path, msg});
  }
  if (level_ >= LogLevel::Warn) line("warning", msg, true);
}
std::vector<LoggedWarning> Log::kept_warnings() {
  std::lock_guard<std::mutex> lock(mu_);
  return kept_;
}
void Log::notice(const std::string& msg) {
  if (level_ >= LogLevel::Warn) line("warning", msg, true);
}
void Log::info(const std::string& msg) {
  if (level_ >= LogLevel::Info) line("", msg, false);
}
void Log::debug(const std::string& msg) {
  if (level_ >= LogLevel::Debug) line("debug", msg, true);
}

// ---- Entry ----
std::string disk_path(const Root& r, std::string_view path) {
  const auto slash = path.find('/');
  if (slash == std::string_view::npos) return r.disk;
  return r.disk + std::string(path.substr(slash));
}

std::string disk_path(const Entry& e, const std::vector<Root>& roots) { return disk_path(roots.at(e.root), e.path); }

// Sorting compares paths that share long prefixes (the roots, the directories): the common
// prefix is skipped 8 bytes at a time, then the first differing byte decides ('/' first).
bool path_less(std::string_view a, std::string_view b) {
  const size_t n = std::min(a.size(), b.size());
  const char* p = a.data();
  const char* q = b.data();
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    uint64_t x, y;
    std::memcpy(&x, p + i, 8);
    std::memcpy(&y, q + i, 8);
    if (x != y) break;
  }
  for (; i < n; ++i) {
    const auto x = static_cast<unsigned char>(p[i]), y = static_cast<unsigned char>(q[i]);
    if (x == y) continue;
    if (x == '/') return true;
    if (y == '/') return false;
    return x < y;
  }
  return a.size() < b.size();
}

// ---- LocalComm: a single rank never talks to anyone ----
std::unique_ptr<Comm> Comm::split(int) { throw std::logic_error("this Comm cannot be split"); }

std::vector<std::string> LocalComm::exchange(const std::vector<std::string>& to_each) {
  if (to_each.size() != 1) throw std::logic_error("exchange: one string per rank expected");
  return to_each;
}
void LocalComm::send(int, int, const std::string&) {
  throw std::logic_error("LocalComm::send: a one-rank run has no peer");
}
std::pair<int, std::string> LocalComm::recv_any(int) {
  throw std::logic_error("LocalComm::recv_any: a one-rank run has no peer");
}
std::string LocalComm::recv(int, int) {
  throw std::logic_error("LocalComm::recv: a one-rank run has no peer");
}

}  // namespace pbackup
