#!/usr/bin/env bash
# pbackup report (issue 18): one self-contained HTML page about a backup of 2 ranks, opened in a
# real browser (headless Chromium): the per-rank timeline (elements with data-rank for both
# ranks, drawn by the backup's recorded phases), the page's own script ran, sizes by top-level
# directory, the largest files, the warning the backup gave; nothing is loaded from elsewhere;
# a screenshot is a real picture. A malformed timeline in the manifest is shown as missing.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
setup_work
CHROMIUM=$(command -v chromium || command -v chromium-browser || true)
[ -n "$CHROMIUM" ] || fail "chromium not found (scripts/deps.sh installs it)"
browser() { timeout 120 "$CHROMIUM" --headless --no-sandbox --disable-gpu --user-data-dir="$WORK/chrome" "$@" 2>/dev/null; }

S="$WORK/src/proj"
mkdir -p "$S/big" "$S/small" "$WORK/out"
head -c 3000000 /dev/urandom >"$S/big/huge.bin"
for i in $(seq 1 30); do seq 1 2000 >"$S/small/f$i.txt"; done
"$PYTHON" -c 'import socket,sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])' "$S/small/s.sock"
run_rc rc run_mpi 2 backup --sources "$S" --output-dir "$WORK/out" --name r --algo gzip --block-mb 1 --no-progress
[ "$rc" -eq 1 ] || { show_last; fail "backup with a socket: exit $rc, want 1"; }
expect_ok plain report --source "$WORK/out/r.tar.gz" --output "$WORK/report.html"
html="$WORK/report.html"
[ -s "$html" ] || fail "no report written"
if grep -Eq '(src|href)=' "$html"; then fail "the report loads something: $(grep -Eo '(src|href)=[^ >]*' "$html" | head -n 3)"; fi

browser --dump-dom "file://$html" >"$WORK/dom.html" || fail "chromium --dump-dom failed"
"$PYTHON" - "$WORK/dom.html" <<'PY' || fail "the rendered page is not what it should be (above)"
import re, sys
dom = open(sys.argv[1]).read()
assert "timeline of 2 rank(s) rendered" in dom, "the page's script did not run (or not 2 ranks)"
for r in ("0", "1"):
    assert re.search(r'<g data-rank="%s"' % r, dom), "no timeline row for rank " + r
    for phase in ("scan", "compress", "write"):
        assert re.search(r'<rect class="%s" data-rank="%s"' % (phase, r), dom), f"rank {r} has no {phase} span"
groups = re.search(r'<table id="groups".*?</table>', dom, re.S).group(0)
assert "proj/big" in groups and "proj/small" in groups, groups[:300]
largest = re.search(r'<table id="largest".*?</table>', dom, re.S).group(0)
first = re.search(r"<tbody><tr><td>([^<]*)</td>", largest).group(1)
assert first == "proj/big/huge.bin", first
warnings = re.search(r'<table id="warnings".*?</table>', dom, re.S).group(0)
assert "s.sock" in warnings and "socket" in warnings, warnings
assert '<svg id="throughput"' in dom
print("dom ok")
PY
browser --screenshot="$WORK/shot.png" --window-size=1200,1600 "file://$html" || fail "chromium --screenshot failed"
[ "$(head -c 8 "$WORK/shot.png" | od -An -tx1 | tr -d ' \n')" = 89504e470d0a1a0a ] || fail "the screenshot is not a PNG"
size=$(stat -c %s "$WORK/shot.png")
[ "$size" -gt 20000 ] || fail "the screenshot is $size bytes: nothing drawn?"
pass "report rendered in Chromium: 2 ranks' timelines, groups, largest files, the warning; screenshot $size bytes"

# a manifest whose timeline is malformed: the page says so, the rest is drawn
sed -i 's/"ranks":\[/"ranks":5,"was":[/' "$WORK/out/r.tar.gz.manifest.json"
grep -q '"ranks":5' "$WORK/out/r.tar.gz.manifest.json" || fail "could not damage the timeline"
expect_ok plain verify --source "$WORK/out/r.tar.gz"  # the manifest itself is still sound
expect_ok plain report --source "$WORK/out/r.tar.gz" --output "$WORK/report.html"
grep -q 'id="no-timeline"' "$html" && grep -q 'proj/big/huge.bin' "$html" || fail "a malformed timeline is not shown as missing"
pass "a malformed timeline is reported as missing"
