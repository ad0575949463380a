#!/usr/bin/env bash
# Cloud commit semantics under faults (issue 17), with a fault-injecting proxy
# (s3_fault_proxy.py, 127.0.0.1 only) in front of the project's S3 test server (Swift + s3api):
# a failed manifest PUT, a lost CompleteMultipartUpload answer, 503 on every 3rd request, a
# frozen server, a server that dies mid-upload, and two same-name backups at once on a server
# that honours If-None-Match. After each, the bucket listing (awscli, straight to the server)
# shows nothing of a failed run, or pbackup printed exactly what is left and cloud-cleanup
# removes it. Small data, 5 MiB parts, short timeouts.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/s3_server.sh"
s3_test_setup
export AWS_DEFAULT_REGION=us-east-1 PBACKUP_S3_STALL_SECONDS=2 PBACKUP_S3_RETRY_SECONDS=6 AWS_MAX_ATTEMPTS=3
PROXY_SCRIPT="$(dirname "$0")/s3_fault_proxy.py"

make_small_tree "$WORK/src"
head -c 12000000 /dev/urandom >"$WORK/src/random.bin"  # 3 parts of 5 MiB

PROXY_PID=
start_proxy() {
  rm -f "$WORK/proxy.port"
  "$PYTHON" "$PROXY_SCRIPT" "$WORK/proxy.port" "$S3_PORT" "$WORK/proxy.log" "$@" &
  PROXY_PID=$!
  for _ in $(seq 100); do [ -s "$WORK/proxy.port" ] && break; sleep 0.05; done
  [ -s "$WORK/proxy.port" ] || fail "the fault proxy did not start"
  PROXY="http://127.0.0.1:$(cat "$WORK/proxy.port")"
}
stop_proxy() {
  [ -n "$PROXY_PID" ] && { kill "$PROXY_PID" 2>/dev/null || true; wait "$PROXY_PID" 2>/dev/null || true; }
  PROXY_PID=
}
# backup through the proxy: backup_via N PREFIX [extra args]
backup_via() {
  local n=$1 prefix=$2
  shift 2
  local launcher=()
  [ "$n" -gt 1 ] && launcher=(mpirun --oversubscribe -n "$n")
  run_rc rc timeout 120 env AWS_ENDPOINT_URL="$PROXY" "${launcher[@]}" "$PBACKUP" backup --sources "$WORK/src" \
    --output-dir "s3://$B/$prefix" --algo gzip --name n --s3-part-mb 5 --block-mb 1 --no-progress "$@"
}
# The bucket as an independent client sees it: awscli if it is there, else curl (SigV4) for
# objects and pbackup cloud-cleanup --dry-run for uploads. Output like awscli's text: "None"
# when empty, "KEY<TAB>UPLOAD_ID" lines, keys separated by tabs.
if [ -z "${PBACKUP_TEST_NO_AWSCLI:-}" ] && command -v aws >/dev/null && aws --version >/dev/null 2>&1; then
  uploads_under() { aws s3api list-multipart-uploads --bucket "$B" --prefix "$1" --query 'Uploads[].[Key,UploadId]' --output text; }
  objects_under() { aws s3api list-objects-v2 --bucket "$B" --prefix "$1" --query 'Contents[].Key' --output text; }
  etag_of() { aws s3api head-object --bucket "$B" --key "$1" --query ETag --output text; }
  put_file() { aws s3api put-object --bucket "$B" --key "$1" --body "$2" >/dev/null; }
else
  s3_curl() {
    local user pass
    user=$("$PYTHON" -c 'import sys,urllib.parse as u; print(u.quote(sys.argv[1], safe=""))' "$S3_KEY")
    pass=$("$PYTHON" -c 'import sys,urllib.parse as u; print(u.quote(sys.argv[1], safe=""))' "$S3_SECRET")
    curl -sf --aws-sigv4 "aws:amz:us-east-1:s3" -H "x-amz-content-sha256: UNSIGNED-PAYLOAD" "$@" \
      "http://$user:$pass@${S3_ENDPOINT#http://}/$B${CURL_PATH:-}"
  }
  uploads_under() {
    local out
    out=$("$PBACKUP" cloud-cleanup --dry-run --source "s3://$B/$1" | sed -E "s|^would abort s3://$B/(.*) \(upload ([^,]*), started.*|\1\t\2|")
    echo "${out:-None}"
  }
  objects_under() {
    local out
    out=$(CURL_PATH="?list-type=2&prefix=${1//\//%2F}" s3_curl | grep -o "<Key>[^<]*</Key>" | sed -E 's|</?Key>||g' | paste -sd '\t')
    echo "${out:-None}"
  }
  etag_of() { CURL_PATH="/$1" s3_curl -I | tr -d '\r' | sed -n 's/^[Ee][Tt]ag: //p'; }
  put_file() { CURL_PATH="/$1" s3_curl -T "$2" >/dev/null; }
fi
assert_nothing_left() {  # PREFIX WHAT
  local u o
  u=$(uploads_under "$1")
  o=$(objects_under "$1")
  [ "$u" = None ] || [ -z "$u" ] || { show_last; fail "$2: multipart uploads left under $1: $u"; }
  [ "$o" = None ] || [ -z "$o" ] || { show_last; fail "$2: objects left under $1: $o"; }
}

for n in 1 2; do
  for split in "" "--split-chunk-mb 5"; do
    info "the manifest PUT fails ($n rank(s)${split:+, fragments}): every object of the run is deleted"
    start_proxy --fail-put-suffix .manifest.json
    # shellcheck disable=SC2086
    backup_via "$n" "man$n${split:+s}/" $split
    stop_proxy
    [ "$rc" -eq 2 ] || { show_last; fail "a failed manifest PUT: exit $rc, expected 2"; }
    grep -q "InternalError" "$WORK/last.err" || { show_last; fail "the manifest PUT's error is not shown"; }
    assert_nothing_left "man$n${split:+s}/" "failed manifest PUT"
    pass "failed manifest PUT ($n rank(s)${split:+, fragments}): exit 2, no object and no upload left"
  done
done
info "the manifest PUT's answers are lost (the server stored it): the manifest object is deleted too"
start_proxy --drop-put-suffix .manifest.json
backup_via 1 mandrop/
stop_proxy
[ "$rc" -eq 2 ] || { show_last; fail "lost manifest PUT answers: exit $rc, expected 2"; }
grep -q "^PUT /$B/mandrop/n.tar.gz.manifest.json -200" "$WORK/proxy.log" || fail "the proxy did not drop the manifest PUT's answer"
assert_nothing_left mandrop/ "lost manifest PUT answers"
pass "lost manifest PUT answers: exit 2, the stored manifest and every other object deleted"
grep -q "ua=pbackup/" "$WORK/proxy.log" || fail "requests carry no User-Agent: pbackup/VERSION"
grep -q "^PUT /$B/man1/n.tar.gz.manifest.json 500 .*ct=application/json" "$WORK/proxy.log" || fail "the manifest is not sent as application/json"
grep -q "^POST /$B/man1/n.tar.gz?uploads= .*ct=application/gzip" "$WORK/proxy.log" || fail "the archive is not typed application/gzip"
pass "User-Agent pbackup/VERSION; Content-Type application/json (manifest), application/gzip (archive)"

info "the CompleteMultipartUpload answer is lost: the retry recognises the object as ours"
start_proxy --drop-complete 1
backup_via 2 lost/
stop_proxy
[ "$rc" -eq 0 ] || { show_last; fail "a lost CompleteMultipartUpload answer: exit $rc"; }
grep -q "^POST /$B/lost/n.tar.gz?uploadId=.* -200" "$WORK/proxy.log" || fail "the proxy did not drop the answer"
expect_ok plain verify --source "s3://$B/lost/n.tar.gz"
[ "$(uploads_under lost/)" = None ] || fail "uploads left after a lost complete answer"
pass "lost CompleteMultipartUpload answer: exit 0, verify ok, no upload left"

info "503 SlowDown on every 3rd request: retried, the archive is whole"
start_proxy --every-nth-503 3
backup_via 2 slow/
stop_proxy
[ "$rc" -eq 0 ] || { show_last; fail "503 every 3rd request: exit $rc"; }
expect_ok plain verify --source "s3://$B/slow/n.tar.gz"
[ "$(uploads_under slow/)" = None ] || fail "uploads left after retried 503s"
pass "503 every 3rd request: exit 0, verify ok"

info "a frozen server (UploadPart never answered): bounded by PBACKUP_S3_STALL_SECONDS, upload aborted"
start_proxy --freeze-parts
t0=$SECONDS
backup_via 2 frozen/
stop_proxy
[ "$rc" -eq 2 ] || { show_last; fail "frozen server: exit $rc, expected 2"; }
((SECONDS - t0 < 40)) || fail "frozen server: took $((SECONDS - t0)) s"
grep -q "timed out" "$WORK/last.err" || { show_last; fail "frozen server: no timeout named"; }
[ "$(grep -c "error: .*timed out" "$WORK/last.err")" = 1 ] || { show_last; fail "frozen server: the error is printed more than once (once per rank?)"; }
assert_nothing_left frozen/ "frozen server"
pass "frozen server: exit 2 in $((SECONDS - t0)) s, nothing left"

info "the server dies mid-upload: pbackup names the upload left and how to remove it; cloud-cleanup removes it"
start_proxy --die-after-parts 1
backup_via 1 died/
stop_proxy
[ "$rc" -eq 2 ] || { show_last; fail "server died: exit $rc, expected 2"; }
left=$(uploads_under died/)
[ "$left" != None ] && [ -n "$left" ] || fail "expected the upload to be left in progress (the server is gone)"
id=$(echo "$left" | awk '{print $2}')
grep -q "multipart upload $id of s3://$B/died/n.tar.gz is left in progress" "$WORK/last.err" || { show_last; fail "pbackup did not name upload $id"; }
grep -q "pbackup cloud-cleanup --source 's3://$B/died/n.tar.gz'" "$WORK/last.err" || { show_last; fail "no cleanup command printed"; }
put_file died/keep.txt "$WORK/src/sub/b.txt"
expect_ok plain cloud-cleanup --source "s3://$B/died" --older-than 1h
[ "$(uploads_under died/)" != None ] || fail "cloud-cleanup --older-than 1h aborted a fresh upload"
expect_ok plain cloud-cleanup --source "s3://$B/di"  # a sibling prefix is not the folder
[ "$(uploads_under died/)" != None ] || fail "cloud-cleanup --source s3://$B/di aborted an upload of died/"
expect_ok plain cloud-cleanup --source "s3://$B/died/n.tar.gz"  # the command the failed run printed
grep -q "aborted s3://$B/died/n.tar.gz (upload $id" "$WORK/last.out" || { show_last; fail "cloud-cleanup as printed did not abort the upload"; }
[ "$(uploads_under died/)" = None ] || fail "cloud-cleanup left the upload"
[ "$(objects_under died/)" = died/keep.txt ] || fail "cloud-cleanup touched completed objects: $(objects_under died/)"
pass "server died: the upload left was named; cloud-cleanup (--older-than kept it, then aborted it) never touched objects"

info "two backups with the same name at once, on a server that honours If-None-Match (emulated by the proxy)"
start_proxy --conditional
twins=()
for i in 1 2; do
  (r=0; env AWS_ENDPOINT_URL="$PROXY" "$PBACKUP" backup --sources "$WORK/src" --output-dir "s3://$B/twin/" --algo gzip --name n \
    --s3-part-mb 5 --block-mb 1 --no-progress >"$WORK/twin$i.out" 2>"$WORK/twin$i.err" || r=$?; echo $r >"$WORK/twin$i.rc") &
  twins+=($!)
done
wait "${twins[@]}"
stop_proxy
r1=$(cat "$WORK/twin1.rc") r2=$(cat "$WORK/twin2.rc")
if ! { [ "$r1" = 0 ] && [ "$r2" = 2 ]; } && ! { [ "$r1" = 2 ] && [ "$r2" = 0 ]; }; then
  cat "$WORK"/twin*.err >&2
  fail "same-name backups at once: exits $r1 and $r2, expected one 0 and one 2"
fi
grep -q "already exists" "$WORK/twin1.err" "$WORK/twin2.err" || fail "the losing run did not say the archive exists"
expect_ok plain verify --source "s3://$B/twin/n.tar.gz"
[ "$(uploads_under twin/)" = None ] || fail "the losing run left its upload"
pass "same-name backups at once: one committed (verify ok), the other exit 2 'already exists', nothing left"

info "the part size grows to stay within the part limit (lowered to 2 for the test)"
run_rc rc env PBACKUP_TEST_S3_MAX_PARTS=2 "$PBACKUP" backup --sources "$WORK/src" --output-dir "s3://$B/grow" --algo gzip --name n \
  --s3-part-mb 5 --block-mb 1 --no-progress
[ "$rc" -eq 0 ] || { show_last; fail "part growth: exit $rc"; }
etag=$(etag_of grow/n.tar.gz)
[[ $etag == *-2\" ]] || fail "expected 2 parts (grown from 5 MiB: 3 parts), ETag $etag"
expect_ok plain verify --source "s3://$B/grow/n.tar.gz"
pass "part size grown: 2 parts instead of 3 of 5 MiB, verify ok"

info "no credentials: refused at setup, before the scan, said once (not once per rank)"
run_rc rc env -u AWS_ACCESS_KEY_ID -u AWS_SECRET_ACCESS_KEY AWS_SHARED_CREDENTIALS_FILE=/nonexistent AWS_CONFIG_FILE=/nonexistent \
  AWS_EC2_METADATA_DISABLED=true mpirun --oversubscribe -n 2 "$PBACKUP" backup --sources "$WORK/src" --output-dir "s3://$B/nocred/" \
  --algo gzip --no-progress --log-level info
[ "$rc" -ne 0 ] || fail "no credentials: exit 0"
[ "$(grep -c "no credentials" "$WORK/last.err")" = 1 ] || { show_last; fail "no credentials: expected exactly one error line"; }
! grep -q "scanned" "$WORK/last.err" "$WORK/last.out" || { show_last; fail "no credentials: the tree was scanned first"; }
pass "no credentials: one error line, before the scan"
