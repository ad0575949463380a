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
