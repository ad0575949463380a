// Comm over MPI. Only src/mpi and src/cli see MPI.
#pragma once
#include <mpi.h>

#include <memory>

#include "pbackup/comm.h"

namespace pbackup {

// True when this process was started by an MPI launcher (mpirun, srun --mpi=pmix).
bool launched_by_mpi();

// Initialises MPI (threads: funneled, only the main thread calls MPI) and returns a Comm over a
// duplicate of MPI_COMM_WORLD; MPI ends when it is destroyed.
std::unique_ptr<Comm> make_mpi_comm(int& argc, char**& argv);
// A Comm over a duplicate of `comm` (MPI already initialised by the caller, who also ends it
// after this Comm is gone): pbackup as one step of a larger MPI program.
std::unique_ptr<Comm> make_mpi_comm(MPI_Comm comm);

// Ends every rank at once (an unexpected error on one rank must not leave others waiting).
[[noreturn]] void mpi_abort(int code);

}  // namespace pbackup
