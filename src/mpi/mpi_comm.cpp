// Comm over MPI_COMM_WORLD. Boost.MPI starts and ends MPI; the exchanges themselves use MPI's
// nonblocking calls and wait for them with `wait` below, because a blocking MPI call spins its
// core at 100% until the other ranks arrive. Only the main thread calls MPI, and it shares its
// rank's core with the threads that compress or extract: under mpirun (one core per rank) the
// spinning took a third of the compressors' time (bzip2 backup: 17.1 CPU s instead of 15.7).
// Strings travel as a length exchange followed by the bytes.
#include "mpi/mpi_comm.h"

#include <mpi.h>

#include <boost/mpi/environment.hpp>
#include <chrono>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <numeric>
#include <stdexcept>
#include <thread>

#include "pbackup/pipeline.h"

namespace pbackup {
namespace {

namespace mpi = boost::mpi;

// Polls `done` (which calls MPI_Test or MPI_Improbe) until it is true: a few hundred quick polls
// keep short exchanges fast, then sleeps from 20 us doubling to 1 ms leave the core to the
// rank's worker threads.
template <class Done>
void wait_until(Done done) {
  for (int i = 0; i < 200; ++i)
    if (done()) return;
  auto nap = std::chrono::microseconds(20);
  while (!done()) {
    std::this_thread::sleep_for(nap);
    nap = std::min<std::chrono::microseconds>(nap * 2, std::chrono::milliseconds(1));
  }
}

void check(int rc, const char* what) {
  if (rc != MPI_SUCCESS) throw std::runtime_error(std::string("MPI call failed: ") + what);
}

void wait(MPI_Request& req) {
  wait_until([&] {
    int flag = 0;
    check(MPI_Test(&req, &flag, MPI_STATUS_IGNORE), "MPI_Test");
    return flag != 0;
  });
}

int int_count(uint64_t n) {
  if (n > static_cast<uint64_t>(INT_MAX)) throw std::runtime_error("MPI message over 2 GiB");
  return static_cast<int>(n);
}

class MpiComm final : public Comm {
 public:
  MpiComm(int& argc, char**& argv) : env_(argc, argv, mpi::threading::funneled, true) {
    MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
    MPI_Comm_size(MPI_COMM_WORLD, &size_);
    MPI_Comm node;  // the ranks on this node share its cores (see default_threads)
    if (MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &node) == MPI_SUCCESS) {
      int n = 1;
      MPI_Comm_size(node, &n);
      set_local_ranks(n);
      MPI_Comm_free(&node);
    }
  }
  int rank() const override { return rank_; }
  int size() const override { return size_; }
  void barrier() override {
    MPI_Request r;
    check(MPI_Ibarrier(MPI_COMM_WORLD, &r), "MPI_Ibarrier");
    wait(r);
  }
  void broadcast(std::string& bytes, int root) override {
    unsigned long long n = bytes.size();
    MPI_Request r;
    check(MPI_Ibcast(&n, 1, MPI_UNSIGNED_LONG_LONG, root, MPI_COMM_WORLD, &r), "MPI_Ibcast");
    wait(r);
    bytes.resize(n);
    if (n == 0) return;
    check(MPI_Ibcast(bytes.data(), int_count(n), MPI_CHAR, root, MPI_COMM_WORLD, &r), "MPI_Ibcast");
    wait(r);
  }
  std::vector<std::string> gather(const std::string& mine, int root) override {
    int n = int_count(mine.size());
    std::vector<int> counts(rank_ == root ? size_ : 0);
    MPI_Request r;
    check(MPI_Igather(&n, 1, MPI_INT, counts.data(), 1, MPI_INT, root, MPI_COMM_WORLD, &r), "MPI_Igather");
    wait(r);
    std::vector<int> displs;
    std::string flat;
    if (rank_ == root) flat.resize(int_count(offsets(counts, displs)));
    check(MPI_Igatherv(mine.data(), n, MPI_CHAR, flat.data(), counts.data(), displs.data(), MPI_CHAR, root,
                       MPI_COMM_WORLD, &r),
          "MPI_Igatherv");
    wait(r);
    std::vector<std::string> all;
    for (size_t i = 0; i < counts.size(); ++i) all.push_back(flat.substr(displs[i], counts[i]));
    return all;
  }
  std::string scatter(const std::vector<std::string>& parts, int root) override {
    std::vector<int> counts, displs;
    std::string flat;
    if (rank_ == root) {
      for (const auto& p : parts) counts.push_back(int_count(p.size()));
      flat.reserve(offsets(counts, displs));
      for (const auto& p : parts) flat += p;
    }
    int n = 0;
    MPI_Request r;
    check(MPI_Iscatter(counts.data(), 1, MPI_INT, &n, 1, MPI_INT, root, MPI_COMM_WORLD, &r), "MPI_Iscatter");
    wait(r);
    std::string mine(static_cast<size_t>(n), '\0');
    check(MPI_Iscatterv(flat.data(), counts.data(), displs.data(), MPI_CHAR, mine.data(), n, MPI_CHAR, root,
                        MPI_COMM_WORLD, &r),
          "MPI_Iscatterv");
    wait(r);
    return mine;
  }
  bool all_ok(bool ok) override { return all_reduce(ok ? 1 : 0, MPI_MIN) == 1; }
  uint64_t sum(uint64_t v) override { return all_reduce(v, MPI_SUM); }
  uint64_t max(uint64_t v) override { return all_reduce(v, MPI_MAX); }
  void send(int dest, int tag, const std::string& bytes) override {
    MPI_Request r;
    check(MPI_Isend(bytes.data(), int_count(bytes.size()), MPI_CHAR, dest, tag, MPI_COMM_WORLD, &r), "MPI_Isend");
    wait(r);
  }
  std::pair<int, std::string> recv_any(int tag) override { return receive(MPI_ANY_SOURCE, tag); }
  std::optional<std::pair<int, std::string>> try_recv_any(int tag) override {
    MPI_Message msg;
    MPI_Status st;
    int flag = 0;
    check(MPI_Improbe(MPI_ANY_SOURCE, tag, MPI_COMM_WORLD, &flag, &msg, &st), "MPI_Improbe");
    if (!flag) return std::nullopt;
    return take(msg, st);
  }
  std::string recv(int source, int tag) override { return receive(source, tag).second; }

 private:
  // Displacements of `counts` laid end to end; returns the total.
  static uint64_t offsets(const std::vector<int>& counts, std::vector<int>& displs) {
    uint64_t total = 0;
    for (int c : counts) {
      displs.push_back(int_count(total));
      total += static_cast<uint64_t>(c);
    }
    return total;
  }
  uint64_t all_reduce(uint64_t v, MPI_Op op) {
    unsigned long long in = v, out = 0;
    MPI_Request r;
    check(MPI_Iallreduce(&in, &out, 1, MPI_UNSIGNED_LONG_LONG, op, MPI_COMM_WORLD, &r), "MPI_Iallreduce");
    wait(r);
    return out;
  }
  std::pair<int, std::string> receive(int source, int tag) {
    MPI_Message msg;
    MPI_Status st;
    wait_until([&] {
      int flag = 0;
      check(MPI_Improbe(source, tag, MPI_COMM_WORLD, &flag, &msg, &st), "MPI_Improbe");
      return flag != 0;
    });
    return take(msg, st);
  }
  // Receives the message `msg` that a probe matched.
  static std::pair<int, std::string> take(MPI_Message& msg, const MPI_Status& st) {
    int n = 0;
    MPI_Get_count(&st, MPI_CHAR, &n);
    std::string s(static_cast<size_t>(n), '\0');
    check(MPI_Mrecv(s.data(), n, MPI_CHAR, &msg, MPI_STATUS_IGNORE), "MPI_Mrecv");
    return {st.MPI_SOURCE, std::move(s)};
  }

  mpi::environment env_;
  int rank_ = 0;
  int size_ = 1;
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
  return std::make_unique<MpiComm>(argc, argv);
}

void mpi_abort(int code) {
  MPI_Abort(MPI_COMM_WORLD, code);
  std::abort();
}

}  // namespace pbackup
