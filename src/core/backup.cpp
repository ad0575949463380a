// The backup pipeline (DESIGN §2), as stages run_backup calls top to bottom:
//   setup    rank 0 checks the output directory and the roots, picks the archive name; every
//            rank opens the destination
//   scan     all ranks walk directories handed out by rank 0 (scan.cpp); each keeps its entries
//   plan     the ranks sort the list by path, mark hard links and cut their slices into blocks
//            in turn (file_list.h; zip: rank 0 gets the whole list and cuts it); rank 0 gets
//            each block's facts and prepares the destination; every rank opens this run's
//            temporary files
//   rounds   a window of blocks at a time (backup_rounds.cpp): rank 0 plans, every rank
//            compresses and writes its blocks. Memory per rank is bounded by the window.
//   commit   every rank hashes its share of the fragments and sends rank 0 its share of the
//            counts and the catalog records; rank 0 writes the checksum file and
//            the manifest under temporary names, syncs them, then renames everything into place
//            without replacing anything, the manifest last (all or nothing: a failure removes
//            every file of the run)
// The stages share one BackupRun (backup_stages.h) with one error holder. Errors are agreed on
// at the end of every stage (BackupRun::agree), so all ranks take the same path and none
// throws across a collective.
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <functional>
#include <optional>
#include <thread>

#include <nlohmann/json.hpp>

#include "core/age_dest.h"
#include "core/age_source.h"
#include "core/backup_stages.h"
#include "core/catalog.h"
#include "core/file_list.h"
#include "format/sparse.h"
#include "core/select.h"
#include "core/xattr.h"
#include "core/part_exchange.h"
#include "core/forward.h"
#include "core/sight.h"
#include "pbackup/error.h"
#include "pbackup/sha256.h"
#include "pbackup/version.h"
#include "pbackup/wire.h"
#include "util/parallel.h"
#include "util/units.h"

namespace pbackup {

void Timeline::add(const std::string& phase, Clock::time_point t0, Clock::time_point from, Clock::time_point to) {
  auto ms = [&](Clock::time_point t) {
    return static_cast<uint64_t>(std::max<int64_t>(0, std::chrono::duration_cast<std::chrono::milliseconds>(t - t0).count()));
  };
  std::lock_guard<std::mutex> l(mu_);
  spans_.emplace_back(phase, ms(from), ms(to));
  size_t n = 0;
  for (const auto& s : spans_) n += std::get<0>(s) == phase;
  if (n <= kMaxSpans) return;
  // full: merge this phase's spans in pairs (each pair becomes one span covering both)
  std::vector<std::tuple<std::string, uint64_t, uint64_t>> kept;
  std::optional<size_t> open;
  for (auto& s : spans_) {
    if (std::get<0>(s) != phase) {
      kept.push_back(std::move(s));
    } else if (open) {
      std::get<2>(kept[*open]) = std::max(std::get<2>(kept[*open]), std::get<2>(s));
      open.reset();
    } else {
      kept.push_back(std::move(s));
      open = kept.size() - 1;
    }
  }
  spans_.swap(kept);
}

std::vector<std::string> Timeline::flat() const {
  std::lock_guard<std::mutex> l(mu_);
  std::vector<std::string> v;
  for (const auto& [p, a, b] : spans_) {
    v.push_back(p);
    v.push_back(std::to_string(a));
    v.push_back(std::to_string(b));
  }
  return v;
}

std::string BackupRun::since() const {
  char b[32];
  std::snprintf(b, sizeof b, "%.2f s", std::chrono::duration<double>(Clock::now() - t0).count());
  return b;
}

// debug log: this rank's memory after a stage (VmHWM: peak RSS so far, VmRSS: now), so the
// memory table in docs/performance.md can say which stage sets the peak.
void BackupRun::memory(const char* stage) const {
  if (log.level() < LogLevel::Debug) return;
  std::FILE* f = std::fopen("/proc/self/status", "r");
  if (!f) return;
  char line[256];
  std::string out;
  while (std::fgets(line, sizeof line, f))
    if (!std::strncmp(line, "VmHWM:", 6) || !std::strncmp(line, "VmRSS:", 6)) out += " " + std::string(line, std::strcspn(line, "\n"));
  std::fclose(f);
  log.debug(std::string("memory after ") + stage + ":" + out + " at " + since());
}

namespace {

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
    // consolidate reads no disk: one placeholder root (entries carry their archive paths)
    s.roots = opt.consolidate_from.empty() ? resolve_roots(opt.sources, &log) : std::vector<Root>{Root{"", ""}};
    s.archive = (opt.name.empty() ? default_base_name() : opt.name) + "." + fmt.extension() + (opt.keys.encrypting() ? ".age" : "");
    std::string final_path = opt.output_dir + "/" + s.archive;
    if (local && (::access(final_path.c_str(), F_OK) == 0 || ::access((final_path + ".part0001").c_str(), F_OK) == 0))
      throw Fatal("archive " + quote(final_path) + " already exists; choose another --name");
  } catch (const Fatal& f) {
    s.error = f.what();
  }
  return s;
}

// Which ranks see the output directory (a node-local disk is seen by one node's ranks): those
// write, each other rank sends its blocks to one of them (forward.h). The cloud destination
// moves its bytes itself. Every rank; false (rank 0 logged why) when it cannot be told.
bool see_output(BackupRun& run) {
  const int n = run.comm.size();
  run.writer_of.resize(static_cast<size_t>(n));
  for (int r = 0; r < n; ++r) run.writer_of[static_cast<size_t>(r)] = r;
  if (n == 1 || run.opt.dry_run || (run.opt.dest_type != "hdd" && run.opt.dest_type != "usb_split")) return true;
  Sight sight = see_dir(run.comm, run.opt.output_dir, false);
  if (!sight.error.empty()) {
    if (run.root) run.log.error(sight.error);
    return false;
  }
  if (sight.all_see_root()) return true;
  std::vector<bool> sees;
  for (int64_t g : sight.group) sees.push_back(g == 0);
  run.writer_of = assign_writers(sees);
  if (run.root) {
    std::string blind;
    for (int r = 0; r < n; ++r)
      if (!sees[static_cast<size_t>(r)]) blind += (blind.empty() ? "" : ", ") + std::to_string(r);
    run.log.notice("output directory " + quote(run.opt.output_dir) + " is not seen from " + join_hosts(sight.blind_hosts()) +
                   ": rank(s) " + blind + " send their blocks to ranks that see it");
  }
  return true;
}

// The format, the archive name and the roots, and every rank's destination. Errors are only
// logged here (no destination to abort yet, no temporary file to remove): false means exit 2.
bool setup_stage(BackupRun& run) {
  try {
    run.fmt = make_format(run.opt.algo, run.opt.level);
  } catch (const Fatal& f) {
    if (run.root) run.log.error(f.what());
    return false;
  }
  std::string setup_bytes;
  if (run.root) setup_bytes = to_wire(decide_setup(run.opt, *run.fmt, run.log));
  run.comm.broadcast(setup_bytes, 0);
  run.setup = from_wire<Setup>(setup_bytes);
  if (!run.setup.error.empty()) {
    if (run.root) run.log.error(run.setup.error);
    return false;
  }
  const BackupOptions& opt = run.opt;
  if (!see_output(run)) return false;
  run.spec = DestinationSpec{opt.dest_type,         opt.output_dir, run.setup.archive, opt.split_chunk_mb << 20,
                             opt.s3_part_mb << 20, opt.s3_endpoint, opt.s3_region, opt.s3_addressing, opt.resume, "", 0};
  if (opt.resume) run.resume = std::make_unique<ResumeState>();
  if (opt.resume) run.resume->path = journal_path(opt.output_dir, run.setup.archive);
  std::string dest_error;
  try {
    run.dest = with_part_exchange(make_destination(run.spec));  // an object store stores whole parts
    run.dest = with_forwarding(std::move(run.dest), run.writer_of, run.comm.rank());  // output some ranks cannot see
    if (opt.keys.encrypting()) {
      if (run.fmt->name() != "tar") throw Fatal("encryption needs a tar format (--algo gzip, bzip2 or zstd): zip headers are patched after they are written");
      if (run.root) {
        // Test only: a fixed seed for the file key, nonce and ephemeral keys, so archives compare
        if (const char* seed = std::getenv("PBACKUP_TEST_AGE_SEED")) {
          age::set_test_seed(seed);  // never silent: two archives with one seed share their keys
          run.log.notice("PBACKUP_TEST_AGE_SEED is set: this archive's file key, nonce and ephemeral keys are NOT random "
                         "(for tests only; unset it for real backups)");
        }
        run.recipients = load_recipients(opt.keys);
      }
      run.dest = with_age_encryption(std::move(run.dest), run.recipients, run.root);
    }
  } catch (const std::exception& e) {
    dest_error = e.what();
  }
  // every rank usually fails the same way (no S3 credentials): said once, by rank 0
  std::string root_error = dest_error;
  run.comm.broadcast(root_error, 0);
  if (!run.comm.all_ok(dest_error.empty())) {
    if (!dest_error.empty() && (run.root || dest_error != root_error)) run.log.error(dest_error);
    if (run.root && run.dest) run.dest->abort();
    return false;
  }
  return true;
}

// ---- scan ----
// Test only: PBACKUP_TEST_PAUSE_AFTER_SCAN=S lets a test change the tree once the list is final
// and before the reads: after the scan, or an incremental level's read_file_details.
void test_pause_after_list(const BackupRun& run) {
  if (const char* pause = std::getenv("PBACKUP_TEST_PAUSE_AFTER_SCAN"); pause && run.root)
    std::this_thread::sleep_for(std::chrono::milliseconds(static_cast<int64_t>(std::atof(pause) * 1000)));
}

void scan_stage(BackupRun& run) {
  const auto start = Clock::now();
  {
    std::atomic<uint64_t> found{0};  // rank 0: a progress line every 5 s while the scan runs
    std::optional<Ticker> ticker;
    const bool tty = ::isatty(2);
    if (run.root && run.opt.progress != 0)
      ticker.emplace(progress_interval(tty), [&found, tty] {
        std::fprintf(stderr, "%spbackup: scanning: %llu entries found%s", tty ? "\r" : ("[" + log_timestamp() + "] ").c_str(),
                     static_cast<unsigned long long>(found.load()), tty ? "\033[K" : "\n");
        std::fflush(stderr);
      });
    if (run.con.on)
      run.error.guard([&] { run.entries = consolidation_entries(run.comm, run.con); });
    else
      run.entries = scan(run.comm, run.setup.roots, run.log, &run.sel, &found);
    run.timeline.add("scan", run.t0, start, Clock::now());
    if (ticker && tty) {
      ticker.reset();
      std::fputc('\n', stderr);
    }
  }
  const uint64_t total = run.comm.sum(run.entries.size());  // each rank keeps what it found
  if (run.root) run.log.info("scanned " + std::to_string(total) + " entries at " + run.since());
  if (!run.inc.on) test_pause_after_list(run);
  // Test only: an unexpected error on one rank while the others wait in a collective.
  if (const char* r = std::getenv("PBACKUP_TEST_FAIL_RANK"); r && std::atoi(r) == run.comm.rank() && run.comm.size() > 1)
    throw std::runtime_error("test failure injected on this rank (PBACKUP_TEST_FAIL_RANK)");
}

// ---- plan ----
// What rank 0 keeps of a block: its size and place, its first path, the file it continues.
BlockInfo block_info(const Block& b, const EntryList& entries, uint32_t owner) {
  BlockInfo i{b.id, b.raw_bytes, b.raw_offset, owner};
  i.pieces = b.pieces.size();
  if (b.pieces.empty()) return i;
  const Piece& head = b.pieces.front();
  const Entry& first = entries.at(head.entry);
  i.first = first.path;
  if (!head.header) {
    i.continues = true;
    i.cont_offset = head.offset;
    i.cont_size = tar_data_size(first);  // as stored (a sparse file: map + data)
    i.cont_sparse = !first.sparse.empty();
  }
  for (const Piece& p : b.pieces)
    if (p.last && entries.at(p.entry).type == EntryType::File) ++i.files;
  return i;
}

// Every rank's block facts to rank 0, in gathers of at most kListBatchEntries blocks per rank.
void gather_plan(BackupRun& run) {
  const uint64_t count = run.comm.sum(run.blocks.size());
  const uint64_t rounds = run.comm.max((run.blocks.size() + kListBatchEntries - 1) / kListBatchEntries);
  if (run.root) run.plan.resize(count);
  std::vector<bool> seen(run.root ? count : 0);
  for (uint64_t k = 0; k < rounds; ++k) {
    std::vector<BlockInfo> mine;
    for (size_t i = k * kListBatchEntries; i < run.blocks.size() && i < (k + 1) * kListBatchEntries; ++i)
      mine.push_back(block_info(run.blocks[i], run.entries, static_cast<uint32_t>(run.comm.rank())));
    std::vector<std::string> all = run.comm.gather(to_wire(mine), 0);
    for (const auto& bytes : all)
      for (auto& b : from_wire<std::vector<BlockInfo>>(bytes)) {
        if (b.id >= count || seen[b.id]) throw std::runtime_error("internal message: block " + std::to_string(b.id) + " twice or out of range");
        seen[b.id] = true;
        run.plan[b.id] = std::move(b);
      }
  }
}

// The ranks sort the list by path together (sample sort) and mark hard links; then each cuts
// its slice in turn, or (zip) rank 0 receives the whole list in order and cuts it. Rank 0
// learns every block's facts; every rank opens the destination's temporary files.
bool plan_stage(BackupRun& run) {
  const auto start = Clock::now();
  struct Span {  // the plan's time on this rank, however it ends
    BackupRun& run;
    Clock::time_point start;
    ~Span() { run.timeline.add("plan", run.t0, start, Clock::now()); }
  } span{run, start};
  const uint64_t block_bytes = std::max<uint64_t>(run.opt.block_mb, 1) << 20;
  if (!run.agree()) return false;  // consolidate: its catalog could not be read
  if (run.inc.on) {
    // An incremental level: each rank orders what it scanned and reads PREV's catalog beside it;
    // the unchanged entries leave the list before the sort moves it between the ranks (on an
    // unchanged tree only the directories travel), their records stay where they are.
    sort_entries(run.entries);
    run.error.guard([&] {
      drop_unchanged(run.inc, run.entries, run.setup.roots);
      read_file_details(run.entries, run.setup.roots, run.log);  // the scan left them out
    });
    if (!run.agree()) return false;
    const uint64_t kept = run.comm.sum(run.inc.kept.size());
    if (run.root) run.log.info(std::to_string(kept) + " entries unchanged since " + quote(run.inc.prev.name) + " at " + run.since());
    test_pause_after_list(run);
  }
  sort_by_path(run.comm, run.entries);
  run.memory("sort");
  if (run.con.on) {  // consolidate: where each file's bytes lie in the chain
    run.error.guard([&] { locate(run.con, run.entries); });
    if (!run.agree()) return false;
  }
  mark_hardlinks(run.comm, run.entries);
  run.memory("hard links");
  run.whole_on_root = run.fmt->layout_needs_entries();
  if (run.whole_on_root) {
    gather_in_order(run.comm, run.entries);
    if (run.root)
      run.error.guard([&] {
        run.fmt->adapt(run.entries, run.log);
        run.blocks = run.fmt->cut(run.entries, block_bytes);
      });
  } else {
    run.fmt->adapt(run.entries, run.log);
    run.blocks = cut_in_turn(run.comm, run.entries, *run.fmt, block_bytes);
  }
  if (!run.agree()) return false;
  if (run.con.on) {  // consolidate: the cut moved entries between ranks: locate the newcomers
    run.error.guard([&] { locate(run.con, run.entries); });
    if (!run.agree()) return false;
  }
  run.memory("cut");
  gather_plan(run);
  if (run.resume) gather_prints(run);
  std::string prepared;
  if (run.root) {
    run.error.guard([&] {
      // at most about: the input, the codecs' worst-case growth, headers (pax ones included)
      uint64_t expect = 1u << 20;
      for (const BlockInfo& b : run.plan) expect += b.raw_bytes + b.raw_bytes / 64 + b.pieces * 4096;
      run.dest->expect_size(expect);
      // --resume: an interrupted run's temporary file when its journal matches this plan; a
      // signal keeps it (not registered). Otherwise a signal (or mpirun's SIGTERM after a
      // rank's abort) removes it.
      prepared = run.resume ? prepare_resumable(run) : run.dest->prepare();
      if (!run.resume) register_temp_files(run.dest->temp_paths());
      const std::string journal = journal_path(run.opt.output_dir, run.setup.archive);
      if (!run.resume && run.opt.dest_type != "cloud" && ::access(journal.c_str(), F_OK) == 0)
        run.log.notice("an interrupted run of " + quote(run.setup.archive) + " left its journal " + quote(journal) +
                       ": this run (without --resume) leaves it and that run's temporary files alone");
    });
  }
  if (!run.agree()) return false;
  if (run.root) run.log.info("planned " + std::to_string(run.plan.size()) + " blocks at " + run.since());
  run.comm.broadcast(prepared, 0);
  run.error.guard([&] { run.dest->open(prepared); });
  age::wipe(prepared);  // an encrypted destination's payload key travelled in it
  if (!run.agree(false)) return false;
  if (!run.resume) register_temp_files(run.dest->temp_paths());  // this run's temporary names, known after open()

  run.threads = run.opt.threads > 0 ? run.opt.threads : default_threads(run.comm.local_size());
  for (auto& s : run.comm.gather(std::to_string(run.threads), 0)) run.thread_counts.push_back(std::stoi(s));
  for (auto& b : run.plan) run.bytes_in += b.raw_bytes;
  return true;
}

// ---- commit ----
// Checksums of the fragments, read back in parallel: fragment k on rank k mod size. Rank 0
// gets them all.
bool hash_stage(BackupRun& run, std::vector<std::string>& hashes) {
  const auto start = Clock::now();
  Destination& dest = *run.dest;
  const uint64_t total = run.total;
  std::vector<FragmentHash> mine;
  run.error.guard([&] {
    // fragment k on the k-th rank (mod their count) of those that see the output
    std::vector<int> writers;
    for (size_t r = 0; r < run.writer_of.size(); ++r)
      if (run.writer_of[r] == static_cast<int>(r)) writers.push_back(static_cast<int>(r));
    std::vector<size_t> ks;
    for (size_t k = 0; k < dest.fragment_count(total); ++k)
      if (writers[k % writers.size()] == run.comm.rank()) ks.push_back(k);
    std::vector<std::string> h = parallel_map(ks.size(), run.threads, [&](size_t i) {
      if (interrupted()) throw Fatal("interrupted");
      return dest.hash_fragment(ks[i], total);
    });
    for (size_t i = 0; i < ks.size(); ++i) mine.push_back({ks[i], h[i]});
  });
  run.timeline.add("hash", run.t0, start, Clock::now());
  auto all = run.comm.gather(to_wire(run.error.ok() ? mine : std::vector<FragmentHash>{}), 0);
  if (!run.agree()) return false;
  if (run.root) {
    hashes.resize(dest.fragment_count(total));
    for (auto& msg : all)
      for (auto& h : from_wire<std::vector<FragmentHash>>(msg)) hashes.at(h.index) = std::move(h.sha256);
  }
  return true;
}

// Calls f for each entry this rank stores: those whose header lies in this rank's blocks (a
// copy of a spanning file's entry has none), or the whole list on rank 0.
template <class F>
void each_stored(const BackupRun& run, F f) {
  if (run.whole_on_root) {
    for (const Entry& e : run.entries) f(e);
    return;
  }
  for (const Block& b : run.blocks)
    for (const Piece& p : b.pieces)
      if (p.header) f(run.entries.at(p.entry));
}

constexpr int kTagCatalog = 31, kTagCatalogMore = 32;

// This rank's catalog records in path order, a batch at a time, encoded as the catalog stores
// them (so every rank encodes its own, in parallel): its stored entries (where their headers
// lie) merged with the records of the unchanged entries it kept (an incremental level,
// core/incremental.h; this archive's own records get level = the chain's length).
class RankRecords {
 public:
  RankRecords(BackupRun& run, const std::vector<std::string>& damaged)
      : stored_(run.entries, run.blocks, damaged), kept_(run.inc.kept), level_(static_cast<uint32_t>(run.inc.chain.size())) {
    have_ = stored_.next(head_);
  }
  // Up to kListBatchEntries records or about kListBatchBytes; "" at the end.
  std::string next() {
    std::string out;
    for (size_t n = 0; n < kListBatchEntries && out.size() < kListBatchBytes && (have_ || !kept_.empty()); ++n) {
      if (!kept_.empty() && (!have_ || path_less(encoded_record_path(kept_.front()), head_.path))) {
        out += kept_.front();  // as PREV's catalog stores it
        kept_.pop();
        continue;
      }
      head_.level = level_;
      encode_catalog_record(head_, out);
      have_ = stored_.next(head_);
    }
    return out;
  }

 private:
  TarRecordCursor stored_;
  EncodedRecords& kept_;
  const uint32_t level_;
  CatalogRecord head_;
  bool have_ = false;
};

// Every rank's records go to rank 0 a batch at a time, on request, and rank 0 merges the
// ranks' streams in path order into the catalog (each stream is in path order; the cut moved
// stored entries to the next rank, so the kept records of an incremental level interleave with
// other ranks' stored ones). Rank 0 holds one batch per rank; each rank keeps one batch ready
// ahead. After an error on rank 0 it keeps draining the others, so no rank waits forever.
// This rank's next batch ("" at the end, and from this rank's first error on).
std::string own_batch(BackupRun& run, std::optional<RankRecords>& mine, const std::vector<std::string>& damaged) {
  std::string batch;
  if (run.error.ok()) run.error.guard([&] {
      if (!mine) mine.emplace(run, damaged);
      batch = mine->next();
    });
  if (!run.error.ok()) batch.clear();
  return batch;
}

void send_catalog_records(BackupRun& run, const std::vector<std::string>& damaged) {
  std::optional<RankRecords> mine;
  std::string batch = own_batch(run, mine, damaged);
  while (true) {
    run.comm.recv(0, kTagCatalogMore);
    run.comm.send(0, kTagCatalog, batch);
    if (batch.empty()) return;
    batch = own_batch(run, mine, damaged);
  }
}

void stream_catalog(BackupRun& run, const std::vector<std::string>& damaged, uint64_t count) {
  if (!run.root) return send_catalog_records(run, damaged);
  const auto n = static_cast<size_t>(run.comm.size());
  struct Source {
    std::string batch;      // encoded records
    std::string_view rest;  // of the batch, from the head record on
    std::string_view head, path;
  };
  std::vector<Source> src(n);
  std::optional<RankRecords> mine;
  auto take_head = [&](Source& s) {
    s.head = s.rest.substr(0, encoded_record_size(s.rest));
    s.path = encoded_record_path(s.head);
  };
  // the next batch of rank r; false when r has no more
  auto refill = [&](size_t r) {
    Source& s = src[r];
    if (r == 0) {
      s.batch = own_batch(run, mine, damaged);
    } else {
      run.comm.send(static_cast<int>(r), kTagCatalogMore, "");
      s.batch = run.comm.recv(static_cast<int>(r), kTagCatalog);
    }
    s.rest = s.batch;
    if (s.rest.empty()) return false;
    take_head(s);
    return true;
  };
  auto later = [&](size_t a, size_t b) { return path_less(src[b].path, src[a].path); };  // smallest on top
  std::vector<size_t> heap;
  for (size_t r = 0; r < n; ++r)
    if (refill(r)) heap.push_back(r);
  std::make_heap(heap.begin(), heap.end(), later);
  std::unique_ptr<CatalogWriter> w;
  run.error.guard([&] { w = std::make_unique<CatalogWriter>(count); });
  while (!heap.empty()) {
    std::pop_heap(heap.begin(), heap.end(), later);
    Source& s = src[heap.back()];
    if (run.error.ok()) run.error.guard([&] { w->add_encoded(s.head); });
    s.rest.remove_prefix(s.head.size());
    bool more = !s.rest.empty();
    if (more) take_head(s);
    else more = refill(heap.back());
    if (more) std::push_heap(heap.begin(), heap.end(), later);
    else heap.pop_back();
  }
  if (run.error.ok()) run.error.guard([&] { run.catalog = w->finish(); });
}

// Collective, before the commit: what the manifest, the catalog and the summary say about the
// list, from every rank's share of it. Rank 0's damaged files (from the rounds) go to every
// rank, which adds its hard links to them (they hold the same zeros).
bool list_stage(BackupRun& run) {
  Manifest& man = run.man;
  std::string d;
  if (run.root) {
    std::sort(man.damaged.begin(), man.damaged.end());
    man.damaged.erase(std::unique(man.damaged.begin(), man.damaged.end()), man.damaged.end());
    d = to_wire(man.damaged);
  }
  run.comm.broadcast(d, 0);
  std::vector<std::string> damaged = from_wire<std::vector<std::string>>(d);
  std::vector<std::string> links;
  uint64_t n[7] = {};  // entries, files, dirs, other, xattrs, acls, sparse
  each_stored(run, [&](const Entry& e) {
    ++n[0];
    ++n[e.type == EntryType::File || e.type == EntryType::Hardlink ? 1 : e.type == EntryType::Dir ? 2 : 3];
    XattrKinds k = xattr_kinds(e.xattrs.str());
    n[4] += k.xattrs;
    n[5] += k.acls;
    n[6] += !e.sparse.empty();
    if (e.type == EntryType::Hardlink && std::binary_search(damaged.begin(), damaged.end(), e.link)) links.push_back(e.path);
  });
  for (uint64_t& v : n) v = run.comm.sum(v);
  std::vector<std::string> all_links = run.comm.gather(to_wire(links), 0);
  damaged.insert(damaged.end(), links.begin(), links.end());  // this rank's links: enough for its records
  std::sort(damaged.begin(), damaged.end());
  if (run.root) {
    for (const auto& bytes : all_links)
      for (auto& l : from_wire<std::vector<std::string>>(bytes)) man.damaged.push_back(std::move(l));
    std::sort(man.damaged.begin(), man.damaged.end());
    man.entries = n[0];
    man.xattr_entries = n[4];
    man.acl_entries = n[5];
    man.sparse_entries = n[6];
    run.files = n[1];
    run.dirs = n[2];
    run.other = n[3];
  }
  if (run.whole_on_root) {
    if (run.root) run.error.guard([&] { run.catalog = build_catalog(run.entries, run.blocks, run.fmt->name(), man.damaged); });
  } else {
    const uint64_t kept = run.comm.sum(run.inc.kept.size());  // an incremental level: all the tree
    stream_catalog(run, damaged, n[0] + kept);
  }
  return run.agree(false);
}

// Rank 0: the manifest and the checksum file, then the destination's all-or-nothing commit.
void commit_on_root(BackupRun& run, const std::vector<std::string>& hashes) {
  Manifest& man = run.man;
  man.fragments = run.dest->fragments(run.total, hashes);
  man.tool_version = version_string();
  man.command = run.opt.command_line;
  man.created = iso_now();
  man.format = run.fmt->name();
  man.codec = run.opt.algo == "zip" ? "deflate" : run.opt.algo;
  man.archive = run.setup.archive;
  man.archive_size = run.total;
  man.split_bytes = run.spec.split_bytes;
  man.chain = run.inc.chain;
  // the sources as given: a symlinked root's disk path is its target, whose base name is not
  // the name it is stored under, and compare finds each root's live tree by that name
  // (resolve_roots makes one root per source, in order)
  if (run.con.on) man.sources = run.con.sources;
  for (size_t i = 0; i < run.setup.roots.size() && !run.con.on; ++i)
    man.sources.push_back(run.setup.roots.size() == run.opt.sources.size() ? run.opt.sources[i] : run.setup.roots[i].disk);
  std::sort(man.blocks.begin(), man.blocks.end(), [](const ManifestBlock& a, const ManifestBlock& b) { return a.offset < b.offset; });
  std::vector<SideFile> side;
  std::string sums = checksum_file(man);
  if (!sums.empty()) side.push_back({run.setup.archive + ".sha256", std::move(sums)});
  // the catalog (list --long, find, compare read it, not the archive), listed in the manifest
  std::string catalog = std::move(run.catalog);
  if (!run.recipients.empty()) catalog = age::encrypt_buffer(run.recipients, catalog);  // names: sealed too
  man.catalog = {catalog_name(run.setup.archive), catalog.size(), sha256_hex(catalog)};
  side.push_back({man.catalog.name, std::move(catalog)});
  if (!run.recipients.empty()) {
    // Encrypted: the whole manifest is sealed beside the archive; the plaintext one holds no names.
    man.encryption = "age";
    for (const auto& f : man.fragments) man.encrypted_size += f.size;
    std::string sealed = age::encrypt_buffer(run.recipients, manifest_to_json(man));
    Manifest red = redact_manifest(man);
    red.sealed_manifest = {run.setup.archive + ".manifest.age", sealed.size(), sha256_hex(sealed)};
    side.push_back({red.sealed_manifest.name, std::move(sealed)});
    side.push_back({run.setup.archive + ".manifest.json", manifest_to_json(red)});  // last: it means "complete"
    run.dest->commit(run.total, side);
    return;
  }
  side.push_back({run.setup.archive + ".manifest.json", manifest_to_json(man)});  // last: it means "complete"
  run.dest->commit(run.total, side);
}

// Every rank's kept warnings (Log::kept_warnings), to rank 0's manifest, with their total.
void gather_warnings(BackupRun& run) {
  std::vector<std::string> mine;  // path, reason, path, reason, ...
  for (auto& w : run.log.kept_warnings()) {
    mine.push_back(std::move(w.path));
    mine.push_back(std::move(w.reason));
  }
  std::vector<std::string> all = run.comm.gather(to_wire(mine), 0);
  uint64_t total = run.comm.sum(run.log.warnings());
  if (!run.root) return;
  run.man.warnings_total = total;
  for (const auto& msg : all) {
    auto v = from_wire<std::vector<std::string>>(msg);
    for (size_t i = 0; i + 1 < v.size(); i += 2) run.man.warnings.push_back({std::move(v[i]), std::move(v[i + 1])});
  }
}

// Every rank's phases (Timeline) and rank 0's throughput samples, as the manifest's "timeline"
// (docs/format.md), for `pbackup report`.
void gather_timeline(BackupRun& run) {
  std::vector<std::string> mine = run.timeline.flat();
  mine.insert(mine.begin(), {host_name(), std::to_string(run.threads)});
  std::vector<std::string> all = run.comm.gather(to_wire(mine), 0);
  if (!run.root) return;
  nlohmann::ordered_json t;
  t["unit"] = "ms since each rank's start";
  nlohmann::ordered_json ranks = nlohmann::ordered_json::array();
  for (size_t r = 0; r < all.size(); ++r) {
    auto v = from_wire<std::vector<std::string>>(all[r]);
    if (v.size() < 2) continue;
    nlohmann::ordered_json spans = nlohmann::ordered_json::array();
    for (size_t i = 2; i + 2 < v.size(); i += 3)
      spans.push_back({v[i], std::stoull(v[i + 1]), std::stoull(v[i + 2])});
    ranks.push_back({{"rank", r}, {"host", v[0]}, {"threads", std::stoull(v[1])}, {"spans", spans}});
  }
  t["ranks"] = ranks;
  nlohmann::ordered_json tp = nlohmann::ordered_json::array();
  for (auto [ms, bytes] : run.throughput) tp.push_back({ms, bytes});
  t["throughput"] = tp;
  run.man.timeline_json = t.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
}

bool commit_stage(BackupRun& run) {
  gather_warnings(run);
  std::vector<std::string> hashes;
  if (!hash_stage(run, hashes)) return false;
  gather_timeline(run);
  if (run.root) run.log.info("synced and hashed at " + run.since());
  if (!list_stage(run)) return false;
  if (run.root) {
    try {
      commit_on_root(run, hashes);
      remove_journal(run);  // --resume: a finished run leaves no journal
    } catch (const std::exception& e) {
      run.error.set(e.what());
      run.dest->abort();
      remove_journal(run);
    }
  }
  register_temp_files({});
  // a signal during the commit removed the temporary file under it: 128+N, not "cannot rename"
  return run.agree(false);
}

int summary(BackupRun& run, BackupStats& stats) {
  uint64_t warnings = run.comm.sum(run.log.warnings());
  if (run.root) {
    stats.files = run.files;
    stats.dirs = run.dirs;
    stats.other = run.other;
    stats.bytes_in = run.bytes_in;
    stats.bytes_out = run.total;
  }
  stats.warnings = warnings;
  stats.seconds = std::chrono::duration<double>(Clock::now() - run.t0).count();
  return warnings ? kExitWarnings : kExitOk;
}

}  // namespace

int run_backup(Comm& comm, const BackupOptions& opt, Log& log, BackupStats& stats) {
  BackupRun run(comm, opt, log);
  if (!setup_stage(run)) return kExitFatal;
  stats.archive = run.setup.archive;
  if (!share_selection(comm, opt, run.sel, log)) return run.fail();
  if (opt.dry_run) return run_dry_run(comm, run.setup.roots, run.sel, log);  // writes nothing
  if (!open_previous(comm, opt, run.fmt->name(), run.inc, log)) {
    if (run.root) run.dest->abort();
    return kExitFatal;
  }
  run.sel.defer_file_details = run.inc.on;  // most entries of a level are dropped unchanged
  if (!opt.consolidate_from.empty() && !open_consolidation(comm, opt, run.con, log)) {
    if (run.root) run.dest->abort();
    return kExitFatal;
  }
  scan_stage(run);
  run.memory("scan");
  if (!plan_stage(run)) return run.fail();
  run.memory("plan");
  if (!run_rounds(run)) return run.fail();
  run.memory("rounds");
  if (!commit_stage(run)) return run.fail();
  run.memory("commit");
  return summary(run, stats);
}

}  // namespace pbackup
