// Comm over an MPI communicator (its own duplicate, so its messages never mix with a caller's on
// the same communicator). Boost.MPI starts and ends MPI; the exchanges themselves use MPI's
// nonblocking calls and wait for them with `wait` below, because a blocking MPI call spins its
// core at 100% until the other ranks arrive. Only the main thread calls MPI, and it shares its
// rank's core with the threads that compress or extract: under mpirun (one core per rank) the
// spinning took a third of the compressors' time (bzip2 backup: 17.1 CPU s instead of 15.7).
// Strings travel as a length exchange followed by the bytes, in chunks below MPI's int counts
// (chunks.h): the manifest broadcast passes 2 GiB near 8 million blocks.
#include "mpi/mpi_comm.h"

#include <mpi.h>
#include <signal.h>

#include <boost/mpi/environment.hpp>
#include <chrono>
#include <climits>
#include <deque>
#include <functional>
#include <memory>
#include <cstdlib>
#include <cstring>
#include <numeric>
#include <stdexcept>
#include <thread>

#include "mpi/chunks.h"
#include "pbackup/pipeline.h"

namespace pbackup {
namespace {

namespace mpi = boost::mpi;

void check(int rc, const char* what) {
  if (rc != MPI_SUCCESS) throw std::runtime_error(std::string("MPI call failed: ") + what);
}

constexpr int kTagStop = 9999;  // "I was interrupted by signal N" (see poll_interrupt)
constexpr int kTagProgress = 9998;  // a rank's progress counter (post_progress)

class MpiComm : public Comm {
 public:
  explicit MpiComm(MPI_Comm parent) {
    check(MPI_Comm_dup(parent, &comm_), "MPI_Comm_dup");
    MPI_Comm_rank(comm_, &rank_);
    MPI_Comm_size(comm_, &size_);
    MPI_Comm node;  // the ranks on this node share its cores (see default_threads)
    if (MPI_Comm_split_type(comm_, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &node) == MPI_SUCCESS) {
      MPI_Comm_size(node, &local_size_);
      MPI_Comm_free(&node);
    } else if (const char* local = std::getenv("Ocomm__LOCAL_SIZE")) {
      local_size_ = std::max(1, std::atoi(local));
    }
  }
  ~MpiComm() override {
    // a progress send rank 0 never read may still use its buffer: leave those 8 bytes be
    for (auto& [buf, req] : progress_sends_) (void)buf.release();
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (!finalized) MPI_Comm_free(&comm_);
  }
  MpiComm(const MpiComm&) = delete;
  MpiComm& operator=(const MpiComm&) = delete;
  int local_size() const override { return local_size_; }
  int rank() const override { return rank_; }
  int size() const override { return size_; }
  void barrier() override {
    MPI_Request r;
    check(MPI_Ibarrier(comm_, &r), "MPI_Ibarrier");
    wait(r);
  }
  // The length, then the bytes in chunks of at most chunks::chunk_bytes().
  void broadcast(std::string& bytes, int root) override {
    unsigned long long n = bytes.size();
    MPI_Request r;
    check(MPI_Ibcast(&n, 1, MPI_UNSIGNED_LONG_LONG, root, comm_, &r), "MPI_Ibcast");
    wait(r);
    bytes.resize(n);
    const uint64_t c = chunks::chunk_bytes();
    for (uint64_t k = 0; k * c < n; ++k) {
      check(MPI_Ibcast(bytes.data() + k * c, chunks::in_round(n, c, k), MPI_CHAR, root, comm_, &r), "MPI_Ibcast");
      wait(r);
    }
  }
  // Every rank learns every length (one allgather of 64-bit sizes), then the bytes go in rounds
  // (chunks.h) so no count or displacement passes INT_MAX.
  std::vector<std::string> gather(const std::string& mine, int root) override {
    unsigned long long n = mine.size();
    std::vector<unsigned long long> all(size_);
    MPI_Request r;
    check(MPI_Iallgather(&n, 1, MPI_UNSIGNED_LONG_LONG, all.data(), 1, MPI_UNSIGNED_LONG_LONG, comm_, &r),
          "MPI_Iallgather");
    wait(r);
    std::vector<uint64_t> sizes(all.begin(), all.end());
    const uint64_t c = chunks::per_rank_chunk(chunks::chunk_bytes(), size_);
    std::vector<std::string> out;
    if (rank_ == root)
      for (uint64_t s : sizes) out.emplace_back(s, '\0');
    std::vector<int> counts, displs;
    std::string flat;
    for (uint64_t k = 0, rounds = chunks::rounds(sizes, c); k < rounds; ++k) {
      uint64_t total = chunks::round_layout(sizes, c, k, counts, displs);
      if (rank_ == root) flat.resize(total);
      check(MPI_Igatherv(mine.data() + std::min<uint64_t>(k * c, n), chunks::in_round(n, c, k), MPI_CHAR, flat.data(),
                         counts.data(), displs.data(), MPI_CHAR, root, comm_, &r),
            "MPI_Igatherv");
      wait(r);
      if (rank_ == root)
        for (int i = 0; i < size_; ++i)
          if (counts[i]) std::memcpy(out[i].data() + k * c, flat.data() + displs[i], static_cast<size_t>(counts[i]));
    }
    return out;
  }
  // Root sends each rank its length and the number of rounds, then the bytes round by round.
  std::string scatter(const std::vector<std::string>& parts, int root) override {
    const uint64_t c = chunks::per_rank_chunk(chunks::chunk_bytes(), size_);
    std::vector<uint64_t> sizes;
    std::vector<unsigned long long> head;  // (length, rounds) per rank
    if (rank_ == root) {
      if (parts.size() != static_cast<size_t>(size_)) throw std::logic_error("scatter: one part per rank expected");
      for (const auto& p : parts) sizes.push_back(p.size());
      uint64_t rounds = chunks::rounds(sizes, c);
      for (uint64_t s : sizes) {
        head.push_back(s);
        head.push_back(rounds);
      }
    }
    unsigned long long my_head[2] = {0, 0};
    MPI_Request r;
    check(MPI_Iscatter(head.data(), 2, MPI_UNSIGNED_LONG_LONG, my_head, 2, MPI_UNSIGNED_LONG_LONG, root, comm_, &r),
          "MPI_Iscatter");
    wait(r);
    const uint64_t n = my_head[0];
    std::string mine(n, '\0');
    std::vector<int> counts, displs;
    std::string flat;
    for (uint64_t k = 0; k < my_head[1]; ++k) {
      if (rank_ == root) {
        flat.resize(chunks::round_layout(sizes, c, k, counts, displs));
        for (int i = 0; i < size_; ++i)
          if (counts[i]) std::memcpy(flat.data() + displs[i], parts[i].data() + k * c, static_cast<size_t>(counts[i]));
      }
      check(MPI_Iscatterv(flat.data(), counts.data(), displs.data(), MPI_CHAR, mine.data() + std::min<uint64_t>(k * c, n),
                          chunks::in_round(n, c, k), MPI_CHAR, root, comm_, &r),
            "MPI_Iscatterv");
      wait(r);
    }
    return mine;
  }
  bool all_ok(bool ok) override { return all_reduce(ok ? 1 : 0, MPI_MIN) == 1; }
  uint64_t sum(uint64_t v) override { return all_reduce(v, MPI_SUM); }
  uint64_t max(uint64_t v) override { return all_reduce(v, MPI_MAX); }
  uint64_t exscan(uint64_t v) override {
    unsigned long long in = v, out = 0;
    MPI_Request r;
    check(MPI_Iexscan(&in, &out, 1, MPI_UNSIGNED_LONG_LONG, MPI_SUM, comm_, &r), "MPI_Iexscan");
    wait(r);
    return rank_ == 0 ? 0 : out;  // undefined on rank 0
  }
  // The 64-bit lengths go first (one alltoall), then the bytes in rounds: in round k every pair
  // moves bytes [k*C, (k+1)*C) of its string, C = per_rank_chunk(), so every rank's round total
  // and displacements stay below INT_MAX. Every rank runs the same number of rounds (the
  // longest string anywhere decides).
  std::vector<std::string> exchange(const std::vector<std::string>& to_each) override {
    if (to_each.size() != static_cast<size_t>(size_)) throw std::logic_error("exchange: one string per rank expected");
    std::vector<unsigned long long> out_n(static_cast<size_t>(size_)), in_n(static_cast<size_t>(size_));
    for (int i = 0; i < size_; ++i) out_n[static_cast<size_t>(i)] = to_each[static_cast<size_t>(i)].size();
    MPI_Request r;
    check(MPI_Ialltoall(out_n.data(), 1, MPI_UNSIGNED_LONG_LONG, in_n.data(), 1, MPI_UNSIGNED_LONG_LONG, comm_, &r),
          "MPI_Ialltoall");
    wait(r);
    std::vector<uint64_t> out_sizes(out_n.begin(), out_n.end()), in_sizes(in_n.begin(), in_n.end());
    const uint64_t c = chunks::per_rank_chunk(chunks::chunk_bytes(), size_);
    const uint64_t rounds = all_reduce(std::max(chunks::rounds(out_sizes, c), chunks::rounds(in_sizes, c)), MPI_MAX);
    std::vector<std::string> out;
    for (uint64_t s : in_sizes) out.emplace_back(s, '\0');
    std::vector<int> scounts, sdispls, rcounts, rdispls;
    std::string sflat, rflat;
    for (uint64_t k = 0; k < rounds; ++k) {
      sflat.resize(chunks::round_layout(out_sizes, c, k, scounts, sdispls));
      rflat.resize(chunks::round_layout(in_sizes, c, k, rcounts, rdispls));
      for (int i = 0; i < size_; ++i)
        if (scounts[i]) std::memcpy(sflat.data() + sdispls[i], to_each[i].data() + k * c, static_cast<size_t>(scounts[i]));
      check(MPI_Ialltoallv(sflat.data(), scounts.data(), sdispls.data(), MPI_CHAR, rflat.data(), rcounts.data(),
                           rdispls.data(), MPI_CHAR, comm_, &r),
            "MPI_Ialltoallv");
      wait(r);
      for (int i = 0; i < size_; ++i)
        if (rcounts[i]) std::memcpy(out[i].data() + k * c, rflat.data() + rdispls[i], static_cast<size_t>(rcounts[i]));
    }
    return out;
  }
  // A message is an 8-byte length and up to C - 8 bytes of data, then chunks of at most C bytes
  // with the same tag (MPI keeps one sender's messages on one tag in order).
  void send(int dest, int tag, const std::string& bytes) override {
    const uint64_t c = std::max<uint64_t>(chunks::chunk_bytes(), 16);
    const uint64_t first = std::min<uint64_t>(bytes.size(), c - 8);
    std::string head(8 + first, '\0');
    uint64_t n = bytes.size();
    std::memcpy(head.data(), &n, 8);
    std::memcpy(head.data() + 8, bytes.data(), first);
    MPI_Request r;
    check(MPI_Isend(head.data(), static_cast<int>(head.size()), MPI_CHAR, dest, tag, comm_, &r), "MPI_Isend");
    wait(r);
    for (uint64_t at = first; at < n; at += c) {
      check(MPI_Isend(bytes.data() + at, chunks::in_round(n - at, c, 0), MPI_CHAR, dest, tag, comm_, &r), "MPI_Isend");
      wait(r);
    }
  }
  std::pair<int, std::string> recv_any(int tag) override { return receive(MPI_ANY_SOURCE, tag); }
  std::optional<std::pair<int, std::string>> try_recv_any(int tag) override {
    poll_interrupt();
    MPI_Message msg;
    MPI_Status st;
    int flag = 0;
    check(MPI_Improbe(MPI_ANY_SOURCE, tag, comm_, &flag, &msg, &st), "MPI_Improbe");
    if (!flag) return std::nullopt;
    return take(msg, st, tag);
  }
  std::string recv(int source, int tag) override { return receive(source, tag).second; }
  std::unique_ptr<Comm> split(int color) override {
    MPI_Comm part;
    check(MPI_Comm_split(comm_, color, rank_, &part), "MPI_Comm_split");
    auto out = std::make_unique<MpiComm>(part);  // its own duplicate
    MPI_Comm_free(&part);
    return out;
  }

  void post_progress(uint64_t value) override {
    if (rank_ == 0) return;
    while (!progress_sends_.empty()) {  // drop the completed ones; the rest stay until done
      int flag = 0;
      MPI_Test(&progress_sends_.front().second, &flag, MPI_STATUS_IGNORE);
      if (!flag) break;
      progress_sends_.pop_front();
    }
    if (progress_sends_.size() >= 64) return;  // rank 0 is not reading: skip, never pile up
    auto buf = std::make_unique<uint64_t>(value);
    MPI_Request r;
    if (MPI_Isend(buf.get(), 1, MPI_UINT64_T, 0, kTagProgress, comm_, &r) == MPI_SUCCESS)
      progress_sends_.emplace_back(std::move(buf), r);
  }
  void take_progress(std::vector<uint64_t>& latest) override {
    if (rank_ != 0) return;
    latest.resize(static_cast<size_t>(size_), 0);
    for (int i = 0; i < 10000; ++i) {
      int flag = 0;
      MPI_Status st;
      if (MPI_Iprobe(MPI_ANY_SOURCE, kTagProgress, comm_, &flag, &st) != MPI_SUCCESS || !flag) return;
      uint64_t v = 0;
      MPI_Recv(&v, 1, MPI_UINT64_T, st.MPI_SOURCE, kTagProgress, comm_, MPI_STATUS_IGNORE);
      if (st.MPI_SOURCE >= 0 && st.MPI_SOURCE < size_) latest[static_cast<size_t>(st.MPI_SOURCE)] = v;
    }
  }
  void set_wait_hook(std::function<void()> hook) override { wait_hook_ = std::move(hook); }

  // Sends this rank's signal to every other rank once (the sends are small and never waited
  // for); takes a peer's as this rank's own.
  void poll_interrupt() override {
    if (stop_done_) return;
    if (int sig = interrupt_signal()) {
      stop_done_ = true;
      stop_sig_ = sig;
      for (int r = 0; r < size_; ++r) {
        if (r == rank_) continue;
        MPI_Request req;
        if (MPI_Isend(&stop_sig_, 1, MPI_INT, r, kTagStop, comm_, &req) == MPI_SUCCESS) MPI_Request_free(&req);
      }
      return;
    }
    int flag = 0;
    MPI_Status st;
    if (MPI_Iprobe(MPI_ANY_SOURCE, kTagStop, comm_, &flag, &st) != MPI_SUCCESS || !flag) return;
    int sig = 0;
    MPI_Recv(&sig, 1, MPI_INT, st.MPI_SOURCE, kTagStop, comm_, MPI_STATUS_IGNORE);
    stop_done_ = true;  // the sender tells everyone itself
    interrupt_from_peer(sig > 0 && sig < 65 ? sig : SIGTERM);
  }

 private:
  // Polls `done` (which calls MPI_Test or MPI_Improbe) until it is true: a few hundred quick
  // polls keep short exchanges fast, then sleeps from 20 us doubling to 1 ms leave the core to
  // the rank's worker threads. Between sleeps it passes interruptions on (poll_interrupt) and
  // runs the wait hook (progress) every 10 ms.
  template <class Done>
  void wait_until(Done done) {
    for (int i = 0; i < 200; ++i)
      if (done()) return;
    auto nap = std::chrono::microseconds(20);
    auto hook_at = std::chrono::steady_clock::now();
    while (!done()) {
      poll_interrupt();
      if (wait_hook_ && !in_hook_ && std::chrono::steady_clock::now() >= hook_at) {
        in_hook_ = true;
        wait_hook_();
        in_hook_ = false;
        hook_at = std::chrono::steady_clock::now() + std::chrono::milliseconds(10);
      }
      std::this_thread::sleep_for(nap);
      nap = std::min<std::chrono::microseconds>(nap * 2, std::chrono::milliseconds(1));
    }
  }
  void wait(MPI_Request& req) {
    wait_until([&] {
      int flag = 0;
      check(MPI_Test(&req, &flag, MPI_STATUS_IGNORE), "MPI_Test");
      return flag != 0;
    });
  }
  uint64_t all_reduce(uint64_t v, MPI_Op op) {
    unsigned long long in = v, out = 0;
    MPI_Request r;
    check(MPI_Iallreduce(&in, &out, 1, MPI_UNSIGNED_LONG_LONG, op, comm_, &r), "MPI_Iallreduce");
    wait(r);
    return out;
  }
  std::pair<int, std::string> receive(int source, int tag) {
    MPI_Message msg;
    MPI_Status st;
    wait_until([&] {
      int flag = 0;
      check(MPI_Improbe(source, tag, comm_, &flag, &msg, &st), "MPI_Improbe");
      return flag != 0;
    });
    return take(msg, st, tag);
  }
  // Receives the message `msg` that a probe matched, and the chunks that follow it.
  std::pair<int, std::string> take(MPI_Message& msg, const MPI_Status& st, int tag) {
    int got = 0;
    MPI_Get_count(&st, MPI_CHAR, &got);
    if (got < 8) throw std::runtime_error("MPI message without its length header");
    std::string head(static_cast<size_t>(got), '\0');
    check(MPI_Mrecv(head.data(), got, MPI_CHAR, &msg, MPI_STATUS_IGNORE), "MPI_Mrecv");
    uint64_t n = 0;
    std::memcpy(&n, head.data(), 8);
    const uint64_t c = std::max<uint64_t>(chunks::chunk_bytes(), 16);
    const uint64_t first = static_cast<uint64_t>(got) - 8;
    if (first > n || (first < n && first != c - 8)) throw std::runtime_error("MPI message: bad length header");
    std::string s(n, '\0');
    std::memcpy(s.data(), head.data() + 8, first);
    for (uint64_t at = first; at < n; at += c) {
      MPI_Request r;
      check(MPI_Irecv(s.data() + at, chunks::in_round(n - at, c, 0), MPI_CHAR, st.MPI_SOURCE, tag, comm_, &r),
            "MPI_Irecv");
      wait(r);
    }
    return {st.MPI_SOURCE, std::move(s)};
  }

  MPI_Comm comm_ = MPI_COMM_NULL;
  int rank_ = 0;
  int local_size_ = 1;
  int size_ = 1;
  bool stop_done_ = false;
  std::function<void()> wait_hook_;
  bool in_hook_ = false;
  // post_progress: each value's buffer lives until its send completes
  std::deque<std::pair<std::unique_ptr<uint64_t>, MPI_Request>> progress_sends_;
  int stop_sig_ = 0;  // the buffer of the stop sends: lives as long as the process
};

// Owns MPI's start and end around a duplicate of MPI_COMM_WORLD: the environment is a base
// class so it is built before the communicator and finalises MPI after it is freed.
struct MpiEnvironment {
  MpiEnvironment(int& argc, char**& argv) : env(argc, argv, mpi::threading::funneled, true) {}
  mpi::environment env;
};
class WorldComm final : private MpiEnvironment, public MpiComm {
 public:
  WorldComm(int& argc, char**& argv) : MpiEnvironment(argc, argv), MpiComm(MPI_COMM_WORLD) {}
};

}  // namespace

bool launched_by_mpi() {
  for (const char* v : {"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_RANK", "PMI_SIZE"})
    if (std::getenv(v)) return true;
  return false;
}

std::unique_ptr<Comm> make_mpi_comm(int& argc, char**& argv) {
  // All ranks on one node (mpirun says so before MPI_Init): shared memory is all the transport
  // needed, and skipping the network probes (UCX, verbs, ofi) saves ~0.2 s of start-up here.
  // Only defaults: anything the user or the site set wins.
  const char* size = std::getenv("OMPI_COMM_WORLD_SIZE");
  const char* local = std::getenv("OMPI_COMM_WORLD_LOCAL_SIZE");
  if (size && local && std::strcmp(size, local) == 0 && !std::getenv("OMPI_MCA_pml") && !std::getenv("OMPI_MCA_btl")) {
    ::setenv("OMPI_MCA_pml", "ob1", 0);
    ::setenv("OMPI_MCA_btl", "self,vader", 0);
  }
  return std::make_unique<WorldComm>(argc, argv);
}

std::unique_ptr<Comm> make_mpi_comm(MPI_Comm comm) { return std::make_unique<MpiComm>(comm); }

void mpi_abort(int code) {
  MPI_Abort(MPI_COMM_WORLD, code);
  std::abort();
}

}  // namespace pbackup
