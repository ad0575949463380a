#!/usr/bin/env bash
# MPI messages over 2 GiB travel in int-sized chunks (src/mpi/chunks.h; the arithmetic has unit
# tests). Here PBACKUP_TEST_MPI_CHUNK=61 (test only) makes every broadcast, gather, scatter and
# point-to-point message of a real mpirun -n 3 run go in 61-byte chunks: the backup must be
# byte-identical to a one-rank run, and restore, restore --only and verify must work.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
setup_work

SRC="$WORK/src"
make_edge_tree "$SRC/edge"
mkdir -p "$SRC/edge/many"
for i in $(seq 1 300); do printf 'file %d\n' "$i" >"$SRC/edge/many/f$i"; done
head -c 3000000 /dev/urandom >"$SRC/edge/rnd.bin"
mkdir -p "$WORK/o1" "$WORK/o3" "$WORK/r3" "$WORK/only"
expect_ok plain backup --sources "$SRC/edge" --output-dir "$WORK/o1" --algo gzip --block-mb 1 --name c
export PBACKUP_TEST_MPI_CHUNK=61
expect_ok 3 backup --sources "$SRC/edge" --output-dir "$WORK/o3" --algo gzip --block-mb 1 --name c
cmp "$WORK/o1/c.tar.gz" "$WORK/o3/c.tar.gz" || fail "the backup with 61-byte MPI chunks differs from the one-rank backup"
expect_ok 3 backup --sources "$SRC/edge" --output-dir "$WORK/o3" --algo zip --block-mb 1 --dest-type usb_split --split-chunk-mb 1 --name s
expect_ok 3 verify --source "$WORK/o3/c.tar.gz"
expect_ok 3 verify --source "$WORK/o3"
expect_ok 3 restore --source "$WORK/o3/c.tar.gz" --restore-to "$WORK/r3"
assert_trees_equal "$SRC/edge" "$WORK/r3/edge"
expect_ok 3 restore --source "$WORK/o3/c.tar.gz" --restore-to "$WORK/only" --only edge/many
[ -f "$WORK/only/edge/many/f300" ] && [ ! -e "$WORK/only/edge/rnd.bin" ] || fail "--only restored the wrong members"
pass "61-byte MPI chunks at 3 ranks: backup identical, split zip verified, restore and --only correct"
