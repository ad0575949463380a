// backup, stage "rounds" (DESIGN §2): a window of blocks at a time. Rank 0's RoundPlanner
// shares each round's blocks over the ranks (interleaved, balanced by bytes and threads) from
// its per-block facts (BlockInfo), lays out the offsets of the units the ranks report and
// writes the structural bytes. Every rank's RoundWorker sends the jobs of the blocks whose
// entries it holds to the ranks that compress them, queues the jobs it gets on its Compressor,
// reports each round's unit sizes, and writes the units of the round it reported last at the
// offsets it gets back while the next round compresses. Memory per rank is bounded by the
// window. The step is the same on every rank: scatter (RoundOrder), exchange (BlockJobs),
// work, gather (RoundReport), and on rank 0 plan.
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <thread>

#include "core/backup_stages.h"
#include "format/cut.h"
#include "format/sparse.h"
#include "util/parallel.h"
#include "core/read.h"
#include "pbackup/error.h"
#include "pbackup/sha256.h"
#include "util/units.h"

namespace pbackup {
namespace {

// Blocks per thread in a round: more evens out blocks that compress at different speeds, fewer
// bound memory (a rank holds three rounds: one being written, one reported, one compressing).
constexpr size_t kBlocksPerThread = 8;

struct RankRound {
  std::vector<uint64_t> blocks;  // ids, consecutive
};
using Round = std::vector<RankRound>;  // one per rank

// Splits blocks [first, last) over the ranks, balanced by raw bytes weighted by each rank's
// thread count.
Round share_round(const std::vector<BlockInfo>& blocks, size_t first, size_t last, const std::vector<int>& threads) {
  // Each block to the rank with the least input per thread so far: interleaved, so a run of
  // slow-to-compress blocks is shared too, not left to one rank while the others wait.
  Round out(threads.size());
  std::vector<double> load(threads.size(), 0.0);
  for (size_t b = first; b < last; ++b) {
    size_t best = 0;
    for (size_t r = 1; r < threads.size(); ++r)
      if (load[r] < load[best]) best = r;
    out[best].blocks.push_back(b);
    load[best] += static_cast<double>(blocks[b].raw_bytes + 1) / std::max(threads[best], 1);
  }
  return out;
}

// Compresses jobs with `threads` threads; units come back in job order.
std::vector<Unit> compress_jobs(const std::vector<BlockJob>& jobs, const Format& fmt, const Consolidation& con, int threads,
                                Log& log, std::string& error, const std::atomic<bool>& cancel, std::atomic<uint64_t>& raw_done) {
  std::vector<std::vector<Unit>> per;
  try {
    per = parallel_map(jobs.size(), threads, [&](size_t i) {
      // per block: a signal or another block's error stops the batch within one block's time
      if (cancel) throw Fatal("cancelled");
      if (interrupted()) throw Fatal("interrupted");
      FileData disk(log);
      ChainData chain(con, log);  // consolidate: the bytes come from the chain's archives
      std::vector<Unit> u;
      fmt.encode_block(jobs[i], con.on ? static_cast<DataSource&>(chain) : disk, u);
      std::vector<std::string> damaged = con.on ? chain.take_damaged() : disk.take_damaged();
      if (!damaged.empty()) {
        if (u.empty()) throw Fatal("internal: block " + std::to_string(jobs[i].block.id) + " has no units");
        u.front().damaged = std::move(damaged);
      }
      for (const auto& x : u) raw_done += x.raw;  // progress (Progress::live)
      return u;
    });
  } catch (const std::exception& e) {
    error = e.what();
    return {};
  }
  std::vector<Unit> units;
  for (auto& v : per)
    for (auto& u : v) units.push_back(std::move(u));
  return units;
}

// Progress on rank 0: a thread prints a line every 5 s (batch logs, each line timestamped) or
// updates one line every second (a terminal), whatever the round size, from two counters: the
// bytes of the rounds every rank reported (exact, behind) and the sum of the bytes each rank's
// compressor has done (live: rank 0's own, the others' from their post_progress messages,
// taken while rank 0 waits). No rank ever waits for a progress report.
class Progress {
 public:
  Progress(bool on, uint64_t total, uint64_t total_files)
      : tty_(on && ::isatty(2)), total_(total), total_files_(total_files), start_(Clock::now()) {
    if (on) ticker_.emplace(progress_interval(tty_), [this] { print(); });
  }
  ~Progress() {
    ticker_.reset();
    if (printed_ && tty_) std::fputc('\n', stderr);
  }
  Progress(const Progress&) = delete;
  Progress& operator=(const Progress&) = delete;
  void reported(uint64_t done, uint64_t files_done) {
    reported_ = done;
    files_ = files_done;
  }
  void live(uint64_t done) { live_ = done; }

 private:
  void print() {
    printed_ = true;
    uint64_t done = std::min<uint64_t>(std::max<uint64_t>(reported_, live_), total_);
    double secs = std::chrono::duration<double>(Clock::now() - start_).count();
    double rate = done / std::max(secs, 1e-9);
    double eta = rate > 0 ? (total_ - done) / rate : 0;
    // batch logs (stderr not a terminal): each line with its time
    std::string stamp = tty_ ? "\r" : "[" + log_timestamp() + "] ";
    std::fprintf(stderr, "%spbackup: %s of %s (%.0f%%), %llu of %llu files, %s/s, ETA %.0f s%s", stamp.c_str(),
                 human_bytes(done).c_str(), human_bytes(total_).c_str(), total_ ? 100.0 * done / total_ : 100.0,
                 static_cast<unsigned long long>(files_.load()), static_cast<unsigned long long>(total_files_),
                 human_bytes(static_cast<uint64_t>(rate)).c_str(), eta, tty_ ? "\033[K" : "\n");
    std::fflush(stderr);
  }

  bool tty_;
  std::atomic<bool> printed_{false};
  uint64_t total_, total_files_;
  Clock::time_point start_;
  std::atomic<uint64_t> reported_{0}, files_{0}, live_{0};
  std::optional<Ticker> ticker_;  // last: prints from the fields above
};

// Compresses batches of jobs in order on a background thread. A rank queues the next round
// before it reports the current one, so its threads keep compressing while the main thread
// waits for the other ranks at the round's gather and scatter (before, every rank stood still
// until the round's slowest block was done).
class Compressor {
 public:
  Compressor(const Format& fmt, const Consolidation& con, int threads, Log& log, Timeline& timeline, Clock::time_point t0)
      : fmt_(fmt), con_(con), threads_(threads), log_(log), timeline_(timeline), t0_(t0), thread_([this] { run(); }) {}
  ~Compressor() {
    {
      std::lock_guard<std::mutex> l(mu_);
      stop_ = true;
    }
    cancel_ = true;  // a batch under way stops at its next block
    cv_.notify_all();
    thread_.join();
  }
  Compressor(const Compressor&) = delete;
  Compressor& operator=(const Compressor&) = delete;
  void enqueue(std::vector<BlockJob> jobs) {
    {
      std::lock_guard<std::mutex> l(mu_);
      todo_.push_back(std::move(jobs));
    }
    cv_.notify_all();
  }
  // The oldest queued batch's units, once compressed; `error` says why a batch failed.
  // `idle` runs every 10 ms while waiting (it passes interruptions between the ranks, so a
  // signal to any rank stops every rank's compressors within a block).
  template <class Idle>
  std::vector<Unit> take(std::string& error, Idle idle) {
    std::unique_lock<std::mutex> l(mu_);
    while (!cv_.wait_for(l, std::chrono::milliseconds(10), [&] { return !done_.empty(); })) {
      l.unlock();
      idle();
      l.lock();
    }
    auto [units, err] = std::move(done_.front());
    done_.pop_front();
    error = err;
    return std::move(units);
  }

 private:
  void run() {
    while (true) {
      std::vector<BlockJob> jobs;
      {
        std::unique_lock<std::mutex> l(mu_);
        cv_.wait(l, [&] { return stop_ || !todo_.empty(); });
        if (stop_) return;
        jobs = std::move(todo_.front());
        todo_.pop_front();
      }
      std::string err;
      const auto start = Clock::now();
      std::vector<Unit> units = compress_jobs(jobs, fmt_, con_, threads_, log_, err, cancel_, raw_done_);
      timeline_.add("compress", t0_, start, Clock::now());
      {
        std::lock_guard<std::mutex> l(mu_);
        done_.emplace_back(std::move(units), std::move(err));
      }
      cv_.notify_all();
    }
  }
  const Format& fmt_;
  const Consolidation& con_;
  const int threads_;
  Log& log_;
  Timeline& timeline_;
  const Clock::time_point t0_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::vector<BlockJob>> todo_;
  std::deque<std::pair<std::vector<Unit>, std::string>> done_;
  bool stop_ = false;
  std::atomic<bool> cancel_{false};

 public:
  std::atomic<uint64_t> raw_done_{0};  // uncompressed bytes compressed so far (progress)

 private:
  std::thread thread_;  // last: starts once everything above exists
};

// Rank 0: the files of the whole plan (the entries themselves stay spread over the ranks);
// counted as the rounds count them done (a file at the block its data ends in).
uint64_t count_files(const BackupRun& run) {
  uint64_t n = 0;
  for (const BlockInfo& b : run.plan) n += b.files;
  return n;
}

// Rank 0: hands out rounds, lays out what the ranks report, writes the structural bytes.
class RoundPlanner {
 public:
  explicit RoundPlanner(BackupRun& run)
      : run_(run), layout_(run.fmt->make_layout(run.entries)), progress_(run.opt.progress != 0, run.bytes_in, count_files(run)) {}

  // The first orders: two rounds, so one is always compressing ahead.
  std::vector<std::string> start() {
    if (run_.resume && !run_.resume->prefix.empty()) run_.error.guard([&] { adopt_prefix(); });
    if (!run_.error.ok()) return orders(RoundCmd::kAbort, {}, {}, 0);
    std::vector<Round> first;
    next_round(first);
    next_round(first);
    rounds_out_ = first.size();
    return orders(first.empty() ? RoundCmd::kFinish : RoundCmd::kWork, {}, first, 0);
  }

  // Once every rank reported: the offsets of the reported units and the next round, or an
  // abort if a rank failed or the layout did (its reason in run.error).
  std::vector<std::string> step(const std::vector<std::string>& report_bytes) {
    std::vector<RoundReport> reports;
    bool someone_failed = false;  // that rank logs its own reason
    for (const auto& b : report_bytes) {
      reports.push_back(from_wire<RoundReport>(b));
      someone_failed = someone_failed || !reports.back().problem.empty();
      for (auto& d : reports.back().damaged) run_.man.damaged.push_back(std::move(d));
    }
    Reported rep = in_block_order(reports);
    std::vector<uint64_t> flat;
    if (!someone_failed && run_.error.ok()) {
      run_.error.guard([&] {
        journal_durable();  // every rank synced what it wrote before this report
        if (run_.resume && !rep.sorted.empty()) {
          std::vector<std::string> dmg;
          for (const auto& r : reports) dmg.insert(dmg.end(), r.damaged.begin(), r.damaged.end());
          if (!dmg.empty()) damaged_pending_.emplace_back(rep.sorted.back().block + 1, std::move(dmg));
        }
        // Every rank has written the previous round by now (it reported this one), so
        // structure that overwrites placeholders in those blocks can go in.
        write_structure();
        layout_->place(rep.sorted, flat, deferred_);
      });
    }
    if (someone_failed || !run_.error.ok()) return orders(RoundCmd::kAbort, {}, {}, 0);
    std::vector<std::vector<uint64_t>> offsets = record(reports, rep, flat);
    std::vector<Round> more;
    next_round(more);
    rounds_out_ = rounds_out_ - 1 + more.size();
    uint64_t settled = layout_->settled();
    for (const auto& w : deferred_) settled = std::min(settled, w.offset);
    durable_next_ = settled;
    return orders(rounds_out_ > 0 ? RoundCmd::kWork : RoundCmd::kFinish, offsets, more, settled);
  }

  void live_progress(uint64_t done) { progress_.live(done); }

  // After every rank wrote its last blocks: the remaining structure. Returns the archive size.
  uint64_t finish() {
    write_structure();
    uint64_t total = layout_->finish(deferred_);
    write_structure();
    return total;
  }

 private:
  // Every rank's units of one step, in block order (ranks got interleaved blocks).
  struct Reported {
    std::vector<UnitInfo> sorted;
    std::vector<std::pair<int, size_t>> owner;  // per sorted unit: (rank, index in its report)
  };

  static Reported in_block_order(const std::vector<RoundReport>& reports) {
    std::vector<const UnitInfo*> infos;
    std::vector<std::pair<int, size_t>> owner;
    for (size_t r = 0; r < reports.size(); ++r)
      for (size_t i = 0; i < reports[r].units.size(); ++i) {
        infos.push_back(&reports[r].units[i]);
        owner.emplace_back(static_cast<int>(r), i);
      }
    std::vector<size_t> order(infos.size());
    for (size_t i = 0; i < order.size(); ++i) order[i] = i;
    std::stable_sort(order.begin(), order.end(), [&](size_t x, size_t y) { return infos[x]->block < infos[y]->block; });
    Reported rep;
    for (size_t i : order) {
      rep.sorted.push_back(*infos[i]);
      rep.owner.push_back(owner[i]);
    }
    return rep;
  }

  // Block records for the manifest, progress, and each rank's offsets in its report's order.
  std::vector<std::vector<uint64_t>> record(const std::vector<RoundReport>& reports, const Reported& rep,
                                            const std::vector<uint64_t>& flat) {
    std::vector<std::vector<uint64_t>> offsets(reports.size());
    for (size_t r = 0; r < reports.size(); ++r) offsets[r].resize(reports[r].units.size());
    for (size_t k = 0; k < rep.sorted.size(); ++k) {
      auto [r, i] = rep.owner[k];
      offsets[r][i] = flat[k];
      const UnitInfo& u = rep.sorted[k];
      add_block(u, flat[k]);
      if (run_.resume) journal_pending_.push_back({u.block, u.raw, flat[k], u.size, u.sha256});
    }
    progress_.reported(done_bytes_, files_done_);
    // throughput for the report: (ms, bytes done), thinned to every other sample past 1000
    auto& tp = run_.throughput;
    tp.emplace_back(static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - run_.t0).count()), done_bytes_);
    if (tp.size() > 1000) {
      for (size_t i = 0; 2 * i < tp.size(); ++i) tp[i] = tp[2 * i];
      tp.resize((tp.size() + 1) / 2);
    }
    return offsets;
  }

  // A unit's manifest record, and progress.
  void add_block(const UnitInfo& u, uint64_t offset) {
    const std::vector<BlockInfo>& plan = run_.plan;
    if (u.block >= plan.size()) throw Fatal("internal: unit of block " + std::to_string(u.block));
    const BlockInfo& b = plan[u.block];
    // a unit's first path: zip's units of one block start at different entries (rank 0 holds
    // the whole list then); tar has one unit per block
    const std::string& first = run_.whole_on_root ? run_.entries.at(u.entry).path : b.first;
    ManifestBlock mb{b.raw_offset, u.raw, offset, u.size, u.sha256, first, "block"};
    if (b.continues) {
      mb.continues = true;
      mb.cont_offset = b.cont_offset;
      mb.cont_size = b.cont_size;
      mb.cont_sparse = b.cont_sparse;
    }
    run_.man.blocks.push_back(std::move(mb));
    done_bytes_ += b.raw_bytes;
    files_done_ += b.files;
  }

  // --resume: the blocks an interrupted run made durable (core/resume.h), laid out as if this
  // run had compressed them; the rounds go on after them.
  void adopt_prefix() {
    const std::vector<JournalBlock>& prefix = run_.resume->prefix;
    std::vector<UnitInfo> units;
    for (const JournalBlock& j : prefix) units.push_back({j.id, 0, j.raw, j.size, j.sha256, ""});
    std::vector<uint64_t> flat;
    layout_->place(units, flat, deferred_);
    if (!deferred_.empty() || flat.size() != units.size()) throw Fatal("--resume: this format cannot take up an interrupted run");
    for (size_t k = 0; k < units.size(); ++k) {
      if (flat[k] != prefix[k].offset) throw Fatal("--resume: the journal's block offsets do not follow the layout");
      add_block(units[k], flat[k]);
    }
    for (const auto& d : run_.resume->damaged) {
      run_.man.damaged.push_back(d);
      run_.log.warn("damaged when the interrupted run read it (stored as zeros)", d);
    }
    next_block_ = prefix.size();
    progress_.reported(done_bytes_, files_done_);
  }

  // --resume: appends the blocks every rank has made durable (below the `settled` of the last
  // order: written and synced at the ranks' last step) and the damaged files found in them.
  void journal_durable() {
    if (!run_.resume) return;
    std::vector<JournalBlock> blocks;
    while (!journal_pending_.empty() && journal_pending_.front().offset + journal_pending_.front().size <= durable_next_) {
      blocks.push_back(std::move(journal_pending_.front()));
      journal_pending_.pop_front();
    }
    if (!blocks.empty()) journaled_ = blocks.back().id + 1;
    std::vector<std::string> dmg;
    while (!damaged_pending_.empty() && damaged_pending_.front().first <= journaled_) {
      for (auto& d : damaged_pending_.front().second) dmg.push_back(std::move(d));
      damaged_pending_.pop_front();
    }
    journal_append(run_, blocks, dmg);
  }

  // The next window of blocks, interleaved over the ranks; none when all are out. Blocks of
  // many tiny files: the window also ends at about one full block's entries per thread, as
  // their jobs carry the entries (a window of 8 such blocks per thread held ~100 MB per rank at
  // 1 M files).
  void next_round(std::vector<Round>& out) {
    if (next_block_ >= run_.plan.size()) return;
    size_t window = 0, threads = 0;
    for (int t : run_.thread_counts) threads += static_cast<size_t>(t);
    window = kBlocksPerThread * threads;
    const uint64_t most_pieces = kMaxPiecesPerBlock * threads;
    size_t last = next_block_;
    for (uint64_t pieces = 0; last < run_.plan.size() && last - next_block_ < window && pieces < most_pieces; ++last)
      pieces += run_.plan[last].pieces;
    out.push_back(share_round(run_.plan, next_block_, last, run_.thread_counts));
    next_block_ = last;
  }

  // One order per rank: the rounds it compresses, and the blocks whose entries it holds that
  // go to each rank as jobs.
  std::vector<std::string> orders(RoundCmd cmd, const std::vector<std::vector<uint64_t>>& offsets,
                                  const std::vector<Round>& rounds, uint64_t settled) const {
    const size_t ranks = static_cast<size_t>(run_.comm.size());
    std::vector<RoundOrder> o(ranks);
    for (size_t r = 0; r < ranks; ++r) {
      o[r].cmd = cmd;
      o[r].settled = settled;
      if (!offsets.empty()) o[r].offsets = offsets[r];
    }
    if (cmd == RoundCmd::kWork)
      for (const Round& round : rounds)
        for (size_t r = 0; r < ranks; ++r) {
          o[r].rounds.push_back(round[r].blocks);
          for (uint64_t id : round[r].blocks) {
            RoundOrder& owner = o.at(run_.plan[id].owner);
            owner.give.push_back(id);
            owner.give_to.push_back(static_cast<uint32_t>(r));
          }
        }
    std::vector<std::string> msgs;
    for (const RoundOrder& x : o) msgs.push_back(to_wire(x));
    return msgs;
  }

  // Structural bytes held back until a safe moment (deferred_), written now.
  void write_structure() {
    for (auto& w : deferred_) {
      run_.dest->write_at(w.offset, w.bytes);
      run_.man.blocks.push_back({0, 0, w.offset, w.bytes.size(), sha256_hex(w.bytes), "", w.patch ? "patch" : "structure"});
    }
    deferred_.clear();
  }

  BackupRun& run_;
  std::unique_ptr<Layout> layout_;
  Progress progress_;
  std::vector<Write> deferred_;
  size_t next_block_ = 0;
  size_t rounds_out_ = 0;  // rounds sent and not yet reported
  uint64_t done_bytes_ = 0, files_done_ = 0;
  // --resume: blocks laid out and not yet durable, in block order; damaged files found in a
  // step, journaled once the blocks before (first) are
  std::deque<JournalBlock> journal_pending_;
  std::deque<std::pair<uint64_t, std::vector<std::string>>> damaged_pending_;
  uint64_t durable_next_ = 0;  // the `settled` of the last order: durable at the next report
  uint64_t journaled_ = 0;     // blocks journaled (ids below)
};

// Every rank: compresses the rounds it is sent and writes its units where rank 0 put them.
class RoundWorker {
 public:
  explicit RoundWorker(BackupRun& run) : run_(run), compressor_(*run.fmt, run.con, run.threads, run.log, run.timeline, run.t0) {}
  uint64_t raw_done() const { return compressor_.raw_done_; }
  std::function<void()> tick;  // progress, while waiting for the compressor (main thread)

  // One step: writes the units reported last step at their offsets while the oldest queued
  // round finishes compressing; returns this step's report. kFinish: only writes, no report.
  std::optional<RoundReport> step(RoundOrder& order) {
    std::string write_error;
    std::thread writer([&] {
      const auto start = Clock::now();
      struct Span {
        BackupRun& run;
        Clock::time_point start;
        bool any;
        ~Span() {
          if (any) run.timeline.add("write", run.t0, start, Clock::now());
        }
      } span{run_, start, !pending_.empty() && !order.offsets.empty()};
      for (size_t i = 0; i < order.offsets.size() && i < pending_.size() && write_error.empty(); ++i) {
        try {
          run_.dest->write_at(order.offsets[i], pending_[i].data);
        } catch (const std::exception& e) {
          write_error = e.what();
        }
      }
    });
    if (order.cmd == RoundCmd::kFinish) {
      writer.join();
      run_.error.set(write_error);
      return std::nullopt;
    }
    std::vector<std::vector<BlockJob>> rounds = trade_jobs(order);
    for (auto& round : rounds) {
      compressor_.enqueue(std::move(round));
      ++queued_;
    }
    // the oldest queued round, compressed while the previous one was written; the next keeps
    // compressing while this one is reported
    std::string comp_error;
    std::vector<Unit> units;
    if (queued_ > 0) {
      units = compressor_.take(comp_error, [&] {
        run_.comm.poll_interrupt();
        if (tick) tick();
      });
      --queued_;
    }
    writer.join();
    try {  // every rank takes part, whatever happened before (settle may be a collective)
      run_.dest->settle(run_.comm, order.settled, false);
    } catch (const std::exception& e) {
      if (write_error.empty()) write_error = e.what();
    }
    pending_ = std::move(units);
    return report(!comp_error.empty() ? comp_error : write_error);
  }

 private:
  // The job of a block whose entries this rank holds (its blocks have consecutive ids).
  BlockJob job(uint64_t id) const {
    const std::vector<Block>& mine = run_.blocks;
    if (mine.empty() || id < mine.front().id || id - mine.front().id >= mine.size())
      throw Fatal("internal: block " + std::to_string(id) + " is not on this rank");
    BlockJob j;
    j.block = mine[id - mine.front().id];
    for (const Piece& p : j.block.pieces) {
      j.entries.push_back(run_.entries.at(p.entry));
      const Entry& e = run_.entries[p.entry];
      // consolidate: the job travels to the rank that compresses it with where the bytes lie
      j.disk_paths.push_back(run_.con.on ? chain_location(run_.con, e) : disk_path(e, run_.setup.roots));
    }
    return j;
  }

  // Every rank sends the jobs of the blocks it holds to the ranks that compress them (one
  // exchange per step: bounded by the window), and gets its own rounds' jobs back in order.
  std::vector<std::vector<BlockJob>> trade_jobs(const RoundOrder& order) {
    const size_t ranks = static_cast<size_t>(run_.comm.size());
    std::vector<std::vector<BlockJob>> out(ranks);
    for (size_t i = 0; i < order.give.size(); ++i) {
      if (order.give_to[i] >= ranks) throw Fatal("internal: job for rank " + std::to_string(order.give_to[i]));
      out[order.give_to[i]].push_back(job(order.give[i]));
    }
    std::vector<std::string> to(ranks);
    for (size_t r = 0; r < ranks; ++r) to[r] = to_wire(out[r]);
    out.clear();
    std::map<uint64_t, BlockJob> got;
    for (const std::string& bytes : run_.comm.exchange(to))
      for (auto& j : from_wire<std::vector<BlockJob>>(bytes)) got.emplace(j.block.id, std::move(j));
    std::vector<std::vector<BlockJob>> rounds;
    for (const auto& ids : order.rounds) {
      rounds.emplace_back();
      for (uint64_t id : ids) {
        auto it = got.find(id);
        if (it == got.end()) throw Fatal("internal: no job came for block " + std::to_string(id));
        rounds.back().push_back(std::move(it->second));
      }
    }
    return rounds;
  }

  RoundReport report(std::string problem) {
    if (problem.empty() && interrupted()) problem = "interrupted";
    run_.error.set(problem);
    RoundReport rep;
    rep.problem = std::move(problem);
    for (auto& u : pending_) {
      rep.units.push_back({u.block, u.entry, u.raw, u.data.size(), sha256_hex(u.data), u.extra});
      rep.damaged.insert(rep.damaged.end(), u.damaged.begin(), u.damaged.end());
    }
    return rep;
  }

  BackupRun& run_;
  Compressor compressor_;
  std::vector<Unit> pending_;  // reported last step, written while the next round compresses
  size_t queued_ = 0;          // rounds queued and not reported yet
};

// Once every rank has written its last blocks: rank 0 writes the remaining structure, every
// rank learns the archive's size, and the destination finishes its last parts and closes.
bool finish_writing(BackupRun& run, RoundPlanner* planner) {
  if (!run.agree(false)) return false;
  if (planner) run.error.guard([&] { run.total = planner->finish(); });
  std::string total = std::to_string(run.total);
  run.comm.broadcast(total, 0);
  run.total = std::stoull(total);
  const bool ok = run.comm.all_ok(run.error.ok());
  run.error.guard([&] {
    if (ok) run.dest->settle(run.comm, run.total, true);
    run.dest->close();
  });
  return run.agree();
}

// Test only: PBACKUP_TEST_PAUSE_EACH_ROUND=S makes rank 0 wait S seconds after each round's
// report (a signal ends the wait), so tests can interrupt a backup between durable rounds.
void test_pause_round() {
  static const double pause = [] {
    const char* v = std::getenv("PBACKUP_TEST_PAUSE_EACH_ROUND");
    return v ? std::atof(v) : 0.0;
  }();
  const auto until = Clock::now() + std::chrono::milliseconds(static_cast<int64_t>(pause * 1000));
  while (pause > 0 && Clock::now() < until && !interrupted()) std::this_thread::sleep_for(std::chrono::milliseconds(10));
}

}  // namespace

bool run_rounds(BackupRun& run) {
  std::unique_ptr<RoundPlanner> planner;
  std::vector<std::string> orders;
  if (run.root) {
    planner = std::make_unique<RoundPlanner>(run);
    orders = planner->start();
  }
  {
    RoundWorker worker(run);
    // Progress: every second at most, the other ranks post their compressors' counts, rank 0
    // takes them (while it waits for its compressor or at a collective) and feeds the printer.
    std::vector<uint64_t> latest;
    Clock::time_point last{};
    // at most once a second, and at least twice per printed line (tests print every 100 ms)
    const auto every = std::min<std::chrono::milliseconds>(std::chrono::seconds(1), progress_interval(::isatty(2)) / 2);
    if (run.opt.progress != 0)
      worker.tick = [&] {
        auto now = Clock::now();
        if (now - last < every) return;
        last = now;
        if (!planner) return run.comm.post_progress(worker.raw_done());
        run.comm.take_progress(latest);
        latest.resize(static_cast<size_t>(run.comm.size()), 0);
        latest[0] = worker.raw_done();
        uint64_t sum = 0;
        for (uint64_t v : latest) sum += v;
        planner->live_progress(sum);
      };
    struct HookGuard {  // the wait hook lives as long as the worker
      Comm& c;
      ~HookGuard() { c.set_wait_hook({}); }
    } guard{run.comm};
    if (worker.tick) run.comm.set_wait_hook(worker.tick);
    while (true) {
      RoundOrder order = from_wire<RoundOrder>(run.comm.scatter(orders, 0));
      if (order.cmd == RoundCmd::kAbort) return false;
      std::optional<RoundReport> report = worker.step(order);
      if (!report) break;
      std::vector<std::string> reports = run.comm.gather(to_wire(*report), 0);
      if (planner) orders = planner->step(reports);
      if (planner) test_pause_round();
    }
  }
  if (run.root) run.log.info("compressed and wrote every block at " + run.since());
  bool ok = finish_writing(run, planner.get());
  std::vector<uint64_t> unread;
  run.comm.take_progress(unread);  // rank 0: what arrived after its last look
  return ok;
}

}  // namespace pbackup
