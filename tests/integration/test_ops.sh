#!/usr/bin/env bash
# Operations (issue 18): `pbackup --version` is CMakeLists' project(VERSION) (plus git describe)
# and the manifest records it.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
setup_work

# ---------------------------------------------------------------- --version
want=$(sed -n 's/^project(pbackup VERSION \([0-9.]*\).*/\1/p' "$REPO_DIR/CMakeLists.txt")
[ -n "$want" ] || fail "no project(VERSION) in CMakeLists.txt"
run_rc rc run_pb --version
[ "$rc" -eq 0 ] || { show_last; fail "pbackup --version: exit $rc"; }
ver=$(cat "$WORK/last.out")
case "$ver" in
  "pbackup $want" | "pbackup $want (git "*")") ;;
  *) fail "pbackup --version printed '$ver', expected 'pbackup $want[ (git ...)]'" ;;
esac
pass "--version: $ver"

make_small_tree "$WORK/src/tree"
mkdir -p "$WORK/out"
expect_ok plain backup --sources "$WORK/src/tree" --output-dir "$WORK/out" --name v --no-progress
got=$("$PYTHON" -c 'import json,sys; print(json.load(open(sys.argv[1]))["tool_version"])' "$WORK/out/v.tar.gz.manifest.json")
[ "pbackup $got" = "$ver" ] || fail "manifest tool_version '$got' is not the --version '${ver#pbackup }'"
pass "manifest tool_version: $got"

# ---------------------------------------------------------------- scripts/s3-*.sh stay in their dir
# s3-start.sh refuses (exit 2, nothing written) an S3_ROOT it did not create; s3-stop.sh with
# S3_WIPE=1 does not delete one. No server is started here.
mkdir -p "$WORK/site"
echo "site data" >"$WORK/site/keep.txt"
run_rc rc env S3_ROOT="$WORK/site" S3_PORT=1 S3_BACKEND_PORT=2 bash "$REPO_DIR/scripts/s3-start.sh"
[ "$rc" -eq 2 ] && grep -q "not created by this script" "$WORK/last.err" || { show_last; fail "s3-start.sh into a foreign S3_ROOT: exit $rc, want 2"; }
[ "$(ls -A "$WORK/site")" = keep.txt ] || fail "s3-start.sh wrote into a foreign S3_ROOT: $(ls -A "$WORK/site" | xargs)"
run_rc rc env S3_ROOT="$WORK/site" S3_WIPE=1 bash "$REPO_DIR/scripts/s3-stop.sh"
[ -f "$WORK/site/keep.txt" ] || fail "s3-stop.sh S3_WIPE=1 deleted a directory s3-start.sh did not create"
pass "s3-start.sh / s3-stop.sh leave a foreign S3_ROOT alone"

# ---------------------------------------------------------------- --json
# One JSON object on stdout per command (list: one per member, then the summary), with the
# warnings as {path, reason} gathered from every rank; the manifest records them too. Human
# sizes are binary units throughout (no "MB").
J="$WORK/json"
mkdir -p "$J/src/t/sub" "$J/out"
echo hello >"$J/src/t/a.txt"
head -c 300000 /dev/urandom >"$J/src/t/sub/b.bin"
"$PYTHON" -c 'import socket,sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])' "$J/src/t/sub/s.sock"
run_rc rc run_mpi 2 backup --sources "$J/src/t" --output-dir "$J/out" --name j --json --no-progress
[ "$rc" -eq 1 ] || { show_last; fail "backup --json with a socket: exit $rc, want 1"; }
cp "$WORK/last.out" "$J/backup.json"
if grep -q " MB" "$WORK/last.err"; then fail "summary still in MB: $(cat "$WORK/last.err")"; fi
grep -q "KiB in" "$WORK/last.err" || fail "summary not in binary units: $(cat "$WORK/last.err")"
run_rc rc run_pb verify --source "$J/out/j.tar.gz" --json
cp "$WORK/last.out" "$J/verify.json"
run_rc rc run_pb list --source "$J/out/j.tar.gz" --json
cp "$WORK/last.out" "$J/list.json"
run_rc rc run_mpi 2 restore --source "$J/out/j.tar.gz" --restore-to "$J/r" --json
cp "$WORK/last.out" "$J/restore.json"
echo changed >"$J/src/t/a.txt"
run_rc rc run_pb compare --source "$J/out/j.tar.gz" --json
[ "$rc" -eq 1 ] || { show_last; fail "compare --json of a changed tree: exit $rc, want 1"; }
cp "$WORK/last.out" "$J/compare.json"
run_rc rc run_pb backup --sources "$J/src/t" --output-dir "$J/none" --json
[ "$rc" -eq 2 ] || fail "backup --json into a missing directory: exit $rc"
cp "$WORK/last.out" "$J/fatal.json"
"$PYTHON" - "$J" <<'PY' || fail "--json output is not what it should be (above)"
import json, os, sys
d = sys.argv[1]
def one(name):
    lines = open(os.path.join(d, name)).read().splitlines()
    assert len(lines) == 1, f"{name}: {len(lines)} lines on stdout, want one JSON object"
    return json.loads(lines[0])
keys = ["archive", "files", "directories", "bytes_in", "bytes_out", "seconds", "warnings", "exit_code"]
b = one("backup.json")
for k in keys: assert k in b, f"backup: no {k}"
assert b["command"] == "backup" and b["exit_code"] == 1, b
assert b["files"] == 2 and b["directories"] == 2 and b["bytes_in"] >= 300006 and b["bytes_out"] > 0, b
sock = os.path.join(d, "src/t/sub/s.sock")
assert b["warnings_total"] == 1 and b["warnings"][0]["path"] == sock and "socket" in b["warnings"][0]["reason"], b["warnings"]
m = json.load(open(os.path.join(d, "out/j.tar.gz.manifest.json")))
assert m["warnings_total"] == 1 and m["warnings"] == b["warnings"], m.get("warnings")
v = one("verify.json")
assert v["command"] == "verify" and v["exit_code"] == 0 and v["warnings"] == [] and v["bytes_in"] == os.path.getsize(os.path.join(d, "out/j.tar.gz")), v
lines = [json.loads(l) for l in open(os.path.join(d, "list.json"))]
members, summary = lines[:-1], lines[-1]
assert sorted(x["path"] for x in members) == ["t", "t/a.txt", "t/sub", "t/sub/b.bin"], members
assert {x["path"]: x["size"] for x in members}["t/sub/b.bin"] == 300000
assert summary["command"] == "list" and summary["files"] == 2 and summary["directories"] == 2 and summary["exit_code"] == 0, summary
r = one("restore.json")
assert r["command"] == "restore" and r["exit_code"] == 0 and r["files"] == 2 and r["directories"] == 2 and r["bytes_out"] == 300006, r
c = one("compare.json")
assert c["exit_code"] == 1 and {"path": "t/a.txt", "difference": "size differs"} in c["differences"], c
f = one("fatal.json")
assert f["exit_code"] == 2 and f["files"] is None, f
print("json ok")
PY
pass "--json: backup (2 ranks), verify, list, restore (2 ranks), compare, a failed backup; warnings in the manifest"

# ---------------------------------------------------------------- progress
# Lines come on time whatever the round size (here every 100 ms, PBACKUP_TEST_PROGRESS_MS; 5 s
# by default), from the ranks' compressors while a round is under way, each with its time in a
# batch log (stderr not a terminal) and the total file count; the scan reports entries found.
P="$WORK/progress"
mkdir -p "$P/src/d" "$P/out"
for i in 1 2 3 4; do head -c 6M /dev/urandom >"$P/src/d/f$i"; done
run_rc rc env PBACKUP_TEST_PROGRESS_MS=100 mpirun --oversubscribe -n 2 "$PBACKUP" backup --sources "$P/src/d" --output-dir "$P/out" \
  --algo bzip2 --threads 1 --name p
[ "$rc" -eq 0 ] || { show_last; fail "backup for the progress lines: exit $rc"; }
lines=$(grep -c '^\[[0-9-]* [0-9:]*\] pbackup: .* of 24.0 MiB (.*), [0-9]* of 4 files, .*/s, ETA' "$WORK/last.err" || true)
[ "$lines" -ge 2 ] || { show_last; fail "backup of ~3 s printed $lines timestamped progress lines at 100 ms, want several"; }
grep '^\[.*\] pbackup: .* of 24.0 MiB' "$WORK/last.err" | grep -qv '^\[.*\] pbackup: 0 B of' ||
  { show_last; fail "no progress line shows bytes done before the end of the run"; }
example=$(grep 'of 24.0 MiB' "$WORK/last.err" | grep -v ' 0 B of' | head -n 1 | cut -c1-110)
"$PYTHON" -c '
import os, sys
for d in range(40):
    os.makedirs(f"{sys.argv[1]}/d{d}")
    for f in range(100):
        open(f"{sys.argv[1]}/d{d}/f{f}", "w").write(str(f))' "$P/many"
run_rc rc env PBACKUP_TEST_PROGRESS_MS=5 "$PBACKUP" backup --sources "$P/many" --output-dir "$P/out" --name many
[ "$rc" -eq 0 ] || { show_last; fail "backup of 4000 small files: exit $rc"; }
grep -q '^\[.*\] pbackup: scanning: [0-9]* entries found' "$WORK/last.err" || { show_last; fail "the scan printed no progress line"; }
pass "progress: $lines timestamped lines, e.g. $example"
# restore and verify: the same, from every rank's share while it is under way
for cmd in verify restore; do
  extra=(); [ "$cmd" = restore ] && extra=(--restore-to "$P/restored")
  run_rc rc env PBACKUP_TEST_PROGRESS_MS=100 mpirun --oversubscribe -n 2 "$PBACKUP" "$cmd" --source "$P/out/p.tar.bz2" --threads 1 "${extra[@]}"
  [ "$rc" -eq 0 ] || { show_last; fail "$cmd for the progress lines: exit $rc"; }
  grep -q "^\[[0-9-]* [0-9:]*\] pbackup: $cmd.*: [0-9.]* [KMG]*i*B of [0-9.]* MiB ([0-9]*%), .*/s, ETA" "$WORK/last.err" ||
    { show_last; fail "$cmd printed no timestamped progress line with bytes done"; }
  pass "$cmd progress: $(grep -c "pbackup: $cmd" "$WORK/last.err") lines, e.g. $(grep "pbackup: $cmd.*ETA" "$WORK/last.err" | tail -n 1 | cut -c1-100)"
  run_rc rc env PBACKUP_TEST_PROGRESS_MS=100 mpirun --oversubscribe -n 2 "$PBACKUP" "$cmd" --source "$P/out/p.tar.bz2" --threads 1 --no-progress "${extra[@]}"
  [ "$rc" -eq 0 ] || { show_last; fail "$cmd --no-progress: exit $rc"; }
  ! grep -q "pbackup: $cmd.*ETA" "$WORK/last.err" || { show_last; fail "$cmd --no-progress printed progress lines"; }
done
# a streaming restore (the archive alone, no manifest: as a foreign one) has no total: it
# reports the entries and bytes written so far
mkdir -p "$P/alone"
cp "$P/out/p.tar.bz2" "$P/alone/"
run_rc rc env PBACKUP_TEST_PROGRESS_MS=100 "$PBACKUP" restore --source "$P/alone/p.tar.bz2" --restore-to "$P/streamed"
[ "$rc" -eq 0 ] || { show_last; fail "streaming restore: exit $rc"; }
grep -q '^\[[0-9-]* [0-9:]*\] pbackup: restore (streaming): [0-9]* entries, .* written' "$WORK/last.err" ||
  { show_last; fail "the streaming restore printed no progress line"; }
pass "streaming restore progress: $(grep -c 'restore (streaming)' "$WORK/last.err") lines"
run_rc rc env PBACKUP_TEST_PROGRESS_MS=100 "$PBACKUP" restore --source "$P/alone/p.tar.bz2" --restore-to "$P/streamed2" --no-progress
[ "$rc" -eq 0 ] || { show_last; fail "streaming restore --no-progress: exit $rc"; }
! grep -q 'restore (streaming)' "$WORK/last.err" || { show_last; fail "streaming restore --no-progress printed progress lines"; }
pass "restore and verify --no-progress print no progress lines"
