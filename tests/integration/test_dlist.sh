#!/usr/bin/env bash
# The file list spread over the ranks (DESIGN §2, core/file_list.h): the ranks sort it together,
# mark hard links across ranks and cut their slices in turn. The archive, its catalog and the
# manifest's block index and counts must be the same for 1, 2, 3 and 4 ranks, with more than
# 4096 tiny files per block (the piece cap cuts), files spanning blocks, hard links whose names
# lie far apart in the order.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
setup_work

SRC="$WORK/src/tree"
mkdir -p "$SRC"
python3 - "$SRC" <<'PY'
import os, sys
root = sys.argv[1]
for d in range(7):
    p = os.path.join(root, "d%d" % d)
    os.makedirs(p)
    for i in range(1500):
        with open(os.path.join(p, "f%04d" % i), "wb") as f:
            f.write(b"x" * (i % 7))
    with open(os.path.join(p, "big"), "wb") as f:  # spans blocks of 1 MiB
        f.write(bytes(range(256)) * (9000 + 1000 * d))
os.link(os.path.join(root, "d0", "big"), os.path.join(root, "d6", "zz_link_to_d0_big"))
os.link(os.path.join(root, "d1", "f0003"), os.path.join(root, "d5", "a_link"))
PY
for n in 1 2 3 4; do
  mkdir -p "$WORK/o$n"
  if [ $n = 1 ]; then how=plain; else how="$n"; fi
  expect_ok "$how" backup --sources "$SRC" --output-dir "$WORK/o$n" --algo gzip --block-mb 1 --name t --no-progress
done
manifest_facts() {  # the manifest without its times (created, the timeline) and command line
  grep -v -e '"created"' -e '"command"' -e '"timeline"' "$1"
}
for n in 2 3 4; do
  cmp "$WORK/o1/t.tar.gz" "$WORK/o$n/t.tar.gz" || fail "-n $n: the archive differs from -n 1"
  cmp "$WORK/o1/t.tar.gz.catalog.zst" "$WORK/o$n/t.tar.gz.catalog.zst" || fail "-n $n: the catalog differs from -n 1"
  diff <(manifest_facts "$WORK/o1/t.tar.gz.manifest.json") <(manifest_facts "$WORK/o$n/t.tar.gz.manifest.json") >/dev/null ||
    fail "-n $n: the manifest differs from -n 1"
done
grep -q "\"entries\": *10517" "$WORK/o3/t.tar.gz.manifest.json" || fail "manifest entry count is not 10517: $(grep -o "\"entries\": *[0-9]*" "$WORK/o3/t.tar.gz.manifest.json")"
run_rc rc run_pb list --long --source "$WORK/o3/t.tar.gz"
grep -q 'zz_link_to_d0_big link to tree/d0/big' "$WORK/last.out" || { show_last; fail "hard link across ranks not in the catalog"; }
# --dry-run: rank 0 prints the list as the ranks hand it over, in the archive's order
mkdir -p "$WORK/dry"
run_rc rc run_mpi 3 backup --sources "$SRC" --output-dir "$WORK/dry" --algo gzip --name d --dry-run
[ "$rc" -eq 0 ] || { show_last; fail "--dry-run -n 3 exited $rc"; }
diff <(tar -tzf "$WORK/o1/t.tar.gz") "$WORK/last.out" >/dev/null || fail "--dry-run -n 3 does not list the archive's members in order"
grep -q "10517 entries would be stored" "$WORK/last.err" || { show_last; fail "--dry-run -n 3: wrong count"; }
mkdir -p "$WORK/r"
expect_ok 3 restore --source "$WORK/o3/t.tar.gz" --restore-to "$WORK/r"
assert_trees_equal "$SRC" "$WORK/r/tree"
[ "$(stat -c %i "$WORK/r/tree/d0/big")" = "$(stat -c %i "$WORK/r/tree/d6/zz_link_to_d0_big")" ] || fail "hard link not restored as a link"
pass "1..4 ranks: identical archive, catalog and manifest; hard links across ranks; dry run in order; restore equal"
