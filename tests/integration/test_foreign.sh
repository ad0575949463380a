#!/usr/bin/env bash
# pbackup restores archives it did not write (no manifest: the libarchive streaming path):
# GNU tar --format=gnu / --format=posix (gzip), plain .tar and .tar.xz, GNU sparse files,
# bsdtar -czf / -cjf, Info-ZIP `zip -r -y` (symlinks stored as links), a zip without
# directory entries, and a tar whose members start with "./". Restores run with 1 and 2 ranks.
# `list` of foreign archives names exactly their members.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
setup_work

SRC="$WORK/src"
make_edge_tree "$SRC/edge"
A="$WORK/archives"
mkdir -p "$A"

# restore_and_compare ARCHIVE HOW ROOT_IN_RESTORE SOURCE_DIR [compare options]
n=0
restore_and_compare() {
  local arc=$1 how=$2 top=$3 src=$4
  shift 4
  n=$((n + 1))
  local r="$WORK/restore$n" rc
  mkdir -p "$r"
  info "restore $(basename "$arc") (ranks: $how)"
  if [ "$how" = plain ]; then
    run_rc rc run_pb restore --source "$arc" --restore-to "$r"
  else
    run_rc rc run_mpi "$how" restore --source "$arc" --restore-to "$r"
  fi
  if [ "$rc" -ne 0 ]; then show_last; fail "restore of $(basename "$arc") exited $rc"; fi
  assert_trees_equal "$src" "$r/$top" "$@"
  pass "$(basename "$arc") restored identically"
}

info "creating foreign archives"
tar -C "$SRC" --format=gnu -czf "$A/gnu.tgz" edge
tar -C "$SRC" --format=posix -czf "$A/posix.tar.gz" edge
tar -C "$SRC" --format=gnu -cf "$A/plain.tar" edge
tar -C "$SRC" --format=posix -cJf "$A/posix.tar.xz" edge
bsdtar -C "$SRC" -czf "$A/bsdtar.tar.gz" edge
bsdtar -C "$SRC" -cjf "$A/bsdtar.tar.bz2" edge
(cd "$SRC" && zip -q -r -y "$A/infozip.zip" edge 2>"$WORK/zip.err") || {
  cat "$WORK/zip.err" >&2
  fail "Info-ZIP zip failed"
}

# sparse files (GNU sparse 1.0 in pax, and old GNU sparse)
mkdir -p "$WORK/sp/sparse"
"$PYTHON" - "$WORK/sp/sparse" <<'PY'
import os, sys
d = sys.argv[1]
with open(os.path.join(d, "holes.bin"), "wb") as f:
    for i in range(4):
        f.seek(i * 1024 * 1024)
        f.write(b"data%d" % i * 1000)
    f.truncate(5 * 1024 * 1024)
with open(os.path.join(d, "tailhole.bin"), "wb") as f:
    f.write(b"head")
    f.truncate(3 * 1024 * 1024 + 5)
PY
find "$WORK/sp/sparse" -depth -exec touch -d '2006-06-06 06:06:06 UTC' {} +
tar -C "$WORK/sp" --sparse --format=posix -czf "$A/sparse_posix.tar.gz" sparse
tar -C "$WORK/sp" --sparse --format=gnu -czf "$A/sparse_gnu.tar.gz" sparse

# a zip without directory entries, and a tar with ./ prefixed members
mkdir -p "$WORK/sm"
make_small_tree "$WORK/sm/small"
(cd "$WORK/sm" && zip -q -r -y -D "$A/nodirs.zip" small)
tar -C "$WORK/sm/small" -czf "$A/dotslash.tar.gz" .

restore_and_compare "$A/gnu.tgz" plain edge "$SRC/edge"
restore_and_compare "$A/posix.tar.gz" 2 edge "$SRC/edge"
restore_and_compare "$A/plain.tar" 1 edge "$SRC/edge"
restore_and_compare "$A/posix.tar.xz" plain edge "$SRC/edge"
restore_and_compare "$A/bsdtar.tar.gz" 2 edge "$SRC/edge"
restore_and_compare "$A/bsdtar.tar.bz2" plain edge "$SRC/edge"
restore_and_compare "$A/infozip.zip" plain edge "$SRC/edge" --zip
restore_and_compare "$A/infozip.zip" 2 edge "$SRC/edge" --zip
restore_and_compare "$A/sparse_posix.tar.gz" plain sparse "$WORK/sp/sparse"
restore_and_compare "$A/sparse_gnu.tar.gz" 2 sparse "$WORK/sp/sparse"
# no directory entries: directories are created with default modes/times
restore_and_compare "$A/nodirs.zip" plain small "$WORK/sm/small" --zip --no-dir-mtime --no-dir-mode
# "./" members: the top entry is "." itself, so the restore dir's own mode/time may change
restore_and_compare "$A/dotslash.tar.gz" plain . "$WORK/sm/small" --no-root-meta

# `list` on foreign archives names exactly their members
for arc in gnu.tgz posix.tar.gz infozip.zip; do
  opt=""
  [ "$arc" = infozip.zip ] && opt=nofifo
  run_rc rc run_pb list --source "$A/$arc"
  [ "$rc" -eq 0 ] || { show_last; fail "list --source $arc exited $rc"; }
  normalize_list <"$WORK/last.out" | grep -vxF edge >"$WORK/l.got" || true
  tree_paths "$SRC/edge" edge "$opt" | grep -vxF edge | LC_ALL=C sort -u >"$WORK/l.want"
  if ! diff -u "$WORK/l.want" "$WORK/l.got" >"$WORK/l.diff"; then
    head -n 30 "$WORK/l.diff" >&2
    fail "list of $arc differs from the source tree"
  fi
  pass "list $arc: $(wc -l <"$WORK/l.got") members, as in the source tree"
done

pass "all foreign archives restored and listed"
