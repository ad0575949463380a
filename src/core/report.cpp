// `pbackup report --source ARCHIVE --output report.html`: one self-contained HTML page (inline
// CSS, JS and SVG; nothing loaded from the network) about a backup, from its manifest and
// catalog: the per-rank timeline the backup recorded (manifest "timeline": scan, plan,
// compress, write and hash spans of every rank; elements carry data-rank), the throughput over
// time, sizes and compression ratio by top-level directory, the largest files, the warnings.
// Every string from the archive is HTML-escaped (bad UTF-8 replaced by U+FFFD); the timeline is
// parsed on its own and a malformed one is shown as missing.
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <map>
#include <string>
#include <vector>

#include "core/catalog.h"
#include "pbackup/error.h"
#include "pbackup/pipeline.h"
#include "pbackup/source.h"
#include "util/file_util.h"
#include "util/units.h"

namespace pbackup {
namespace {

constexpr size_t kMaxRanksDrawn = 256, kMaxSpansDrawn = 2000, kLargest = 20;

// Valid UTF-8 (bad bytes -> U+FFFD), then HTML-escaped.
std::string h(const std::string& s) {
  std::string u = nlohmann::json(s).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  u = nlohmann::json::parse(u).get<std::string>();
  std::string o;
  for (char c : u) {
    switch (c) {
      case '&': o += "&amp;"; break;
      case '<': o += "&lt;"; break;
      case '>': o += "&gt;"; break;
      case '"': o += "&quot;"; break;
      case '\'': o += "&#39;"; break;
      default: o += c;
    }
  }
  return o;
}

std::string num(double v, const char* fmt = "%.1f") {
  char b[64];
  std::snprintf(b, sizeof b, fmt, v);
  return b;
}

// "proj/src/a.c" -> "proj/src"; "proj/a.c" (a file in a root) -> "proj"
std::string group_of(const std::string& path, bool is_dir) {
  size_t a = path.find('/');
  if (a == std::string::npos) return path;
  size_t b = path.find('/', a + 1);
  if (b == std::string::npos) return is_dir ? path : path.substr(0, a);
  return path.substr(0, b);
}

struct Group {
  uint64_t files = 0, bytes_in = 0;
  double bytes_out = 0;  // estimated from the blocks the group's bytes lie in
};

struct Facts {
  std::map<std::string, Group> groups;
  std::vector<std::pair<uint64_t, std::string>> largest;  // (size, path)
};

// Sizes by group from the catalog; each block's compressed size shared out over the groups in
// proportion to the uncompressed bytes each has in it (records' offsets within the block).
Facts gather_facts(const ArchiveSource& s, const Manifest& m) {
  Facts f;
  std::vector<const ManifestBlock*> blocks;
  for (const auto& b : m.blocks)
    if (b.kind == "block") blocks.push_back(&b);
  std::vector<std::vector<std::pair<uint64_t, std::string>>> starts(blocks.size());  // (offset, group)
  read_archive_catalog(s, [&](const CatalogRecord& r) {
    std::string g = group_of(r.path, r.type == EntryType::Dir);
    if (r.type == EntryType::File) {
      Group& gr = f.groups[g];
      ++gr.files;
      gr.bytes_in += r.size;
      f.largest.emplace_back(r.size, r.path);
      if (f.largest.size() > 4 * kLargest) {
        std::sort(f.largest.rbegin(), f.largest.rend());
        f.largest.resize(kLargest);
      }
    }
    if (r.block != kCatalogNone && r.block < starts.size()) starts[r.block].emplace_back(r.offset, g);
  });
  std::sort(f.largest.rbegin(), f.largest.rend());
  if (f.largest.size() > kLargest) f.largest.resize(kLargest);
  for (size_t i = 0; i < blocks.size(); ++i) {
    const ManifestBlock& b = *blocks[i];
    auto& st = starts[i];
    std::sort(st.begin(), st.end());
    if (st.empty() || st.front().first > 0)  // the block continues its first entry
      st.insert(st.begin(), {0, group_of(b.first_entry, false)});
    for (size_t k = 0; k < st.size(); ++k) {
      uint64_t from = std::min(st[k].first, b.raw_size);
      uint64_t to = k + 1 < st.size() ? std::min(st[k + 1].first, b.raw_size) : b.raw_size;
      if (to > from && b.raw_size) f.groups[st[k].second].bytes_out += static_cast<double>(b.size) * (to - from) / b.raw_size;
    }
  }
  return f;
}

const char* kStyle = R"(<style>
body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#222}h1{font-size:20px}h2{font-size:16px;margin-top:28px}
table{border-collapse:collapse}td,th{padding:3px 10px;border-bottom:1px solid #ddd;text-align:right}
td:first-child,th:first-child{text-align:left}th{cursor:pointer;background:#f4f4f4}
.scan{fill:#4e79a7}.plan{fill:#bab0ac}.compress{fill:#f28e2b}.write{fill:#59a14f}.hash{fill:#b07aa1}.other{fill:#999}
.legend span{display:inline-block;width:12px;height:12px;margin:0 4px 0 12px;vertical-align:middle}
svg text{font-size:11px;fill:#444}.bar{fill:#76b7b2}.line{fill:none;stroke:#e15759;stroke-width:2}
</style>)";

// Sorts a table by the clicked column (numbers by data-v when present).
const char* kScript = R"(<script>
document.querySelectorAll('table.sortable th').forEach(function(th, col) {
  th.addEventListener('click', function() {
    var body = th.closest('table').tBodies[0], rows = Array.from(body.rows), asc = th.dataset.asc !== '1';
    rows.sort(function(a, b) {
      var x = a.cells[col].dataset.v || a.cells[col].textContent, y = b.cells[col].dataset.v || b.cells[col].textContent;
      var nx = parseFloat(x), ny = parseFloat(y), c = isNaN(nx) || isNaN(ny) ? x.localeCompare(y) : nx - ny;
      return asc ? c : -c;
    });
    th.dataset.asc = asc ? '1' : '0';
    rows.forEach(function(r) { body.appendChild(r); });
  });
});
var ranks = document.querySelectorAll('g[data-rank]').length;
document.getElementById('rendered').textContent = 'timeline of ' + ranks + ' rank(s) rendered';
</script>)";

std::string timeline_svg(const nlohmann::json& t) {
  const auto& ranks = t.at("ranks");
  uint64_t end = 1;
  for (const auto& r : ranks)
    for (const auto& sp : r.at("spans")) end = std::max<uint64_t>(end, sp.at(2).get<uint64_t>());
  const size_t n = std::min(ranks.size(), kMaxRanksDrawn);
  const double w = 900, left = 110, row = 22;
  std::string o = "<svg id=\"timeline\" width=\"" + num(left + w + 20, "%.0f") + "\" height=\"" + num(row * n + 30, "%.0f") +
                  "\" xmlns=\"http://www.w3.org/2000/svg\">";
  size_t drawn = 0;
  for (size_t i = 0; i < n; ++i) {
    const auto& r = ranks[i];
    std::string rank = std::to_string(r.at("rank").get<uint64_t>());
    double y = 4 + row * i;
    o += "<g data-rank=\"" + rank + "\"><text x=\"0\" y=\"" + num(y + 14) + "\">rank " + rank + " (" + h(r.at("host").get<std::string>()) +
         ")</text>";
    for (const auto& sp : r.at("spans")) {
      if (++drawn > kMaxSpansDrawn) break;
      std::string phase = sp.at(0).get<std::string>();
      uint64_t a = sp.at(1).get<uint64_t>(), b = sp.at(2).get<uint64_t>();
      const char* cls = phase == "scan" || phase == "plan" || phase == "compress" || phase == "write" || phase == "hash" ? phase.c_str() : "other";
      double x = left + w * a / end, wd = std::max(1.0, w * (b > a ? b - a : 0) / end);
      o += "<rect class=\"" + std::string(cls) + "\" data-rank=\"" + rank + "\" data-phase=\"" + h(phase) + "\" x=\"" + num(x) + "\" y=\"" +
           num(y) + "\" width=\"" + num(wd) + "\" height=\"" + num(row - 6) + "\"><title>rank " + rank + " " + h(phase) + ": " +
           num(a / 1000.0, "%.3f") + " s to " + num(b / 1000.0, "%.3f") + " s</title></rect>";
    }
    o += "</g>";
  }
  o += "<text x=\"" + num(left) + "\" y=\"" + num(row * n + 24) + "\">0 s</text><text x=\"" + num(left + w - 40) + "\" y=\"" +
       num(row * n + 24) + "\">" + num(end / 1000.0, "%.2f") + " s</text></svg>";
  if (ranks.size() > n) o += "<p>" + std::to_string(ranks.size() - n) + " more ranks not drawn.</p>";
  return o;
}

// Rate between successive samples of (ms, bytes done), as steps: each interval at its rate.
std::string throughput_svg(const nlohmann::json& tp) {
  std::vector<std::pair<double, double>> pts;  // (s, MiB/s)
  uint64_t pt = 0, pb = 0;
  for (const auto& s : tp) {
    uint64_t t = s.at(0).get<uint64_t>(), b = s.at(1).get<uint64_t>();
    if (t > pt && b >= pb) {
      double r = (b - pb) / 1048576.0 / ((t - pt) / 1000.0);
      pts.emplace_back(pt / 1000.0, r);
      pts.emplace_back(t / 1000.0, r);
    }
    pt = t, pb = b;
  }
  if (pts.empty()) return "<p>No throughput samples (one round).</p>";
  double tmax = pts.back().first, rmax = 1e-9;
  for (auto& p : pts) rmax = std::max(rmax, p.second);
  const double w = 900, hgt = 160, left = 60;
  std::string line;
  for (auto& [t, r] : pts) line += num(left + w * t / std::max(tmax, 1e-9)) + "," + num(10 + hgt * (1 - r / rmax)) + " ";
  return "<svg id=\"throughput\" width=\"980\" height=\"200\" xmlns=\"http://www.w3.org/2000/svg\"><polyline class=\"line\" points=\"" + line +
         "\"/><text x=\"0\" y=\"18\">" + num(rmax) + " MiB/s</text><text x=\"0\" y=\"" + num(10 + hgt) + "\">0</text><text x=\"" +
         num(left + w - 50) + "\" y=\"195\">" + num(tmax, "%.2f") + " s</text></svg>";
}

std::string groups_html(const Facts& f) {
  std::string o = "<table id=\"groups\" class=\"sortable\"><thead><tr><th>directory</th><th>files</th><th>size</th><th>compressed (est.)</th>"
                  "<th>ratio (files : compressed with headers)</th></tr></thead><tbody>";
  for (const auto& [name, g] : f.groups) {
    double ratio = g.bytes_out > 0 ? g.bytes_in / g.bytes_out : 0;
    o += "<tr><td>" + h(name) + "</td><td>" + std::to_string(g.files) + "</td><td data-v=\"" + std::to_string(g.bytes_in) + "\">" +
         human_bytes(g.bytes_in) + "</td><td data-v=\"" + num(g.bytes_out, "%.0f") + "\">" + human_bytes(static_cast<uint64_t>(g.bytes_out)) +
         "</td><td>" + num(ratio, "%.2f") + "</td></tr>";
  }
  return o + "</tbody></table>";
}

std::string page(const ArchiveSource& s, const Manifest& m, const Facts& f, const std::string& timeline_raw) {
  std::string o = "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>pbackup report: " + h(m.archive) + "</title>" +
                  kStyle + "</head><body><h1>pbackup report: " + h(m.archive) + "</h1>";
  o += "<table id=\"summary\"><tr><td>created</td><td>" + h(m.created) + "</td></tr><tr><td>pbackup</td><td>" + h(m.tool_version) +
       "</td></tr><tr><td>command</td><td>" + h(m.command) + "</td></tr><tr><td>entries</td><td>" + std::to_string(m.entries) +
       "</td></tr><tr><td>archive size</td><td>" + human_bytes(m.archive_size) + " (" + h(m.format) + ", " + h(m.codec) +
       ")</td></tr><tr><td>warnings</td><td>" + std::to_string(m.warnings_total) + "</td></tr></table>";
  o += "<h2>Timeline per rank</h2><div class=\"legend\"><span class=\"scan\" style=\"background:#4e79a7\"></span>scan"
       "<span style=\"background:#bab0ac\"></span>plan<span style=\"background:#f28e2b\"></span>compress"
       "<span style=\"background:#59a14f\"></span>write<span style=\"background:#b07aa1\"></span>hash</div><p id=\"rendered\"></p>";
  std::string tp_html = "<p>No throughput recorded.</p>";
  try {
    nlohmann::json t = nlohmann::json::parse(timeline_raw);
    o += timeline_svg(t);
    tp_html = throughput_svg(t.at("throughput"));
  } catch (const std::exception&) {
    o += "<p id=\"no-timeline\">This backup recorded no timeline (made by an older pbackup, or the record is malformed).</p>";
  }
  o += "<h2>Throughput over time</h2>" + tp_html;
  o += "<h2>Size and compression by top-level directory</h2>" + groups_html(f);
  o += "<h2>Largest files</h2><table id=\"largest\" class=\"sortable\"><thead><tr><th>path</th><th>size</th></tr></thead><tbody>";
  for (const auto& [size, path] : f.largest)
    o += "<tr><td>" + h(path) + "</td><td data-v=\"" + std::to_string(size) + "\">" + human_bytes(size) + "</td></tr>";
  o += "</tbody></table><h2>Warnings</h2>";
  if (m.warnings.empty()) o += "<p id=\"warnings\">None.</p>";
  else {
    o += "<table id=\"warnings\"><thead><tr><th>path</th><th>reason</th></tr></thead><tbody>";
    for (const auto& w : m.warnings) o += "<tr><td>" + h(w.path) + "</td><td>" + h(w.reason) + "</td></tr>";
    o += "</tbody></table>";
    if (m.warnings_total > m.warnings.size()) o += "<p>" + std::to_string(m.warnings_total - m.warnings.size()) + " more not listed.</p>";
  }
  (void)s;
  return o + kScript + "</body></html>\n";
}

// The "timeline" value of the manifest text, or "" (parsed with the rest of the manifest's
// size already bounded by the store's read).
std::string timeline_of(const std::string& manifest_text) {
  try {
    nlohmann::json j = nlohmann::json::parse(manifest_text, nullptr, true, false);
    if (j.is_object() && j.contains("timeline") && j["timeline"].is_object()) return j["timeline"].dump();
  } catch (const std::exception&) {
  }
  return "";
}

}  // namespace

int run_report(Comm& comm, const RestoreOptions& opt, Log& log) {
  int rc = kExitOk;
  if (comm.rank() == 0) {
    try {
      ArchiveSource s = resolve_source(opt.source, opt.original_base_filename, {opt.s3_endpoint, opt.s3_region, opt.s3_addressing}, false, opt.keys);
      if (!s.manifest) throw Fatal("archive " + quote(s.name) + " has no manifest: report needs a backup made by pbackup");
      Facts f = gather_facts(s, *s.manifest);
      std::string html = page(s, *s.manifest, f, timeline_of(s.store->read_all(s.manifest_path)));
      // a new file beside it, renamed over the old one (a link there is replaced, never followed)
      const std::string tmp = opt.output + ".tmp-" + random_tag();
      write_new_file(tmp, html);
      if (std::rename(tmp.c_str(), opt.output.c_str()) != 0) {
        int err = errno;
        std::remove(tmp.c_str());
        throw Fatal(sys_message("cannot write report", opt.output, err));
      }
      std::fprintf(stderr, "pbackup: report of %s written to %s (%s)\n", s.name.c_str(), quote(opt.output).c_str(), human_bytes(html.size()).c_str());
    } catch (const Fatal& e) {
      log.error(e.what());
      rc = kExitFatal;
    }
  }
  std::string verdict = std::to_string(rc);
  comm.broadcast(verdict, 0);
  return comm.rank() == 0 ? rc : kExitOk;
}

}  // namespace pbackup
