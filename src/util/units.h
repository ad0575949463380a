// Sizes for people: binary units throughout (B, KiB, MiB, GiB, TiB, PiB), as the options take
// MiB (--block-mb, --split-chunk-mb), scaled so a 2 TiB backup does not read "2100000.0 MB".
#pragma once
#include <cstdint>
#include <string>

namespace pbackup {

// "512 B", "1.5 KiB", "12.3 MiB", "2.10 TiB": three significant digits from KiB up.
std::string human_bytes(uint64_t bytes);
// "2026-11-29 13:02:05" (UTC), the prefix of progress lines in batch logs.
std::string log_timestamp();

}  // namespace pbackup

#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <thread>

namespace pbackup {

// How often progress lines come: 5 s in batch logs, 1 s on a terminal; PBACKUP_TEST_PROGRESS_MS
// (tests only) overrides both.
std::chrono::milliseconds progress_interval(bool tty);

// Calls `tick` every `every` on a thread of its own until destroyed: progress lines that come
// whatever the main thread is doing. `tick` must only read atomics and print.
class Ticker {
 public:
  Ticker(std::chrono::milliseconds every, std::function<void()> tick) : every_(every), tick_(std::move(tick)), thread_([this] { run(); }) {}
  ~Ticker() {
    {
      std::lock_guard<std::mutex> l(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }
  Ticker(const Ticker&) = delete;
  Ticker& operator=(const Ticker&) = delete;

 private:
  void run() {
    std::unique_lock<std::mutex> l(mu_);
    while (!cv_.wait_for(l, every_, [&] { return stop_; })) tick_();
  }
  std::chrono::milliseconds every_;
  std::function<void()> tick_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::thread thread_;  // last: starts once everything above exists
};

}  // namespace pbackup
