#!/usr/bin/env bash
# A hostile or damaged manifest beside an intact archive (issue 10: restore never lies):
#  - structural lies (a block record removed, a kind changed, only structure left, a zip patch
#    record of size 2^64-5, archive_size off by one, a negative number): `verify` and `restore`
#    exit 2 with a message naming the manifest, never by a signal, and restore creates nothing;
#  - lies only the data can show (a continuation block's first_entry, a block's first_entry):
#    verify walks the tar headers of every block and fails;
#  - a file name that is not UTF-8: the manifest is strict JSON (python3 json.load), verify
#    passes, restore gives the name back byte for byte; a manifest written the old way (raw
#    bytes in the JSON) still reads.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
setup_work

SRC="$WORK/src"
mkdir -p "$SRC/t/sub"
"$PYTHON" - "$SRC/t" <<'PY'
import random, sys
r = random.Random(7)
d = sys.argv[1]
for i in range(5):
    open(f"{d}/a{i}.txt", "w").write(f"small {i}\n" * 50)
open(f"{d}/sub/z.txt", "w").write("last\n")
with open(f"{d}/big.bin", "wb") as f:  # 3.5 MiB: spans four 1 MiB blocks
    f.write(bytes(r.getrandbits(8) for _ in range(3584 * 1024)))
PY

for algo in gzip zip; do
  mkdir -p "$WORK/good_$algo"
  expect_ok plain backup --sources "$SRC/t" --output-dir "$WORK/good_$algo" --algo "$algo" --block-mb 1 --name m --no-progress
done
TGZ="$WORK/good_gzip/m.tar.gz"
ZIP="$WORK/good_zip/m.zip"

# ---------------------------------------------------------------- non-UTF-8 names
# A root whose name is Latin-1: every first_entry and the source are not UTF-8.
LAT="$WORK/lat/$(printf 'r\351')"
mkdir -p "$LAT/d"
echo one >"$LAT/d/$(printf 'caf\351')"
echo two >"$LAT/b.txt"
mkdir -p "$WORK/good_lat"
expect_ok plain backup --sources "$LAT" --output-dir "$WORK/good_lat" --algo gzip --name l --no-progress
LTGZ="$WORK/good_lat/l.tar.gz"
"$PYTHON" - "$LTGZ.manifest.json" <<'PY' || fail "the manifest of a tree with a Latin-1 name is not strict JSON"
import json, sys
raw = open(sys.argv[1], "rb").read()
d = json.loads(raw.decode("utf-8", errors="strict"))
names = [b["first_entry"] for b in d["blocks"]]
assert "\x00r%E9" in names, names
assert d["sources"][0].startswith("\x00/") and d["sources"][0].endswith("/r%E9"), d["sources"]
PY
pass "a manifest with non-UTF-8 names is strict UTF-8 JSON (python3 json.loads)"
expect_ok plain verify --source "$LTGZ"
expect_ok plain restore --source "$LTGZ" --restore-to "$WORK/r_latin"
[ -f "$WORK/r_latin/$(printf 'r\351/d/caf\351')" ] || fail "restore lost the Latin-1 names"
compare_trees "$LAT" "$WORK/r_latin/$(printf 'r\351')"
pass "verify and restore with non-UTF-8 names"

# the same manifest as older pbackup wrote it: the names' bytes raw in the JSON
mkdir -p "$WORK/old"
cp "$LTGZ" "$WORK/old/l.tar.gz"
"$PYTHON" - "$LTGZ.manifest.json" "$WORK/old/l.tar.gz.manifest.json" <<'PY'
import re, sys
t = open(sys.argv[1], "rb").read()
old = re.sub(rb'"\\u0000([^"]*)"', lambda m: b'"' + m.group(1).replace(b"%E9", b"\xe9") + b'"', t)
assert old != t and b"%E9" not in old
open(sys.argv[2], "wb").write(old)
PY
expect_ok plain verify --source "$WORK/old/l.tar.gz"
expect_ok plain restore --source "$WORK/old/l.tar.gz" --restore-to "$WORK/r_old"
compare_trees "$LAT" "$WORK/r_old/$(printf 'r\351')"
pass "a manifest with raw non-UTF-8 bytes (older pbackup) still reads"

# ---------------------------------------------------------------- hostile manifests
# edit ARCHIVE CASE OUTDIR: a copy of ARCHIVE with its manifest edited (python3 json).
edit() {
  local archive=$1 case=$2 dir=$3
  mkdir -p "$dir"
  cp "$archive" "$dir/"
  "$PYTHON" - "$archive.manifest.json" "$dir/$(basename "$archive").manifest.json" "$case" <<'PY'
import json, sys
src, dst, case = sys.argv[1:4]
m = json.load(open(src, encoding="utf-8"))
blocks = m["blocks"]
data = [b for b in blocks if b["kind"] == "block"]
cont = [b for b in data if "continues" in b]
assert len(data) >= 4 and len(cont) >= 2, (len(data), len(cont))
if case == "first_entry_cont":      # one character of a continuation block's first_entry
    b = cont[-1]
    b["first_entry"] = b["first_entry"][:-1] + chr(ord(b["first_entry"][-1]) + 1)
elif case == "first_entry_block":   # a block that starts with a header names another member
    b = data[0]                     # "t" -> "s": still in path order, so only the data shows it
    b["first_entry"] = chr(ord(b["first_entry"][0]) - 1) + b["first_entry"][1:]
elif case == "remove_middle":
    blocks.remove(data[len(data) // 2])
elif case == "kind_structure":
    data[1]["kind"] = "structure"
elif case == "kind_bogus":
    data[1]["kind"] = "bogus"
elif case == "only_structure":
    m["blocks"] = [b for b in blocks if b["kind"] == "structure"]
elif case == "patch_wrap":
    p = [b for b in blocks if b["kind"] == "patch"]
    assert p, "no patch record"
    p[0]["size"] = 2**64 - 5
elif case == "archive_size":
    m["archive_size"] += 1
elif case == "negative":
    m["entries"] = -1
else:
    raise SystemExit("unknown case " + case)
json.dump(m, open(dst, "w", encoding="utf-8"), indent=1)
PY
}

# expect_refused WHAT HOW ARGS... : exit 2 (no signal) with a message naming the manifest
expect_refused() {
  local what=$1 how=$2 rc
  shift 2
  if [ "$how" = plain ]; then run_rc rc timeout 60 "$PBACKUP" "$@"; else run_rc rc timeout 60 mpirun --oversubscribe -n "$how" "$PBACKUP" "$@"; fi
  assert_no_signal "$rc" "$what"
  if [ "$rc" -ne 2 ]; then
    show_last
    defer_fail "$what: expected exit 2, got $rc"
    return 0
  fi
  if ! grep -q "manifest\.json" "$WORK/last.err"; then
    show_last
    defer_fail "$what: the message does not name the manifest"
    return 0
  fi
  pass "$what: exit 2: $(grep -m1 'manifest\.json' "$WORK/last.err" | cut -c1-200)"
}

for case in remove_middle kind_structure kind_bogus only_structure archive_size negative; do
  edit "$TGZ" "$case" "$WORK/$case"
  expect_refused "$case: verify" plain verify --source "$WORK/$case/m.tar.gz"
  expect_refused "$case: restore" plain restore --source "$WORK/$case/m.tar.gz" --restore-to "$WORK/r_$case"
  if [ -e "$WORK/r_$case" ] && [ -n "$(find "$WORK/r_$case" -mindepth 1 | head -n 1)" ]; then
    defer_fail "$case: restore created files although the manifest was refused"
  fi
done
expect_refused "remove_middle: restore on 2 ranks" 2 restore --source "$WORK/remove_middle/m.tar.gz" --restore-to "$WORK/r_remove_middle2"
[ -e "$WORK/r_remove_middle2" ] && defer_fail "remove_middle: 2-rank restore created $WORK/r_remove_middle2"
expect_refused "only_structure: list" plain list --source "$WORK/only_structure/m.tar.gz"

edit "$ZIP" patch_wrap "$WORK/patch_wrap"
expect_refused "zip patch record of size 2^64-5: verify" plain verify --source "$WORK/patch_wrap/m.zip"
expect_refused "zip patch record of size 2^64-5: verify, 2 ranks" 2 verify --source "$WORK/patch_wrap/m.zip"
expect_refused "zip patch record of size 2^64-5: restore" plain restore --source "$WORK/patch_wrap/m.zip" --restore-to "$WORK/r_patch"
[ -e "$WORK/r_patch" ] && defer_fail "patch_wrap: restore created $WORK/r_patch"

# Lies only the blocks' contents show: verify walks every block's tar headers.
for case in first_entry_cont first_entry_block; do
  edit "$TGZ" "$case" "$WORK/$case"
  run_rc rc timeout 60 "$PBACKUP" verify --source "$WORK/$case/m.tar.gz"
  assert_no_signal "$rc" "$case: verify"
  if [ "$rc" -ne 2 ] || ! grep -q "first_entry\|continue" "$WORK/last.err"; then
    show_last
    defer_fail "$case: verify should fail (exit 2) naming the first entry, got $rc"
  else
    pass "$case: verify exit 2: $(grep -m1 'first_entry\|continue' "$WORK/last.err" | cut -c1-200)"
  fi
done

finish_deferred
