// Progress of one parallel phase over every rank (restore's blocks or members, verify's
// fragments and blocks): each rank counts the bytes it has done in `done` (from any thread);
// run(work) runs the work on a helper thread while the main thread (the one that may call MPI)
// posts this rank's count once a second (other ranks) or takes the others' (rank 0); rank 0
// prints "pbackup: LABEL: X of Y (P%), RATE/s, ETA N s" every 5 s (each line timestamped in
// batch logs), whatever the size of the ranks' shares. No rank waits for a report.
#pragma once
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <exception>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "pbackup/comm.h"
#include "util/units.h"

namespace pbackup {

class PhaseProgress {
 public:
  // `lines` false (--no-progress): the counts still travel, nothing is printed
  PhaseProgress(Comm& comm, std::string label, uint64_t total, bool lines = true)
      : comm_(comm), label_(std::move(label)), total_(total), tty_(::isatty(2)), start_(std::chrono::steady_clock::now()),
        phase_(next_phase()) {
    if (comm_.rank() == 0 && lines) ticker_.emplace(progress_interval(tty_), [this] { print(); });
    if (comm_.size() > 1) comm_.set_wait_hook([this] { tick(false); });  // rank 0 takes reports at collectives too
  }
  ~PhaseProgress() {
    if (comm_.size() > 1) comm_.set_wait_hook({});
    ticker_.reset();
    if (printed_ && tty_) std::fputc('\n', stderr);
  }
  PhaseProgress(const PhaseProgress&) = delete;
  PhaseProgress& operator=(const PhaseProgress&) = delete;

  std::atomic<uint64_t> done{0};

  // Runs work() (which must not call the Comm) and returns its result; rethrows its exception.
  template <class F>
  auto run(F work) -> decltype(work()) {
    if (comm_.size() == 1) return work();
    std::optional<decltype(work())> result;
    std::exception_ptr error;
    std::atomic<bool> finished{false};
    std::thread t([&] {
      try {
        result.emplace(work());
      } catch (...) {
        error = std::current_exception();
      }
      finished = true;
    });
    while (!finished) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
      comm_.poll_interrupt();
      tick(false);
    }
    t.join();
    tick(true);  // the last count of this rank
    if (error) std::rethrow_exception(error);
    return std::move(*result);
  }

 private:
  void tick(bool now) {
    auto t = std::chrono::steady_clock::now();
    if (!now && t - last_ < std::chrono::seconds(1)) return;
    last_ = t;
    // a report carries its phase in the top byte: one a rank sent in an earlier phase that rank
    // 0 reads only now is not counted here
    if (comm_.rank() != 0) return comm_.post_progress(phase_ << 56 | (done & kValueMask));
    comm_.take_progress(latest_);
    uint64_t others = 0;
    for (size_t r = 1; r < latest_.size(); ++r)
      if (latest_[r] >> 56 == phase_) others += latest_[r] & kValueMask;
    others_ = others;
  }
  void print() {
    printed_ = true;
    uint64_t d = std::min<uint64_t>(done + others_, total_);
    double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
    double rate = d / std::max(secs, 1e-9);
    double eta = rate > 0 ? (total_ - d) / rate : 0;
    std::string stamp = tty_ ? "\r" : "[" + log_timestamp() + "] ";
    std::fprintf(stderr, "%spbackup: %s: %s of %s (%.0f%%), %s/s, ETA %.0f s%s", stamp.c_str(), label_.c_str(),
                 human_bytes(d).c_str(), human_bytes(total_).c_str(), total_ ? 100.0 * d / total_ : 100.0,
                 human_bytes(static_cast<uint64_t>(rate)).c_str(), eta, tty_ ? "\033[K" : "\n");
    std::fflush(stderr);
  }

  static constexpr uint64_t kValueMask = (uint64_t{1} << 56) - 1;  // 64 PiB
  // every rank makes the same phases in the same order: 1, 2, ... (wrapping past 255 to 1)
  static uint64_t next_phase() {
    static std::atomic<uint64_t> n{0};
    return n++ % 255 + 1;
  }

  Comm& comm_;
  std::string label_;
  uint64_t total_;
  bool tty_;
  std::chrono::steady_clock::time_point start_, last_{};
  uint64_t phase_;
  std::vector<uint64_t> latest_;
  std::atomic<uint64_t> others_{0};
  std::atomic<bool> printed_{false};
  std::optional<Ticker> ticker_;  // last: prints from the fields above
};

}  // namespace pbackup
