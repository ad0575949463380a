#!/usr/bin/env bash
# Sparse files (issue 12): holes found with SEEK_DATA/SEEK_HOLE are never read or stored; the
# archive holds them in GNU sparse 1.0 pax format (as GNU tar -S --format=pax writes), and every
# restore makes them holes again:
#  - a 200 MiB file with 2 data regions ending in a hole, a file whose 3 MiB of data span blocks
#    (--block-mb 1), a 256 MiB file with 3.5 MiB of data in 3 regions (spans blocks), a file that
#    is one hole, a plain file;
#  - archives byte-identical at 1 and 3 ranks, about the size of the data, manifest counts them;
#  - pbackup restore (1 and 3 ranks, block by block in parallel, sparse members spanning blocks
#    too), GNU tar -x of ours and pbackup restoring GNU tar -S's: same bytes, allocation about
#    the data; verify passes; zip stores them whole and says so
#    (the 256 MiB one left out);
#  - a spanning member whose map is bad (edited in a real archive): that file is an error, removed
#    and listed as lost, the rest restored, exit 2, at 1 and 3 ranks.
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
truncate -s 256M "$S/big.img"
for mib in 1 100 101; do dd if=/dev/urandom of="$S/big.img" bs=1M count=1 seek=$mib conv=notrunc status=none; done
dd if=/dev/urandom of="$S/big.img" bs=64k count=8 seek=$((255 * 16 + 8)) conv=notrunc status=none
truncate -s 20M "$S/hole.img"
head -c 200000 /dev/urandom >"$S/plain"
alloc_kb() { du -k "$1" | cut -f1; }
[ "$(alloc_kb "$S/hole.img")" -lt 100 ] || fail "the file system under $WORK does not keep holes"

# Every file of A and B: same bytes, and B allocates at most MAX KiB more than A.
check_restored() {  # A B WHAT
  for f in vm.img span.img big.img hole.img plain; do
    cmp "$1/$f" "$2/$f" || fail "$3: $f differs"
    [ "$(alloc_kb "$2/$f")" -le $(($(alloc_kb "$1/$f") + 256)) ] ||
      fail "$3: $f takes $(alloc_kb "$2/$f") KiB, the source $(alloc_kb "$1/$f") KiB (holes filled in)"
  done
}

expect_ok plain backup --sources "$S" --output-dir "$WORK/out" --algo gzip --block-mb 1 --name one
expect_ok 3 backup --sources "$S" --output-dir "$WORK/out" --algo gzip --block-mb 1 --name three
cmp "$WORK/out/one.tar.gz" "$WORK/out/three.tar.gz" || fail "sparse archives differ between 1 and 3 ranks"
size=$(stat -c %s "$WORK/out/one.tar.gz")
[ "$size" -lt $((10 * 1024 * 1024)) ] || fail "archive of 7.6 MiB of data in 520 MiB of files is $size bytes (holes stored)"
"$PYTHON" - "$WORK/out/one.tar.gz.manifest.json" <<'PY' || fail "the manifest does not count the sparse files"
import json, sys
sys.exit(0 if json.load(open(sys.argv[1])).get("sparse_entries") == 4 else 1)
PY
tar tvzf "$WORK/out/one.tar.gz" >"$WORK/tv"
grep -q ' 209715200 .*sp/vm.img$' "$WORK/tv" || { cat "$WORK/tv"; fail "GNU tar does not list vm.img with its real size"; }
pass "sparse files: $size-byte archive, identical at 1 and 3 ranks, counted in the manifest"

expect_ok plain verify --source "$WORK/out/one.tar.gz"
expect_ok 3 verify --source "$WORK/out/three.tar.gz"
for n in plain 3; do
  expect_ok "$n" restore --source "$WORK/out/one.tar.gz" --restore-to "$WORK/r_$n"
  grep -q "from [0-9]* of [0-9]* blocks on" "$WORK/last.err" || { show_last; fail "sparse members spanning blocks were not restored in parallel ($n)"; }
  check_restored "$S" "$WORK/r_$n/sp" "pbackup restore ($n)"
done
[ "$(stat -c %b "$WORK/r_3/sp/big.img")" -le $((4 * 2048 + 512)) ] || fail "big.img: $(stat -c %b "$WORK/r_3/sp/big.img") blocks allocated for 3.5 MiB of data"
pass "verify passes; pbackup restores the holes as holes, block by block in parallel, sparse members spanning blocks too (1 and 3 ranks)"

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

# A map longer than what its head block holds (40000 regions, ~600 KB of map starting near
# the block's end): rank 0 reads it on from the next block.
mkdir -p "$WORK/src/frag"
head -c 921600 /dev/urandom >"$WORK/src/frag/a_pad"
"$PYTHON" - "$WORK/src/frag/b.img" <<'PY'
import os, sys
fd = os.open(sys.argv[1], os.O_CREAT | os.O_WRONLY, 0o644)
os.ftruncate(fd, 40000 * 8192 + 12345)
blk = os.urandom(4096)
for i in range(40000):
    os.pwrite(fd, blk, i * 8192)
os.close(fd)
PY
expect_ok plain backup --sources "$WORK/src/frag" --output-dir "$WORK/out" --algo zstd --block-mb 1 --name frag
"$PYTHON" - "$WORK/out/frag.tar.zst.manifest.json" <<'PY' || fail "the map of b.img does not span blocks: the case tests nothing"
import json, sys
b = [b for b in json.load(open(sys.argv[1]))["blocks"] if b.get("continues", {}).get("sparse")]
sys.exit(0 if b and b[0]["continues"]["offset"] < 40000 * 12 else 1)
PY
for n in plain 3; do
  expect_ok "$n" restore --source "$WORK/out/frag.tar.zst" --restore-to "$WORK/rf_$n"
  grep -q "from [0-9]* of [0-9]* blocks on" "$WORK/last.err" || { show_last; fail "a sparse map over two blocks: not restored in parallel ($n)"; }
  cmp "$WORK/src/frag/b.img" "$WORK/rf_$n/frag/b.img" || fail "a sparse map over two blocks: b.img differs ($n)"
  [ "$(alloc_kb "$WORK/rf_$n/frag/b.img")" -le $(($(alloc_kb "$WORK/src/frag/b.img") + 256)) ] || fail "a sparse map over two blocks: holes filled in ($n)"
done
pass "a sparse map longer than its head block holds is read on from the next block (1 and 3 ranks)"

# A spanning sparse member whose map is edited (same length, block recompressed, the manifest
# fixed up so every checksum holds): its regions no longer add up to the stored data.
mkdir -p "$WORK/src/bad"
cp --sparse=always "$S/span.img" "$WORK/src/bad/span.img"
echo kept >"$WORK/src/bad/z_after"
expect_ok plain backup --sources "$WORK/src/bad" --output-dir "$WORK/out" --algo gzip --block-mb 1 --name bad
"$PYTHON" - "$WORK/out/bad.tar.gz" <<'PY' || fail "could not craft the bad sparse map"
import gzip, hashlib, json, sys
arc = sys.argv[1]
man = json.load(open(arc + ".manifest.json"))
data = bytearray(open(arc, "rb").read())
blocks = man["blocks"]
k = next(i for i, b in enumerate(blocks) if b.get("continues", {}).get("sparse")) - 1
h = blocks[k]
raw = gzip.decompress(bytes(data[h["offset"]:h["offset"] + h["size"]]))
old = b"\n10485760\n3145728\n"
assert raw.count(old) == 1, raw[:2048]
raw = raw.replace(old, b"\n10485760\n3145727\n")
packed = gzip.compress(raw, mtime=0)
delta = len(packed) - h["size"]
data[h["offset"]:h["offset"] + h["size"]] = packed
h["size"], h["sha256"] = len(packed), hashlib.sha256(packed).hexdigest()
for b in blocks[k + 1:]:
    b["offset"] += delta
man["archive_size"] = len(data)
man["fragments"][0].update(size=len(data), sha256=hashlib.sha256(data).hexdigest())
open(arc, "wb").write(data)
json.dump(man, open(arc + ".manifest.json", "w"))
PY
for n in plain 3; do
  if [ "$n" = plain ]; then run_rc rc run_pb restore --source "$WORK/out/bad.tar.gz" --restore-to "$WORK/rb_$n"
  else run_rc rc run_mpi 3 restore --source "$WORK/out/bad.tar.gz" --restore-to "$WORK/rb_$n"; fi
  [ "$rc" -eq 2 ] || { show_last; fail "bad sparse map ($n): expected exit 2, got $rc"; }
  grep -q "span.img.*sparse map not read: .*do not hold the map" "$WORK/last.err" || { show_last; fail "bad sparse map ($n): no error naming the file and the map"; }
  grep -q "not restored: .*span.img.*removed" "$WORK/last.err" || { show_last; fail "bad sparse map ($n): span.img not listed as lost"; }
  [ ! -e "$WORK/rb_$n/bad/span.img" ] || fail "bad sparse map ($n): span.img left behind"
  [ "$(cat "$WORK/rb_$n/bad/z_after")" = kept ] || fail "bad sparse map ($n): the other file was not restored"
done
pass "a spanning sparse member with a bad map: error naming it, removed, listed as lost, the rest restored, exit 2 (1 and 3 ranks)"

run_rc rc run_pb backup --sources "$S" --output-dir "$WORK/out" --algo zip --name z --exclude big.img
[ "$rc" -eq 0 ] || { show_last; fail "zip backup of sparse files: expected exit 0, got $rc"; }
grep -q "3 sparse files: zip cannot hold holes" "$WORK/last.err" || { show_last; fail "zip: no notice about the holes"; }
expect_ok plain restore --source "$WORK/out/z.zip" --restore-to "$WORK/rz"
for f in vm.img span.img hole.img plain; do cmp "$S/$f" "$WORK/rz/sp/$f" || fail "zip: $f differs"; done
pass "zip stores sparse files whole (same bytes) and says so once"
