// An age-encrypting destination (issue 16, DESIGN §2): the archive bytes every rank writes at
// their plaintext offsets become the STREAM payload of one age file, written to the inner
// destination at the ciphertext offsets (plaintext byte p at prefix + p/64Ki*(64Ki+16) + p%64Ki).
//
// Each rank seals, as it writes, the 64 KiB chunks wholly inside one of its writes that are
// followed by more bytes of that write (so they cannot be the last chunk). The rest -- chunks
// straddling two writes (two blocks, two ranks) and the chunk a write ends with -- are kept as
// pieces; at every settle() the pieces of the chunks below the settled offset are gathered on
// rank 0, which seals them (the last one flagged last at the final settle) and writes them.
// That is at most two chunks per block, so the exchange is small and memory stays bounded by a
// round. Rank 0 draws the file key and writes the header at prepare(); the payload key reaches
// the other ranks with prepare()'s result. The ciphertext is the same for any rank count given
// the same file key and nonce.
#pragma once
#include <memory>
#include <vector>

#include "crypto/age.h"
#include "pbackup/destination.h"

namespace pbackup {

std::unique_ptr<Destination> with_age_encryption(std::unique_ptr<Destination> inner,
                                                 std::vector<age::Recipient> recipients, bool root);

}  // namespace pbackup
