// Boost.MPI implementation of Comm. Strings travel as MPI_CHAR buffers with their length, and
// collectives map one to one: broadcast, gather, scatter, all_reduce.
#include "mpi/mpi_comm.h"

#include <boost/mpi.hpp>
#include <boost/serialization/string.hpp>
#include <boost/serialization/vector.hpp>
#include <cstdlib>
#include <cstring>

#include "pbackup/pipeline.h"

namespace pbackup {
namespace {

namespace mpi = boost::mpi;

class MpiComm final : public Comm {
 public:
  MpiComm(int& argc, char**& argv) : env_(argc, argv, mpi::threading::funneled, true) {
    MPI_Comm node;  // the ranks on this node share its cores (see default_threads)
    if (MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &node) == MPI_SUCCESS) {
      int n = 1;
      MPI_Comm_size(node, &n);
      set_local_ranks(n);
      MPI_Comm_free(&node);
    }
  }
  int rank() const override { return world_.rank(); }
  int size() const override { return world_.size(); }
  void barrier() override { world_.barrier(); }
  void broadcast(std::string& bytes, int root) override { mpi::broadcast(world_, bytes, root); }
  std::vector<std::string> gather(const std::string& mine, int root) override {
    std::vector<std::string> all;
    mpi::gather(world_, mine, all, root);
    return all;
  }
  std::string scatter(const std::vector<std::string>& parts, int root) override {
    std::string mine;
    if (world_.rank() == root) mpi::scatter(world_, parts, mine, root);
    else mpi::scatter(world_, mine, root);
    return mine;
  }
  bool all_ok(bool ok) override { return mpi::all_reduce(world_, ok ? 1 : 0, mpi::minimum<int>()) == 1; }
  uint64_t sum(uint64_t v) override {
    unsigned long long x = v;
    return mpi::all_reduce(world_, x, std::plus<unsigned long long>());
  }
  uint64_t max(uint64_t v) override {
    unsigned long long x = v;
    return mpi::all_reduce(world_, x, mpi::maximum<unsigned long long>());
  }
  void send(int dest, int tag, const std::string& bytes) override { world_.send(dest, tag, bytes); }
  std::pair<int, std::string> recv_any(int tag) override {
    std::string s;
    mpi::status st = world_.recv(mpi::any_source, tag, s);
    return {st.source(), std::move(s)};
  }
  std::string recv(int source, int tag) override {
    std::string s;
    world_.recv(source, tag, s);
    return s;
  }

 private:
  mpi::environment env_;
  mpi::communicator world_;
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
  mpi::communicator world;
  world.abort(code);
  std::abort();
}

}  // namespace pbackup
