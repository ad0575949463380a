// The part exchange for destinations that store whole parts (an object store, part_bytes() > 0):
// every rank keeps the bytes it writes, and at each settle() the parts that are complete (every
// byte below the settled offset) are brought together on their owner rank (part k on rank
// k mod size, point to point, in one global order so the exchange cannot deadlock), assembled
// and handed to the destination's store_part() there, several at a time; rank 0 learns every
// stored part (parts_stored) and every rank whether all went well. Memory per rank stays about
// one part plus a round's blocks. The destination itself never sees the Comm.
#pragma once
#include <memory>

#include "pbackup/destination.h"

namespace pbackup {

// `dest` itself when it writes at offsets; otherwise `dest` behind the exchange.
std::unique_ptr<Destination> with_part_exchange(std::unique_ptr<Destination> dest);

}  // namespace pbackup
