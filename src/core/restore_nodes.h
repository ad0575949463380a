// Restore on several nodes (DESIGN §6): whether every rank sees --restore-to, and --every-node.
#pragma once
#include "pbackup/comm.h"
#include "pbackup/log.h"
#include "pbackup/options.h"

namespace pbackup {

// Every rank, before a restore of more than one rank writes anything. Finds out which ranks
// see the restore directory (a marker file in it, or in its nearest existing parent). All see
// it: returns -1 (go on with the usual restore). Otherwise, without --every-node: refuses
// (rank 0 names the hosts that do not share it) and returns the exit code; with it: stages
// the archive on every node's directory (each byte read from the source once), restores each
// node's copy with that node's ranks, removes the staged copy and returns the exit code.
int restore_across_nodes(Comm& comm, const RestoreOptions& opt, Log& log);

}  // namespace pbackup
