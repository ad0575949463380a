#!/usr/bin/env bash
# pbackup memory check (issue: rank 0 under 300 bytes per file; every rank bounded by its window
# of blocks whatever the file sizes). Prints peak RSS per rank from /usr/bin/time for:
#   - one 1 GB and one 4 GB file (incompressible: compressed blocks as big as their input, the
#     worst case for the window), backed up with zstd under mpirun -n 2;
#   - 100k and 200k one-byte files (gzip, mpirun -n 2): rank 0's slope in bytes per file, from
#     the median of 3 runs at each size (a single peak RSS varies by a few MB between runs).
#
#   - --scale: the file list spread over the ranks (issue 14): empty files (100k and 1M, or
#     --counts "..."), gzip, mpirun -n 1, 2, 4, 8: rank 0's and the largest rank's peak RSS, and
#     the scan rate (entries/s, from the info log's "scanned N entries at T s") at -n 1, 2, 4.
#
#   bash bench/memory.sh [--data-dir DIR] [--pbackup PATH] [--many-only | --scale [--counts "N..."]]
#     (needs ~12 GB free in DIR without --many-only/--scale)
#     --many-only: only the 100k/200k one-byte-file runs (the per-file slope), no big files
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
DIR=/tmp/pbackup-memory
PB="$here/../build/pbackup"
many_only=0
scale=0
counts="100000 1000000"
while [ $# -gt 0 ]; do
  case "$1" in
    --scale) scale=1; shift ;;
    --counts) counts=$2; shift 2 ;;
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

# N ranks, empty files: "rank0_KiB largest_KiB scan_seconds entries"
run_scale() { # RANKS SOURCE
  local out="$DIR/out" t="$DIR/time"
  rm -rf "$out" "$t".*
  mkdir -p "$out"
  mpirun --oversubscribe -n "$1" sh -c 'exec /usr/bin/time -f "%M" -o "$0.$OMPI_COMM_WORLD_RANK" "$@"' "$t" \
    "$PB" backup --sources "$2" --output-dir "$out" --algo gzip --name m --no-progress --log-level info 2>"$DIR/log" >/dev/null
  local most=0 r0 k
  r0=$(tail -n 1 "$t.0")
  for ((k = 0; k < $1; ++k)); do
    local v
    v=$(tail -n 1 "$t.$k")
    [ "$v" -gt "$most" ] && most=$v
  done
  # "scanned N entries at T s"
  local line
  line=$(grep -o 'scanned [0-9]* entries at [0-9.]* s' "$DIR/log" | head -n 1)
  echo "$r0 $most $(echo "$line" | awk '{print $5, $2}')"
}

make_empty() { # PATH COUNT: COUNT empty files, 1000 per directory
  [ -f "$1/.complete" ] && return
  rm -rf "$1"
  python3 - "$1" "$2" <<'PY'
import os, sys
root, n = sys.argv[1], int(sys.argv[2])
for d in range(n // 1000):
    p = os.path.join(root, "d%05d" % d)
    os.makedirs(p)
    for i in range(1000):
        os.close(os.open(os.path.join(p, "f%04d" % i), os.O_CREAT | os.O_WRONLY, 0o644))
open(os.path.join(root, ".complete"), "w").close()
PY
}

if [ "$scale" = 1 ]; then
  echo "| files | ranks | rank 0 peak RSS MiB | largest rank peak RSS MiB | scan entries/s |"
  echo "|--:|--:|--:|--:|--:|"
  for n in $counts; do
    make_empty "$DIR/empty$n" "$n"
    for ranks in 1 2 4 8; do
      read -r r0 most secs entries < <(run_scale "$ranks" "$DIR/empty$n")
      rate=$(awk -v e="$entries" -v s="$secs" 'BEGIN { if (s > 0) printf "%.0f", e / s; else print "-" }')
      echo "| $n | $ranks | $((r0 / 1024)) | $((most / 1024)) | $rate |"
    done
  done
  rm -rf "$DIR/out"
  exit 0
fi

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
