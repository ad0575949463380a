#!/usr/bin/env bash
# The archive bytes depend on the input and the options, never on the rank or thread count
# (DESIGN.md §2): -n 1, -n 2, -n 3 and plain --threads 1 / --threads 3 give byte-identical
# archives (and .sha256 files). Also a repeated identical run gives the same bytes, so nothing
# time-dependent (or atime-dependent: the first backup reads every file) leaks into the archive.
# Sources: the edge tree, a small tree, and 2400 small files in 120 directories.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
setup_work

SRC="$WORK/src"
make_edge_tree "$SRC/edge"
mkdir -p "$WORK/src2"
make_small_tree "$WORK/src2/second"
# many small files in many directories: the dynamic scan hands directories to whichever rank
# asks, so this is where a rank-dependent order would show
"$PYTHON" - "$WORK/src2/many" <<'PY'
import os, sys
root = sys.argv[1]
for d in range(60):
    sub = os.path.join(root, "d%02d" % d, "s%d" % (d % 7))
    os.makedirs(sub, exist_ok=True)
    for f in range(40):
        with open(os.path.join(sub if f % 2 else os.path.dirname(sub), "f%03d.txt" % f), "w") as fh:
            fh.write("dir %d file %d\n" % (d, f) * (f + 1))
PY
find "$WORK/src2/many" -depth -exec touch -d '2011-11-11 11:11:11 UTC' {} +

# variant: label then how to run
backup_variant() { # ALGO LABEL HOW [extra...]
  local algo=$1 label=$2 how=$3
  shift 3
  local out="$WORK/$algo/$label"
  mkdir -p "$out"
  expect_ok "$how" backup --sources "$SRC/edge" "$WORK/src2/second" "$WORK/src2/many" --output-dir "$out" \
    --algo "$algo" --block-mb 1 --name same "$@"
  [ -s "$out/same.$(algo_ext "$algo")" ] || fail "$algo/$label: no archive"
}

check_same() { # ALGO LABEL...
  local algo=$1
  shift
  local ext ref="$1" l
  ext="$(algo_ext "$algo")"
  for l in "${@:2}"; do
    if ! cmp "$WORK/$algo/$ref/same.$ext" "$WORK/$algo/$l/same.$ext"; then
      ls -l "$WORK/$algo/$ref/same.$ext" "$WORK/$algo/$l/same.$ext" >&2
      fail "$algo: archive from '$l' differs from '$ref'"
    fi
  done
  pass "$algo: identical bytes for: $* ($(stat -c %s "$WORK/$algo/$ref/same.$ext") bytes)"
  for l in "$@"; do
    if [ ! -s "$WORK/$algo/$l/same.$ext.sha256" ]; then
      defer_fail "$algo/$l: no same.$ext.sha256 beside the archive"
    elif ! cmp -s "$WORK/$algo/$ref/same.$ext.sha256" "$WORK/$algo/$l/same.$ext.sha256"; then
      fail "$algo: same.$ext.sha256 from '$l' differs from '$ref'"
    fi
  done
}

for algo in gzip zip; do
  info "$algo: ranks 1/2/3, threads 1/3, repeated run"
  backup_variant "$algo" n1 1
  backup_variant "$algo" n2 2
  backup_variant "$algo" n3 3
  backup_variant "$algo" t1 plain --threads 1
  backup_variant "$algo" t3 plain --threads 3
  backup_variant "$algo" n2t2 2 --threads 2
  backup_variant "$algo" n1again 1
  check_same "$algo" n1 n2 n3 t1 t3 n2t2 n1again
  # and the archive from 3 ranks restores to the sources
  mkdir -p "$WORK/$algo/restore"
  expect_ok 2 restore --source "$WORK/$algo/n3/same.$(algo_ext "$algo")" --restore-to "$WORK/$algo/restore"
  cmpopt=()
  [ "$algo" = zip ] && cmpopt=(--zip)
  assert_trees_equal "$WORK/src2/many" "$WORK/$algo/restore/many" "${cmpopt[@]}"
  assert_trees_equal "$SRC/edge" "$WORK/$algo/restore/edge" "${cmpopt[@]}"
done

for algo in bzip2 zstd; do
  info "$algo: ranks 1 vs 3"
  backup_variant "$algo" n1 1 --threads 1
  backup_variant "$algo" n3 3 --threads 2
  check_same "$algo" n1 n3
done

# Different block sizes are allowed to differ, but each must still be deterministic.
info "gzip --block-mb 2: 1 vs 3 ranks"
for how in 1 3; do
  out="$WORK/bm2/n$how"
  mkdir -p "$out"
  expect_ok "$how" backup --sources "$SRC/edge" "$WORK/src2/second" --output-dir "$out" --algo gzip --block-mb 2 --name same
done
cmp "$WORK/bm2/n1/same.tar.gz" "$WORK/bm2/n3/same.tar.gz" || fail "gzip --block-mb 2: -n 1 and -n 3 differ"
pass "gzip --block-mb 2: identical"

# The .sha256 beside a one-file archive is hashed round by round while other ranks still write
# (only what is certain to be written): an archive of many rounds must still check out, and be
# identical to a one-rank run. 48 MiB of incompressible data in 1 MiB blocks, 2 ranks with one
# thread each: 16 blocks per round, so 3+ rounds; zip adds placeholders patched a round late.
info "many rounds: sha256sum -c and identical bytes"
mkdir -p "$WORK/rounds/data"
"$PYTHON" - "$WORK/rounds/data" <<'PY'
import os, random, sys
r = random.Random(5)
for i in range(24):
    with open(os.path.join(sys.argv[1], "f%02d.bin" % i), "wb") as f:
        f.write(r.randbytes(2 * 1024 * 1024 + i))
PY
for algo in gzip zip; do
  ext="$(algo_ext "$algo")"
  for how in 1 2; do
    out="$WORK/rounds/$algo$how"
    mkdir -p "$out"
    expect_ok "$how" backup --sources "$WORK/rounds/data" --output-dir "$out" --algo "$algo" --block-mb 1 --threads 1 --name r
    (cd "$out" && sha256sum -c --quiet "r.$ext.sha256") || fail "$algo, $how rank(s): sha256sum -c rejects r.$ext.sha256"
  done
  cmp "$WORK/rounds/${algo}1/r.$ext" "$WORK/rounds/${algo}2/r.$ext" || fail "$algo many rounds: -n 1 and -n 2 differ"
  pass "$algo, many rounds: .sha256 checks out at 1 and 2 ranks, identical bytes"
done
finish_deferred
