// Which ranks see a directory (DESIGN §2, §6): on a cluster a path such as /tmp or a local SSD
// is the same name on every node but not the same directory. The ranks that make markers
// (rank 0 alone, or the first rank of every host) create a uniquely named marker file in it,
// every rank looks for each marker, and the markers are removed before see_dir returns. A
// rank "sees" a marker when the file is there and it may write into the directory.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "pbackup/comm.h"
#include "pbackup/wire.h"

namespace pbackup {

struct Sight {
  std::string error;               // a marker could not be made (names the directory and why)
  std::vector<std::string> hosts;  // per rank
  // Per rank: the lowest marker-making rank whose marker it sees, -1 when it sees none. Ranks
  // with the same group write into one directory; group 0 sees rank 0's.
  std::vector<int64_t> group;
  bool operator==(const Sight&) const = default;

  bool all_see_root() const;
  // Hosts (sorted, unique) with a rank that does not see rank 0's directory.
  std::vector<std::string> blind_hosts() const;
};
template <class Ar>
void fields(Ar& a, Sight& s) {
  a(s.error), a(s.hosts), a(s.group);
}

// Every rank, together. `per_node`: the first rank of every host makes a marker (to find the
// groups of ranks sharing a directory), else rank 0 alone. `looks` decides whether a rank sees
// a marker path (tests fake nodes with it); by default: the file exists and `dir` is writable.
// The result is the same on every rank.
using SightProbe = std::function<bool(int rank, const std::string& marker)>;
Sight see_dir(Comm& comm, const std::string& dir, bool per_node, const SightProbe& looks = nullptr);

// Tests only: a probe see_dir uses when given none (nullptr: the real one). Thread-ranks share one
// file system, so unit tests fake nodes this way.
void set_sight_probe_for_tests(SightProbe probe);

// "node2, node3"
std::string join_hosts(const std::vector<std::string>& hosts);

}  // namespace pbackup
