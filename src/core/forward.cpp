// See forward.h.
#include "core/forward.h"

#include <stdexcept>

#include "core/messages.h"
#include "pbackup/comm.h"
#include "pbackup/error.h"
#include "pbackup/wire.h"

namespace pbackup {
namespace {

constexpr int kTagForward = 32;

class Forwarding final : public Destination {
 public:
  Forwarding(std::unique_ptr<Destination> d, std::vector<int> writer_of, int rank)
      : d_(std::move(d)), writer_of_(std::move(writer_of)), me_(rank), blind_(writer_of_.at(static_cast<size_t>(rank)) != rank) {
    for (size_t r = 0; r < writer_of_.size(); ++r)
      if (writer_of_[r] == rank && static_cast<int>(r) != rank) ++senders_;
  }

  std::string archive_name() const override { return d_->archive_name(); }
  std::string prepare() override { return d_->prepare(); }  // rank 0, which sees
  void open(const std::string& prepared) override {
    if (!blind_) d_->open(prepared);
  }
  void write_at(uint64_t offset, std::string_view bytes) override {
    if (!blind_) return d_->write_at(offset, bytes);
    if (!bytes.empty()) held_.push_back({offset, std::string(bytes)});
  }
  // Every rank, every round: the senders hand over what they held, the writers write it.
  void settle(Comm& comm, uint64_t settled, bool last) override {
    if (blind_) {
      const int to = writer_of_[static_cast<size_t>(me_)];
      for (auto& f : held_) {
        comm.send(to, kTagForward, to_wire(f));
        f.bytes = std::string();  // sent: free it now
      }
      held_.clear();
      comm.send(to, kTagForward, to_wire(Forwarded{}));
    } else {
      receive(comm);
    }
    d_->settle(comm, settled, last);
  }
  void close() override {
    held_.clear();  // only after a failed round: nothing is sent then
    if (!blind_) d_->close();
  }
  size_t fragment_count(uint64_t total) const override { return d_->fragment_count(total); }
  std::string hash_fragment(size_t k, uint64_t total) override {
    if (blind_) throw std::logic_error("forwarding: a rank that does not see the output was asked to hash it");
    return d_->hash_fragment(k, total);
  }
  std::vector<Fragment> fragments(uint64_t total, const std::vector<std::string>& hashes) override {
    return d_->fragments(total, hashes);
  }
  void commit(uint64_t total, const std::vector<SideFile>& side_files) override { d_->commit(total, side_files); }
  void abort() noexcept override { d_->abort(); }
  std::vector<std::string> temp_paths() const override { return blind_ ? std::vector<std::string>{} : d_->temp_paths(); }

 private:
  // Until every sender said it is done: each block written as it comes. A failed write is
  // kept and reported after the last message, so no sender is left waiting.
  void receive(Comm& comm) {
    std::string error;
    for (int done = 0; done < senders_;) {
      auto [from, msg] = comm.recv_any(kTagForward);
      Forwarded f = from_wire<Forwarded>(msg);
      if (f.bytes.empty()) {
        ++done;
        continue;
      }
      if (!error.empty()) continue;
      try {
        d_->write_at(f.offset, f.bytes);
      } catch (const std::exception& e) {
        error = e.what();
      }
    }
    if (!error.empty()) throw Fatal(error);
  }

  std::unique_ptr<Destination> d_;
  const std::vector<int> writer_of_;
  const int me_;
  const bool blind_;
  int senders_ = 0;             // ranks this one writes for
  std::vector<Forwarded> held_;  // a blind rank's writes since the last settle
};

}  // namespace

std::vector<int> assign_writers(const std::vector<bool>& sees) {
  std::vector<int> writers, out(sees.size());
  for (size_t r = 0; r < sees.size(); ++r)
    if (sees[r] || r == 0) writers.push_back(static_cast<int>(r));
  size_t next = 0;
  for (size_t r = 0; r < sees.size(); ++r)
    out[r] = (sees[r] || r == 0) ? static_cast<int>(r) : writers[next++ % writers.size()];
  return out;
}

std::unique_ptr<Destination> with_forwarding(std::unique_ptr<Destination> dest, const std::vector<int>& writer_of, int rank) {
  bool all = true;
  for (size_t r = 0; r < writer_of.size(); ++r) all = all && writer_of[r] == static_cast<int>(r);
  if (all || !dest) return dest;
  return std::make_unique<Forwarding>(std::move(dest), writer_of, rank);
}

}  // namespace pbackup
