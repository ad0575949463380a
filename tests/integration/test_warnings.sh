#!/usr/bin/env bash
# Things that are skipped with a warning (exit 1, each named on stderr) while the archive is
# still made and complete (DESIGN.md §7):
#  - a Unix socket in the tree (gzip with 2 ranks, zip with 1);
#  - an unreadable file and an unreadable directory (as root: pbackup runs as `nobody` via
#    setpriv, since root reads everything);
#  - files that grow / shrink while being read (the archive must stay valid for GNU tar/unzip);
# and a killed backup (SIGKILL of a plain run, SIGTERM of mpirun) never leaves a file that looks
# like a finished backup; a new run with the same name afterwards succeeds.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
setup_work

SRC="$WORK/src"
make_small_tree "$SRC/tree"
"$PYTHON" - "$SRC/tree/sock_here" <<'PY'
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.bind(sys.argv[1])  # the socket file stays after the process exits
PY
[ -S "$SRC/tree/sock_here" ] || fail "could not create a socket"

# ---------------------------------------------------------------- socket
for spec in gzip:2 zip:1; do
  algo=${spec%%:*} ranks=${spec##*:}
  ext="$(algo_ext "$algo")"
  out="$WORK/out_sock_$algo"
  mkdir -p "$out"
  info "$algo (ranks $ranks): tree with a socket"
  run_rc rc run_mpi "$ranks" backup --sources "$SRC/tree" --output-dir "$out" --algo "$algo" --name s
  assert_no_signal "$rc" "backup with a socket"
  if [ "$rc" -ne 1 ]; then
    show_last
    [ "$rc" -eq 0 ] || fail "backup with a socket: expected exit 1 (file skipped), got $rc"
    defer_fail "$algo backup with a socket: expected exit 1 (a file was skipped, DESIGN.md §1/§7), got 0"
  fi
  grep -q "sock_here" "$WORK/last.err" || { show_last; fail "backup with a socket: stderr does not name the socket"; }
  pass "socket: exit $rc, warning: $(grep sock_here "$WORK/last.err" | head -n 1 | cut -c1-150)"
  [ -s "$out/s.$ext" ] || fail "backup with a socket: no archive"
  [ -s "$out/s.$ext.manifest.json" ] || fail "backup with a socket: no manifest (the backup is complete, it must be committed)"
  run_rc rc run_pb list --source "$out/s.$ext"
  [ "$rc" -eq 0 ] || { show_last; fail "list exited $rc"; }
  if grep -q sock_here "$WORK/last.out"; then fail "the socket is listed as an archive member"; fi
  mkdir -p "$WORK/r_sock_$algo"
  expect_ok 1 restore --source "$out/s.$ext" --restore-to "$WORK/r_sock_$algo"
  cmpopt=(--exclude sock_here)
  [ "$algo" = zip ] && cmpopt+=(--zip)
  assert_trees_equal "$SRC/tree" "$WORK/r_sock_$algo/tree" "${cmpopt[@]}"
done
rm -f "$SRC/tree/sock_here"

# ---------------------------------------------------------------- unreadable file and dir
run_as=()
if is_root; then
  if command -v setpriv >/dev/null; then
    run_as=(setpriv --reuid=65534 --regid=65534 --clear-groups --)
  else
    run_as=(skip)
  fi
fi
if [ "${run_as[0]:-}" = skip ]; then
  info "skipping unreadable files: running as root and setpriv is missing"
else
  info "unreadable file and directory${run_as:+ (pbackup runs as nobody)}"
  U="$WORK/u"
  mkdir -p "$U/src" "$U/out" "$U/restore"
  make_small_tree "$U/src/utree"
  printf 'secret\n' >"$U/src/utree/secret.txt"
  mkdir -p "$U/src/utree/locked/inner"
  printf 'hidden\n' >"$U/src/utree/locked/inner/h.txt"
  chmod 000 "$U/src/utree/secret.txt" "$U/src/utree/locked"
  if is_root; then
    chmod 755 "$WORK" "$U" "$U/src"
    chmod 777 "$U/out"
    chmod -R a+rX "$U/src/utree/sub" "$U/src/utree/a.txt"
  fi
  run_rc rc env HOME="$U/out" "${run_as[@]}" "$PBACKUP" backup --sources "$U/src/utree" --output-dir "$U/out" --algo gzip --name u
  assert_no_signal "$rc" "backup with unreadable entries"
  if [ "$rc" -ne 1 ]; then show_last; fail "backup with unreadable entries: expected exit 1, got $rc"; fi
  grep -q "secret.txt" "$WORK/last.err" || { show_last; fail "unreadable file not named on stderr"; }
  grep -q "locked" "$WORK/last.err" || { show_last; fail "unreadable directory not named on stderr"; }
  pass "unreadable: exit 1; $(grep -E 'secret|locked' "$WORK/last.err" | head -n 2 | tr '\n' ' ' | cut -c1-200)"
  [ -s "$U/out/u.tar.gz" ] && [ -s "$U/out/u.tar.gz.manifest.json" ] || fail "unreadable: archive or manifest missing"
  gzip -t "$U/out/u.tar.gz" || fail "unreadable: gzip -t fails on the archive"
  expect_ok plain restore --source "$U/out/u.tar.gz" --restore-to "$U/restore"
  # the readable part must be complete; the unreadable file must not be stored with wrong content
  assert_trees_equal "$U/src/utree" "$U/restore/utree" --exclude secret.txt --exclude locked
  if [ -e "$U/restore/utree/secret.txt" ] && [ -s "$U/restore/utree/secret.txt" ]; then
    chmod 600 "$U/src/utree/secret.txt"
    cmp -s "$U/src/utree/secret.txt" "$U/restore/utree/secret.txt" || fail "unreadable file was stored with wrong content"
  fi
  [ ! -e "$U/restore/utree/locked/inner" ] || fail "contents of the unreadable directory appeared in the archive"
  chmod 755 "$U/src/utree/locked"
fi

# ---------------------------------------------------------------- files changing while read
# One file keeps growing, another keeps being truncated and refilled during the backup. The
# archive must stay valid (sizes in headers match the data written), the run must warn about
# the changed file(s) by name and exit 1.
for spec in gzip:plain zip:2; do
  algo=${spec%%:*} ranks=${spec##*:}
  ext="$(algo_ext "$algo")"
  C="$WORK/chg_$algo"
  mkdir -p "$C/src/chg" "$C/out" "$C/x"
  printf 'stable\n' >"$C/src/chg/stable.txt"
  # big enough that reading it spans many blocks while the writer below keeps appending to it,
  # so the change is seen even when the machine is busy
  head -c 48000000 /dev/zero | tr '\0' 'g' >"$C/src/chg/grow.log"
  head -c 3000000 /dev/zero | tr '\0' 'f' >"$C/src/chg/flap.bin"
  "$PYTHON" - "$C/src/chg" "$C/stop" <<'PY' &
import os, sys, time
d, stop = sys.argv[1], sys.argv[2]
end = time.time() + 60
big = b"F" * 3000000
while not os.path.exists(stop) and time.time() < end:
    with open(os.path.join(d, "grow.log"), "ab") as f:
        f.write(b"more data\n" * 400)
    with open(os.path.join(d, "flap.bin"), "r+b") as f:
        f.truncate(0)
        f.write(big[: (int(time.time() * 1000) % 3) * 1000000])
    time.sleep(0.001)
PY
  writer=$!
  sleep 0.3
  info "$algo (ranks $ranks): files changing during the backup"
  if [ "$ranks" = plain ]; then
    run_rc rc run_pb backup --sources "$C/src/chg" --output-dir "$C/out" --algo "$algo" --block-mb 1 --name c
  else
    run_rc rc run_mpi "$ranks" backup --sources "$C/src/chg" --output-dir "$C/out" --algo "$algo" --block-mb 1 --name c
  fi
  touch "$C/stop"
  wait "$writer" || true
  cp "$WORK/last.err" "$C/backup.err"
  assert_no_signal "$rc" "backup of changing files"
  [ "$rc" -ne 2 ] || { show_last; fail "$algo backup of changing files: fatal exit 2"; }
  if [ "$rc" -ne 1 ]; then
    show_last
    defer_fail "$algo backup of changing files: expected exit 1 (file changed as read), got $rc"
  fi
  if [ "$rc" -eq 1 ] && ! grep -qE 'grow\.log|flap\.bin' "$WORK/last.err"; then
    show_last
    defer_fail "$algo backup of changing files: exit 1 but stderr names neither grow.log nor flap.bin"
  fi
  [ -s "$C/out/c.$ext" ] || fail "$algo backup of changing files: no archive"
  # the archive is valid for the reference tools
  if [ "$algo" = zip ]; then
    unzip -tq "$C/out/c.zip" >"$WORK/t.out" 2>&1 || { cat "$WORK/t.out" >&2; fail "zip of changing files: unzip -t fails"; }
    unzip -q "$C/out/c.zip" -d "$C/x" || fail "zip of changing files: unzip fails"
  else
    gzip -t "$C/out/c.tar.gz" || fail "tar.gz of changing files: gzip -t fails"
    tar -xf "$C/out/c.tar.gz" -C "$C/x" 2>"$WORK/t.err" || { cat "$WORK/t.err" >&2; fail "tar.gz of changing files: GNU tar -xf fails"; }
  fi
  cmp "$C/src/chg/stable.txt" "$C/x/chg/stable.txt" || fail "$algo changing files: stable.txt wrong"
  [ -f "$C/x/chg/grow.log" ] && [ -f "$C/x/chg/flap.bin" ] || fail "$algo changing files: changed files missing from a valid archive"
  # pbackup's own restore agrees; a file that shrank while read holds zeros, so the manifest
  # lists it as damaged and restore leaves it out with exit 2 (DESIGN.md §7)
  mkdir -p "$C/r"
  damaged=$("$PYTHON" -c 'import json,sys; print(" ".join(json.load(open(sys.argv[1])).get("damaged", [])))' "$C/out/c.$ext.manifest.json")
  run_rc rrc run_pb restore --source "$C/out/c.$ext" --restore-to "$C/r"
  if [ -z "$damaged" ]; then
    [ "$rrc" -eq 0 ] || { show_last; fail "$algo changing files: restore exited $rrc"; }
  else
    [ "$rrc" -eq 2 ] || { show_last; fail "$algo changing files: damaged files ($damaged) but restore exited $rrc"; }
    for d in $damaged; do
      grep -q "$d.*damaged" "$WORK/last.err" || { show_last; fail "$algo changing files: restore does not name damaged $d"; }
      [ ! -e "$C/r/$d" ] || fail "$algo changing files: restore created the damaged file $d"
    done
    info "$algo changing files: damaged (shrank while read): $damaged; restore exit 2 and left them out"
  fi
  cmp "$C/src/chg/stable.txt" "$C/r/chg/stable.txt" || fail "$algo changing files: restored stable.txt wrong"
  pass "$algo changing files: exit $rc, archive valid; $(grep -E 'grow|flap' "$C/backup.err" | head -n 2 | tr '\n' ' ' | cut -c1-200)"
done

# ---------------------------------------------------------------- killed runs
info "killed backups leave no finished-looking file"
"$PYTHON" - "$SRC/big" <<'PY'
import os, random, sys
os.makedirs(sys.argv[1], exist_ok=True)
r = random.Random(5)
table = bytes(b"abcdefghijklmnopqrstuvwxyz \n"[i % 28] for i in range(256))
for i in range(24):  # 96 MiB: bzip2 -9 on one thread per rank takes several seconds
    with open(os.path.join(sys.argv[1], "f%d.txt" % i), "wb") as f:
        f.write(r.randbytes(4 * 1024 * 1024).translate(table))
PY

no_finished() { # DIR NAME
  local f
  for f in "$1/$2.tar.bz2" "$1/$2.tar.bz2.manifest.json" "$1/$2.tar.bz2.sha256" "$1/$2.tar.bz2.catalog.zst"; do
    if [ -e "$f" ]; then
      echo "    stderr of the killed backup:" >&2
      grep -v '^ *$' "$WORK/kill.err" | head -n 12 | sed 's/^/      /' >&2
      fail "killed backup left $f"
    fi
  done
}

kill_run() { # LABEL SIGNAL CMD...
  local label=$1 sig=$2
  shift 2
  local out="$WORK/out_kill_$label"
  mkdir -p "$out"
  "$@" backup --sources "$SRC/big" --output-dir "$out" --algo bzip2 --level 9 --threads 1 --block-mb 1 --name k \
    >"$WORK/kill.out" 2>"$WORK/kill.err" &
  local pid=$! rc=0 i
  # wait until the backup has written its first blocks (its temporary file has data), then signal it
  for i in $(seq 1 400); do
    [ -z "$(find "$out" -name '.*tmp-pbackup' -size +0 2>/dev/null)" ] || break
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.05
  done
  sleep 0.3
  local t0 t1
  t0=$(date +%s%N)
  kill "-$sig" "$pid" 2>/dev/null || true
  wait "$pid" || rc=$?
  t1=$(date +%s%N)
  info "$label: signal sent $((i * 50 + 300)) ms after start (approx.), process ended $(((t1 - t0) / 1000000)) ms later, exit $rc"
  if [ "$rc" -eq 0 ]; then
    info "$label: the backup finished before the signal; nothing to check"
    return 0
  fi
  if [ -e "$out/k.tar.bz2" ] && [ -e "$out/k.tar.bz2.manifest.json" ] && bzip2 -t "$out/k.tar.bz2" 2>/dev/null &&
    ! grep -q 'no archive written' "$WORK/kill.err" &&
    "$PYTHON" -c 'import os, sys; sys.exit(0 if os.stat(sys.argv[1]).st_mtime <= int(sys.argv[2]) / 1e9 + 0.5 else 1)' \
      "$out/k.tar.bz2" "$t0"; then
    # the signal came while the finished archive was being committed (its last byte was written
    # before the signal): a complete, valid backup, which is allowed
    info "$label: the signal arrived during the commit; the archive is complete and valid"
    return 0
  fi
  no_finished "$out" k
  pass "$label: killed (exit $rc), no finished-looking file left (in OUT: $(ls -A "$out" | tr '\n' ' '))"
  # a new run with the same name in the same directory works
  expect_ok plain backup --sources "$SRC/big" --output-dir "$out" --algo bzip2 --level 1 --block-mb 4 --name k
  bzip2 -t "$out/k.tar.bz2" || fail "$label: archive written after the killed run is broken"
  pass "$label: a new run with the same name succeeds"
}
kill_run sigkill KILL "$PBACKUP"
kill_run mpirun_term TERM mpirun --oversubscribe -n 2 "$PBACKUP"
# make sure no rank of the killed mpirun job is left behind
sleep 1
if pgrep -f "$SRC/big" >/dev/null; then
  pgrep -af "$SRC/big" >&2
  fail "processes of a killed backup are still running"
fi

finish_deferred
pass "warnings and killed runs"
