#!/usr/bin/env bash
# Incremental benchmark (issue 15): pbackup levels against GNU tar's incremental dumps (-g), on a
# tree of COPIES copies of the `small` data set (bench/mkdata.py; 8 copies: ~240,000 entries,
# 1.8 GB), mpirun -n NP, gzip. Median of RUNS interleaved rounds per phase (each round runs every
# variant once, so load drifts hit all alike). Prints a Markdown table with the ratios.
#
#   bash bench/incremental.sh [--runs N] [--np N] [--copies N] [--data-dir DIR]
#
# Phase A, the unchanged tree: a full backup; a level from it (nothing changed); GNU tar's level 1
#   (`tar -czf L1.tgz -g SNAP`, from a copy of the level-0 snapshot each time).
# Phase B, 1% of the files changed (every 100th file appended to): the same level and tar level
#   1 again: time and size.
# Phase C, chain restore: levels 1..3, each after another 1% of the files changed; then restore
#   level 3 (the chain: 4 archives) against restoring a full backup of the same final tree, and
#   against GNU tar extracting its 4 dumps in turn (`tar -xzf Lk.tgz -g /dev/null`).
# Restored trees are kept until the end, and phase C starts only S seconds (--settle, 300) after
# the last big deletion: on ext4, creating files right after deleting tens of thousands costs
# several times more system time for minutes, which would swamp the restore times.
# Env: PBACKUP (binary; default build/pbackup). Wall times from outside, mpirun start included.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
runs=5 np=2 copies=8 data_dir=/tmp/pbackup-bench settle=300
while [ $# -gt 0 ]; do
  case "$1" in
    --settle) settle="$2"; shift 2 ;;
    --runs) runs="$2"; shift 2 ;;
    --np) np="$2"; shift 2 ;;
    --copies) copies="$2"; shift 2 ;;
    --data-dir) data_dir="$2"; shift 2 ;;
    *) echo "usage: $0 [--runs N] [--np N] [--copies N] [--data-dir DIR] [--settle S]" >&2; exit 2 ;;
  esac
done
pb=${PBACKUP:-$here/../build/pbackup}
[ -x "$pb" ] || { echo "no pbackup binary at $pb (cmake --build build)" >&2; exit 1; }
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_btl_tcp_if_include=lo OMPI_MCA_oob_tcp_if_include=lo
work="$data_dir/incremental"
tree="$work/tree"   # the tree backed up: root name "tree"
out="$work/out"
deleted=0
if [ -e "$work" ]; then rm -rf "$work"; deleted=$(date +%s); fi
mkdir -p "$work" "$out"
[ -d "$data_dir/data/small" ] || python3 "$here/mkdata.py" --data-dir "$data_dir/data" --sets small >&2
mkdir -p "$tree"
for ((c = 1; c <= copies; c++)); do cp -a "$data_dir/data/small" "$tree/c$c"; done   # copies, not links: nlink 1
tar cf - -C "$work" tree | cat >/dev/null   # warm the page cache (GNU tar skips reading into /dev/null)

declare -A t sz
timeit() {  # timeit NAME CMD... : seconds appended to t[NAME]
  local name=$1
  shift
  local s e
  sync
  s=$(date +%s.%N)
  "$@" >/dev/null 2>"$work/$name.err" || { echo "$name failed:" >&2; cat "$work/$name.err" >&2; exit 1; }
  e=$(date +%s.%N)
  t[$name]+="$(echo "$e - $s" | bc) "
}
median() { tr ' ' '\n' <<<"$1" | grep . | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
range() { tr ' ' '\n' <<<"$1" | grep . | sort -g | awk 'NR==1{a=$1} {b=$1} END {print a "-" b}'; }
pbk() { mpirun --oversubscribe -n "$np" "$pb" backup --sources "$tree" --output-dir "$out" --no-progress "$@"; }
change_1pct() {  # appends a line to every 100th file (sorted order; stage $1 makes each change new)
  find "$tree" -type f | sort | awk 'NR % 100 == 0' | while IFS= read -r f; do echo "change $1" >>"$f"; done
}
nfiles=$(find "$tree" -type f | wc -l)
nentries=$(find "$tree" | wc -l)
mb=$(du -sm --apparent-size "$tree" | cut -f1)

# ---- phase A: the unchanged tree ----
tar -cf /dev/null -g "$work/snap0" -C "$work" tree   # the level-0 snapshot (tar reads no data into /dev/null)
pbk --name base >/dev/null 2>&1
for ((r = 1; r <= runs; r++)); do
  echo "phase A round $r/$runs" >&2
  rm -f "$out"/full.* "$out"/lvl.* "$work/L1.tgz"
  timeit full pbk --name full
  timeit level pbk --name lvl --incremental-from "$out/base.tar.gz"
  cp "$work/snap0" "$work/snap1"
  timeit tar_level tar -czf "$work/L1.tgz" -g "$work/snap1" -C "$work" tree
done
sz[full]=$(stat -c %s "$out/full.tar.gz") sz[level]=$(stat -c %s "$out/lvl.tar.gz") sz[tar_level]=$(stat -c %s "$work/L1.tgz")

# ---- phase B: 1% of the files changed since the base ----
change_1pct b
for ((r = 1; r <= runs; r++)); do
  echo "phase B round $r/$runs" >&2
  rm -f "$out"/lvlb.* "$work/L1b.tgz"
  timeit level_1pct pbk --name lvlb --incremental-from "$out/base.tar.gz"
  cp "$work/snap0" "$work/snap1"
  timeit tar_level_1pct tar -czf "$work/L1b.tgz" -g "$work/snap1" -C "$work" tree
done
sz[level_1pct]=$(stat -c %s "$out/lvlb.tar.gz") sz[tar_level_1pct]=$(stat -c %s "$work/L1b.tgz")

# ---- phase C: a chain of 3 levels, then restore level 3 ----
rm -f "$out"/full.* "$out"/lvl.* "$out"/lvlb.* "$work"/L1*.tgz
tar -czf "$work/T0.tgz" -g "$work/snapc" -C "$work" tree   # tar's chain: level 0 with data this time
prev="$out/base.tar.gz"
for k in 1 2 3; do
  change_1pct "c$k"
  pbk --name "c$k" --incremental-from "$prev" >/dev/null 2>&1
  prev="$out/c$k.tar.gz"
  tar -czf "$work/T$k.tgz" -g "$work/snapc" -C "$work" tree
done
pbk --name final >/dev/null 2>&1   # a full backup of the same final tree
tar_chain() {
  for k in 0 1 2 3; do tar -xzf "$work/T$k.tgz" -g /dev/null -C "$1" || return 1; done
}
cat "$out"/*.tar.gz "$work"/T*.tgz >/dev/null
wait_s=$((deleted + settle - $(date +%s)))
if [ "$wait_s" -gt 0 ]; then echo "waiting ${wait_s} s for the file system to settle after the deletion (--settle)" >&2; sleep "$wait_s"; fi
for ((r = 1; r <= runs; r++)); do
  echo "phase C round $r/$runs" >&2
  for v in chain full tar; do mkdir -p "$work/r-$v-$r"; done
  timeit restore_chain mpirun --oversubscribe -n "$np" "$pb" restore --source "$out/c3.tar.gz" --restore-to "$work/r-chain-$r"
  timeit restore_full mpirun --oversubscribe -n "$np" "$pb" restore --source "$out/final.tar.gz" --restore-to "$work/r-full-$r"
  timeit restore_tar_chain tar_chain "$work/r-tar-$r"
done
diff -r "$tree" "$work/r-chain-1/tree" >/dev/null || { echo "the chain restore differs from the tree" >&2; exit 1; }
diff -r "$tree" "$work/r-tar-1/tree" >/dev/null || { echo "tar's chain restore differs from the tree" >&2; exit 1; }

m() { median "${t[$1]}"; }
ratio() { echo "scale=2; $1 / $2" | bc; }
echo "## Incremental benchmark ($(date -u '+%F %H:%M'), $nentries entries, $nfiles files, $mb MB; mpirun -n $np, gzip; median of $runs interleaved rounds; load $(cut -d' ' -f1-3 /proc/loadavg))"
echo
echo "| run | median s | min-max s | archive bytes |"
echo "|---|--:|--:|--:|"
for k in full level tar_level level_1pct tar_level_1pct restore_chain restore_full restore_tar_chain; do
  echo "| $k | $(m $k) | $(range "${t[$k]}") | ${sz[$k]:-} |"
done
echo
echo "- level on the unchanged tree: $(ratio "$(m full)" "$(m level)")x faster than the full backup (target >= 4), $(ratio "$(m tar_level)" "$(m level)")x GNU tar -g's level 1 (target >= 1)"
echo "- level after 1% changed: $(ratio "$(m tar_level_1pct)" "$(m level_1pct)")x GNU tar -g's time, $(ratio "${sz[level_1pct]}" "${sz[tar_level_1pct]}")x its size"
echo "- restore of level 3 (4 archives): $(ratio "$(m restore_full)" "$(m restore_chain)")x the time of restoring a full backup of the same tree (1 = as fast), $(ratio "$(m restore_tar_chain)" "$(m restore_chain)")x GNU tar extracting its 4 dumps"
rm -rf "$work"
