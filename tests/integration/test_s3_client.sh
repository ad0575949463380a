#!/usr/bin/env bash
# The S3 client's tests (tests/s3/s3_client_test.cpp, built as pbackup_s3_tests) against a real
# S3 server: OpenStack Swift + s3api on 127.0.0.1, started here by scripts/s3-start.sh in a
# private state dir on free ports, with its own bucket, and stopped (and wiped) on exit.
# The test binary comes from $PBACKUP_S3_TESTS (default <repo>/build/pbackup_s3_tests).
# A missing binary or a server that does not start is a failure, not a skip. Extra arguments go
# to the doctest binary (e.g. -tc="multipart*").
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

S3_TESTS=${PBACKUP_S3_TESTS:-$REPO_DIR/build/pbackup_s3_tests}
[[ $S3_TESTS == /* ]] || S3_TESTS="$PWD/$S3_TESTS"
[[ -x $S3_TESTS ]] || fail "S3 test binary not found or not executable: $S3_TESTS (build the pbackup_s3_tests target or set PBACKUP_S3_TESTS=...)"

T0=$SECONDS
step() { echo "=== [$TEST_NAME] $* (t=$((SECONDS - T0))s)"; }

# free ports on loopback: the S3 port and 4 consecutive backend ports
port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
pick_ports() {
  local b p
  for b in $(seq 16210 100 19910); do
    p=$((b + 50))
    port_free "$p" && port_free "$b" && port_free $((b + 1)) && port_free $((b + 2)) &&
      port_free $((b + 3)) && { echo "$p $b"; return 0; }
  done
  return 1
}
read -r S3_PORT S3_BACKEND_PORT < <(pick_ports) || fail "no free ports on 127.0.0.1 for the S3 server"
S3_ROOT=$(mktemp -d "${TMPDIR:-/tmp}/pbackup-s3test.XXXXXX")
S3_KEY=test:tester
S3_SECRET=testing-$RANDOM$RANDOM
S3_BUCKETS=pbackup-test
export S3_PORT S3_BACKEND_PORT S3_ROOT S3_KEY S3_SECRET S3_BUCKETS

on_exit() {
  local rc=$?
  if ((rc != 0)) && [[ -d $S3_ROOT/run ]]; then
    echo "--- S3 server logs (last lines):" >&2
    tail -n 15 "$S3_ROOT"/run/*.log >&2 2>/dev/null || true
  fi
  step "stopping the S3 server"
  S3_WIPE=1 bash "$REPO_DIR/scripts/s3-stop.sh" || true
  if ((rc == 0)); then echo "PASS [$TEST_NAME]"; else echo "FAILED [$TEST_NAME] (exit $rc)" >&2; fi
  exit "$rc"
}
trap on_exit EXIT

step "starting Swift + s3api on 127.0.0.1:$S3_PORT (state $S3_ROOT)"
bash "$REPO_DIR/scripts/s3-start.sh" || fail "scripts/s3-start.sh failed: no S3 server"

export S3_TEST_ENDPOINT="http://127.0.0.1:$S3_PORT"
export S3_TEST_KEY="$S3_KEY" S3_TEST_SECRET="$S3_SECRET" S3_TEST_BUCKET="$S3_BUCKETS"
step "running $S3_TESTS"
rc=0
timeout 300 "$S3_TESTS" "$@" || rc=$?
((rc == 0)) || fail "S3 client tests failed (exit $rc)"
step "done"
