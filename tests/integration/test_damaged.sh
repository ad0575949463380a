#!/usr/bin/env bash
# Damaged input and bad command lines fail cleanly (DESIGN.md §7):
#  - a pbackup .tar.gz/.tar.bz2/.tar.zst/.zip truncated in the middle, or with bytes flipped in
#    the middle, with and without its manifest beside it: restore exits 2 with a message, within
#    30 s, never by a signal (with 1 and 2 ranks); `list` of a truncated archive fails too;
#  - a corrupt manifest beside an intact archive: no crash/hang, and no silent wrong result;
#  - backup: missing output dir, output dir below a regular file, read-only output dir
#    (non-root only), unknown --algo (message lists the valid ones), two sources with the same
#    base name, a missing source, unknown subcommand/option: exit 2 (1 allowed for a missing
#    source) and no finished-looking archive left behind;
#  - restore of a missing file / of a non-archive: exit 2.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
setup_work

SRC="$WORK/src"
make_small_tree "$SRC/small"
"$PYTHON" - "$SRC/small/more.bin" <<'PY'
import random, sys
r = random.Random(99)
with open(sys.argv[1], "wb") as f:
    for _ in range(2048):
        f.write(bytes(r.choice(b"0123456789abcdef") for _ in range(1024)))
PY

# pb_timed HOW ARGS... : runs pbackup under `timeout 30` (plain, or mpirun -n HOW)
pb_timed() {
  local how=$1
  shift
  if [ "$how" = plain ]; then
    timeout 30 "$PBACKUP" "$@"
  else
    timeout 30 mpirun --oversubscribe -n "$how" "$PBACKUP" "$@"
  fi
}

expect_fatal() { # WHAT HOW ARGS... : exit 2 with a message on stderr
  local what=$1 how=$2 rc t0 ms
  shift 2
  t0=$(date +%s%N)
  run_rc rc pb_timed "$how" "$@"
  ms=$((($(date +%s%N) - t0) / 1000000))
  assert_no_signal "$rc" "$what"
  if [ "$rc" -ne 2 ]; then
    show_last
    defer_fail "$what: expected exit 2, got $rc"
    return 0
  fi
  [ -s "$WORK/last.err" ] || defer_fail "$what: exit 2 but no message on stderr"
  pass "$what: exit 2 in $ms ms: $(grep -v '^[-+ ]*$' "$WORK/last.err" | head -n 1 | cut -c1-150)"
}

no_finished_archive() { # DIR WHAT
  local found
  found="$(find "$1" -maxdepth 1 \( -name '*.tar.gz' -o -name '*.tar.bz2' -o -name '*.tar.zst' -o -name '*.zip' -o -name '*.manifest.json' -o -name '*.sha256' -o -name '*.catalog.zst' \) 2>/dev/null || true)"
  [ -z "$found" ] || fail "$2: left finished-looking files: $found"
}

flip_middle() { # FILE : xor 64 bytes at the middle
  "$PYTHON" - "$1" <<'PY'
import os, sys
p = sys.argv[1]
n = os.path.getsize(p)
with open(p, "r+b") as f:
    f.seek(n // 2)
    b = bytearray(f.read(64))
    f.seek(n // 2)
    f.write(bytes(x ^ 0xA5 for x in b))
PY
}

# ---------------------------------------------------------------- damaged archives
for algo in gzip bzip2 zstd zip; do
  ext="$(algo_ext "$algo")"
  out="$WORK/good_$algo"
  mkdir -p "$out"
  expect_ok 2 backup --sources "$SRC/small" --output-dir "$out" --algo "$algo" --block-mb 1 --name d
  size=$(stat -c %s "$out/d.$ext")
  info "$algo: archive of $size bytes"
  for damage in trunc flip; do
    for man in with without; do
      dir="$WORK/${damage}_${man}_$algo"
      mkdir -p "$dir"
      cp "$out/d.$ext" "$dir/"
      if [ "$man" = with ]; then
        cp "$out/d.$ext.manifest.json" "$dir/"
        if [ -e "$out/d.$ext.sha256" ]; then cp "$out/d.$ext.sha256" "$dir/"; fi
      fi
      if [ "$damage" = trunc ]; then truncate -s $((size / 2)) "$dir/d.$ext"; else flip_middle "$dir/d.$ext"; fi
      mkdir -p "$dir/restore"
      how=plain
      [ "$man" = with ] && how=2
      expect_fatal "$algo $damage, $man manifest, ranks $how: restore" "$how" restore --source "$dir/d.$ext" --restore-to "$dir/restore"
    done
  done
  expect_fatal "$algo truncated: list" plain list --source "$WORK/trunc_without_$algo/d.$ext"
  # one more: truncated, with manifest, one rank
  mkdir -p "$WORK/trunc_with_$algo/restore1"
  expect_fatal "$algo trunc, with manifest, ranks 1: restore" 1 restore --source "$WORK/trunc_with_$algo/d.$ext" --restore-to "$WORK/trunc_with_$algo/restore1"
done

# gzip: only the CRC-32 of the first member is wrong (the data decode fine, GNU gzip -t rejects
# it). With the manifest every block's SHA-256 is checked, so the restore must fail.
dir="$WORK/gzcrc"
mkdir -p "$dir/restore" "$dir/restore2"
cp "$WORK/good_gzip/d.tar.gz" "$WORK/good_gzip/d.tar.gz.manifest.json" "$dir/"
"$PYTHON" - "$dir/d.tar.gz" <<'PY'
import sys, zlib
p = sys.argv[1]
data = bytearray(open(p, "rb").read())
d = zlib.decompressobj(wbits=31)
d.decompress(bytes(data))
assert d.eof, "first gzip member does not end"
end = len(data) - len(d.unused_data)
data[end - 8] ^= 0xFF  # first byte of the member's CRC-32
open(p, "wb").write(data)
PY
if gzip -t "$dir/d.tar.gz" 2>/dev/null; then fail "test setup: gzip -t accepts the CRC-damaged archive"; fi
expect_fatal "gzip bad member CRC, with manifest, ranks 2: restore" 2 restore --source "$dir/d.tar.gz" --restore-to "$dir/restore"
expect_fatal "gzip bad member CRC, with manifest, ranks 1: restore" plain restore --source "$dir/d.tar.gz" --restore-to "$dir/restore2"

# zip with bytes flipped inside member data (the central directory intact): the parallel zip
# restore checks each member's CRC-32, names the damaged member, exits 2, and leaves no file
# with wrong contents behind (the damaged one is removed; all others are exact).
for how in plain 2; do
  dir="$WORK/zipmember_$how"
  mkdir -p "$dir/restore"
  cp "$WORK/good_zip/d.zip" "$dir/"
  flip_middle "$dir/d.zip"
  expect_fatal "zip member data flipped, ranks $how: restore" "$how" restore --source "$dir/d.zip" --restore-to "$dir/restore"
  grep -q "member .* is damaged" "$WORK/last.err" || { show_last; fail "zip member damage: the member is not named"; }
  "$PYTHON" - "$SRC/small" "$dir/restore/small" <<'PY' || fail "zip member damage: a restored file differs from its source"
import filecmp, os, sys
src, got = sys.argv[1], sys.argv[2]
bad = []
for d, _, files in os.walk(got):
    for f in files:
        p = os.path.join(d, f)
        q = os.path.join(src, os.path.relpath(p, got))
        if os.path.isfile(p) and not os.path.islink(p) and not filecmp.cmp(p, q, shallow=False):
            bad.append(os.path.relpath(p, got))
if bad:
    print("wrong contents left behind:", bad[:10])
    sys.exit(1)
PY
  pass "zip member damage, ranks $how: damaged member named and removed, the rest exact"
done

# verify checks every zip member's CRC-32, not only the checksums the manifest recorded: flip a
# byte inside member data and make the manifest agree with the damaged bytes (as a writer bug
# would), then verify must still name the member.
dir="$WORK/zipcrc"
mkdir -p "$dir"
cp "$WORK/good_zip/d.zip" "$WORK/good_zip/d.zip.manifest.json" "$dir/"
expect_ok 2 verify --source "$dir/d.zip"
"$PYTHON" - "$dir/d.zip" <<'PY'
import hashlib, json, sys
p = sys.argv[1]
data = bytearray(open(p, "rb").read())
man = json.load(open(p + ".manifest.json"))
blocks = [b for b in man["blocks"] if b["kind"] == "block"]
patches = [b for b in man["blocks"] if b["kind"] == "patch"]
b = max(blocks, key=lambda b: b["size"])        # the biggest block: deflate data of some member
pos = b["offset"] + b["size"] // 2
data[pos] ^= 0x10
open(p, "wb").write(data)
def block_hash(b):
    raw = bytearray(data[b["offset"]:b["offset"] + b["size"]])
    for q in patches:
        if q["offset"] >= b["offset"] and q["offset"] + q["size"] <= b["offset"] + b["size"]:
            raw[q["offset"] - b["offset"]:q["offset"] - b["offset"] + q["size"]] = bytes(q["size"])
    return hashlib.sha256(raw).hexdigest()
for x in man["blocks"]:
    if x["offset"] <= pos < x["offset"] + x["size"]:
        x["sha256"] = block_hash(x) if x["kind"] == "block" else hashlib.sha256(data[x["offset"]:x["offset"] + x["size"]]).hexdigest()
man["fragments"][0]["sha256"] = hashlib.sha256(data).hexdigest()
json.dump(man, open(p + ".manifest.json", "w"))
PY
expect_fatal "verify: zip member damaged behind matching checksums" 2 verify --source "$dir/d.zip"
grep -q "member .* is damaged" "$WORK/last.err" || { show_last; fail "verify did not name the damaged zip member"; }
pass "verify names a zip member whose CRC-32 fails even when the manifest's checksums match"

# corrupt manifest beside an intact archive: either refuse (exit 2, message) or ignore it and
# restore correctly — but no crash, no hang, no wrong tree with exit 0
for algo in gzip zip; do
  ext="$(algo_ext "$algo")"
  dir="$WORK/badmanifest_$algo"
  mkdir -p "$dir/restore"
  cp "$WORK/good_$algo/d.$ext" "$WORK/good_$algo/d.$ext.manifest.json" "$dir/"
  msize=$(stat -c %s "$dir/d.$ext.manifest.json")
  truncate -s $((msize / 2)) "$dir/d.$ext.manifest.json"
  run_rc rc pb_timed 2 restore --source "$dir/d.$ext" --restore-to "$dir/restore"
  assert_no_signal "$rc" "$algo with truncated manifest"
  if [ "$rc" -eq 0 ]; then
    cmpopt=()
    [ "$algo" = zip ] && cmpopt=(--zip)
    assert_trees_equal "$SRC/small" "$dir/restore/small" "${cmpopt[@]}"
    pass "$algo with truncated manifest: ignored, restored correctly"
  else
    [ -s "$WORK/last.err" ] || fail "$algo with truncated manifest: exit $rc without a message"
    pass "$algo with truncated manifest: exit $rc: $(head -n 1 "$WORK/last.err" | cut -c1-150)"
  fi
done

# ---------------------------------------------------------------- bad command lines
info "command-line errors"
mkdir -p "$WORK/o1"
expect_fatal "missing output dir" plain backup --sources "$SRC/small" --output-dir "$WORK/does/not/exist" --algo gzip --name x
[ ! -e "$WORK/does" ] || fail "missing output dir: pbackup created $WORK/does"
expect_fatal "missing output dir (2 ranks)" 2 backup --sources "$SRC/small" --output-dir "$WORK/nope" --algo zip --name x
[ ! -e "$WORK/nope" ] || fail "missing output dir: pbackup created $WORK/nope"

printf 'regular file\n' >"$WORK/afile"
expect_fatal "output dir below a regular file" plain backup --sources "$SRC/small" --output-dir "$WORK/afile/sub" --algo gzip --name x
[ "$(cat "$WORK/afile")" = "regular file" ] || fail "output dir below a regular file: the file was modified"

if is_root; then
  info "skipping read-only output dir (running as root, permissions are bypassed)"
else
  mkdir -p "$WORK/ro_out"
  chmod 555 "$WORK/ro_out"
  expect_fatal "read-only output dir" plain backup --sources "$SRC/small" --output-dir "$WORK/ro_out" --algo gzip --name x
  [ -z "$(ls -A "$WORK/ro_out")" ] || fail "read-only output dir: files appeared"
fi

expect_fatal "unknown --algo foo" plain backup --sources "$SRC/small" --output-dir "$WORK/o1" --algo foo --name x
for a in zip gzip bzip2 zstd; do
  grep -qw "$a" "$WORK/last.err" || fail "unknown --algo: message does not list valid algo '$a': $(cat "$WORK/last.err")"
done
pass "unknown --algo: message lists zip, gzip, bzip2, zstd"
no_finished_archive "$WORK/o1" "unknown --algo"

mkdir -p "$WORK/dup/a/x" "$WORK/dup/b/x" "$WORK/o2"
printf 'a\n' >"$WORK/dup/a/x/f"
printf 'b\n' >"$WORK/dup/b/x/f"
expect_fatal "two sources with base name x" plain backup --sources "$WORK/dup/a/x" "$WORK/dup/b/x" --output-dir "$WORK/o2" --algo gzip --name x
grep -qw "x" "$WORK/last.err" || fail "duplicate base name: message does not name x"
grep -qiE 'same|duplicate|conflict|collid|clash|twice|unique|both' "$WORK/last.err" ||
  fail "duplicate base name: message does not say what is wrong: $(cat "$WORK/last.err")"
no_finished_archive "$WORK/o2" "duplicate base name"
expect_fatal "two sources with base name x (3 ranks)" 3 backup --sources "$WORK/dup/a/x" "$WORK/dup/b/x/" --output-dir "$WORK/o2" --algo zip --name x
no_finished_archive "$WORK/o2" "duplicate base name (3 ranks)"

mkdir -p "$WORK/o3"
run_rc rc pb_timed plain backup --sources "$WORK/no_such_source" --output-dir "$WORK/o3" --algo gzip --name x
assert_no_signal "$rc" "missing source"
[ "$rc" -eq 1 ] || [ "$rc" -eq 2 ] || { show_last; fail "missing source: expected exit 1 or 2, got $rc"; }
grep -q "no_such_source" "$WORK/last.err" || { show_last; fail "missing source: stderr does not name it"; }
if [ "$rc" -eq 2 ]; then no_finished_archive "$WORK/o3" "missing source"; fi
pass "missing source: exit $rc, named on stderr"

expect_fatal "unknown subcommand" plain frobnicate --source x
expect_fatal "unknown option" plain backup --sources "$SRC/small" --output-dir "$WORK/o3" --algo gzip --bogus-option 1
expect_fatal "backup without --sources" plain backup --output-dir "$WORK/o3" --algo gzip
mkdir -p "$WORK/r1"
expect_fatal "restore of a missing archive" plain restore --source "$WORK/missing.tar.gz" --restore-to "$WORK/r1"
head -c 100000 /dev/urandom >"$WORK/garbage.tar.gz"
expect_fatal "restore of a non-archive" plain restore --source "$WORK/garbage.tar.gz" --restore-to "$WORK/r1"
expect_fatal "restore of a non-archive (2 ranks)" 2 restore --source "$WORK/garbage.tar.gz" --restore-to "$WORK/r1"

finish_deferred
pass "all damaged-input and bad-command-line checks"
