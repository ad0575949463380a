// The backup pipeline (DESIGN §2), top to bottom:
//   setup    rank 0 checks the output directory and the roots, picks the archive name
//   scan     all ranks walk directories handed out by rank 0
//   plan     rank 0 orders entries, marks hard links, cuts the stream into blocks
//   rounds   a window of blocks at a time: rank 0 scatters block jobs (contiguous runs, balanced
//            by bytes and threads); every rank reads and compresses its blocks with its threads;
//            rank 0 gathers sizes only, lays out offsets and writes structural bytes; every rank
//            writes its blocks at their offsets. Memory per rank is bounded by the window.
//   commit   every rank syncs; rank 0 writes the checksum file and the manifest under temporary
//            names, syncs them, then renames everything into place without replacing anything,
//            the manifest last (all or nothing: a failure removes every file of the run)
// Errors are agreed on at every step (gather/scatter carry a status, all_ok closes stages), so
// all ranks take the same path and none throws across a collective.
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <deque>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <mutex>
#include <thread>

#include "core/parallel.h"
#include "core/read.h"
#include "core/xattr.h"
#include "format/sparse.h"
#include "pbackup/destination.h"
#include "pbackup/error.h"
#include "pbackup/manifest.h"
#include "pbackup/pipeline.h"
#include "pbackup/sha256.h"
#include "pbackup/version.h"

namespace pbackup {
namespace {

enum Cmd : uint8_t { kWork = 0, kFinish = 1, kAbort = 2 };
// Blocks per thread in a round: more evens out blocks that compress at different speeds, fewer
// bound memory (a rank holds three rounds: one being written, one reported, one compressing).
constexpr size_t kBlocksPerThread = 8;
using Clock = std::chrono::steady_clock;

std::string default_base_name() {
  std::time_t t = std::time(nullptr);
  struct tm tm {};
  localtime_r(&t, &tm);
  char b[64];
  std::strftime(b, sizeof b, "backup_%Y%m%d_%H%M%S", &tm);
  return b;
}

std::string iso_now() {
  std::time_t t = std::time(nullptr);
  struct tm tm {};
  gmtime_r(&t, &tm);
  char b[64];
  std::strftime(b, sizeof b, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return b;
}

// ---- setup: rank 0 decides, everyone learns the outcome ----
struct Setup {
  std::string error;
  std::string archive;  // final file name
  std::vector<Root> roots;
};

std::string encode(const Setup& s) {
  ByteWriter w;
  w.str(s.error);
  w.str(s.archive);
  w.u64(s.roots.size());
  for (auto& r : s.roots) {
    w.str(r.disk);
    w.str(r.name);
  }
  return w.take();
}

Setup decode_setup(const std::string& b) {
  ByteReader r(b);
  Setup s;
  s.error = r.str();
  s.archive = r.str();
  for (uint64_t i = 0, n = r.u64(); i < n; ++i) {
    Root root;
    root.disk = r.str();
    root.name = r.str();
    s.roots.push_back(root);
  }
  return s;
}

Setup decide_setup(const BackupOptions& opt, const Format& fmt, Log& log) {
  Setup s;
  try {
    const bool local = opt.dest_type != "cloud";  // the cloud destination checks its bucket itself
    if (local) {
      struct stat st {};
      if (::stat(opt.output_dir.c_str(), &st) != 0) throw Fatal(sys_message("output directory", opt.output_dir, errno));
      if (!S_ISDIR(st.st_mode)) throw Fatal("output directory " + quote(opt.output_dir) + ": not a directory");
      if (::access(opt.output_dir.c_str(), W_OK | X_OK) != 0) throw Fatal(sys_message("output directory", opt.output_dir, errno));
    }
    s.roots = resolve_roots(opt.sources, &log);
    s.archive = (opt.name.empty() ? default_base_name() : opt.name) + "." + fmt.extension();
    std::string final_path = opt.output_dir + "/" + s.archive;
    if (local && (::access(final_path.c_str(), F_OK) == 0 || ::access((final_path + ".part0001").c_str(), F_OK) == 0))
      throw Fatal("archive " + quote(final_path) + " already exists; choose another --name");
  } catch (const Fatal& f) {
    s.error = f.what();
  }
  return s;
}

// ---- rounds: rank 0 plans, every rank compresses and writes ----
struct RankRound {
  std::vector<uint64_t> blocks;  // ids, consecutive
};

// Splits blocks [first, last) into contiguous runs, one per rank, balanced by raw bytes
// weighted by each rank's thread count.
std::vector<RankRound> share_round(const std::vector<Block>& blocks, size_t first, size_t last,
                                   const std::vector<int>& threads) {
  // Each block to the rank with the least input per thread so far: interleaved, so a run of
  // slow-to-compress blocks is shared too, not left to one rank while the others wait.
  std::vector<RankRound> out(threads.size());
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

std::string encode_jobs(const std::vector<uint64_t>& ids, const std::vector<Block>& blocks,
                        const EntryList& entries, const std::vector<Root>& roots) {
  ByteWriter w;
  w.u64(ids.size());
  for (uint64_t id : ids) {
    BlockJob j;
    j.block = blocks[id];
    for (const Piece& p : j.block.pieces) {
      j.entries.push_back(entries[p.entry]);
      j.disk_paths.push_back(disk_path(entries[p.entry], roots));
    }
    encode(w, j);
  }
  return w.take();
}

std::vector<BlockJob> decode_jobs(const std::string& bytes) {
  ByteReader r(bytes);
  std::vector<BlockJob> jobs;
  for (uint64_t i = 0, n = r.u64(); i < n; ++i) jobs.push_back(decode_job(r));
  return jobs;
}

// Compresses jobs with `threads` threads; units come back in job order.
std::vector<Unit> compress_jobs(const std::vector<BlockJob>& jobs, const Format& fmt, int threads,
                                Log& log, std::string& error, const std::atomic<bool>& cancel) {
  std::vector<std::vector<Unit>> per;
  try {
    per = parallel_map(jobs.size(), threads, [&](size_t i) {
      // per block: a signal or another block's error stops the batch within one block's time
      if (cancel) throw Fatal("cancelled");
      if (interrupted()) throw Fatal("interrupted");
      FileData src(log);
      std::vector<Unit> u;
      fmt.encode_block(jobs[i], src, u);
      std::vector<std::string> damaged = src.take_damaged();
      if (!damaged.empty()) {
        if (u.empty()) throw Fatal("internal: block " + std::to_string(jobs[i].block.id) + " has no units");
        u.front().damaged = std::move(damaged);
      }
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

std::string human_bytes(double b) {
  const char* u[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int i = 0;
  while (b >= 1024 && i < 4) {
    b /= 1024;
    ++i;
  }
  char s[32];
  std::snprintf(s, sizeof s, "%.1f %s", b, u[i]);
  return s;
}

// Progress on rank 0, from the sizes it gathers anyway each round (no extra messages, so no
// rank ever waits for a progress report): a line every 5 s for batch logs, or one line updated
// in place on a terminal.
class Progress {
 public:
  Progress(bool on, uint64_t total)
      : on_(on), tty_(on && ::isatty(2)), total_(total), start_(Clock::now()), last_(start_) {}
  ~Progress() {
    if (printed_ && tty_) std::fputc('\n', stderr);
  }
  void update(uint64_t done, uint64_t files_done) {
    if (!on_) return;
    auto now = Clock::now();
    if (now - last_ < std::chrono::seconds(tty_ ? 1 : 5)) return;
    last_ = now;
    printed_ = true;
    double secs = std::chrono::duration<double>(now - start_).count();
    double rate = done / std::max(secs, 1e-9);
    double eta = rate > 0 ? (total_ - done) / rate : 0;
    std::fprintf(stderr, "%spbackup: %s of %s (%.0f%%), %llu files, %.1f MB/s, ETA %.0f s%s", tty_ ? "\r" : "",
                 human_bytes(done).c_str(), human_bytes(total_).c_str(), total_ ? 100.0 * done / total_ : 100.0,
                 static_cast<unsigned long long>(files_done), rate / 1e6, eta, tty_ ? "\033[K" : "\n");
    std::fflush(stderr);
  }

 private:
  bool on_, tty_, printed_ = false;
  uint64_t total_;
  Clock::time_point start_, last_;
};

// Compresses batches of jobs in order on a background thread. A rank queues the next round
// before it reports the current one, so its threads keep compressing while the main thread
// waits for the other ranks at the round's gather and scatter (before, every rank stood still
// until the round's slowest block was done).
class Compressor {
 public:
  Compressor(const Format& fmt, int threads, Log& log) : fmt_(fmt), threads_(threads), log_(log), thread_([this] { run(); }) {}
  ~Compressor() {
    {
      std::lock_guard<std::mutex> l(mu_);
      stop_ = true;
    }
    cancel_ = true;  // a batch under way stops at its next block
    cv_.notify_all();
    thread_.join();
  }
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
      std::vector<Unit> units = compress_jobs(jobs, fmt_, threads_, log_, err, cancel_);
      {
        std::lock_guard<std::mutex> l(mu_);
        done_.emplace_back(std::move(units), std::move(err));
      }
      cv_.notify_all();
    }
  }
  const Format& fmt_;
  const int threads_;
  Log& log_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::vector<BlockJob>> todo_;
  std::deque<std::pair<std::vector<Unit>, std::string>> done_;
  bool stop_ = false;
  std::atomic<bool> cancel_{false};
  std::thread thread_;  // last: starts once everything above exists
};

}  // namespace

int run_backup(Comm& comm, const BackupOptions& opt, Log& log, BackupStats& stats) {
  const auto t0 = Clock::now();
  const bool root = comm.rank() == 0;
  std::unique_ptr<Format> fmt;
  try {
    fmt = make_format(opt.algo, opt.level);
  } catch (const Fatal& f) {
    if (root) log.error(f.what());
    return kExitFatal;
  }

  // setup
  std::string setup_bytes;
  if (root) setup_bytes = encode(decide_setup(opt, *fmt, log));
  comm.broadcast(setup_bytes, 0);
  Setup setup = decode_setup(setup_bytes);
  if (!setup.error.empty()) {
    if (root) log.error(setup.error);
    return kExitFatal;
  }
  stats.archive = setup.archive;
  DestinationSpec spec{opt.dest_type, opt.output_dir, setup.archive, opt.split_chunk_mb << 20, opt.s3_part_mb << 20,
                       opt.s3_endpoint, opt.s3_region};
  std::unique_ptr<Destination> dest;
  std::string dest_error;
  try {
    dest = make_destination(spec);
  } catch (const std::exception& e) {
    dest_error = e.what();
  }
  if (!comm.all_ok(dest_error.empty())) {
    if (!dest_error.empty()) log.error(dest_error);
    if (root && dest) dest->abort();
    return kExitFatal;
  }

  // scan + plan
  auto since = [&] {
    char b[32];
    std::snprintf(b, sizeof b, "%.2f s", std::chrono::duration<double>(Clock::now() - t0).count());
    return std::string(b);
  };
  EntryList entries = scan(comm, setup.roots, log);
  if (root) log.info("scanned " + std::to_string(entries.size()) + " entries at " + since());
  // Test only: lets a test change the tree between the scan and the reads.
  if (const char* pause = std::getenv("PBACKUP_TEST_PAUSE_AFTER_SCAN"); pause && root)
    std::this_thread::sleep_for(std::chrono::milliseconds(static_cast<int64_t>(std::atof(pause) * 1000)));
  // Test only: an unexpected error on one rank while the others wait in a collective.
  if (const char* r = std::getenv("PBACKUP_TEST_FAIL_RANK"); r && std::atoi(r) == comm.rank() && comm.size() > 1)
    throw std::runtime_error("test failure injected on this rank (PBACKUP_TEST_FAIL_RANK)");
  std::vector<Block> blocks;
  std::string err, prepared;
  if (root) {
    try {
      order_entries(entries);
      fmt->adapt(entries, log);
      blocks = fmt->cut(entries, std::max<uint64_t>(opt.block_mb, 1) << 20);
      prepared = dest->prepare();
      register_temp_files(dest->temp_paths());  // a signal (or mpirun's SIGTERM after a rank's abort) removes it
    } catch (const std::exception& e) {
      err = e.what();
    }
  }
  // Every rank that failed logs its own reason (tagged with its rank and host: only rank 0
  // speaking lost the others' errors); the ranks agree on a signal any of them got, so each
  // exits 128+N and rank 0 says so (cli/main.cpp). Called by every rank at the same step.
  auto fail = [&](const std::string& why) {
    const int sig = static_cast<int>(comm.max(static_cast<uint64_t>(interrupt_signal())));
    if (root) dest->abort();
    if (sig) return 128 + sig;
    if (!why.empty()) log.error(why);
    return static_cast<int>(kExitFatal);
  };
  if (!comm.all_ok(err.empty() && !interrupted())) return fail(err);
  if (root) log.info("planned " + std::to_string(blocks.size()) + " blocks at " + since());
  comm.broadcast(prepared, 0);
  try {
    dest->open(prepared);
  } catch (const std::exception& e) {
    err = e.what();
  }
  if (!comm.all_ok(err.empty())) return fail(err);
  register_temp_files(dest->temp_paths());  // this run's temporary names, known after open()

  const int threads = opt.threads > 0 ? opt.threads : default_threads();
  std::vector<int> thread_counts;
  {
    auto all = comm.gather(std::to_string(threads), 0);
    for (auto& s : all) thread_counts.push_back(std::stoi(s));
  }

  // rounds
  std::unique_ptr<Layout> layout;
  Manifest man;
  uint64_t bytes_in_total = 0, done_bytes = 0, files_done = 0;
  if (root) {
    layout = fmt->make_layout(entries);
    for (auto& b : blocks) bytes_in_total += b.raw_bytes;
  }
  Progress progress(root && opt.progress != 0, bytes_in_total);
  std::vector<Write> deferred;  // rank 0: structural bytes waiting for a safe moment
  auto write_structure = [&](std::vector<Write>& writes) {
    for (auto& w : writes) {
      dest->write_at(w.offset, w.bytes);
      man.blocks.push_back({0, 0, w.offset, w.bytes.size(), sha256_hex(w.bytes), "", w.patch ? "patch" : "structure"});
    }
    writes.clear();
  };
  size_t next_block = 0;
  std::string write_error;  // this rank's, reported at the next gather
  std::string my_problem;   // this rank's first reported problem, logged by this rank
  std::string abort_reason; // rank 0: its own layout error, or why it stops the rounds
  bool someone_failed = false;
  // Rank 0: the next window of blocks, interleaved over the ranks; none when all are out.
  using Round = std::vector<RankRound>;
  auto next_round = [&](std::vector<Round>& out) {
    if (next_block >= blocks.size()) return;
    size_t window = 0;
    for (int t : thread_counts) window += kBlocksPerThread * static_cast<size_t>(t);
    size_t last = std::min(blocks.size(), next_block + window);
    out.push_back(share_round(blocks, next_block, last, thread_counts));
    next_block = last;
  };
  // One message per rank and step: what to do, where its last reported blocks go, and the
  // rounds to queue (two at the start, so one is always compressing ahead).
  auto round_messages = [&](Cmd cmd, const std::vector<std::vector<uint64_t>>& offsets,
                            const std::vector<Round>& rounds, uint64_t settled) {
    std::vector<std::string> msgs;
    for (int r = 0; r < comm.size(); ++r) {
      ByteWriter w;
      w.u8(cmd);
      w.u64(settled);
      w.u64(offsets.empty() ? 0 : offsets[r].size());
      if (!offsets.empty())
        for (uint64_t o : offsets[r]) w.u64(o);
      w.u64(cmd == kWork ? rounds.size() : 0);
      if (cmd == kWork)
        for (const Round& round : rounds) w.str(encode_jobs(round[r].blocks, blocks, entries, setup.roots));
      msgs.push_back(w.take());
    }
    return msgs;
  };

  std::vector<std::string> msgs;
  size_t rounds_out = 0;  // rank 0: rounds sent and not yet reported
  if (root) {
    std::vector<Round> first;
    next_round(first);
    next_round(first);
    rounds_out = first.size();
    msgs = round_messages(first.empty() ? kFinish : kWork, {}, first, 0);
  }
  std::vector<Unit> pending;  // reported last step, written while the next round compresses
  size_t queued = 0;          // rounds this rank queued and has not reported yet
  Compressor compressor(*fmt, threads, log);
  bool aborted = false;
  while (true) {
    std::string mine = comm.scatter(msgs, 0);
    ByteReader mr(mine);
    Cmd cmd = static_cast<Cmd>(mr.u8());
    if (cmd == kAbort) {
      aborted = true;
      break;
    }
    const uint64_t settled = mr.u64();
    std::vector<uint64_t> offsets(mr.u64());
    for (auto& o : offsets) o = mr.u64();
    std::thread writer([&] {
      for (size_t i = 0; i < offsets.size() && i < pending.size() && write_error.empty(); ++i) {
        try {
          dest->write_at(offsets[i], pending[i].data);
        } catch (const std::exception& e) {
          write_error = e.what();
        }
      }
    });
    if (cmd == kFinish) {
      writer.join();
      break;
    }
    for (uint64_t n = mr.u64(); n > 0; --n, ++queued) compressor.enqueue(decode_jobs(mr.str()));

    // the oldest queued round, compressed while the previous one was written; the next keeps
    // compressing while this one is reported
    std::string comp_error;
    std::vector<Unit> units;
    if (queued > 0) {
      units = compressor.take(comp_error, [&] { comm.poll_interrupt(); });
      --queued;
    }
    writer.join();
    try {  // every rank takes part, whatever happened before (settle may be a collective)
      dest->settle(comm, settled, false);
    } catch (const std::exception& e) {
      if (write_error.empty()) write_error = e.what();
    }
    pending = std::move(units);
    ByteWriter report;
    std::string problem = !comp_error.empty() ? comp_error : write_error;
    if (problem.empty() && interrupted()) problem = "interrupted";
    if (my_problem.empty()) my_problem = problem;
    report.str(problem);
    report.u64(pending.size());
    std::vector<std::string> damaged;
    for (auto& u : pending) {
      UnitInfo info{u.block, u.entry, u.raw, u.data.size(), sha256_hex(u.data), u.extra};
      encode(report, info);
      damaged.insert(damaged.end(), u.damaged.begin(), u.damaged.end());
    }
    report.u64(damaged.size());
    for (auto& d : damaged) report.str(d);

    // rank 0 lays out offsets, writes structure, and sends the next round with the offsets
    auto reports = comm.gather(report.take(), 0);
    if (!root) continue;
    // every rank's units, in block order (ranks got interleaved blocks)
    std::vector<UnitInfo> infos;
    std::vector<std::pair<int, size_t>> owner;  // (rank, index in that rank's units)
    std::vector<size_t> count;
    for (int r = 0; r < comm.size(); ++r) {
      ByteReader rr(reports[r]);
      if (!rr.str().empty()) someone_failed = true;  // that rank logs its own reason
      uint64_t n = rr.u64();
      count.push_back(n);
      for (uint64_t i = 0; i < n; ++i) {
        infos.push_back(decode_unit_info(rr));
        owner.emplace_back(r, i);
      }
      for (uint64_t i = 0, nd = rr.u64(); i < nd; ++i) man.damaged.push_back(rr.str());
    }
    std::vector<size_t> order(infos.size());
    for (size_t i = 0; i < order.size(); ++i) order[i] = i;
    std::stable_sort(order.begin(), order.end(), [&](size_t x, size_t y) { return infos[x].block < infos[y].block; });
    std::vector<UnitInfo> sorted;
    for (size_t i : order) sorted.push_back(infos[i]);
    std::vector<uint64_t> flat;
    if (!someone_failed && abort_reason.empty()) {
      try {
        // Every rank has written the previous round by now (it reported this one), so
        // structure that overwrites placeholders in those blocks can go in.
        write_structure(deferred);
        layout->place(sorted, flat, deferred);
      } catch (const std::exception& e) {
        abort_reason = e.what();
      }
    }
    if (someone_failed || !abort_reason.empty()) {
      msgs = round_messages(kAbort, {}, {}, 0);
      continue;
    }
    std::vector<std::vector<uint64_t>> offsets_per_rank(comm.size());
    for (int r = 0; r < comm.size(); ++r) offsets_per_rank[r].resize(count[r]);
    for (size_t k = 0; k < sorted.size(); ++k) {
      auto [r, i] = owner[order[k]];
      offsets_per_rank[r][i] = flat[k];
      const UnitInfo& u = sorted[k];
      ManifestBlock mb{blocks[u.block].raw_offset, u.raw, flat[k], u.size, u.sha256, entries[u.entry].path, "block"};
      const Piece& head = blocks[u.block].pieces.front();
      if (!head.header) {
        mb.continues = true;
        mb.cont_offset = head.offset;
        mb.cont_size = tar_data_size(entries[head.entry]);  // as stored (a sparse file: map + data)
        mb.cont_sparse = !entries[head.entry].sparse.empty();
      }
      man.blocks.push_back(std::move(mb));
      done_bytes += blocks[u.block].raw_bytes;
      for (auto& p : blocks[u.block].pieces)
        if (p.last && entries[p.entry].type == EntryType::File) ++files_done;
    }
    progress.update(done_bytes, files_done);
    std::vector<Round> more;
    next_round(more);
    rounds_out = rounds_out - 1 + more.size();
    uint64_t settled_now = layout->settled();
    for (const auto& w : deferred) settled_now = std::min(settled_now, w.offset);
    msgs = round_messages(rounds_out > 0 ? kWork : kFinish, offsets_per_rank, more, settled_now);
  }
  if (aborted) return fail(root && !abort_reason.empty() ? abort_reason : my_problem);
  if (root) log.info("compressed and wrote every block at " + since());

  // finish: once every rank has written its last blocks, the remaining structure; then sync
  // everywhere and commit
  uint64_t total = 0;
  if (!comm.all_ok(write_error.empty())) return fail(write_error);
  if (root) {
    try {
      write_structure(deferred);
      total = layout->finish(deferred);
      write_structure(deferred);
    } catch (const std::exception& e) {
      write_error = e.what();
    }
  }
  {
    // everything is written now: let the destination finish its last parts
    std::string total_now = std::to_string(total);
    comm.broadcast(total_now, 0);
    bool ok = comm.all_ok(write_error.empty());
    try {
      if (ok) dest->settle(comm, std::stoull(total_now), true);
      dest->close();
    } catch (const std::exception& e) {
      if (write_error.empty()) write_error = e.what();
    }
  }
  if (!comm.all_ok(write_error.empty() && !interrupted())) return fail(write_error);

  // checksums of the fragments, read back in parallel: fragment k on rank k mod size
  std::string total_bytes = std::to_string(total);
  comm.broadcast(total_bytes, 0);
  total = std::stoull(total_bytes);
  std::vector<std::string> hashes;
  {
    std::string hash_error;
    ByteWriter w;
    try {
      std::vector<size_t> mine;
      for (size_t k = static_cast<size_t>(comm.rank()); k < dest->fragment_count(total); k += static_cast<size_t>(comm.size()))
        mine.push_back(k);
      std::vector<std::string> h = parallel_map(mine.size(), threads, [&](size_t i) {
        if (interrupted()) throw Fatal("interrupted");
        return dest->hash_fragment(mine[i], total);
      });
      for (size_t i = 0; i < mine.size(); ++i) {
        w.u64(mine[i]);
        w.str(h[i]);
      }
    } catch (const std::exception& e) {
      hash_error = e.what();
    }
    auto all = comm.gather(w.take(), 0);
    if (!comm.all_ok(hash_error.empty() && !interrupted())) return fail(hash_error);
    if (root) {
      hashes.resize(dest->fragment_count(total));
      for (auto& msg : all) {
        ByteReader r(msg);
        while (!r.done()) {
          uint64_t k = r.u64();
          hashes.at(k) = r.str();
        }
      }
    }
  }

  if (root) log.info("synced and hashed at " + since());
  std::string commit_error;
  if (root) {
    try {
      man.fragments = dest->fragments(total, hashes);
      man.tool_version = kVersion;
      man.command = opt.command_line;
      man.created = iso_now();
      man.format = fmt->name();
      man.codec = opt.algo == "zip" ? "deflate" : opt.algo;
      man.archive = setup.archive;
      man.archive_size = total;
      man.split_bytes = spec.split_bytes;
      man.entries = entries.size();
      count_xattr_entries(entries, man.xattr_entries, man.acl_entries, man.sparse_entries);
      for (auto& r : setup.roots) man.sources.push_back(r.disk);
      std::sort(man.damaged.begin(), man.damaged.end());
      man.damaged.erase(std::unique(man.damaged.begin(), man.damaged.end()), man.damaged.end());
      if (!man.damaged.empty()) {  // hard links to a damaged file hold the same zeros
        std::vector<std::string> links;
        for (const auto& e : entries)
          if (e.type == EntryType::Hardlink && std::binary_search(man.damaged.begin(), man.damaged.end(), e.link))
            links.push_back(e.path);
        man.damaged.insert(man.damaged.end(), links.begin(), links.end());
        std::sort(man.damaged.begin(), man.damaged.end());
      }
      std::sort(man.blocks.begin(), man.blocks.end(),
                [](const ManifestBlock& a, const ManifestBlock& b) { return a.offset < b.offset; });
      std::vector<SideFile> side;
      std::string sums = checksum_file(man);
      if (!sums.empty()) side.push_back({setup.archive + ".sha256", std::move(sums)});
      side.push_back({setup.archive + ".manifest.json", manifest_to_json(man)});  // last: it means "complete"
      dest->commit(total, side);
    } catch (const std::exception& e) {
      commit_error = e.what();
      dest->abort();
    }
  }
  register_temp_files({});
  // a signal during the commit removed the temporary file under it: 128+N, not "cannot rename"
  if (!comm.all_ok(commit_error.empty())) return fail(commit_error);

  // summary
  uint64_t warnings = comm.sum(log.warnings());
  if (root) {
    for (auto& e : entries) {
      if (e.type == EntryType::File || e.type == EntryType::Hardlink) ++stats.files;
      else if (e.type == EntryType::Dir) ++stats.dirs;
      else ++stats.other;
    }
    stats.bytes_in = bytes_in_total;
    stats.bytes_out = total;
  }
  stats.warnings = warnings;
  stats.seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  return warnings ? kExitWarnings : kExitOk;
}

}  // namespace pbackup
