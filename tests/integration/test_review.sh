#!/usr/bin/env bash
# Adversarial review of "restore never lies" / "backup never lies" (issues 10, 11): each case
# here failed on the merged code.
#  - a pax hard link that carries data, whose target is a file that was in the restore directory
#    before (a hard link to a file outside it): the streaming restore wrote the data into the
#    outside file and exited 0; now the member is refused (exit 2), the outside file untouched.
#    A hard link carrying data to a file the same restore made still works (pax, cpio newc);
#  - a manifest whose "damaged" list names files the archive does not hold: restore deleted a
#    file that was in the restore directory before and made directories for the others; now it
#    names them (exit 2) and leaves the restore directory's old files and tree alone;
#  - a directory of the source tree swapped for a symlink to a directory outside it between the
#    scan and the read: the backup stored the outside files' contents under the tree's names
#    (exit 1, "storing the new one"); now nothing below a source root is opened through a
#    symlink: the files are damaged (zeros, named, listed), no outside byte is in the archive.
#  - `nohup pbackup backup ...` (SIGHUP ignored, to outlive the login): pbackup installed its own
#    SIGHUP handler, so logging out killed the backup (exit 129, no archive); now an ignored
#    SIGHUP stays ignored and the backup completes. Without nohup SIGHUP still stops it.
#  - a fragment set without a manifest whose first fragment is missing: the set was read from
#    the second fragment on; an uncompressed tar whose second fragment starts at a header
#    restored the rest with exit 0, the first file silently lost. Now exit 2 naming fragment 1.
#  - a zip whose second central record points at the first member's local header (overlapping
#    members, a zip bomb's trick; unzip refuses it): our reader declined it, libarchive's
#    seekable reader then restored one member and silently dropped the other, exit 0. Now
#    exit 2 naming the overlap, nothing restored.
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

# ---------------------------------------------------------------- directory swapped for a symlink
for algo in gzip zip; do
  ext=$(algo_ext "$algo")
  D="$WORK/swap_$algo"
  mkdir -p "$D/src/t/sub/deep" "$D/out" "$D/secret/deep"
  echo dummy-contents-longer-1 >"$D/src/t/sub/key" && echo dummy-contents-longer-2 >"$D/src/t/sub/deep/k2" && echo keep >"$D/src/t/a"
  echo TOPSECRET-KEY >"$D/secret/key" && echo TOPSECRET-K2 >"$D/secret/deep/k2"
  info "$algo: a directory swapped for a symlink to outside after the scan"
  PBACKUP_TEST_PAUSE_AFTER_SCAN=3 timeout 60 "$PBACKUP" backup --sources "$D/src/t" --output-dir "$D/out" \
    --algo "$algo" --name s --log-level info --no-progress >"$WORK/s.out" 2>"$WORK/s.err" &
  pid=$!
  for i in $(seq 1 400); do grep -q "scanned" "$WORK/s.err" && break; sleep 0.05; done
  grep -q "scanned" "$WORK/s.err" || fail "$algo: the backup did not report its scan"
  mv "$D/src/t/sub" "$D/src/t/sub.old"
  ln -s "$D/secret" "$D/src/t/sub"
  rc=0
  wait "$pid" || rc=$?
  ! grep -aq TOPSECRET "$D/out/s.$ext" && ! (cd "$D/out" && "$PYTHON" -c "
import sys, tarfile, zipfile
n = sys.argv[1]
if n.endswith('.zip'):
    z = zipfile.ZipFile(n); data = b''.join(z.read(i) for i in z.namelist())
else:
    t = tarfile.open(n); data = b''.join(t.extractfile(m).read() for m in t if m.isfile())
sys.exit(0 if b'TOPSECRET' in data else 1)" "s.$ext") ||
    fail "$algo: the backup read files outside the source tree through a directory swapped for a symlink"
  [ "$rc" -eq 1 ] || { cat "$WORK/s.err" >&2; fail "$algo: expected exit 1, got $rc"; }
  grep -q "sub/key.*replaced by a symlink" "$WORK/s.err" || { cat "$WORK/s.err" >&2; fail "$algo: the file is not named"; }
  "$PYTHON" - "$D/out/s.$ext.manifest.json" <<'PY' || fail "$algo: the manifest does not list the files as damaged"
import json, sys
d = json.load(open(sys.argv[1])).get("damaged", [])
sys.exit(0 if d == ["t/sub/deep/k2", "t/sub/key"] else print("damaged:", d) or 1)
PY
done
pass "a directory swapped for a symlink is never read through"

# ---------------------------------------------------------------- nohup
info "nohup: SIGHUP stays ignored"
mkdir -p "$WORK/hup/src" "$WORK/hup/o1" "$WORK/hup/o2"
echo data >"$WORK/hup/src/f"
for how in nohup plain; do
  out="$WORK/hup/o1"
  [ "$how" = plain ] && out="$WORK/hup/o2"
  launcher=()
  [ "$how" = nohup ] && launcher=(nohup)
  PBACKUP_TEST_PAUSE_AFTER_SCAN=2 "${launcher[@]}" "$PBACKUP" backup --sources "$WORK/hup/src" --output-dir "$out" \
    --name h --log-level info --no-progress >"$WORK/hup.out" 2>"$WORK/hup.err" &
  pid=$!
  for i in $(seq 1 400); do grep -q "scanned" "$WORK/hup.err" && break; sleep 0.05; done
  kill -HUP "$pid"
  rc=0
  wait "$pid" || rc=$?
  if [ "$how" = nohup ]; then
    [ "$rc" -eq 0 ] || { cat "$WORK/hup.err" >&2; fail "nohup pbackup: SIGHUP stopped the backup (exit $rc)"; }
    expect_ok plain verify --source "$out/h.tar.gz"
  else
    [ "$rc" -eq 129 ] && [ -z "$(ls -A "$out")" ] || fail "SIGHUP without nohup: exit $rc (not 129) or files left"
  fi
done
pass "nohup pbackup survives SIGHUP; without nohup SIGHUP stops it"

# ---------------------------------------------------------------- first fragment missing
info "a manifest-less fragment set without its first fragment"
mkdir -p "$WORK/frag/src" "$WORK/frag/set"
head -c 9728 /dev/urandom >"$WORK/frag/src/f1"  # with its header exactly 10240 bytes: one fragment
head -c 20000 /dev/urandom >"$WORK/frag/src/f2"
(cd "$WORK/frag/src" && tar --format=gnu -cf "$WORK/frag/x.tar" f1 f2)
(cd "$WORK/frag/set" && split -b 10240 -a 4 --numeric-suffixes=1 "$WORK/frag/x.tar" x.tar.part)
expect_ok plain restore --source "$WORK/frag/set" --restore-to "$WORK/frag/r0"
cmp "$WORK/frag/src/f1" "$WORK/frag/r0/f1" || fail "the whole set does not restore"
rm "$WORK/frag/set/x.tar.part0001"
run_rc rc run_pb restore --source "$WORK/frag/set" --restore-to "$WORK/frag/r1"
[ "$rc" -eq 2 ] || { show_last; fail "first fragment missing: exit $rc, not 2"; }
grep -q "fragment 1 of 'x.tar' is missing" "$WORK/last.err" || { show_last; fail "the missing fragment is not named"; }
[ ! -e "$WORK/frag/r1/f2" ] || fail "first fragment missing: the rest was restored"
pass "a set without its first fragment is refused"

# ---------------------------------------------------------------- overlapping zip members
info "a zip with overlapping members"
"$PYTHON" - "$WORK/overlap.zip" <<'PY'
import io, struct, sys, zipfile
b = io.BytesIO()
with zipfile.ZipFile(b, "w", zipfile.ZIP_DEFLATED) as z:
    z.writestr("a.txt", b"hello world " * 100)
    z.writestr("b.txt", b"second file " * 100)
d = bytearray(b.getvalue())
first = d.find(b"PK\x01\x02")
second = d.find(b"PK\x01\x02", first + 4)
struct.pack_into("<I", d, second + 42, 0)  # b.txt's local header offset -> a.txt's
open(sys.argv[1], "wb").write(d)
PY
for n in 1 2; do
  R="$WORK/rz$n"
  if [ "$n" -eq 1 ]; then run_rc rc run_pb restore --source "$WORK/overlap.zip" --restore-to "$R"
  else run_rc rc run_mpi 2 restore --source "$WORK/overlap.zip" --restore-to "$R"; fi
  [ "$rc" -eq 2 ] || { show_last; fail "-n $n: overlapping zip members: exit $rc, not 2"; }
  grep -q "zip members overlap" "$WORK/last.err" || { show_last; fail "-n $n: the overlap is not named"; }
  [ ! -e "$R/a.txt" ] || fail "-n $n: overlapping zip: members restored"
done
pass "overlapping zip members are refused"
