#!/usr/bin/env bash
# pbackup memory check (issue: rank 0 under 300 bytes per file; every rank bounded by its window
# of blocks whatever the file sizes). Prints peak RSS per rank from /usr/bin/time for:
#   - one 1 GB and one 4 GB file (incompressible: compressed blocks as big as their input, the
#     worst case for the window), backed up with zstd under mpirun -n 2;
#   - 100k and 200k one-byte files (gzip, mpirun -n 2): rank 0's slope in bytes per file, from
#     the median of 3 runs at each size (a single peak RSS varies by a few MB between runs).
#
#   bash bench/memory.sh [--data-dir DIR] [--pbackup PATH] [--many-only]   (needs ~12 GB free in DIR)
#     --many-only: only the 100k/200k one-byte-file runs (the per-file slope), no big files
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
DIR=/tmp/pbackup-memory
PB="$here/../build/pbackup"
many_only=0
while [ $# -gt 0 ]; do
  case "$1" in
    --data-dir) DIR=$2; shift 2 ;;
    --pbackup) PB=$2; shift 2 ;;
    --many-only) many_only=1; shift ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
mkdir -p "$DIR"

# peak RSS (KiB) of each rank: "rank0 rank1"
run() { # NAME ALGO SOURCE
  local out="$DIR/out" t="$DIR/time"
  rm -rf "$out" "$t".*
  mkdir -p "$out"
  mpirun -n 2 sh -c 'exec /usr/bin/time -f "%M" -o "$0.$OMPI_COMM_WORLD_RANK" "$@"' "$t" \
    "$PB" backup --sources "$3" --output-dir "$out" --algo "$2" --name m --no-progress >/dev/null
  echo "$(tail -n 1 "$t.0") $(tail -n 1 "$t.1")"  # KiB (the last command: callers read it
}                                                  # through a process substitution)

make_big() { # PATH MB
  [ -s "$1/big.bin" ] && [ "$(stat -c %s "$1/big.bin")" -eq $(($2 * 1000000)) ] && return
  mkdir -p "$1"
  head -c $(($2 * 1000000)) /dev/urandom >"$1/big.bin"
}
make_many() { # PATH COUNT
  [ -d "$1" ] && [ "$(find "$1" -type f | wc -l)" -eq "$2" ] && return
  rm -rf "$1"
  python3 - "$1" "$2" <<'PY'
import os, sys
root, n = sys.argv[1], int(sys.argv[2])
for d in range(n // 1000):
    p = os.path.join(root, "d%04d" % d)
    os.makedirs(p)
    for i in range(1000):
        with open(os.path.join(p, "f%04d" % i), "wb") as f:
            f.write(b"x")
PY
}

echo "| input | codec | rank 0 peak RSS KiB | rank 1 peak RSS KiB |"
echo "|---|---|--:|--:|"
for mb in 1000 4000; do
  [ "$many_only" = 1 ] && break
  make_big "$DIR/big$mb" "$mb"
  read -r r0 r1 < <(run big$mb zstd "$DIR/big$mb")
  echo "| one ${mb} MB file (random) | zstd | $r0 | $r1 |"
done
declare -A rank0
for n in 100000 200000; do
  make_many "$DIR/many$n" "$n"
  runs=()
  for k in 1 2 3; do runs+=("$(run many$n gzip "$DIR/many$n")"); done
  read -r r0 r1 < <(printf '%s\n' "${runs[@]}" | sort -n | sed -n 2p)  # the median by rank 0
  rank0[$n]=$r0
  echo "| $n one-byte files (median of 3) | gzip | $r0 | $r1 |"
done
rm -rf "$DIR/out"
echo
echo "rank 0: $(( (rank0[200000] - rank0[100000]) * 1024 / 100000 )) bytes per file (peak RSS slope, 100k -> 200k files)"
