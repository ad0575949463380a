#!/usr/bin/env bash
# Sparse files (issue 12): holes found with SEEK_DATA/SEEK_HOLE are never read or stored; the
# archive holds them in GNU sparse 1.0 pax format (as GNU tar -S --format=pax writes), and every
# restore makes them holes again:
#  - a 200 MiB file with 2 data regions ending in a hole, a file whose 3 MiB of data span blocks
#    (--block-mb 1), a file that is one hole, a plain file;
#  - archives byte-identical at 1 and 3 ranks, about the size of the data, manifest counts them;
#  - pbackup restore (1 and 3 ranks; block by block in parallel when no sparse member spans
#    blocks, else streamed), GNU tar -x of ours and pbackup restoring GNU tar -S's:
#    same bytes, allocation about the data; verify passes; zip stores them whole and says so.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
setup_work

S="$WORK/src/sp"
mkdir -p "$S" "$WORK/out"
truncate -s 200M "$S/vm.img"
dd if=/dev/urandom of="$S/vm.img" bs=64k count=1 conv=notrunc status=none
dd if=/dev/urandom of="$S/vm.img" bs=1M count=1 seek=150 conv=notrunc status=none
truncate -s 40M "$S/span.img"
dd if=/dev/urandom of="$S/span.img" bs=1M count=3 seek=10 conv=notrunc status=none
truncate -s 20M "$S/hole.img"
head -c 200000 /dev/urandom >"$S/plain"
alloc_kb() { du -k "$1" | cut -f1; }
[ "$(alloc_kb "$S/hole.img")" -lt 100 ] || fail "the file system under $WORK does not keep holes"

# Every file of A and B: same bytes, and B allocates at most MAX KiB more than A.
check_restored() {  # A B WHAT
  for f in vm.img span.img hole.img plain; do
    cmp "$1/$f" "$2/$f" || fail "$3: $f differs"
    [ "$(alloc_kb "$2/$f")" -le $(($(alloc_kb "$1/$f") + 256)) ] ||
      fail "$3: $f takes $(alloc_kb "$2/$f") KiB, the source $(alloc_kb "$1/$f") KiB (holes filled in)"
  done
}

expect_ok plain backup --sources "$S" --output-dir "$WORK/out" --algo gzip --block-mb 1 --name one
expect_ok 3 backup --sources "$S" --output-dir "$WORK/out" --algo gzip --block-mb 1 --name three
cmp "$WORK/out/one.tar.gz" "$WORK/out/three.tar.gz" || fail "sparse archives differ between 1 and 3 ranks"
size=$(stat -c %s "$WORK/out/one.tar.gz")
[ "$size" -lt $((6 * 1024 * 1024)) ] || fail "archive of 4.3 MiB of data in 260 MiB of files is $size bytes (holes stored)"
"$PYTHON" - "$WORK/out/one.tar.gz.manifest.json" <<'PY' || fail "the manifest does not count the sparse files"
import json, sys
sys.exit(0 if json.load(open(sys.argv[1])).get("sparse_entries") == 3 else 1)
PY
tar tvzf "$WORK/out/one.tar.gz" >"$WORK/tv"
grep -q ' 209715200 .*sp/vm.img$' "$WORK/tv" || { cat "$WORK/tv"; fail "GNU tar does not list vm.img with its real size"; }
pass "sparse files: $size-byte archive, identical at 1 and 3 ranks, counted in the manifest"

expect_ok plain verify --source "$WORK/out/one.tar.gz"
expect_ok 3 verify --source "$WORK/out/three.tar.gz"
for n in plain 3; do
  expect_ok "$n" restore --source "$WORK/out/one.tar.gz" --restore-to "$WORK/r_$n"
  check_restored "$S" "$WORK/r_$n/sp" "pbackup restore ($n)"
done
grep -q "blocks on" "$WORK/last.err" && fail "an archive with a sparse member spanning blocks did not stream"
pass "verify passes; pbackup restores the holes as holes (1 and 3 ranks; streamed: a member spans blocks)"

# Blocks big enough for every sparse member: the parallel block restore makes the holes.
expect_ok plain backup --sources "$S" --output-dir "$WORK/out" --algo gzip --block-mb 16 --name whole
for n in plain 3; do
  expect_ok "$n" restore --source "$WORK/out/whole.tar.gz" --restore-to "$WORK/rw_$n"
  grep -q "blocks on" "$WORK/last.err" || { show_last; fail "sparse members inside blocks were not restored in parallel"; }
  check_restored "$S" "$WORK/rw_$n/sp" "parallel restore of sparse members ($n)"
done
pass "sparse members inside one block restore in parallel with their holes (1 and 3 ranks)"

mkdir "$WORK/rg"
tar -xzf "$WORK/out/one.tar.gz" -C "$WORK/rg" || fail "GNU tar cannot extract our sparse archive"
check_restored "$S" "$WORK/rg/sp" "GNU tar extracting ours"
(cd "$WORK/src" && tar -S --format=pax -czf "$WORK/gnu.tar.gz" sp)
for n in plain 3; do
  expect_ok "$n" restore --source "$WORK/gnu.tar.gz" --restore-to "$WORK/rgp_$n"
  check_restored "$S" "$WORK/rgp_$n/sp" "pbackup restoring GNU tar -S's archive ($n)"
done
pass "GNU tar reads our sparse members and we read GNU tar -S's, holes kept both ways"

run_rc rc run_pb backup --sources "$S" --output-dir "$WORK/out" --algo zip --name z
[ "$rc" -eq 0 ] || { show_last; fail "zip backup of sparse files: expected exit 0, got $rc"; }
grep -q "3 sparse files: zip cannot hold holes" "$WORK/last.err" || { show_last; fail "zip: no notice about the holes"; }
expect_ok plain restore --source "$WORK/out/z.zip" --restore-to "$WORK/rz"
for f in vm.img span.img hole.img plain; do cmp "$S/$f" "$WORK/rz/sp/$f" || fail "zip: $f differs"; done
pass "zip stores sparse files whole (same bytes) and says so once"
