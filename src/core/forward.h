// Output that only some ranks see (DESIGN §2): a node-local disk, a USB disk plugged into one
// node. The ranks that see the output directory write their own blocks; every other rank keeps
// the blocks it would have written and, at each settle() (once per round, while its next round
// compresses), sends them one message per block to its writer rank, which writes them at their
// offsets. A sender has one block in flight (Comm::send returns once it is received); a writer
// receives and writes one block at a time, from whichever of its senders is ready. The round's
// report follows the settle, so every byte is written before rank 0 learns the round is done,
// as when the sender writes itself.
#pragma once
#include <memory>
#include <vector>

#include "pbackup/destination.h"

namespace pbackup {

// writer_of[r] is r for a rank that writes, else the rank that writes for it. `dest` itself
// when every rank writes.
std::unique_ptr<Destination> with_forwarding(std::unique_ptr<Destination> dest, const std::vector<int>& writer_of, int rank);

// Blind ranks shared out round-robin over the ranks that see (sees[r]); rank 0 always sees.
std::vector<int> assign_writers(const std::vector<bool>& sees);

}  // namespace pbackup
