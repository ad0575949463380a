#!/usr/bin/env bash
# The libFuzzer targets (tests/fuzz/): builds them with clang into build-fuzz, replays the
# regression inputs and fuzzes each target for a few seconds (tests/fuzz/run.sh); fails on any
# crash, sanitizer report, leak or timeout.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
FUZZ_SECONDS="${FUZZ_SECONDS:-4}" bash "$ROOT/tests/fuzz/run.sh"
echo "PASS [test_fuzz]"
