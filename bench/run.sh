#!/usr/bin/env bash
# pbackup benchmark: backup and restore speed, size and memory against the usual peer tools
# (tar + gzip/pigz, bzip2/pbzip2/lbzip2, zstd; zip/unzip), on real data built from this machine's
# /usr trees. Prints a Markdown table and writes it to bench/results-latest.md.
#
#   bash bench/run.sh                  # all three data sets, 3 interleaved runs each (~20-25 min)
#   bash bench/run.sh --quick          # 1 run, one data set (small): a few minutes
#   bash bench/run.sh --sets large --runs 5 --explore
#
# Options:
#   --data-dir DIR     where the work happens (data sets, archives, logs); default /tmp/pbackup-bench.
#                      Data sets live in DIR/data/<set> and are reused when present
#                      (delete one to rebuild it).
#   --sets a,b,c       data sets among small,large,mixed (default: all three)
#   --runs N           timed runs per tool (default 3)
#   --quick            --runs 1 and only the first set of --sets (default small)
#   --algos a,b        among gzip,bzip2,zip,zstd (default all)
#   --np N             MPI ranks for pbackup (default 2)
#   --no-restore       backup only
#   --explore          also time pbackup's own knobs on the first set: -n 1 vs -n N, no mpirun,
#                      --threads 1, --bind-to none, --block-mb 1/16, and restore -n 1/-n N/--threads 1
#                      (gzip unless --explore-algos; with --runs of its own rounds)
#   --explore-algos a,b  codecs for --explore (default gzip)
#   --explore-only     only pbackup's knobs (one backup per codec to have archives, then the knobs)
#   --keep             keep the archives of the last round (DIR/out/<set>)
#   --delete-between   delete each restore directory before the next run; by default they are all
#                      deleted after the data set (needs ~runs x 11 x the set's size of free disk;
#                      falls back to this automatically when space is short)
#   --settle S         start a set's restore runs only S seconds (300) after restored trees were
#                      last deleted: ext4 creates files slowly for minutes after a big deletion
#   --pbackup PATH     binary to measure (default build/pbackup; built if missing)
#   --compare PATH     a second pbackup binary (e.g. an older commit's build) measured in the same
#                      interleaved rounds; its rows are marked [old] (--compare-label L) and a
#                      "this vs compare" table gives the time and size ratios
#   --max-noise PCT    rerun a measurement if other processes used more than PCT% of the machine
#                      during it (default 10; the machine is shared), at most --noise-retries N (2);
#                      before each run wait up to --quiet-wait S (30) for the machine to be quiet.
#                      pbackup is measured as a private copy of the binary (it may be rebuilt meanwhile).
#
# Caveats, also printed with the results: the page cache is not dropped (we can't reliably); every
# data set is read once before timing, so all tools run warm. The machine is shared: look at
# min-max beside the medians before trusting a few percent.
set -euo pipefail

orig_args="$*"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(dirname "$here")"
work=/tmp/pbackup-bench
sets=small,large,mixed
runs=3
quick=0
pass=()

while [ $# -gt 0 ]; do
  case "$1" in
    --data-dir) work="$2"; shift 2 ;;
    --sets) sets="$2"; shift 2 ;;
    --runs) runs="$2"; shift 2 ;;
    --quick) quick=1; shift ;;
    --algos|--np|--pbackup|--compare|--compare-label|--explore-algos|--explore-blocks|--results|--max-noise|--noise-retries|--quiet-wait|--settle) pass+=("$1" "$2"); shift 2 ;;
    --no-restore|--explore|--explore-only|--keep|--delete-between) pass+=("$1"); shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "run.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
if [ "$quick" = 1 ]; then
  runs=1
  sets="${sets%%,*}"
fi

export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export LC_ALL=C

missing=()
for t in tar gzip pigz bzip2 pbzip2 lbzip2 zstd zip unzip mpirun diff python3; do
  command -v "$t" >/dev/null || missing+=("$t")
done
[ -x /usr/bin/time ] || missing+=("/usr/bin/time (package time)")
if [ ${#missing[@]} -gt 0 ]; then
  echo "run.sh: missing tools: ${missing[*]}" >&2
  echo "  apt-get install -y pigz pbzip2 lbzip2 zstd zip unzip time" >&2
  exit 2
fi

pb="$repo/build/pbackup"
for ((i = 0; i < ${#pass[@]}; i++)); do
  [ "${pass[$i]}" = --pbackup ] && pb="${pass[$((i + 1))]}"
done
if [ ! -x "$pb" ]; then
  echo "run.sh: $pb missing; building" >&2
  cmake -S "$repo" -B "$repo/build" -DCMAKE_BUILD_TYPE=Release >/dev/null
  cmake --build "$repo/build" -j"$(nproc)" --target pbackup
fi

mkdir -p "$work"
/usr/bin/python3 "$here/mkdata.py" --data-dir "$work/data" --sets "$sets" >&2

exec /usr/bin/python3 "$here/bench.py" --work "$work" --data-dir "$work/data" --sets "$sets" \
  --runs "$runs" --command "bench/run.sh $orig_args" ${pass[@]+"${pass[@]}"}
