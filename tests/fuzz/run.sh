#!/usr/bin/env bash
# Builds the libFuzzer targets (clang, ASan + UBSan; cmake -DPBACKUP_FUZZ=ON) into build-fuzz,
# replays every input in tests/fuzz/regressions/<target>/ (each a crash found once and fixed),
# then fuzzes each target for FUZZ_SECONDS (default 4) from its seed corpus in
# tests/fuzz/corpus/<target>/. Fails on any crash, leak, sanitizer report or timeout; the input
# that caused it is left in build-fuzz/artifacts/.
#   FUZZ_SECONDS=60 bash tests/fuzz/run.sh              # longer runs
#   FUZZ_TARGETS="fuzz_tar_read" bash tests/fuzz/run.sh  # some targets only
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
BUILD="${PBACKUP_FUZZ_BUILD:-$ROOT/build-fuzz}"
SECS="${FUZZ_SECONDS:-4}"
ALL="fuzz_tar_read fuzz_zip_read fuzz_zip_members fuzz_gzip fuzz_bzip2 fuzz_zstd fuzz_manifest fuzz_s3_xml fuzz_catalog fuzz_pax_xattr fuzz_sparse_map fuzz_glob fuzz_age fuzz_journal"
TARGETS="${FUZZ_TARGETS:-$ALL}"

CXX="$(command -v clang++ || command -v clang++-14 || true)"
[ -n "$CXX" ] || { echo "run.sh: clang++ not found (scripts/deps.sh installs clang)" >&2; exit 1; }
launcher=()
if command -v ccache >/dev/null; then launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache); fi
cmake -S "$ROOT" -B "$BUILD" -DPBACKUP_FUZZ=ON -DCMAKE_BUILD_TYPE=Release -DCMAKE_CXX_COMPILER="$CXX" "${launcher[@]}" >/dev/null
cmake --build "$BUILD" -j "${FUZZ_JOBS:-2}" --target fuzz_targets >/dev/null

export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:allocator_may_return_null=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
mkdir -p "$BUILD/artifacts"
failed=()
for t in $TARGETS; do
  bin="$BUILD/$t"
  regress="$ROOT/tests/fuzz/regressions/$t"
  if [ -d "$regress" ] && [ -n "$(ls -A "$regress")" ]; then
    if ! "$bin" -rss_limit_mb=2048 -timeout=10 "$regress"/* >"$BUILD/artifacts/$t.replay.log" 2>&1; then
      echo "FAIL $t: a regression input crashes again (log: $BUILD/artifacts/$t.replay.log)" >&2
      tail -n 30 "$BUILD/artifacts/$t.replay.log" >&2
      failed+=("$t")
      continue
    fi
  fi
  work="$(mktemp -d "${TMPDIR:-/tmp}/pbackup-fuzz-$t.XXXXXX")"
  log="$BUILD/artifacts/$t.log"
  rc=0
  "$bin" -max_total_time="$SECS" -rss_limit_mb=2048 -timeout=10 -max_len=65536 -print_final_stats=1 \
    -artifact_prefix="$BUILD/artifacts/$t-" "$work" "$ROOT/tests/fuzz/corpus/$t" >"$log" 2>&1 || rc=$?
  rm -rf "$work"
  runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo "?")
  if [ "$rc" -ne 0 ]; then
    echo "FAIL $t (exit $rc after $runs runs; log: $log)" >&2
    tail -n 40 "$log" >&2
    failed+=("$t")
  else
    echo "ok   $t: $runs runs in ${SECS} s"
  fi
done
if [ "${#failed[@]}" -gt 0 ]; then
  echo "fuzzing FAILED: ${failed[*]}" >&2
  exit 1
fi
echo "fuzzing passed: $TARGETS"
