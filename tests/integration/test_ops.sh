#!/usr/bin/env bash
# Operations (issue 18): `pbackup --version` is CMakeLists' project(VERSION) (plus git describe)
# and the manifest records it.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
setup_work

# ---------------------------------------------------------------- --version
want=$(sed -n 's/^project(pbackup VERSION \([0-9.]*\).*/\1/p' "$REPO_DIR/CMakeLists.txt")
[ -n "$want" ] || fail "no project(VERSION) in CMakeLists.txt"
run_rc rc run_pb --version
[ "$rc" -eq 0 ] || { show_last; fail "pbackup --version: exit $rc"; }
ver=$(cat "$WORK/last.out")
case "$ver" in
  "pbackup $want" | "pbackup $want (git "*")") ;;
  *) fail "pbackup --version printed '$ver', expected 'pbackup $want[ (git ...)]'" ;;
esac
pass "--version: $ver"

make_small_tree "$WORK/src/tree"
mkdir -p "$WORK/out"
expect_ok plain backup --sources "$WORK/src/tree" --output-dir "$WORK/out" --name v --no-progress
got=$("$PYTHON" -c 'import json,sys; print(json.load(open(sys.argv[1]))["tool_version"])' "$WORK/out/v.tar.gz.manifest.json")
[ "pbackup $got" = "$ver" ] || fail "manifest tool_version '$got' is not the --version '${ver#pbackup }'"
pass "manifest tool_version: $got"

# ---------------------------------------------------------------- scripts/s3-*.sh stay in their dir
# s3-start.sh refuses (exit 2, nothing written) an S3_ROOT it did not create; s3-stop.sh with
# S3_WIPE=1 does not delete one. No server is started here.
mkdir -p "$WORK/site"
echo "site data" >"$WORK/site/keep.txt"
run_rc rc env S3_ROOT="$WORK/site" S3_PORT=1 S3_BACKEND_PORT=2 bash "$REPO_DIR/scripts/s3-start.sh"
[ "$rc" -eq 2 ] && grep -q "not created by this script" "$WORK/last.err" || { show_last; fail "s3-start.sh into a foreign S3_ROOT: exit $rc, want 2"; }
[ "$(ls -A "$WORK/site")" = keep.txt ] || fail "s3-start.sh wrote into a foreign S3_ROOT: $(ls -A "$WORK/site" | xargs)"
run_rc rc env S3_ROOT="$WORK/site" S3_WIPE=1 bash "$REPO_DIR/scripts/s3-stop.sh"
[ -f "$WORK/site/keep.txt" ] || fail "s3-stop.sh S3_WIPE=1 deleted a directory s3-start.sh did not create"
pass "s3-start.sh / s3-stop.sh leave a foreign S3_ROOT alone"
