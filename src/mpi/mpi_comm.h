// Comm over Boost.MPI (MPI_COMM_WORLD). Only src/mpi and src/cli see MPI.
#pragma once
#include <memory>

#include "pbackup/comm.h"

namespace pbackup {

// True when this process was started by an MPI launcher (mpirun, srun --mpi=pmix).
bool launched_by_mpi();

// Initialises MPI (threads: funneled, only the main thread calls MPI) and returns the world.
std::unique_ptr<Comm> make_mpi_comm(int& argc, char**& argv);

// Ends every rank at once (an unexpected error on one rank must not leave others waiting).
[[noreturn]] void mpi_abort(int code);

}  // namespace pbackup
