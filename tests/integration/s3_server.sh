# Sourced by the tests that need an S3 server (after lib.sh): starts OpenStack Swift + s3api on
# 127.0.0.1 with scripts/s3-start.sh, in a private state dir on free ports, with one bucket and a
# random secret, and stops and wipes it on exit. Exports S3_ENDPOINT S3_KEY S3_SECRET S3_BUCKETS
# and the AWS_* variables pbackup reads. A server that does not start is a failure.

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

# The opening of a test against the server: the binary checked, a private $WORK (wiped on exit
# with the server's state), the server started, its bucket in $B.
s3_test_setup() {
  require_pbackup
  WORK="$(mktemp -d "${TMPDIR:-/tmp}/pbackup-${TEST_NAME}.XXXXXX")"
  start_s3_server
  B=$S3_BUCKETS
}

start_s3_server() {
  read -r S3_PORT S3_BACKEND_PORT < <(pick_ports) || fail "no free ports on 127.0.0.1 for the S3 server"
  S3_ROOT=$(mktemp -d "${TMPDIR:-/tmp}/pbackup-s3test.XXXXXX")
  S3_KEY=test:tester
  S3_SECRET=testing-$RANDOM$RANDOM
  S3_BUCKETS=${S3_BUCKETS:-pbackup-test}
  export S3_PORT S3_BACKEND_PORT S3_ROOT S3_KEY S3_SECRET S3_BUCKETS
  trap s3_on_exit EXIT
  step "starting Swift + s3api on 127.0.0.1:$S3_PORT (state $S3_ROOT)"
  bash "$REPO_DIR/scripts/s3-start.sh" || fail "scripts/s3-start.sh failed: no S3 server"
  export S3_ENDPOINT="http://127.0.0.1:$S3_PORT"
  export AWS_ACCESS_KEY_ID="$S3_KEY" AWS_SECRET_ACCESS_KEY="$S3_SECRET" AWS_ENDPOINT_URL="$S3_ENDPOINT" AWS_REGION=us-east-1
}

s3_on_exit() {
  local rc=$?
  if ((rc != 0)) && [[ -d $S3_ROOT/run ]]; then
    echo "--- S3 server logs (last lines):" >&2
    tail -n 15 "$S3_ROOT"/run/*.log >&2 2>/dev/null || true
  fi
  step "stopping the S3 server"
  S3_WIPE=1 bash "$REPO_DIR/scripts/s3-stop.sh" || true
  if [ -n "${WORK:-}" ] && [ -d "$WORK" ]; then chmod -R u+rwx "$WORK" 2>/dev/null || true; rm -rf "$WORK"; fi
  if ((rc == 0)); then echo "PASS [$TEST_NAME]"; else echo "FAILED [$TEST_NAME] (exit $rc)" >&2; fi
  exit "$rc"
}
