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

source "$(dirname "${BASH_SOURCE[0]}")/s3_server.sh"
start_s3_server

export S3_TEST_ENDPOINT="http://127.0.0.1:$S3_PORT"
export S3_TEST_KEY="$S3_KEY" S3_TEST_SECRET="$S3_SECRET" S3_TEST_BUCKET="$S3_BUCKETS"
step "running $S3_TESTS"
rc=0
timeout 300 "$S3_TESTS" "$@" || rc=$?
((rc == 0)) || fail "S3 client tests failed (exit $rc)"
step "done"
