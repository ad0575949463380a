// The distributed file list (file_list.h): a sample sort by path over the ranks, and the
// ordered hand-over to rank 0, both in bounded batches.
#include "core/file_list.h"

#include <algorithm>
#include <deque>
#include <stdexcept>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "pbackup/pipeline.h"
#include "pbackup/wire.h"

namespace pbackup {
namespace {

constexpr int kTagList = 21;  // gather_in_order's batches
constexpr int kTagCut = 22;   // cut_in_turn's carry
// Samples each rank sends for the splitters: the splitters are off by at most 1/kSamples of a
// rank's list per rank, and rank 0 sorts kSamples * ranks paths.
constexpr size_t kSamples = 256;

struct Samples {
  std::vector<std::string> paths;
  std::vector<uint64_t> weights;  // entries each path stands for
};
template <class Ar>
void fields(Ar& a, Samples& s) {
  a(s.paths), a(s.weights);
  if constexpr (!Ar::kWriting)
    if (s.paths.size() != s.weights.size()) throw std::runtime_error("internal message: sample lists differ in length");
}

uint64_t wire_size(const Entry& e) {  // about what an entry takes in a message
  return 64 + e.path.size() + e.link.size() + e.owner.str().size() + e.xattrs.str().size() + e.sparse.str().size();
}

// Moves a batch off the front of `from`: up to kListBatchEntries entries or kListBatchBytes,
// at least one entry when there is one.
EntryList take_batch(EntryList& from) {
  EntryList batch;
  uint64_t bytes = 0;
  while (!from.empty() && batch.size() < kListBatchEntries && (batch.empty() || bytes < kListBatchBytes)) {
    bytes += wire_size(from.front());
    batch.push_back(std::move(from.front()));
    from.pop_front();
  }
  return batch;
}

// Every rank's sorted list stands for itself by kSamples paths, each weighted by the entries
// up to it; rank 0 picks the paths where the running weight passes k/ranks of the total.
std::vector<std::string> splitters(Comm& comm, const EntryList& sorted) {
  Samples s;
  const size_t n = sorted.size(), k = std::min(n, kSamples);
  size_t prev = 0;
  for (size_t j = 1; j <= k; ++j) {
    size_t at = j * n / k;  // samples end at n: the weights add up to n
    s.paths.push_back(sorted[at - 1].path);
    s.weights.push_back(at - prev);
    prev = at;
  }
  std::vector<std::string> all = comm.gather(to_wire(s), 0);
  std::string out;
  if (comm.rank() == 0) {
    std::vector<std::pair<std::string, uint64_t>> merged;
    uint64_t total = 0;
    for (const auto& bytes : all) {
      Samples r = from_wire<Samples>(bytes);
      for (size_t i = 0; i < r.paths.size(); ++i) {
        total += r.weights[i];
        merged.emplace_back(std::move(r.paths[i]), r.weights[i]);
      }
    }
    std::sort(merged.begin(), merged.end(), [](const auto& a, const auto& b) { return path_less(a.first, b.first); });
    std::vector<std::string> split;
    const uint64_t ranks = static_cast<uint64_t>(comm.size());
    uint64_t run = 0;
    size_t next = 1;  // splitter `next` ends rank next-1's share
    for (const auto& [path, w] : merged) {
      run += w;
      // >= so that equal shares end on the same sample on every rank count
      while (next < ranks && run * ranks >= next * total) {
        split.push_back(path);
        ++next;
      }
    }
    while (split.size() + 1 < ranks) split.push_back(merged.empty() ? std::string() : merged.back().first);
    out = to_wire(split);
  }
  comm.broadcast(out, 0);
  auto split = from_wire<std::vector<std::string>>(out);
  if (split.size() + 1 != static_cast<size_t>(comm.size())) throw std::runtime_error("internal message: wrong splitter count");
  return split;
}

// Rounds of one batch (at most kListBatchEntries items) to every rank until every rank's
// queues are empty; returns what came, per source rank, in the order sent.
template <class T>
std::vector<std::vector<T>> exchange_batches(Comm& comm, std::vector<std::deque<T>>& out) {
  const size_t ranks = static_cast<size_t>(comm.size());
  std::vector<std::vector<T>> got(ranks);
  while (true) {
    bool left = false;
    for (const auto& q : out) left = left || !q.empty();
    if (comm.all_ok(!left)) break;
    std::vector<std::string> to(ranks);
    for (size_t d = 0; d < ranks; ++d) {
      std::vector<T> batch;
      while (!out[d].empty() && batch.size() < kListBatchEntries) {
        batch.push_back(std::move(out[d].front()));
        out[d].pop_front();
      }
      if (!batch.empty()) to[d] = to_wire(batch);
    }
    std::vector<std::string> in = comm.exchange(to);
    for (size_t src = 0; src < ranks; ++src)
      if (!in[src].empty())
        for (auto& x : from_wire<std::vector<T>>(in[src])) got[src].push_back(std::move(x));
  }
  return got;
}

struct LinkName {  // a name of a file with several links, at its place in the whole list
  uint64_t dev = 0, ino = 0, index = 0;
  uint32_t rank = 0;
  std::string path;
};
template <class Ar>
void fields(Ar& a, LinkName& n) {
  a(n.dev), a(n.ino), a(n.index), a(n.rank), a(n.path);
}

struct CutCarry {  // the open block and its entries, to the next rank
  CutState st;
  EntryList entries;
};
template <class Ar>
void fields(Ar& a, CutCarry& c) {
  a(c.st), a(c.entries);
  if constexpr (!Ar::kWriting)
    for (const Piece& p : c.st.cur.pieces)
      if (p.entry >= c.entries.size()) throw std::runtime_error("internal message: carried piece without its entry");
}

}  // namespace

// Sorts by path: the order is found on a compact array of (path, index), then each Entry (160
// bytes and its strings) moves once, following the permutation's cycles, instead of at every
// step of the sort (and the comparisons do not go through the deque).
void sort_entries(EntryList& list) {
  auto in_order = [](const Entry& a, const Entry& b) { return path_less(a.path, b.path); };
  if (std::is_sorted(list.begin(), list.end(), in_order)) return;  // an incremental level sorted it already
  struct Key {
    std::string_view path;
    size_t index;
  };
  std::vector<size_t> order;
  {
    std::vector<Key> keys;
    keys.reserve(list.size());
    for (size_t i = 0; i < list.size(); ++i) keys.push_back({list[i].path, i});
    std::sort(keys.begin(), keys.end(), [](const Key& a, const Key& b) { return path_less(a.path, b.path); });
    order.reserve(keys.size());
    for (const Key& k : keys) order.push_back(k.index);
  }
  for (size_t i = 0; i < order.size(); ++i) {  // position j receives the entry at order[j]
    if (order[i] == i) continue;
    Entry held = std::move(list[i]);
    size_t j = i;
    while (order[j] != i) {
      const size_t k = order[j];
      list[j] = std::move(list[k]);
      order[j] = j;
      j = k;
    }
    list[j] = std::move(held);
    order[j] = j;
  }
}

void sort_by_path(Comm& comm, EntryList& mine) {
  sort_entries(mine);
  const size_t ranks = static_cast<size_t>(comm.size());
  if (ranks == 1) return;
  const std::vector<std::string> split = splitters(comm, mine);
  // Rank d's share: paths in (split[d-1], split[d]]. The list is sorted, so each share is a run
  // of it, moved off the front into its own queue (the memory is freed as the batches leave).
  std::vector<EntryList> out(ranks);
  for (size_t d = 0; d < ranks; ++d)
    while (!mine.empty() && (d + 1 == ranks || !path_less(split[d], mine.front().path))) {
      out[d].push_back(std::move(mine.front()));
      mine.pop_front();
    }
  // Rounds of one batch (or nothing) to every other rank, until no rank has anything left.
  // What comes goes into the run of its source (each source sends its share in order), so the
  // list is held about once: the queues shrink as the runs grow. This rank's share is its own run.
  const size_t me = static_cast<size_t>(comm.rank());
  std::vector<EntryList> runs(ranks);
  while (true) {
    bool left = false;
    for (size_t d = 0; d < ranks; ++d) left = left || (d != me && !out[d].empty());
    if (comm.all_ok(!left)) break;
    std::vector<std::string> to(ranks);
    for (size_t d = 0; d < ranks; ++d)
      if (d != me && !out[d].empty()) to[d] = to_wire(take_batch(out[d]));
    std::vector<std::string> in = comm.exchange(to);
    to.clear();
    for (size_t src = 0; src < ranks; ++src) {
      if (in[src].empty()) continue;
      EntryList batch = from_wire<EntryList>(in[src]);
      std::string().swap(in[src]);
      for (auto& e : batch) runs[src].push_back(std::move(e));
    }
  }
  runs[me].swap(out[me]);
  // The runs merged by path (a heap of the sources by their first path): n log(ranks) steps.
  auto later = [&](size_t a, size_t b) { return path_less(runs[b].front().path, runs[a].front().path); };
  std::vector<size_t> heap;
  for (size_t src = 0; src < ranks; ++src)
    if (!runs[src].empty()) heap.push_back(src);
  std::make_heap(heap.begin(), heap.end(), later);
  while (!heap.empty()) {
    std::pop_heap(heap.begin(), heap.end(), later);
    EntryList& run = runs[heap.back()];
    mine.push_back(std::move(run.front()));
    run.pop_front();
    if (run.empty()) heap.pop_back();
    else std::push_heap(heap.begin(), heap.end(), later);
  }
}

void visit_in_order(Comm& comm, EntryList& mine, const std::function<void(Entry&&)>& each) {
  if (comm.rank() != 0) {
    // an empty batch ends the list
    while (true) {
      EntryList batch = take_batch(mine);
      comm.send(0, kTagList, to_wire(batch));
      if (batch.empty()) break;
    }
    EntryList().swap(mine);
    return;
  }
  for (Entry& e : mine) each(std::move(e));
  EntryList().swap(mine);
  for (int r = 1; r < comm.size(); ++r)
    while (true) {
      EntryList batch = from_wire<EntryList>(comm.recv(r, kTagList));
      if (batch.empty()) break;
      for (auto& e : batch) each(std::move(e));
    }
}

void gather_in_order(Comm& comm, EntryList& mine) {
  if (comm.size() == 1) return;
  EntryList all;
  visit_in_order(comm, mine, [&](Entry&& e) { all.push_back(std::move(e)); });
  mine = std::move(all);
}

void mark_hardlinks(Comm& comm, EntryList& mine) {
  if (comm.size() == 1) return mark_hardlinks(mine);
  const size_t ranks = static_cast<size_t>(comm.size());
  const uint64_t base = comm.exscan(mine.size());
  std::vector<std::deque<LinkName>> out(ranks);
  for (size_t i = 0; i < mine.size(); ++i) {
    const Entry& e = mine[i];
    if (e.type != EntryType::File || e.nlink < 2) continue;
    size_t owner = std::hash<uint64_t>()(e.ino * 1000003u ^ e.dev) % ranks;
    out[owner].push_back({e.dev, e.ino, base + i, static_cast<uint32_t>(comm.rank()), e.path});
  }
  // the owner of (dev, ino): the first name of each, then every later name learns it
  auto names = exchange_batches(comm, out);
  struct Key {
    uint64_t dev, ino;
    bool operator==(const Key& o) const { return dev == o.dev && ino == o.ino; }
  };
  struct KeyHash {
    size_t operator()(const Key& k) const { return std::hash<uint64_t>()(k.ino * 1000003u ^ k.dev); }
  };
  std::unordered_map<Key, const LinkName*, KeyHash> first;
  for (const auto& from : names)
    for (const LinkName& n : from) {
      auto [it, inserted] = first.emplace(Key{n.dev, n.ino}, &n);
      if (!inserted && n.index < it->second->index) it->second = &n;
    }
  std::vector<std::deque<LinkName>> back(ranks);
  for (const auto& from : names)
    for (const LinkName& n : from) {
      const LinkName* f = first.at(Key{n.dev, n.ino});
      if (f != &n) back.at(n.rank).push_back({n.dev, n.ino, n.index, n.rank, f->path});
    }
  first.clear();
  names.clear();
  for (const auto& from : exchange_batches(comm, back))
    for (const LinkName& n : from) {
      if (n.index < base || n.index - base >= mine.size()) throw std::runtime_error("internal message: hard link of another rank");
      Entry& e = mine[n.index - base];
      e.type = EntryType::Hardlink;
      e.link = n.path;
      e.xattrs.clear();  // the inode's attributes go with its first name
      e.sparse.clear();
    }
}

std::vector<Block> cut_in_turn(Comm& comm, EntryList& mine, const Format& fmt, uint64_t block_bytes) {
  CutState st;
  std::vector<Block> out;
  size_t from = 0;
  if (comm.rank() > 0) {
    CutCarry c = from_wire<CutCarry>(comm.recv(comm.rank() - 1, kTagCut));
    from = c.entries.size();
    for (auto it = c.entries.rbegin(); it != c.entries.rend(); ++it) mine.push_front(std::move(*it));
    st = std::move(c.st);
  }
  fmt.cut_more(mine, from, block_bytes, st, out);
  if (comm.rank() + 1 == comm.size()) {
    cut_close(st, out);
    return out;
  }
  CutCarry c;
  if (!st.cur.pieces.empty()) {
    const size_t first = st.cur.pieces.front().entry;
    // only the tail of this entry is in the open block: its head stays here, a copy moves on
    const bool copy = !st.cur.pieces.front().header;
    if (copy) c.entries.push_back(mine[first]);
    const size_t moved = first + (copy ? 1 : 0);
    for (size_t i = moved; i < mine.size(); ++i) c.entries.push_back(std::move(mine[i]));
    mine.erase(mine.begin() + static_cast<std::ptrdiff_t>(moved), mine.end());
    for (Piece& p : st.cur.pieces) p.entry -= static_cast<uint32_t>(first);
  }
  c.st = std::move(st);
  comm.send(comm.rank() + 1, kTagCut, to_wire(c));
  return out;
}

void mark_hardlinks(EntryList& entries) {
  struct Key {
    uint64_t dev, ino;
    bool operator==(const Key& o) const { return dev == o.dev && ino == o.ino; }
  };
  struct KeyHash {
    size_t operator()(const Key& k) const { return std::hash<uint64_t>()(k.ino * 1000003u ^ k.dev); }
  };
  std::unordered_map<Key, size_t, KeyHash> first;
  for (size_t i = 0; i < entries.size(); ++i) {
    Entry& e = entries[i];
    if (e.type != EntryType::File || e.nlink < 2) continue;
    auto [it, inserted] = first.emplace(Key{e.dev, e.ino}, i);
    if (!inserted) {
      e.type = EntryType::Hardlink;
      e.link = entries[it->second].path;
      e.xattrs.clear();  // the inode's attributes go with its first name
      e.sparse.clear();
    }
  }
}

}  // namespace pbackup
