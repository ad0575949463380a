#!/usr/bin/env bash
# Parallel restore by manifest blocks: the same tree comes back at 1, 2 and 3 ranks for every
# tar codec (big files spanning blocks included); --only restores just the selected paths and
# reads only a few blocks; a corrupted block is named and fails the restore; without the
# manifest the same archive still restores (libarchive streaming).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
setup_work

make_edge_tree "$WORK/src"
mkdir -p "$WORK/src/many"
for i in $(seq 1 300); do echo "file $i" >"$WORK/src/many/f$i.txt"; done
mkdir -p "$WORK/out"

for algo in gzip bzip2 zstd; do
  ext=$(algo_ext "$algo")
  expect_ok 2 backup --sources "$WORK/src" --output-dir "$WORK/out" --algo "$algo" --name p --block-mb 1 --no-progress
  blocks=$(grep -c '"kind": "block"' "$WORK/out/p.$ext.manifest.json")
  [ "$blocks" -ge 4 ] || fail "$algo: expected several blocks, manifest has $blocks"
  grep -q '"continues"' "$WORK/out/p.$ext.manifest.json" || fail "$algo: no block continues a big file"
  for n in 1 2 3; do
    expect_ok "$n" restore --source "$WORK/out/p.$ext" --restore-to "$WORK/r-$algo-$n"
    grep -q "from $blocks of $blocks blocks on $n rank" "$WORK/last.err" || { show_last; fail "$algo at $n ranks: not the parallel block restore"; }
    compare_trees "$WORK/src" "$WORK/r-$algo-$n/src"
  done
  pass "$algo: parallel restore at 1, 2, 3 ranks"
  rm -f "$WORK/out/p.$ext" "$WORK/out/p.$ext.manifest.json"
done

info "--only restores the selected member and directory, reading few blocks"
expect_ok 2 backup --sources "$WORK/src" --output-dir "$WORK/out" --algo gzip --name o --block-mb 1 --no-progress
total=$(grep -c '"kind": "block"' "$WORK/out/o.tar.gz.manifest.json")
expect_ok 2 restore --source "$WORK/out/o.tar.gz" --restore-to "$WORK/r-only" --only src/many/f7.txt --only "src/日本語"
cmp "$WORK/src/many/f7.txt" "$WORK/r-only/src/many/f7.txt" || fail "--only member differs"
compare_trees "$WORK/src/日本語" "$WORK/r-only/src/日本語" --no-root-meta
[ "$(find "$WORK/r-only/src/many" -type f | wc -l)" -eq 1 ] || fail "--only restored other members of src/many"
[ ! -e "$WORK/r-only/src/héllo wörld.txt" ] || fail "--only restored an unselected member"
used=$(sed -n 's/.* from \([0-9]*\) of \([0-9]*\) blocks.*/\1/p' "$WORK/last.err")
[ -n "$used" ] && [ "$used" -lt "$total" ] || { show_last; fail "--only read $used of $total blocks"; }
run_rc rc "$PBACKUP" restore --source "$WORK/out/o.tar.gz" --restore-to "$WORK/r-none" --only src/no/such/file
[ "$rc" -ne 0 ] && grep -q "not found" "$WORK/last.err" || { show_last; fail "--only of a missing path did not fail clearly"; }
pass "--only: $used of $total blocks read"

info "a corrupted block is named; the restore fails"
cp "$WORK/out/o.tar.gz" "$WORK/out/d.tar.gz"
cp "$WORK/out/o.tar.gz.manifest.json" "$WORK/out/d.tar.gz.manifest.json"
size=$(stat -c %s "$WORK/out/d.tar.gz")
printf '\x00\xff\x00' | dd of="$WORK/out/d.tar.gz" bs=1 seek=$((size / 2)) conv=notrunc status=none
run_rc rc timeout 60 mpirun --oversubscribe -n 2 "$PBACKUP" restore --source "$WORK/out/d.tar.gz" --restore-to "$WORK/r-dmg"
assert_no_signal "$rc" "restore of a corrupted block"
[ "$rc" -ne 0 ] || fail "restore of a corrupted archive exited 0"
grep -q "block at byte .* is corrupted" "$WORK/last.err" || { show_last; fail "the corrupted block is not named"; }
pass "corrupted block named"

info "without its manifest the archive restores by streaming"
mv "$WORK/out/o.tar.gz.manifest.json" "$WORK/out/o.manifest.moved"
expect_ok 2 restore --source "$WORK/out/o.tar.gz" --restore-to "$WORK/r-stream"
compare_trees "$WORK/src" "$WORK/r-stream/src"
pass "streaming restore without manifest"
