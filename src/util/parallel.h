// parallel_map: run f(0..n-1) on up to `threads` threads, results in index order. The first
// exception stops the pool (no thread starts another index) and is rethrown once every thread
// has stopped. The one thread pool shape the pipeline stages need (compress blocks, hash
// fragments, verify blocks).
#pragma once
#include <algorithm>
#include <atomic>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

namespace pbackup {

template <class F>
auto parallel_map(size_t n, int threads, F f) -> std::vector<decltype(f(size_t{0}))> {
  std::vector<decltype(f(size_t{0}))> out(n);
  std::atomic<size_t> next{0};
  std::atomic<bool> failed{false};
  std::mutex mu;
  std::exception_ptr first;
  auto work = [&] {
    for (size_t i; !failed.load(std::memory_order_relaxed) && (i = next++) < n;) {
      try {
        out[i] = f(i);
      } catch (...) {
        std::lock_guard<std::mutex> l(mu);
        if (!first) first = std::current_exception();
        failed = true;
      }
    }
  };
  int k = std::max(1, std::min<int>(threads, static_cast<int>(std::min<size_t>(n, 1u << 20))));
  std::vector<std::thread> pool;
  for (int t = 1; t < k; ++t) pool.emplace_back(work);
  work();
  for (auto& t : pool) t.join();
  if (first) std::rethrow_exception(first);
  return out;
}

}  // namespace pbackup
