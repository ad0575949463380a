#!/usr/bin/env bash
# Restore never lies (issue 10), streaming path (no manifest, libarchive):
#  - a byte flipped in the data of one of our .tar.gz archives without its manifest: libarchive's
#    gzip filter checks no CRC, so this restored a corrupt file with exit 0; now exit 2 naming the
#    damaged gzip member (checked on a stored block, so the deflate data itself stays valid, and
#    on a member's CRC-32 trailer);
#  - restore onto a full disk (a 2 MiB tmpfs, root only): a foreign tar, a foreign .tar.gz and
#    ours without a manifest exited 0 with truncated files (libarchive reports a failed write as
#    a warning); now exit 2 naming the file, and no partial file left. Ours with a manifest and
#    zips (the parallel paths) must fail the same way.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
setup_work

SRC="$WORK/src"
mkdir -p "$SRC/d"
# Random bytes do not compress: libdeflate stores them, so a flipped byte stays valid deflate.
head -c 1500000 /dev/urandom >"$SRC/d/random.bin"
seq 1 20000 >"$SRC/d/numbers.txt"

info "flipped bytes in a manifest-less .tar.gz"
mkdir -p "$WORK/out"
expect_ok plain backup --sources "$SRC/d" --output-dir "$WORK/out" --algo gzip --block-mb 1 --name t --no-progress
rm -f "$WORK/out/t.tar.gz.manifest.json" "$WORK/out/t.tar.gz.sha256"
flip() { # FILE OFFSET OUT
  "$PYTHON" - "$@" <<'PY'
import sys
src, off, dst = sys.argv[1], int(sys.argv[2]), sys.argv[3]
b = bytearray(open(src, "rb").read())
off = off if off >= 0 else len(b) + off
b[off] ^= 0x01
open(dst, "wb").write(b)
PY
}
size=$(stat -c %s "$WORK/out/t.tar.gz")
# the middle of the first member's stored data (the first block holds random.bin's first MiB),
# and the CRC-32 in the last member's trailer
for off in $((size / 4)) -8; do
  flip "$WORK/out/t.tar.gz" "$off" "$WORK/flip.tar.gz"
  if gzip -t "$WORK/flip.tar.gz" 2>/dev/null; then fail "gzip -t accepts the flip at $off: the test data is wrong"; fi
  rm -rf "$WORK/r"
  run_rc rc timeout 60 "$PBACKUP" restore --source "$WORK/flip.tar.gz" --restore-to "$WORK/r"
  assert_no_signal "$rc" "restore of a flipped .tar.gz"
  if [ "$rc" -ne 2 ]; then
    show_last
    fail "flip at byte $off of a manifest-less .tar.gz: restore exits $rc, expected 2"
  fi
  grep -q "gzip member" "$WORK/last.err" || { show_last; fail "flip at byte $off: the message does not name the damaged gzip member"; }
  run_rc rc timeout 60 "$PBACKUP" list --source "$WORK/flip.tar.gz"
  [ "$rc" -eq 2 ] || { show_last; fail "flip at byte $off: list exits $rc, expected 2"; }
done
# The intact archive, and one with zero padding after the last member (as tape tools leave),
# still restore.
cp "$WORK/out/t.tar.gz" "$WORK/padded.tar.gz"
head -c 10240 /dev/zero >>"$WORK/padded.tar.gz"
for a in "$WORK/out/t.tar.gz" "$WORK/padded.tar.gz"; do
  rm -rf "$WORK/r"
  expect_ok plain restore --source "$a" --restore-to "$WORK/r"
  cmp "$SRC/d/random.bin" "$WORK/r/d/random.bin" || fail "$a: random.bin differs"
done
# Trailing garbage after the last member is damage, not silently ignored.
cp "$WORK/out/t.tar.gz" "$WORK/garbage.tar.gz"
printf 'garbage' >>"$WORK/garbage.tar.gz"
rm -rf "$WORK/r"
run_rc rc timeout 60 "$PBACKUP" restore --source "$WORK/garbage.tar.gz" --restore-to "$WORK/r"
[ "$rc" -eq 2 ] || { show_last; fail "trailing garbage after the gzip members: restore exits $rc, expected 2"; }
pass "flipped bytes and trailing garbage in a manifest-less .tar.gz: exit 2 naming the member"

if ! is_root; then
  pass "full-disk checks skipped (need root to mount a tmpfs)"
  finish_deferred
  exit 0
fi

info "restore onto a full disk"
MNT="$WORK/mnt"
mkdir -p "$MNT"
mount -t tmpfs -o size=2m tmpfs "$MNT" || { pass "full-disk checks skipped (cannot mount a tmpfs here)"; exit 0; }
unmount() { umount "$MNT" 2>/dev/null || true; }
status() { return "$1"; }
# cleanup_work reports and exits with the status it finds in $?, so it is handed on
trap 'st=$?; set +e; unmount; status $st; cleanup_work' EXIT

BIG="$WORK/big"
mkdir -p "$BIG/dd"
head -c 3000000 /dev/urandom >"$BIG/dd/big1.bin"
echo small >"$BIG/dd/small.txt"
tar -C "$BIG" -cf "$WORK/foreign.tar" dd
tar -C "$BIG" -czf "$WORK/foreign.tar.gz" dd
(cd "$BIG" && zip -qr "$WORK/foreign.zip" dd)
mkdir -p "$WORK/o2"
expect_ok plain backup --sources "$BIG/dd" --output-dir "$WORK/o2" --algo gzip --name ours --no-progress
expect_ok plain backup --sources "$BIG/dd" --output-dir "$WORK/o2" --algo bzip2 --name nomanifest --no-progress
rm -f "$WORK/o2/nomanifest.tar.bz2.manifest.json"
for a in "$WORK/foreign.tar" "$WORK/foreign.tar.gz" "$WORK/o2/nomanifest.tar.bz2" "$WORK/o2/ours.tar.gz" "$WORK/foreign.zip"; do
  rm -rf "${MNT:?}"/*
  run_rc rc timeout 60 "$PBACKUP" restore --source "$a" --restore-to "$MNT/r"
  assert_no_signal "$rc" "restore of $a onto a full disk"
  if [ "$rc" -ne 2 ]; then
    show_last
    fail "$(basename "$a") onto a full disk: restore exits $rc, expected 2"
  fi
  grep -q "big1.bin" "$WORK/last.err" || { show_last; fail "$(basename "$a") onto a full disk: the error does not name the file"; }
  grep -qi "no space left" "$WORK/last.err" || { show_last; fail "$(basename "$a") onto a full disk: the error does not say why"; }
  case "$a" in
    *foreign.tar | *foreign.tar.gz | *nomanifest.tar.bz2)
      [ ! -e "$MNT/r/dd/big1.bin" ] || defer_fail "$(basename "$a"): a partial big1.bin is left behind" ;;
  esac
done
pass "full disk: every restore path exits 2 naming the file"
finish_deferred
