// The only view of MPI the core has. src/mpi/ implements it over an MPI communicator; LocalComm is
// the one-rank implementation used by plain runs, and tests/unit/thread_comm.h runs N ranks as
// threads of one process so the multi-rank protocols get unit tests without mpirun. Messages are byte strings
// (see bytes.h), so the interface stays small and every call is typed and 64-bit clean.
#pragma once
#include <cstdint>
#include <memory>
#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace pbackup {

class Comm {
 public:
  virtual ~Comm() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  // Ranks of this communicator on this node: they share its cores (see default_threads).
  virtual int local_size() const { return 1; }
  virtual void barrier() = 0;
  virtual void broadcast(std::string& bytes, int root) = 0;
  // Root receives one string per rank (others get an empty vector).
  virtual std::vector<std::string> gather(const std::string& mine, int root) = 0;
  // Root passes one string per rank; every rank gets its own.
  virtual std::string scatter(const std::vector<std::string>& parts, int root) = 0;
  // True on every rank iff `ok` was true on every rank.
  virtual bool all_ok(bool ok) = 0;
  virtual uint64_t sum(uint64_t v) = 0;
  virtual uint64_t max(uint64_t v) = 0;
  // The sum of v over the ranks below this one (0 on rank 0): a prefix sum (MPI_Exscan), e.g.
  // where this rank's share of a stream starts.
  virtual uint64_t exscan(uint64_t v) = 0;
  // All to all: every rank passes one string per rank (to_each[r] goes to rank r) and gets one
  // from each (out[r] came from rank r). Any sizes: MPI moves them in int-sized rounds.
  virtual std::vector<std::string> exchange(const std::vector<std::string>& to_each) = 0;
  // Point to point, used by the dynamic directory hand-out of the scan.
  virtual void send(int dest, int tag, const std::string& bytes) = 0;
  virtual std::pair<int, std::string> recv_any(int tag) = 0;  // (source, bytes)
  // recv_any if a message is already there; nothing otherwise (does not wait).
  virtual std::optional<std::pair<int, std::string>> try_recv_any(int tag) = 0;
  virtual std::string recv(int source, int tag) = 0;
  // A signal one rank gets is a signal to every rank: passes this rank's interruption on to the
  // others (once), and takes one that another rank passed on as if this rank had got it. Called
  // by the main thread while it waits (MPI waits call it themselves).
  virtual void poll_interrupt() {}
  // Every rank, together: a new communicator of the ranks that gave the same `color`, ranked
  // in this one's order (restore --every-node: one per node).
  // (Not every test double can: the default says so.)
  virtual std::unique_ptr<Comm> split(int color);
  // Progress between rounds, never waited for: a rank posts its counter (fire and forget, the
  // newest replaces what is still unread); rank 0 takes what arrived, latest[r] per rank r.
  // `hook` runs on the main thread while a collective or receive waits (at most every 10 ms;
  // empty: none), so progress flows while the ranks wait for each other.
  virtual void post_progress(uint64_t value) {}
  virtual void take_progress(std::vector<uint64_t>& latest) {}
  virtual void set_wait_hook(std::function<void()> hook) {}
};

class LocalComm final : public Comm {
 public:
  int rank() const override { return 0; }
  int size() const override { return 1; }
  void barrier() override {}
  void broadcast(std::string&, int) override {}
  std::vector<std::string> gather(const std::string& mine, int) override { return {mine}; }
  std::string scatter(const std::vector<std::string>& parts, int) override { return parts.at(0); }
  bool all_ok(bool ok) override { return ok; }
  uint64_t sum(uint64_t v) override { return v; }
  uint64_t max(uint64_t v) override { return v; }
  uint64_t exscan(uint64_t) override { return 0; }
  std::vector<std::string> exchange(const std::vector<std::string>& to_each) override;
  void send(int, int, const std::string&) override;
  std::pair<int, std::string> recv_any(int) override;
  std::optional<std::pair<int, std::string>> try_recv_any(int) override { return std::nullopt; }
  std::string recv(int, int) override;
  std::unique_ptr<Comm> split(int) override { return std::make_unique<LocalComm>(); }
};

}  // namespace pbackup
