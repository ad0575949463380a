#!/usr/bin/env bash
# Adversarial review of "restore never lies" / "backup never lies" (issues 10, 11): each case
# here failed on the merged code.
#  - a pax hard link that carries data, whose target is a file that was in the restore directory
#    before (a hard link to a file outside it): the streaming restore wrote the data into the
#    outside file and exited 0; now the member is refused (exit 2), the outside file untouched.
#    A hard link carrying data to a file the same restore made still works (pax, cpio newc);
#  - a manifest whose "damaged" list names files the archive does not hold: restore deleted a
#    file that was in the restore directory before and made directories for the others; now it
#    names them (exit 2) and leaves the restore directory's old files and tree alone.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
setup_work

# ---------------------------------------------------------------- hard link carrying data
info "a pax hard link carrying data to a file that predates the restore"
"$PYTHON" - "$WORK" <<'PY'
import sys, tarfile
w = sys.argv[1]
def link(name, target, data):
    t = tarfile.TarInfo(name); t.type = tarfile.LNKTYPE; t.linkname = target; t.size = len(data)
    t.pax_headers = {"size": str(len(data))}
    return t.tobuf(format=tarfile.PAX_FORMAT) + data + b"\0" * (-len(data) % 512)
def reg(name, data):
    t = tarfile.TarInfo(name); t.size = len(data)
    return t.tobuf(format=tarfile.PAX_FORMAT) + data + b"\0" * (-len(data) % 512)
open(w + "/evil.tar", "wb").write(link("h", "t", b"PWNED") + b"\0" * 1024)
open(w + "/good.tar", "wb").write(reg("t", b"old") + link("h", "t", b"NEWER") + b"\0" * 1024)
PY
echo secret >"$WORK/outside"
mkdir "$WORK/r1"
ln "$WORK/outside" "$WORK/r1/t"
run_rc rc run_pb restore --source "$WORK/evil.tar" --restore-to "$WORK/r1"
[ "$(cat "$WORK/outside")" = secret ] || fail "the restore wrote through a hard link into a file outside the restore directory"
[ "$rc" -eq 2 ] || { show_last; fail "hard link carrying data to an old file: exit $rc, not 2"; }
grep -q "'h'.*not a file this restore created" "$WORK/last.err" || { show_last; fail "the refused hard link is not named"; }
expect_ok plain restore --source "$WORK/good.tar" --restore-to "$WORK/r2"
[ "$(cat "$WORK/r2/t")" = NEWER ] && [ "$(stat -c %i "$WORK/r2/t")" = "$(stat -c %i "$WORK/r2/h")" ] ||
  fail "a pax hard link carrying data to a file of the same archive is not restored"
if command -v bsdtar >/dev/null; then
  mkdir -p "$WORK/cp/s" && echo data >"$WORK/cp/s/f" && ln "$WORK/cp/s/f" "$WORK/cp/s/g"
  (cd "$WORK/cp" && bsdtar --format newc -cf "$WORK/links.cpio" s)
  expect_ok plain restore --source "$WORK/links.cpio" --restore-to "$WORK/r3"
  [ "$(cat "$WORK/r3/s/g")" = data ] && [ "$(stat -c %i "$WORK/r3/s/f")" = "$(stat -c %i "$WORK/r3/s/g")" ] ||
    fail "cpio hard links (data on the last link) are not restored"
fi
pass "hard links carrying data go only into files this restore made"

# ---------------------------------------------------------------- hostile damaged list
info "a damaged list naming files the archive does not hold"
mkdir -p "$WORK/src/d" "$WORK/out"
echo a >"$WORK/src/d/a"
expect_ok plain backup --sources "$WORK/src/d" --output-dir "$WORK/out" --algo gzip --name t --no-progress
"$PYTHON" - "$WORK/out/t.tar.gz.manifest.json" <<'PY'
import json, sys
m = json.load(open(sys.argv[1]))
m["damaged"] = ["d/a", "precious", "newdir/sub/x", "/abs/y"]
json.dump(m, open(sys.argv[1], "w"))
PY
for n in 1 2; do
  R="$WORK/rd$n"
  mkdir -p "$R"
  echo mine >"$R/precious"
  if [ "$n" -eq 1 ]; then run_rc rc run_pb restore --source "$WORK/out/t.tar.gz" --restore-to "$R"
  else run_rc rc run_mpi 2 restore --source "$WORK/out/t.tar.gz" --restore-to "$R"; fi
  [ "$rc" -eq 2 ] || { show_last; fail "-n $n: damaged files listed: exit $rc, not 2"; }
  [ "$(cat "$R/precious" 2>/dev/null)" = mine ] || fail "-n $n: the damaged list deleted a file that was in the restore directory before"
  [ ! -e "$R/newdir" ] && [ ! -e "$R/abs" ] || fail "-n $n: looking for damaged files made directories"
  [ ! -e "$R/d/a" ] || fail "-n $n: a damaged file of the archive was left restored"
  grep -q "'precious': damaged at backup time" "$WORK/last.err" || { show_last; fail "-n $n: damaged names not listed"; }
done
pass "the damaged list removes only what this restore made"
