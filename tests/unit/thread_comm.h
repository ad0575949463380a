// N ranks as N threads of one process: every Comm operation over a shared mailbox and a
// generation barrier, so the multi-rank protocols (scan hand-out, backup rounds, parallel
// restore, the cloud exchange) run in unit tests without mpirun.
//
// Like MPI, a collective must be entered by every rank in the same order; this one also checks
// that they entered the same collective and fails every rank with a message when not. When one
// rank throws, run_ranks wakes the others (they throw RanksAborted) and rethrows the first real
// error; a rank that waits longer than the deadline (a protocol deadlock) throws too, so a
// broken protocol fails a test instead of hanging it.
#pragma once
#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <exception>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "pbackup/comm.h"

namespace testutil {

struct RanksAborted : std::runtime_error {
  RanksAborted() : std::runtime_error("another thread-rank failed") {}
};

class ThreadWorld {
 public:
  explicit ThreadWorld(int n, std::chrono::seconds deadline = std::chrono::seconds(120))
      : n_(n), deadline_(deadline), slots_(static_cast<size_t>(n)), nums_(static_cast<size_t>(n)),
        ops_(static_cast<size_t>(n)), boxes_(static_cast<size_t>(n)) {
    if (n < 1) throw std::logic_error("ThreadWorld: at least one rank");
  }
  int size() const { return n_; }

  void abort() {
    std::vector<std::shared_ptr<ThreadWorld>> subs;
    {
      std::lock_guard<std::mutex> l(mu_);
      aborted_ = true;
      cv_.notify_all();
      for (auto& [k, w] : subs_) subs.push_back(w);
    }
    for (auto& w : subs) w->abort();  // ranks waiting in a split-off world wake too
  }

  // The world of split number `k`, colour `color` with `n` ranks: made by the first rank that
  // asks, shared with the others.
  std::shared_ptr<ThreadWorld> sub_world(uint64_t k, int color, int n) {
    std::lock_guard<std::mutex> l(mu_);
    auto& w = subs_[{k, color}];
    if (!w) w = std::make_shared<ThreadWorld>(n, deadline_);
    if (aborted_) w->aborted_ = true;
    return w;
  }

  // One collective step: every rank puts its contribution in (under the lock), all meet, each
  // reads what it needs, all meet again before the slots are reused.
  template <class Put, class Take>
  void collective(int rank, const char* op, Put put, Take take) {
    {
      std::lock_guard<std::mutex> l(mu_);
      ops_[static_cast<size_t>(rank)] = op;
      put(slots_, nums_);
    }
    sync(rank, op);
    {
      std::lock_guard<std::mutex> l(mu_);
      for (int r = 0; r < n_; ++r)
        if (ops_[static_cast<size_t>(r)] != op)
          throw std::logic_error(std::string("ThreadComm: rank ") + std::to_string(rank) + " in " + op + " but rank " +
                                 std::to_string(r) + " in " + ops_[static_cast<size_t>(r)]);
      take(static_cast<const std::vector<std::string>&>(slots_), static_cast<const std::vector<uint64_t>&>(nums_));
    }
    sync(rank, op);
  }

  void send(int from, int to, int tag, const std::string& bytes) {
    if (to < 0 || to >= n_) throw std::logic_error("ThreadComm: send to rank " + std::to_string(to) + " of " + std::to_string(n_));
    std::lock_guard<std::mutex> l(mu_);
    boxes_[static_cast<size_t>(to)].push_back({from, tag, bytes});
    cv_.notify_all();
  }
  // The first message for `me` with `tag` (from `source`, or any source when source < 0), in
  // the order sent; waits for one unless `wait` is false.
  std::optional<std::pair<int, std::string>> receive(int me, int source, int tag, bool wait) {
    std::unique_lock<std::mutex> l(mu_);
    auto& box = boxes_[static_cast<size_t>(me)];
    auto find = [&] {
      for (auto it = box.begin(); it != box.end(); ++it)
        if (it->tag == tag && (source < 0 || it->from == source)) return it;
      return box.end();
    };
    auto it = find();
    if (it == box.end() && !wait) return std::nullopt;
    const auto until = std::chrono::steady_clock::now() + deadline_;
    while ((it = find()) == box.end()) {
      if (aborted_) throw RanksAborted();
      if (cv_.wait_until(l, until) == std::cv_status::timeout && find() == box.end())
        throw std::runtime_error("ThreadComm: rank " + std::to_string(me) + " waited too long for tag " + std::to_string(tag));
    }
    std::pair<int, std::string> out{it->from, std::move(it->bytes)};
    box.erase(it);
    return out;
  }

 private:
  struct Msg {
    int from, tag;
    std::string bytes;
  };
  void sync(int rank, const char* op) {
    std::unique_lock<std::mutex> l(mu_);
    if (aborted_) throw RanksAborted();
    const uint64_t gen = generation_;
    if (++arrived_ == n_) {
      arrived_ = 0;
      ++generation_;
      cv_.notify_all();
      return;
    }
    if (!cv_.wait_for(l, deadline_, [&] { return generation_ != gen || aborted_; }))
      throw std::runtime_error("ThreadComm: rank " + std::to_string(rank) + " waited too long in " + op);
    if (generation_ == gen) throw RanksAborted();
  }

  const int n_;
  const std::chrono::seconds deadline_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool aborted_ = false;
  int arrived_ = 0;
  uint64_t generation_ = 0;
  std::vector<std::string> slots_;
  std::vector<uint64_t> nums_;
  std::vector<std::string> ops_;
  std::vector<std::deque<Msg>> boxes_;
  std::map<std::pair<uint64_t, int>, std::shared_ptr<ThreadWorld>> subs_;
};

class ThreadComm final : public pbackup::Comm {
 public:
  ThreadComm(ThreadWorld& w, int rank) : w_(w), rank_(rank) {}
  ThreadComm(std::shared_ptr<ThreadWorld> w, int rank) : keep_(std::move(w)), w_(*keep_), rank_(rank) {}
  int rank() const override { return rank_; }
  int size() const override { return w_.size(); }
  int local_size() const override { return w_.size(); }
  void barrier() override {
    w_.collective(rank_, "barrier", [](auto&, auto&) {}, [](auto&, auto&) {});
  }
  void broadcast(std::string& bytes, int root) override {
    check_root(root);
    w_.collective(
        rank_, "broadcast", [&](auto& s, auto&) { if (rank_ == root) s[root] = bytes; },
        [&](auto& s, auto&) { if (rank_ != root) bytes = s[root]; });
  }
  std::vector<std::string> gather(const std::string& mine, int root) override {
    check_root(root);
    std::vector<std::string> out;
    w_.collective(
        rank_, "gather", [&](auto& s, auto&) { s[rank_] = mine; },
        [&](auto& s, auto&) { if (rank_ == root) out = s; });
    return out;
  }
  std::string scatter(const std::vector<std::string>& parts, int root) override {
    check_root(root);
    if (rank_ == root && parts.size() != static_cast<size_t>(size()))
      throw std::logic_error("scatter: one part per rank expected");
    std::string mine;
    w_.collective(
        rank_, "scatter", [&](auto& s, auto&) { if (rank_ == root) s = parts; },
        [&](auto& s, auto&) { mine = s[rank_]; });
    return mine;
  }
  bool all_ok(bool ok) override { return reduce("all_ok", ok ? 1 : 0, [](uint64_t a, uint64_t b) { return std::min(a, b); }) == 1; }
  uint64_t sum(uint64_t v) override { return reduce("sum", v, [](uint64_t a, uint64_t b) { return a + b; }); }
  uint64_t max(uint64_t v) override { return reduce("max", v, [](uint64_t a, uint64_t b) { return std::max(a, b); }); }
  uint64_t exscan(uint64_t v) override {
    uint64_t out = 0;
    w_.collective(
        rank_, "exscan", [&](auto&, auto& n) { n[rank_] = v; },
        [&](auto&, auto& n) {
          for (int i = 0; i < rank_; ++i) out += n[static_cast<size_t>(i)];
        });
    return out;
  }
  // The strings travel as messages on a tag no protocol uses; the collective around them checks
  // every rank is in the same exchange (one sender's messages on one tag stay in order).
  std::vector<std::string> exchange(const std::vector<std::string>& to_each) override {
    if (to_each.size() != static_cast<size_t>(size())) throw std::logic_error("exchange: one string per rank expected");
    constexpr int kTag = -4242;
    w_.collective(rank_, "exchange", [](auto&, auto&) {}, [](auto&, auto&) {});
    for (int r = 0; r < size(); ++r) w_.send(rank_, r, kTag, to_each[static_cast<size_t>(r)]);
    std::vector<std::string> out;
    for (int r = 0; r < size(); ++r) out.push_back(w_.receive(rank_, r, kTag, true)->second);
    return out;
  }
  void send(int dest, int tag, const std::string& bytes) override { w_.send(rank_, dest, tag, bytes); }
  std::pair<int, std::string> recv_any(int tag) override { return *w_.receive(rank_, -1, tag, true); }
  std::optional<std::pair<int, std::string>> try_recv_any(int tag) override { return w_.receive(rank_, -1, tag, false); }
  std::string recv(int source, int tag) override {
    if (source < 0 || source >= size()) throw std::logic_error("ThreadComm: recv from rank " + std::to_string(source));
    return w_.receive(rank_, source, tag, true)->second;
  }
  // The interrupt flag is the process's, so every thread-rank sees a signal already.
  std::unique_ptr<pbackup::Comm> split(int color) override {
    std::vector<uint64_t> colors;
    w_.collective(
        rank_, "split", [&](auto&, auto& n) { n[rank_] = static_cast<uint64_t>(static_cast<uint32_t>(color)); },
        [&](auto&, auto& n) { colors = n; });
    int sub_rank = 0, sub_size = 0;
    for (int r = 0; r < size(); ++r)
      if (colors[static_cast<size_t>(r)] == colors[static_cast<size_t>(rank_)]) {
        if (r < rank_) ++sub_rank;
        ++sub_size;
      }
    return std::make_unique<ThreadComm>(w_.sub_world(splits_++, color, sub_size), sub_rank);
  }

 private:
  void check_root(int root) const {
    if (root < 0 || root >= size()) throw std::logic_error("ThreadComm: root " + std::to_string(root));
  }
  template <class Op>
  uint64_t reduce(const char* name, uint64_t v, Op op) {
    uint64_t out = 0;
    w_.collective(
        rank_, name, [&](auto&, auto& n) { n[rank_] = v; },
        [&](auto&, auto& n) {
          out = n[0];
          for (size_t i = 1; i < n.size(); ++i) out = op(out, n[i]);
        });
    return out;
  }
  std::shared_ptr<ThreadWorld> keep_;  // a split-off world this rank's comm keeps alive
  ThreadWorld& w_;
  int rank_;
  uint64_t splits_ = 0;  // splits so far: every rank splits in the same order
};

// Runs body(comm) on n thread-ranks and returns each rank's result (index = rank). The first
// exception a rank throws (other than the RanksAborted it causes elsewhere) is rethrown.
template <class R>
std::vector<R> run_ranks(int n, const std::function<R(pbackup::Comm&)>& body) {
  ThreadWorld world(n);
  std::vector<R> results(static_cast<size_t>(n));
  std::vector<std::exception_ptr> errors(static_cast<size_t>(n));
  std::vector<std::thread> threads;
  for (int r = 0; r < n; ++r)
    threads.emplace_back([&, r] {
      ThreadComm comm(world, r);
      try {
        results[static_cast<size_t>(r)] = body(comm);
      } catch (const RanksAborted&) {
        errors[static_cast<size_t>(r)] = std::current_exception();
      } catch (...) {
        errors[static_cast<size_t>(r)] = std::current_exception();
        world.abort();
      }
    });
  for (auto& t : threads) t.join();
  std::exception_ptr aborted;
  for (auto& e : errors) {
    if (!e) continue;
    try {
      std::rethrow_exception(e);
    } catch (const RanksAborted&) {
      aborted = e;
    } catch (...) {
      throw;
    }
  }
  if (aborted) std::rethrow_exception(aborted);
  return results;
}

}  // namespace testutil
