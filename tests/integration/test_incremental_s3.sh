#!/usr/bin/env bash
# Incremental backups on the test S3 server (issue 15): a chain of three levels under one prefix,
# each --incremental-from the previous level's s3:// URL (only its catalog is read); restore of
# each level from s3:// equals its snapshot; list reads the newest catalog
# (a missing or altered level: test_incremental.sh, the same code for both stores).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/s3_server.sh"
s3_test_setup
U="s3://$B/chain"

T="$WORK/src/tree"
mkdir -p "$T/d" "$T/gone"
echo one > "$T/a"; echo two > "$T/d/b"; echo x > "$T/gone/x"; ln -s a "$T/l"
head -c 200000 /dev/urandom > "$T/big"
snap() { rm -rf "$WORK/snap$1"; mkdir -p "$WORK/snap$1"; cp -a "$T" "$WORK/snap$1/"; }

expect_ok 2 backup --sources "$T" --output-dir "$U" --name L0 --block-mb 1 --no-progress
snap 0
echo ONE > "$T/a"; rm -r "$T/gone"; echo new > "$T/d/new"; chmod 700 "$T/d"
expect_ok 2 backup --sources "$T" --output-dir "$U" --name L1 --block-mb 1 --no-progress --incremental-from "$U/L0.tar.gz"
snap 1
echo more >> "$T/d/b"; rm "$T/l"; mkdir "$T/l"
expect_ok plain backup --sources "$T" --output-dir "$U" --name L2 --block-mb 1 --no-progress --incremental-from "$U/L1.tar.gz"
snap 2
for k in 0 1 2; do
  rm -rf "$WORK/r$k"; mkdir "$WORK/r$k"
  expect_ok 2 restore --source "$U/L$k.tar.gz" --restore-to "$WORK/r$k"
  assert_trees_equal "$WORK/snap$k/tree" "$WORK/r$k/tree"
done
expect_ok plain list --source "$U/L2.tar.gz"
grep -qx tree/big "$WORK/last.out" || fail "list of level 2 misses big (held by level 0)"
pass "a chain of three levels on S3 restores each level exactly"

