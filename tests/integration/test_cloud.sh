#!/usr/bin/env bash
# The cloud destination against a real S3 server on 127.0.0.1 (Swift + s3api): a tree with
# large files backed up at 1 and 2 ranks into one multipart object (parts from both ranks) and
# into fragment objects; the object fetched with plain curl is a valid archive; list, verify and
# restore (parallel, and --only) read s3:// directly; an age-encrypted backup's object is the
# encrypted file backup's bytes and restores from s3://; wrong secret and unreachable endpoint fail
# clearly within bounded time; an interrupted upload leaves no archive object.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/s3_server.sh"
s3_test_setup

make_small_tree "$WORK/src"
head -c 9000000 /dev/urandom >"$WORK/src/random.bin"          # parts: 5 MiB each, from both ranks
"$PYTHON" -c "import sys; open(sys.argv[1],'w').write('line of text\n' * 700000)" "$WORK/src/text.txt"

s3_get() {  # plain curl with SigV4, as a user would (credentials in the URL: the key has a ':')
  local user pass
  user=$("$PYTHON" -c 'import sys,urllib.parse as u; print(u.quote(sys.argv[1], safe=""))' "$S3_KEY")
  pass=$("$PYTHON" -c 'import sys,urllib.parse as u; print(u.quote(sys.argv[1], safe=""))' "$S3_SECRET")
  curl -sf --aws-sigv4 "aws:amz:us-east-1:s3" -H "x-amz-content-sha256: UNSIGNED-PAYLOAD" \
    "http://$user:$pass@${S3_ENDPOINT#http://}/$B/$1" -o "$2"
}

for n in 1 2; do
  for algo in gzip zip; do
    ext=$(algo_ext "$algo")
    info "$algo at $n rank(s) into one multipart object"
    expect_ok "$n" backup --sources "$WORK/src" --output-dir "s3://$B/proj$n" --algo "$algo" --name a \
      --s3-part-mb 5 --block-mb 1 --no-progress
    s3_get "proj$n/a.$ext" "$WORK/a$n.$ext" || fail "curl cannot fetch s3://$B/proj$n/a.$ext"
    if [ "$algo" = zip ]; then unzip -tq "$WORK/a$n.$ext" >/dev/null || fail "unzip -t rejects the object"
    else gzip -t "$WORK/a$n.$ext" && tar -tzf "$WORK/a$n.$ext" >/dev/null || fail "the object is not a valid tar.gz"; fi
    expect_ok plain backup --sources "$WORK/src" --output-dir "$WORK" --algo "$algo" --name local$n --block-mb 1 --no-progress
    cmp "$WORK/a$n.$ext" "$WORK/local$n.$ext" || fail "the object differs from the same backup written to a file"
    s3_get "proj$n/a.$ext.sha256" "$WORK/a.$ext.sha256" || fail "no .sha256 object beside s3://$B/proj$n/a.$ext"
    cp "$WORK/a$n.$ext" "$WORK/a.$ext"
    (cd "$WORK" && sha256sum -c --quiet "a.$ext.sha256") || fail "sha256sum -c rejects the object"
    [ "$(cut -c1-64 "$WORK/a.$ext.sha256")" = "$(cut -c1-64 "$WORK/local$n.$ext.sha256")" ] || fail "the object's SHA-256 differs from the file backup's"
    expect_ok plain list --source "s3://$B/proj$n/a.$ext"
    grep -q "^src/sub/data.txt$" "$WORK/last.out" || fail "list of s3:// misses a member"
    expect_ok "$n" verify --source "s3://$B/proj$n/a.$ext"
    expect_ok "$n" restore --source "s3://$B/proj$n/a.$ext" --restore-to "$WORK/r-$algo-$n"
    if [ "$algo" = zip ]; then compare_trees "$WORK/src" "$WORK/r-$algo-$n/src" --zip; else compare_trees "$WORK/src" "$WORK/r-$algo-$n/src"; fi
    pass "$algo at $n rank(s): object = file archive, curl + peer tools, list, verify, restore"
  done
done

info "catalog: uploaded beside the archive; list --long and find read it from s3://"
s3_get "proj1/a.tar.gz.catalog.zst" "$WORK/a1.catalog" || fail "no catalog object beside s3://$B/proj1/a.tar.gz"
cmp "$WORK/a1.catalog" "$WORK/local1.tar.gz.catalog.zst" || fail "the catalog object differs from the file backup's catalog"
expect_ok plain list --long --source "$WORK/local1.tar.gz"
cp "$WORK/last.out" "$WORK/long_local"
expect_ok plain list --long --source "s3://$B/proj1/a.tar.gz"
cmp "$WORK/last.out" "$WORK/long_local" || fail "list --long of s3:// differs from the file's"
expect_ok plain find 'data.txt' --source "s3://$B/proj1" "s3://$B/proj2/" "$WORK/local1.tar.gz"
[ "$(cat "$WORK/last.out")" = "$(printf 's3://%s/proj1/a.tar.gz\tsrc/sub/data.txt\ns3://%s/proj1/a.zip\tsrc/sub/data.txt\ns3://%s/proj2/a.tar.gz\tsrc/sub/data.txt\ns3://%s/proj2/a.zip\tsrc/sub/data.txt\n%s/local1.tar.gz\tsrc/sub/data.txt' "$B" "$B" "$B" "$B" "$WORK")" ] ||
  fail "find over s3:// prefixes and a file: $(cat "$WORK/last.out")"
pass "catalog object = file catalog; list --long and find (two s3:// prefixes and a file) from catalogs"

info "fragments as objects (--split-chunk-mb), restore --only from s3://"
expect_ok 2 backup --sources "$WORK/src" --output-dir "s3://$B/split" --algo zstd --name s --split-chunk-mb 2 --block-mb 1 --no-progress
s3_get "split/s.tar.zst.sha256" "$WORK/s.sha256" || fail "no checksum object"
[ "$(wc -l <"$WORK/s.sha256")" -ge 3 ] || fail "expected several fragment objects"
for f in $(awk '{print $2}' "$WORK/s.sha256"); do s3_get "split/$f" "$WORK/$f" || fail "cannot fetch fragment $f"; done
(cd "$WORK" && sha256sum -c --quiet s.sha256) || fail "fragment objects do not match their checksums"
cat "$WORK"/s.tar.zst.part* | zstd -dc | tar -tf - >/dev/null || fail "the fragments do not concatenate to a valid tar.zst"
expect_ok 2 verify --source "s3://$B/split/"
expect_ok plain list --source "s3://$B/split"   # no trailing slash: the prefix, as backup takes it
grep -q "^src/sub/b.txt$" "$WORK/last.out" || fail "list --source s3://$B/split (no slash) misses a member"
expect_ok 2 restore --source "s3://$B/split/s.tar.zst" --restore-to "$WORK/r-only" --only src/sub/b.txt
cmp "$WORK/src/sub/b.txt" "$WORK/r-only/src/sub/b.txt" || fail "--only from s3 restored wrong data"
[ ! -e "$WORK/r-only/src/random.bin" ] || fail "--only restored more than asked"
pass "fragment objects, sha256sum -c, verify, restore --only"

info "age-encrypted, 2 ranks, multipart: the object is the file backup's .age (same seed); restore and --only from s3://"
age-keygen -o "$WORK/age.key" 2>/dev/null
apub=$(age-keygen -y "$WORK/age.key")
export PBACKUP_TEST_AGE_SEED=cloud
expect_ok 2 backup --sources "$WORK/src" --output-dir "s3://$B/enc" --name e --encrypt-to "$apub" \
  --s3-part-mb 5 --block-mb 1 --no-progress
expect_ok plain backup --sources "$WORK/src" --output-dir "$WORK" --name e --encrypt-to "$apub" --block-mb 1 --no-progress
unset PBACKUP_TEST_AGE_SEED
s3_get "enc/e.tar.gz.age" "$WORK/e-s3.tar.gz.age" || fail "curl cannot fetch s3://$B/enc/e.tar.gz.age"
cmp "$WORK/e-s3.tar.gz.age" "$WORK/e.tar.gz.age" || fail "the encrypted object differs from the encrypted file backup"
age -d -i "$WORK/age.key" "$WORK/e-s3.tar.gz.age" | tar -tzf - >/dev/null || fail "age -d | tar cannot read the object"
expect_ok 2 restore --source "s3://$B/enc/e.tar.gz.age" --restore-to "$WORK/r-enc" --identity "$WORK/age.key"
compare_trees "$WORK/src" "$WORK/r-enc/src"
expect_ok 2 restore --source "s3://$B/enc/e.tar.gz.age" --restore-to "$WORK/r-enc-only" --identity "$WORK/age.key" --only src/sub/b.txt
cmp "$WORK/src/sub/b.txt" "$WORK/r-enc-only/src/sub/b.txt" || fail "--only from an encrypted s3 object restored wrong data"
pass "encrypted cloud backup: object = file, age CLI, restore, --only"

info "wrong secret and unreachable endpoint fail clearly within bounded time"
run_rc rc timeout 60 env AWS_SECRET_ACCESS_KEY=wrong-secret "$PBACKUP" backup --sources "$WORK/src" --output-dir "s3://$B/bad" --algo gzip --no-progress
assert_no_signal "$rc" "backup with a wrong secret"
[ "$rc" -eq 2 ] || { show_last; fail "wrong secret: exit $rc, expected 2"; }
grep -q "SignatureDoesNotMatch" "$WORK/last.err" || { show_last; fail "wrong secret: the server's error code is not shown"; }
! grep -q "wrong-secret" "$WORK/last.err" "$WORK/last.out" || fail "the secret appears in the output"
run_rc rc timeout 90 env AWS_ENDPOINT_URL=http://127.0.0.1:1 "$PBACKUP" list --source "s3://$B/proj1/a.tar.gz"
assert_no_signal "$rc" "unreachable endpoint"
[ "$rc" -eq 2 ] || { show_last; fail "unreachable endpoint: exit $rc, expected 2"; }
grep -qi "127.0.0.1:1" "$WORK/last.err" || { show_last; fail "unreachable endpoint: the endpoint is not named"; }
pass "bad credentials and unreachable endpoint"

info "an interrupted upload leaves no archive object"
mkdir -p "$WORK/big"
for i in 1 2 3 4; do head -c 60000000 /dev/urandom >"$WORK/big/r$i.bin"; done
mpirun --oversubscribe -n 2 "$PBACKUP" backup --sources "$WORK/big" --output-dir "s3://$B/killed" --algo bzip2 \
  --name k --threads 1 --s3-part-mb 5 --no-progress >"$WORK/kill.out" 2>&1 &
pid=$!
sleep 6
kill -TERM "$pid" 2>/dev/null || true
rc=0
wait "$pid" || rc=$?
[ "$rc" -ne 0 ] || fail "the interrupted backup exited 0 (it finished before the signal: make the data bigger)"
expect_ok plain list --source "s3://$B/proj1/a.tar.gz"   # the server is fine
run_rc rc "$PBACKUP" list --source "s3://$B/killed/k.tar.bz2"
[ "$rc" -ne 0 ] || fail "an archive object exists after an interrupted upload"
# the interrupted run aborted its multipart upload (DESIGN.md §7): none is left in progress
# (ListMultipartUploads; the query parameters sorted, as SigV4 signs them and curl does not)
s3_list_uploads() {
  local user pass
  user=$("$PYTHON" -c 'import sys,urllib.parse as u; print(u.quote(sys.argv[1], safe=""))' "$S3_KEY")
  pass=$("$PYTHON" -c 'import sys,urllib.parse as u; print(u.quote(sys.argv[1], safe=""))' "$S3_SECRET")
  curl -sf --aws-sigv4 "aws:amz:us-east-1:s3" -H "x-amz-content-sha256: UNSIGNED-PAYLOAD" \
    "http://$user:$pass@${S3_ENDPOINT#http://}/$B?prefix=$1&uploads=" -o "$2"
}
s3_list_uploads "killed%2F" "$WORK/uploads.xml" || fail "cannot list multipart uploads"
grep -q "<ListMultipartUploadsResult" "$WORK/uploads.xml" || { cat "$WORK/uploads.xml" >&2; fail "no multipart upload listing"; }
if grep -q "<UploadId>" "$WORK/uploads.xml"; then
  cat "$WORK/uploads.xml" >&2; cat "$WORK/kill.out" >&2
  fail "the interrupted backup left its multipart upload in progress"
fi
grep -q "interrupted by SIGTERM" "$WORK/kill.out" || { cat "$WORK/kill.out" >&2; fail "the interrupted backup did not say so"; }
pass "interrupted upload (exit $rc) left no object and no multipart upload"
