#!/usr/bin/env bash
# Encryption benchmark (issue 16): pbackup backup/restore with and without --encrypt-to (age,
# X25519) under mpirun -n NP, and the serial pipeline `tar czf - | age -r` / `age -d | tar xzf -`.
# Median of RUNS interleaved rounds (each round runs every variant once, so load drifts hit all
# alike). Prints a Markdown table with the ratios.
#
#   bash bench/encrypt.sh [DATA_DIR] [RUNS] [NP]
#     DATA_DIR  tree to back up (default /tmp/pbackup-bench/data/mixed, see bench/mkdata.py)
#     RUNS      rounds (default 3)       NP  MPI ranks (default 2)
# Env: PBACKUP (binary; default build/pbackup), WORK (scratch dir; default /tmp/pbackup-bench-enc).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
data=${1:-/tmp/pbackup-bench/data/mixed}
runs=${2:-3}
np=${3:-2}
pb=${PBACKUP:-$here/../build/pbackup}
work=${WORK:-/tmp/pbackup-bench-enc}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_btl_tcp_if_include=lo OMPI_MCA_oob_tcp_if_include=lo
[ -d "$data" ] || { echo "no data set $data (python3 bench/mkdata.py builds one)" >&2; exit 1; }
command -v age >/dev/null || { echo "age CLI missing" >&2; exit 1; }
rm -rf "$work"
mkdir -p "$work"
age-keygen -o "$work/key.txt" 2>/dev/null
pub=$(age-keygen -y "$work/key.txt")
parent=$(dirname "$data")
base=$(basename "$data")
tar cf - -C "$parent" "$base" | cat >/dev/null   # warm the page cache (GNU tar skips reading into /dev/null)

declare -A t
timeit() {  # timeit NAME CMD... : seconds appended to t[NAME]
  local name=$1
  shift
  local s e
  s=$(date +%s.%N)
  "$@" >/dev/null 2>"$work/$name.err" || { echo "$name failed:" >&2; cat "$work/$name.err" >&2; exit 1; }
  e=$(date +%s.%N)
  t[$name]+="$(echo "$e - $s" | bc) "
}
median() { tr ' ' '\n' <<<"$1" | grep . | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

for ((r = 1; r <= runs; r++)); do
  echo "round $r/$runs" >&2
  rm -rf "$work/out" && mkdir -p "$work/out"   # restored trees stay until the end: ext4 creates files slowly after big deletions
  timeit pb_backup mpirun --oversubscribe -n "$np" "$pb" backup --sources "$data" --output-dir "$work/out" --name plain --no-progress
  timeit pb_backup_age mpirun --oversubscribe -n "$np" "$pb" backup --sources "$data" --output-dir "$work/out" --name enc --encrypt-to "$pub" --no-progress
  timeit tar_age bash -c "tar czf - -C '$parent' '$base' | age -r '$pub' > '$work/out/serial.tar.gz.age'"
  timeit pb_restore mpirun --oversubscribe -n "$np" "$pb" restore --source "$work/out/plain.tar.gz" --restore-to "$work/r1-$r"
  timeit pb_restore_age mpirun --oversubscribe -n "$np" "$pb" restore --source "$work/out/enc.tar.gz.age" --restore-to "$work/r2-$r" --identity "$work/key.txt"
  mkdir -p "$work/r3-$r"
  timeit age_untar bash -c "age -d -i '$work/key.txt' '$work/out/serial.tar.gz.age' | tar xzf - -C '$work/r3-$r'"
done

rm -rf "$work"
pbb=$(median "${t[pb_backup]}") pbe=$(median "${t[pb_backup_age]}") ta=$(median "${t[tar_age]}")
pbr=$(median "${t[pb_restore]}") pre=$(median "${t[pb_restore_age]}") au=$(median "${t[age_untar]}")
ratio() { echo "scale=2; $1 / $2" | bc; }
size=$(du -sm "$data" | cut -f1)
echo "## Encryption benchmark ($(date -u +%F), $base: ${size} MB, mpirun -n $np, median of $runs interleaved rounds, load $(cut -d' ' -f1-3 /proc/loadavg))"
echo
echo "| | unencrypted pbackup | pbackup --encrypt-to | tar czf - \| age -r / age -d \| tar xz |"
echo "|---|---|---|---|"
echo "| backup (s) | $pbb | $pbe | $ta |"
echo "| restore (s) | $pbr | $pre | $au |"
echo
echo "- encrypted backup keeps $(echo "scale=0; 100 * $pbb / $pbe" | bc)% of the unencrypted speed; restore $(echo "scale=0; 100 * $pbr / $pre" | bc)%"
echo "- pbackup --encrypt-to vs tar | age: backup $(ratio "$ta" "$pbe")x, restore $(ratio "$au" "$pre")x faster"
echo "- all runs (s): $(for k in pb_backup pb_backup_age tar_age pb_restore pb_restore_age age_untar; do printf '%s: %s; ' "$k" "${t[$k]}"; done)"
