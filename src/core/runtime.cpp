// Process-wide runtime facts: how many threads a rank should use, and the interrupt flag set
// by SIGINT, SIGTERM, SIGHUP, SIGUSR1 and SIGUSR2 (Slurm sends SIGTERM at a time limit or on
// scancel; Open MPI's mpirun answers a SIGINT/SIGTERM/SIGHUP with SIGCONT to every rank, SIGTERM
// a second later and SIGKILL a second after that, and forwards SIGUSR1/SIGUSR2). The handler sets the flag
// and removes the registered temporary files at once (unlink is async-signal-safe), so nothing
// of the run is left even if a SIGKILL follows; the pipeline notices the flag at its next block,
// all ranks agree to stop, and exit 128+N. A watchdog ends the process if that takes too long.
#include <sched.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <clocale>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <thread>

#include "pbackup/pipeline.h"

namespace pbackup {
namespace {
// std::atomic<int> is lock-free here, so reading and writing it in a handler is safe.
std::atomic<int> g_interrupted{0};
static_assert(std::atomic<int>::is_always_lock_free, "the interrupt flag must be lock-free");

// Fixed buffers, so the signal path can unlink without allocating.
constexpr int kMaxTemps = 8;
char g_temps[kMaxTemps][4096];
std::atomic<int> g_ntemps{0};
static_assert(std::atomic<int>::is_always_lock_free);

char g_partial[4096];
std::atomic<bool> g_have_partial{false};

// Not from the signal handler: the pipeline may still be writing the member (and finishing it
// by name); the watchdogs call it just before they end the process.
void remove_partial() {
  if (g_have_partial.exchange(false)) ::unlink(g_partial);
}

void remove_temps() {
  const int n = g_ntemps.load();
  for (int i = 0; i < n; ++i) ::unlink(g_temps[i]);
  for (int i = 0; i < n; ++i) ::rmdir(g_temps[i]);  // a registered directory, once emptied (rmdir is signal-safe)
}

// A second signal changes nothing: the watchdog ends the process within kStopGrace anyway, and
// dying at once would skip aborting a cloud upload (mpirun under scancel sends a second SIGTERM
// a second after Slurm's own).
void on_signal(int sig) {
  int saved = errno;
  remove_temps();
  int none = 0;
  g_interrupted.compare_exchange_strong(none, sig);
  errno = saved;
}

// Gives the pipeline kStopGrace to stop cleanly after a signal (every rank agrees, rank 0
// aborts a cloud upload), then removes temporary files again and exits 128+N.
constexpr auto kStopGrace = std::chrono::milliseconds(1500);
void watchdog() {
  while (!g_interrupted) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  std::this_thread::sleep_for(kStopGrace);
  remove_temps();
  remove_partial();
  const char msg[] = "pbackup: interrupted; the run did not stop within 1.5 s, exiting now (temporary files removed)\n";
  if (::write(2, msg, sizeof msg - 1) < 0) {}
  ::_exit(128 + g_interrupted);
}
}  // namespace

// Writers take a lock: the list is the process's, and thread-ranks in one process (the unit
// tests' ThreadComm) register theirs from several threads. The handler only reads.
std::mutex g_temps_mu;

void register_temp_files(const std::vector<std::string>& paths) {
  std::lock_guard<std::mutex> lock(g_temps_mu);
  g_ntemps = 0;
  int n = 0;
  for (const auto& p : paths) {
    if (n == kMaxTemps || p.size() >= sizeof g_temps[0]) break;
    std::memcpy(g_temps[n], p.c_str(), p.size() + 1);
    ++n;
  }
  g_ntemps = n;
  if (g_interrupted) remove_temps();  // a signal came before the names were known
}

void set_partial_file(const std::string& path) {
  g_have_partial = false;
  if (path.empty() || path.size() >= sizeof g_partial) return;
  std::memcpy(g_partial, path.c_str(), path.size() + 1);
  g_have_partial = true;
}

void remove_temp_files_now() {
  remove_temps();
  remove_partial();
}

void interrupt_from_peer(int sig) { on_signal(sig); }

RunSummary& run_summary() {
  static RunSummary s;
  return s;
}

bool interrupted() { return g_interrupted.load(std::memory_order_relaxed) != 0; }
int interrupt_signal() { return g_interrupted.load(); }

const char* signal_name(int sig) {
  switch (sig) {
    case SIGINT: return "SIGINT";
    case SIGTERM: return "SIGTERM";
    case SIGHUP: return "SIGHUP";
    case SIGUSR1: return "SIGUSR1";
    case SIGUSR2: return "SIGUSR2";
    default: return "a signal";
  }
}

void install_signal_handlers() {
  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  for (int s : {SIGINT, SIGTERM, SIGHUP, SIGUSR1, SIGUSR2}) sigaddset(&sa.sa_mask, s);
  for (int s : {SIGINT, SIGTERM, SIGHUP, SIGUSR1, SIGUSR2}) {
    // `nohup pbackup ...` (a long backup that must outlive the login) starts with SIGHUP
    // ignored: it stays ignored.
    struct sigaction old {};
    if (s == SIGHUP && sigaction(s, nullptr, &old) == 0 && old.sa_handler == SIG_IGN) continue;
    sigaction(s, &sa, nullptr);
  }
  std::thread(watchdog).detach();
}

void use_utf8_locale() {
  const char* l = std::setlocale(LC_ALL, "");
  if (!l || !std::strcmp(l, "C") || !std::strcmp(l, "POSIX")) {
    if (!std::setlocale(LC_ALL, "C.UTF-8")) std::setlocale(LC_ALL, "C");
  }
  std::setlocale(LC_NUMERIC, "C");  // numbers in manifests and messages stay '.'-decimal
}

int default_threads(int local_ranks) {
  cpu_set_t set;
  CPU_ZERO(&set);
  int mine = 0;
  if (sched_getaffinity(0, sizeof set, &set) == 0) mine = CPU_COUNT(&set);
  int hw = static_cast<int>(std::thread::hardware_concurrency());
  if (mine <= 0) mine = hw > 0 ? hw : 1;
  // Bound to a subset of the cores: that subset is ours.
  if (hw > 0 && mine < hw) return mine;
  // Not bound: share the node's cores with the other ranks on it.
  return std::max(1, mine / std::max(local_ranks, 1));
}

}  // namespace pbackup
