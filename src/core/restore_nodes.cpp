// See restore_nodes.h. --every-node, when --restore-to is node-local (DESIGN §6):
//  1. the ranks are grouped by the directory they see (a group = the ranks of one node, or of
//     several nodes sharing one file system); the first rank of each group makes a hidden
//     staging directory in --restore-to and the archive's files in it, at their sizes;
//  2. the archive is copied in 8 MiB chunks: chunk k is read from the source once, by rank
//     k mod size, which writes it into its own group's copy and sends it to one rank of every
//     other group, which writes it there (point to point in one global order, so no deadlock;
//     a rank holds one chunk at a time). The manifest and catalog are copied by each group;
//  3. every group restores its own copy with its own ranks (Comm::split), as any restore:
//     blocks decompressed once per node;
//  4. the staged copy is removed, the worst exit code wins.
// Traffic between nodes: the compressed archive once per node that did not read it.
#include "core/restore_nodes.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <map>

#include "core/age_source.h"
#include "core/messages.h"
#include "core/sight.h"
#include "pbackup/error.h"
#include "pbackup/pipeline.h"
#include "pbackup/source.h"
#include "util/fd.h"
#include "util/file_util.h"

namespace pbackup {
namespace {

constexpr int kTagStage = 33;
constexpr uint64_t kStageChunk = 8ull << 20;

// The restore directory, or its nearest parent that exists (a restore creates it).
std::string existing_ancestor(std::string p) {
  struct stat st {};
  while (::stat(p.c_str(), &st) != 0 && errno == ENOENT) {
    while (p.size() > 1 && p.back() == '/') p.pop_back();
    size_t slash = p.rfind('/');
    if (slash == std::string::npos) return ".";
    p = slash == 0 ? "/" : p.substr(0, slash);
  }
  return p;
}

std::string base_name(const std::string& p) {
  size_t slash = p.rfind('/');
  return slash == std::string::npos ? p : p.substr(slash + 1);
}

// The ranks of each group, groups in a fixed order; the same on every rank.
struct Groups {
  std::vector<int> color;               // per rank
  std::vector<std::vector<int>> ranks;  // per group, ascending
  size_t mine = 0;                      // this rank's group
};

Groups make_groups(const Sight& s, int me) {
  Groups g;
  const int n = static_cast<int>(s.group.size());
  std::map<int, std::vector<int>> by_color;
  for (int r = 0; r < n; ++r) {
    int c = static_cast<int>(s.group[static_cast<size_t>(r)]);
    if (c < 0) {  // sees no marker (its node lacked the parent directory): its host's group
      c = n;
      for (int q = 0; q < r; ++q)
        if (s.hosts[static_cast<size_t>(q)] == s.hosts[static_cast<size_t>(r)]) c = std::min(c, n + q);
      if (c == n) c = n + r;
    }
    g.color.push_back(c);
    by_color[c].push_back(r);
  }
  for (auto& [c, ranks] : by_color) {
    if (c == g.color[static_cast<size_t>(me)]) g.mine = g.ranks.size();
    g.ranks.push_back(ranks);
  }
  return g;
}

// A group's staged copy of the archive (file names as in the source, plus manifest and catalog).
struct Stage {
  std::string dir;
  std::vector<std::string> files;  // per source file
  std::vector<std::string> side;   // manifest, catalog
  std::map<size_t, Fd> fds;        // opened for writing on demand

  int fd(size_t i) {
    auto it = fds.find(i);
    if (it != fds.end()) return it->second.get();
    Fd f = open_or_throw(files[i], O_WRONLY | O_NOFOLLOW | O_CLOEXEC);
    int raw = f.get();
    fds.emplace(i, std::move(f));
    return raw;
  }
  std::vector<std::string> all() const {
    std::vector<std::string> v = files;
    v.insert(v.end(), side.begin(), side.end());
    return v;
  }
  // For the signal handler, which keeps 8 names: the first files, and the directory last
  // (removed once empty). More fragments than that are removed by remove() only.
  std::vector<std::string> for_signals() const {
    std::vector<std::string> v = all();
    if (v.size() > 7) v.resize(7);
    v.push_back(dir);
    return v;
  }
  void remove() noexcept {
    fds.clear();
    for (const auto& p : all()) ::unlink(p.c_str());
    ::rmdir(dir.c_str());
  }
};

// The first rank of a group: the staging directory, the archive's files at their sizes, the
// manifest and catalog (small side files, read from the source by every group).
void make_stage(const ArchiveSource& src, const RestoreOptions& opt, Stage& st) {
  make_dirs(opt.restore_to, "cannot create restore directory");
  if (::mkdir(st.dir.c_str(), 0700) != 0) throw_sys("cannot create", st.dir, errno);
  register_temp_files(st.for_signals());
  for (size_t i = 0; i < src.files.size(); ++i) {
    Fd f = open_or_throw(st.files[i], O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (::ftruncate(f.get(), static_cast<off_t>(src.sizes[i])) != 0) throw_sys("cannot size", st.files[i], errno);
  }
  if (!src.manifest) return;
  write_new_file(st.side.at(0), src.store->read_all(src.manifest_path));
  const std::string dir = src.manifest_path.substr(0, src.manifest_path.rfind('/') + 1);
  for (size_t i = 1; i < st.side.size(); ++i) {  // the catalog, the sealed manifest of an encrypted archive
    const std::string name = base_name(st.side[i]);
    try {
      write_new_file(st.side[i], src.store->read_all(dir + name));
    } catch (const Fatal&) {
      if (name != base_name(src.manifest->catalog.name)) throw;  // an archive without its catalog restores all the same
    }
  }
}

// Chunk k of the archive: (file, offset, length), files in order.
struct Chunks {
  std::vector<uint64_t> first;  // per file: its first chunk's number
  uint64_t total = 0;
  const ArchiveSource& src;
  explicit Chunks(const ArchiveSource& s) : src(s) {
    for (uint64_t size : s.sizes) {
      first.push_back(total);
      total += (size + kStageChunk - 1) / kStageChunk;
    }
  }
  void at(uint64_t k, size_t& file, uint64_t& offset, uint64_t& n) const {
    file = static_cast<size_t>(std::upper_bound(first.begin(), first.end(), k) - first.begin()) - 1;
    offset = (k - first[file]) * kStageChunk;
    n = std::min(kStageChunk, src.sizes[file] - offset);
  }
};

// Step 2: every chunk read once, written into every group's copy. `error`: this rank's first.
void copy_to_groups(Comm& comm, const ArchiveSource& src, const Groups& g, Stage& st, std::string& error) {
  const int me = comm.rank(), n = comm.size();
  const Chunks chunks(src);
  for (uint64_t base = 0; base < chunks.total; base += static_cast<uint64_t>(n)) {
    std::string data;  // this rank's chunk of the round, "" if it could not be read
    size_t file = 0;
    uint64_t offset = 0, len = 0;
    if (base + static_cast<uint64_t>(me) < chunks.total && error.empty()) {
      chunks.at(base + static_cast<uint64_t>(me), file, offset, len);
      try {
        data = read_file_range(src, file, offset, len);
      } catch (const std::exception& e) {
        error = e.what();
        data.clear();
      }
    }
    for (uint64_t k = base; k < std::min(chunks.total, base + static_cast<uint64_t>(n)); ++k) {
      const int reader = static_cast<int>(k - base);
      chunks.at(k, file, offset, len);
      for (const auto& ranks : g.ranks) {
        const bool reader_in = std::find(ranks.begin(), ranks.end(), reader) != ranks.end();
        const int target = reader_in ? reader : ranks[k % ranks.size()];
        if (me != reader && me != target) continue;
        std::string got;
        if (me == reader && target != reader) {
          comm.send(target, kTagStage, data);
          continue;
        }
        const std::string& bytes = me == reader ? data : (got = comm.recv(reader, kTagStage));
        if (bytes.size() != len) {
          if (error.empty()) error = "staging " + quote(st.files[file]) + ": rank " + std::to_string(reader) + " could not read its part";
          continue;
        }
        if (!error.empty()) continue;
        try {
          pwrite_all(st.fd(file), bytes, offset, st.files[file]);
        } catch (const std::exception& e) {
          error = e.what();
        }
      }
    }
    if (!comm.all_ok(error.empty() && !interrupted())) return;
  }
}

int every_node(Comm& comm, const RestoreOptions& opt, Log& log, const Sight& sight) {
  const bool root = comm.rank() == 0;
  const Groups g = make_groups(sight, comm.rank());
  std::string plan_bytes;
  if (root) {
    StagePlan p;
    p.tag = random_tag();
    try {
      p.source = resolve_source(opt.source, opt.original_base_filename, {opt.s3_endpoint, opt.s3_region, opt.s3_addressing}, false, opt.keys);
    } catch (const Fatal& f) {
      p.error = f.what();
    }
    plan_bytes = to_wire(p);
  }
  comm.broadcast(plan_bytes, 0);
  StagePlan plan = from_wire<StagePlan>(plan_bytes);
  if (!plan.error.empty()) {
    if (root) log.error(plan.error);
    return root ? kExitFatal : kExitOk;
  }
  attach_store(plan.source, {opt.s3_endpoint, opt.s3_region, opt.s3_addressing});
  if (root) {
    std::vector<std::string> hosts;
    for (const auto& ranks : g.ranks) hosts.push_back(sight.hosts[static_cast<size_t>(ranks[0])]);
    log.notice("--every-node: restoring a copy into " + quote(opt.restore_to) + " on " + std::to_string(g.ranks.size()) +
               " nodes (" + join_hosts(hosts) + "); the archive is staged there first");
  }
  Stage st;
  st.dir = opt.restore_to + "/.pbackup-stage." + plan.tag;
  for (const auto& f : plan.source.files) st.files.push_back(st.dir + "/" + base_name(f));
  if (plan.source.manifest) {
    st.side.push_back(st.dir + "/" + base_name(plan.source.manifest_path));
    if (!plan.source.manifest->catalog.name.empty()) st.side.push_back(st.dir + "/" + base_name(plan.source.manifest->catalog.name));
    if (plan.source.cipher)  // encrypted: the sealed manifest too, opened with the same keys
      st.side.push_back(st.dir + "/" + base_name(sealed_manifest_path(plan.source.manifest_path)));
  }
  const bool leader = g.ranks[g.mine][0] == comm.rank();
  std::string error;
  if (leader) {
    try {
      make_stage(plan.source, opt, st);
    } catch (const std::exception& e) {
      error = e.what();
    }
  }
  int rc = kExitOk;
  if (comm.all_ok(error.empty())) {
    copy_to_groups(comm, plan.source, g, st, error);
    st.fds.clear();
    if (comm.all_ok(error.empty() && !interrupted())) {
      // 3. each group restores its own copy
      std::unique_ptr<Comm> group = comm.split(g.color[static_cast<size_t>(comm.rank())]);
      RestoreOptions o = opt;
      o.source = st.files.at(0);
      o.every_node = false;
      o.node_local_copy = true;  // checked already (and its markers would replace the staged names the signal handler holds)
      rc = run_restore(*group, o, log);
      group->barrier();  // every rank of the group is done with the copy
    } else {
      rc = interrupted() ? 128 + interrupt_signal() : kExitFatal;
    }
  } else {
    rc = kExitFatal;
  }
  if (!error.empty()) log.error(error);
  if (leader) {  // before waiting for the other groups: a signal's watchdog may end this rank there
    st.remove();
    register_temp_files({});
  }
  rc = static_cast<int>(comm.max(static_cast<uint64_t>(rc)));
  // every group is done: the summary (--json) names the archive given, not the staged copy gone now
  if (root) run_summary().archive = opt.source;
  return root ? rc : kExitOk;
}

}  // namespace

int restore_across_nodes(Comm& comm, const RestoreOptions& opt, Log& log) {
  const bool root = comm.rank() == 0;
  std::string dir;
  if (root) dir = existing_ancestor(opt.restore_to);
  comm.broadcast(dir, 0);
  const Sight sight = see_dir(comm, dir, opt.every_node);
  if (!sight.error.empty()) {
    if (root) log.error(sight.error);
    return root ? kExitFatal : kExitOk;
  }
  if (sight.all_see_root()) return -1;
  if (!opt.every_node) {
    if (root)
      log.error("restore directory " + quote(opt.restore_to) + " is not shared by all ranks: " + join_hosts(sight.blind_hosts()) +
                " do not see the directory rank 0 (on " + sight.hosts[0] +
                ") writes into; nothing was restored. Restore into a directory every rank sees, or give --every-node to "
                "restore a complete copy on every node");
    return root ? kExitFatal : kExitOk;
  }
  return every_node(comm, opt, log, sight);
}

}  // namespace pbackup
