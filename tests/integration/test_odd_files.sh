#!/usr/bin/env bash
# Files that change under the backup never restore as good data (DESIGN.md §7):
#  - a file removed between the scan and the read, and a regular file replaced by a FIFO (which
#    used to hang the backup forever on a blocking open): the backup warns naming them (exit 1)
#    and lists them as "damaged" in the manifest; restore does not create them, names them and
#    exits 2 (1 rank and mpirun -n 2); verify names them and exits 2.
#    PBACKUP_TEST_PAUSE_AFTER_SCAN (test only) holds the backup between scan and read.
#  - a file whose full path is longer than PATH_MAX is stored and restored byte-identical (it
#    used to be stored as zeros).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
setup_work

# ---------------------------------------------------------------- vanished and swapped files
for spec in gzip:2 zip:1; do
  algo=${spec%%:*} ranks=${spec##*:}
  ext=$(algo_ext "$algo")
  D="$WORK/v_$algo"
  mkdir -p "$D/src/t/sub" "$D/out"
  printf 'keep me\n' >"$D/src/t/a.txt"
  head -c 300000 /dev/urandom >"$D/src/t/sub/gone.bin"
  head -c 200000 /dev/urandom >"$D/src/t/swap.bin"
  for i in 1 2 3; do head -c 100000 /dev/urandom >"$D/src/t/sub/f$i"; done
  info "$algo, $ranks rank(s): a file removed and one replaced by a fifo after the scan"
  : >"$WORK/v.err"  # the last round's "scanned" must not satisfy this round's wait
  PBACKUP_TEST_PAUSE_AFTER_SCAN=3 timeout 60 mpirun --oversubscribe -n "$ranks" "$PBACKUP" backup \
    --sources "$D/src/t" --output-dir "$D/out" --algo "$algo" --block-mb 1 --name v --log-level info \
    >"$WORK/v.out" 2>"$WORK/v.err" &
  pid=$!
  for i in $(seq 1 400); do grep -q "scanned" "$WORK/v.err" && break; sleep 0.05; done
  grep -q "scanned" "$WORK/v.err" || fail "$algo: the backup did not report its scan"
  rm "$D/src/t/sub/gone.bin"
  rm "$D/src/t/swap.bin"
  mkfifo "$D/src/t/swap.bin"
  rc=0
  wait "$pid" || rc=$?
  cat "$WORK/v.err" >&2
  [ "$rc" -ne 124 ] || fail "$algo: the backup hung (killed by timeout) on a file swapped for a fifo"
  [ "$rc" -eq 1 ] || fail "$algo: backup with a vanished and a swapped file: expected exit 1, got $rc"
  grep -q "gone.bin" "$WORK/v.err" || fail "$algo: the vanished file is not named on stderr"
  grep -q "swap.bin" "$WORK/v.err" || fail "$algo: the swapped file is not named on stderr"
  "$PYTHON" - "$D/out/v.$ext.manifest.json" <<'PY' || fail "$algo: the manifest does not list the damaged files"
import json, sys
d = json.load(open(sys.argv[1])).get("damaged", [])
want = ["t/sub/gone.bin", "t/swap.bin"]
sys.exit(0 if d == want else print("damaged:", d, "expected", want) or 1)
PY
  pass "$algo backup: exit 1, both named, manifest lists them as damaged"
  for how in plain 2; do
    R="$D/r_$how"
    mkdir -p "$R"
    if [ "$how" = plain ]; then
      run_rc rc run_pb restore --source "$D/out/v.$ext" --restore-to "$R"
    else
      run_rc rc run_mpi 2 restore --source "$D/out/v.$ext" --restore-to "$R"
    fi
    [ "$rc" -eq 2 ] || { show_last; fail "$algo restore ($how) of an archive with damaged files: expected exit 2, got $rc"; }
    grep -q "gone.bin.*damaged" "$WORK/last.err" && grep -q "swap.bin.*damaged" "$WORK/last.err" ||
      { show_last; fail "$algo restore ($how): the damaged files are not named"; }
    [ ! -e "$R/t/sub/gone.bin" ] && [ ! -e "$R/t/swap.bin" ] || fail "$algo restore ($how) created a damaged file (zeros)"
    cmp "$D/src/t/a.txt" "$R/t/a.txt" || fail "$algo restore ($how): a.txt wrong"
    cmp "$D/src/t/sub/f2" "$R/t/sub/f2" || fail "$algo restore ($how): sub/f2 wrong"
    pass "$algo restore ($how): exit 2, damaged files named and not created, the rest intact"
  done
  run_rc rc run_pb verify --source "$D/out/v.$ext"
  [ "$rc" -eq 2 ] || { show_last; fail "$algo verify of an archive with damaged files: expected exit 2, got $rc"; }
  grep -q "gone.bin.*damaged" "$WORK/last.err" || { show_last; fail "$algo verify does not name the damaged file"; }
  pass "$algo verify: exit 2, names the damaged files"
done

# ---------------------------------------------------------------- a path over PATH_MAX
info "a file whose path is longer than PATH_MAX (4096)"
P="$WORK/long"
mkdir -p "$P/src/deep" "$P/out" "$P/r"
comp=$(printf 'd%.0s' $(seq 1 200))
(
  cd "$P/src/deep"
  for i in $(seq 1 24); do mkdir "$comp$i" && cd "$comp$i"; done
  head -c 150000 /dev/urandom >data.bin
  printf 'at the bottom\n' >note.txt
)
tree_digest() { # DIR: one line per file below DIR (relative path, size, sha256), walked by fd
  "$PYTHON" - "$1" <<'PY'
import hashlib, os, sys
out = []
for dirpath, dirs, files, dfd in os.fwalk(sys.argv[1]):
    rel = os.path.relpath(dirpath, sys.argv[1])
    for f in files:
        fd = os.open(f, os.O_RDONLY, dir_fd=dfd)
        data = b""
        while True:
            b = os.read(fd, 1 << 20)
            if not b: break
            data += b
        os.close(fd)
        out.append("%s/%s %d %s" % (rel, f, len(data), hashlib.sha256(data).hexdigest()))
print("\n".join(sorted(out)))
PY
}
longest=$(tree_digest "$P/src/deep" | awk '{print length($1)}' | sort -n | tail -n 1)
[ "$longest" -gt 4200 ] || fail "test setup: the deepest path is only $longest bytes"
# deep_round_trip NAME WHAT [BACKUP ARGS...]: backs up src/deep as NAME (-n 2), restores that
# archive alone into a fresh r/ and compares the trees; WHAT names the case in failures.
deep_round_trip() {
  local name=$1 what=$2 rc
  shift 2
  rm -rf "$P/r" && mkdir -p "$P/r"
  run_rc rc run_mpi 2 backup --sources "$P/src/deep" --output-dir "$P/out" --algo gzip --name "$name" "$@"
  [ "$rc" -eq 0 ] || { show_last; fail "$what: backup exit $rc"; }
  run_rc rc run_pb restore --source "$P/out/$name.tar.gz" --restore-to "$P/r"
  [ "$rc" -eq 0 ] || { show_last; fail "$what: restore exit $rc"; }
  [ "$(tree_digest "$P/src/deep")" = "$(tree_digest "$P/r/deep")" ] || {
    diff <(tree_digest "$P/src/deep" | cut -c4000-) <(tree_digest "$P/r/deep" | cut -c4000-) >&2 || true
    fail "$what: files below PATH_MAX depth missing or different after restore"
  }
}
deep_round_trip l "a path over PATH_MAX"
pass "path of $longest bytes: backed up and restored byte-identical"

# An incremental level reads a new or changed file's details (readability, holes) after the
# scan, by path: a path over PATH_MAX must not make the level skip the file.
info "an incremental level with a new and a changed file past PATH_MAX"
(
  cd "$P/src/deep"
  for i in $(seq 1 24); do cd "$comp$i"; done
  printf 'changed at the bottom\n' >note.txt
  head -c 70000 /dev/urandom >new.bin
)
deep_round_trip l1 "incremental level past PATH_MAX" --incremental-from "$P/out/l.tar.gz"
pass "incremental level: new and changed files at $longest bytes stored"

finish_deferred
pass "odd files"
