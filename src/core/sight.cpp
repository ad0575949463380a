// See sight.h.
#include "core/sight.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <set>

#include "core/messages.h"
#include "pbackup/error.h"
#include "pbackup/pipeline.h"
#include "util/file_util.h"

namespace pbackup {

bool Sight::all_see_root() const {
  return std::all_of(group.begin(), group.end(), [](int64_t g) { return g == 0; });
}

std::vector<std::string> Sight::blind_hosts() const {
  std::set<std::string> out;
  for (size_t r = 0; r < group.size() && r < hosts.size(); ++r)
    if (group[r] != 0) out.insert(hosts[r]);
  return {out.begin(), out.end()};
}

std::string join_hosts(const std::vector<std::string>& hosts) {
  std::string s;
  for (const auto& h : hosts) s += (s.empty() ? "" : ", ") + h;
  return s;
}

namespace {

SightProbe& test_probe() {
  static SightProbe p;
  return p;
}

std::string marker_path(const std::string& dir, const std::string& tag, uint32_t leader) {
  return dir + "/.pbackup-sight." + tag + "." + std::to_string(leader);
}

bool default_looks(const std::string& dir, const std::string& marker) {
  struct stat st {};
  return ::lstat(marker.c_str(), &st) == 0 && S_ISREG(st.st_mode) && ::access(dir.c_str(), W_OK | X_OK) == 0;
}

// Rank 0: whom every rank sees, from the reports.
Sight tabulate(const std::vector<std::string>& hosts, const SightCall& call, const std::vector<std::string>& report_bytes) {
  Sight s;
  s.hosts = hosts;
  for (size_t r = 0; r < report_bytes.size(); ++r) {
    SightReport rep = from_wire<SightReport>(report_bytes[r]);
    if (r == 0) s.error = rep.error;  // another node may lack the directory: it then sees nothing
    int64_t g = -1;
    for (size_t i = 0; i < call.leaders.size() && i < rep.seen.size(); ++i)
      if (rep.seen[i]) {
        g = call.leaders[i];
        break;
      }
    s.group.push_back(g);
  }
  return s;
}

}  // namespace

void set_sight_probe_for_tests(SightProbe probe) { test_probe() = std::move(probe); }

Sight see_dir(Comm& comm, const std::string& dir, bool per_node, const SightProbe& looks) {
  const uint32_t me = static_cast<uint32_t>(comm.rank());
  std::vector<std::string> hosts = comm.gather(host_name(), 0);
  std::string call_bytes;
  if (me == 0) {
    SightCall call{random_tag(), {0}};
    if (per_node) {
      std::set<std::string> seen{hosts[0]};
      for (uint32_t r = 1; r < hosts.size(); ++r)
        if (seen.insert(hosts[r]).second) call.leaders.push_back(r);
    }
    call_bytes = to_wire(call);
  }
  comm.broadcast(call_bytes, 0);
  const SightCall call = from_wire<SightCall>(call_bytes);
  SightReport rep;
  std::string mine;  // this rank's marker, once made
  if (std::find(call.leaders.begin(), call.leaders.end(), me) != call.leaders.end()) {
    const std::string m = marker_path(dir, call.tag, me);
    int fd = ::open(m.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0) {
      rep.error = "cannot tell which nodes see " + quote(dir) + ": " + sys_message("cannot create", m, errno);
    } else {
      ::close(fd);
      mine = m;
      register_temp_files({m});  // a signal now removes it
    }
  }
  comm.barrier();  // every marker is there (or failed) before anyone looks
  for (uint32_t leader : call.leaders) {
    const std::string m = marker_path(dir, call.tag, leader);
    const SightProbe& probe = looks ? looks : test_probe();
    rep.seen.push_back(probe ? probe(comm.rank(), m) : default_looks(dir, m));
  }
  std::vector<std::string> reports = comm.gather(to_wire(rep), 0);
  std::string table;
  if (me == 0) table = to_wire(tabulate(hosts, call, reports));
  comm.broadcast(table, 0);  // after every rank looked: the markers can go
  if (!mine.empty()) {
    ::unlink(mine.c_str());
    register_temp_files({});
  }
  return from_wire<Sight>(table);
}

}  // namespace pbackup
