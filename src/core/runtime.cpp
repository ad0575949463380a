// Process-wide runtime facts: how many threads a rank should use, and the interrupt flag set
// by SIGINT/SIGTERM (Slurm sends SIGTERM at a time limit or on scancel). The handler only
// sets a flag and removes registered temporary files: the pipeline notices the flag at its
// next step, all ranks agree to abort, and temporary output is removed.
#include <sched.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <clocale>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <thread>

#include "pbackup/pipeline.h"

namespace pbackup {
namespace {
volatile sig_atomic_t g_interrupted = 0;
int g_local_ranks = 0;  // ranks on this node, from MPI (0: unknown)

// Fixed buffers, so the signal path can unlink without allocating.
constexpr int kMaxTemps = 8;
char g_temps[kMaxTemps][4096];
std::atomic<int> g_ntemps{0};

void remove_temps() {
  for (int i = 0; i < g_ntemps.load(); ++i) ::unlink(g_temps[i]);
}

void on_signal(int sig) {
  if (g_interrupted) {  // second signal: remove temporary files and stop now
    remove_temps();
    signal(sig, SIG_DFL);
    raise(sig);
  }
  g_interrupted = sig;
}

// Gives the pipeline 10 s to stop cleanly after a signal, then cleans up and exits.
void watchdog() {
  while (!g_interrupted) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  std::this_thread::sleep_for(std::chrono::seconds(10));
  remove_temps();
  const char msg[] = "pbackup: interrupted; did not stop within 10 s, exiting\n";
  if (::write(2, msg, sizeof msg - 1) < 0) {}
  ::_exit(128 + g_interrupted);
}
}  // namespace

void register_temp_files(const std::vector<std::string>& paths) {
  g_ntemps = 0;
  int n = 0;
  for (const auto& p : paths) {
    if (n == kMaxTemps || p.size() >= sizeof g_temps[0]) break;
    std::memcpy(g_temps[n], p.c_str(), p.size() + 1);
    ++n;
  }
  g_ntemps = n;
}

bool interrupted() { return g_interrupted != 0; }
int interrupt_signal() { return g_interrupted; }

void install_signal_handlers() {
  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  std::thread(watchdog).detach();
}

void use_utf8_locale() {
  const char* l = std::setlocale(LC_ALL, "");
  if (!l || !std::strcmp(l, "C") || !std::strcmp(l, "POSIX")) {
    if (!std::setlocale(LC_ALL, "C.UTF-8")) std::setlocale(LC_ALL, "C");
  }
  std::setlocale(LC_NUMERIC, "C");  // numbers in manifests and messages stay '.'-decimal
}

int default_threads() {
  cpu_set_t set;
  CPU_ZERO(&set);
  int mine = 0;
  if (sched_getaffinity(0, sizeof set, &set) == 0) mine = CPU_COUNT(&set);
  int hw = static_cast<int>(std::thread::hardware_concurrency());
  if (mine <= 0) mine = hw > 0 ? hw : 1;
  // Bound to a subset of the cores: that subset is ours.
  if (hw > 0 && mine < hw) return mine;
  // Not bound: share the node's cores with the other ranks on it.
  int ranks = g_local_ranks;
  if (ranks < 1) {
    const char* local = std::getenv("OMPI_COMM_WORLD_LOCAL_SIZE");
    ranks = local ? std::atoi(local) : 1;
  }
  return std::max(1, mine / std::max(ranks, 1));
}

void set_local_ranks(int n) { g_local_ranks = n; }

}  // namespace pbackup
