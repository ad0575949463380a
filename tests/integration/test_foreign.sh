#!/usr/bin/env bash
# pbackup restores archives it did not write (no manifest): GNU tar --format=gnu / --format=posix
# (gzip), plain .tar and .tar.xz, GNU sparse files, bsdtar -czf / -cjf, and a tar whose members
# start with "./" stream through libarchive. Zips restore member by member in parallel from
# their central directory: Info-ZIP `zip -r -y` (symlinks stored as links), a zip without
# directory entries, one with an archive comment, Python's zip64 members with data
# descriptors, and a self-extractor whose offsets `zip -A` fixed; zips that path leaves to
# libarchive (bzip2 method, a stub before the members) still restore. Restores run with 1 and
# 2 ranks. `list` of foreign archives names exactly their members.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
setup_work

SRC="$WORK/src"
make_edge_tree "$SRC/edge"
A="$WORK/archives"
mkdir -p "$A"

# restore_and_compare ARCHIVE HOW ROOT_IN_RESTORE SOURCE_DIR [compare options]
# With EXPECT=parallel (zip member by member) or EXPECT=streamed (libarchive) in its
# environment, also checks which path restored the archive.
n=0
restore_and_compare() {
  local arc=$1 how=$2 top=$3 src=$4 expect=${EXPECT:-}
  shift 4
  n=$((n + 1))
  local r="$WORK/restore$n" rc
  mkdir -p "$r"
  info "restore $(basename "$arc") (ranks: $how${expect:+, expect $expect})"
  if [ "$how" = plain ]; then
    run_rc rc run_pb restore --source "$arc" --restore-to "$r" --log-level debug
  else
    run_rc rc run_mpi "$how" restore --source "$arc" --restore-to "$r" --log-level debug
  fi
  if [ "$rc" -ne 0 ]; then show_last; fail "restore of $(basename "$arc") exited $rc"; fi
  if [ "$expect" = parallel ]; then
    grep -q "zip members on $([ "$how" = plain ] && echo 1 || echo "$how") rank" "$WORK/last.err" ||
      { show_last; fail "$(basename "$arc") was not restored member by member"; }
  elif [ "$expect" = streamed ]; then
    grep -q "streaming the archive through libarchive" "$WORK/last.err" ||
      { show_last; fail "$(basename "$arc") was expected to stream through libarchive"; }
  fi
  assert_trees_equal "$src" "$r/$top" "$@"
  pass "$(basename "$arc") restored identically${expect:+ ($expect)}"
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

# zip variants: a comment after the end record; zip64 sizes with data descriptors (Python
# writing to a pipe cannot seek back); bzip2 members; bytes before the first member, with and
# without `zip -A` adjusting the offsets.
(cd "$WORK/sm" && zip -q -r -y "$A/comment.zip" small && echo "a comment after the directory" | zip -q -z "$A/comment.zip")
"$PYTHON" - "$WORK/sm" "$A/zip64_stream.zip" <<'PY'
import os, sys, zipfile
root, out = sys.argv[1], sys.argv[2]
class Pipe:  # write-only and unseekable, so zipfile uses data descriptors
    def __init__(self, f): self.f = f
    def write(self, b): return self.f.write(b)
    def flush(self): self.f.flush()
with open(out, "wb") as raw:
    with zipfile.ZipFile(Pipe(raw), "w", zipfile.ZIP_DEFLATED) as z:
        for d, dirs, files in os.walk(root):
            dirs.sort()
            for name in sorted(dirs + files):
                p = os.path.join(d, name)
                if os.path.islink(p) or not (os.path.isfile(p) or os.path.isdir(p)):
                    continue
                info = zipfile.ZipInfo.from_file(p, os.path.relpath(p, root))
                if os.path.isdir(p):
                    z.writestr(info, b"")
                    continue
                info.compress_type = zipfile.ZIP_DEFLATED
                with open(p, "rb") as src, z.open(info, "w", force_zip64=True) as dst:
                    dst.write(src.read())
PY
(cd "$WORK/sm" && zip -q -r -y -Z bzip2 "$A/bzip2_method.zip" small)
# a big member (inflated as a stream) whose output fills zlib's buffer exactly as the input ends
mkdir -p "$WORK/zeros/zeros"
head -c 20971521 /dev/zero >"$WORK/zeros/zeros/z.bin"
(cd "$WORK/zeros" && zip -q -r "$A/zeros.zip" zeros)
printf '#!/bin/sh\necho this stub stands for an unzip-sfx binary\nexit 0\n' >"$WORK/stub"
cat "$WORK/stub" "$A/comment.zip" >"$A/sfx_raw.zip"
cp "$A/sfx_raw.zip" "$A/sfx_fixed.zip"
zip -q -A "$A/sfx_fixed.zip"

EXPECT=parallel restore_and_compare "$A/comment.zip" 2 small "$WORK/sm/small" --zip
EXPECT=parallel restore_and_compare "$A/zip64_stream.zip" 2 small "$WORK/sm/small" --zip --exclude link
EXPECT=parallel restore_and_compare "$A/sfx_fixed.zip" plain small "$WORK/sm/small" --zip
EXPECT=parallel restore_and_compare "$A/zeros.zip" 2 zeros "$WORK/zeros/zeros" --zip
EXPECT=streamed restore_and_compare "$A/bzip2_method.zip" 2 small "$WORK/sm/small" --zip
EXPECT=streamed restore_and_compare "$A/sfx_raw.zip" plain small "$WORK/sm/small" --zip

restore_and_compare "$A/gnu.tgz" plain edge "$SRC/edge"
restore_and_compare "$A/posix.tar.gz" 2 edge "$SRC/edge"
restore_and_compare "$A/plain.tar" 1 edge "$SRC/edge"
restore_and_compare "$A/posix.tar.xz" plain edge "$SRC/edge"
restore_and_compare "$A/bsdtar.tar.gz" 2 edge "$SRC/edge"
restore_and_compare "$A/bsdtar.tar.bz2" plain edge "$SRC/edge"
EXPECT=parallel restore_and_compare "$A/infozip.zip" plain edge "$SRC/edge" --zip
EXPECT=parallel restore_and_compare "$A/infozip.zip" 2 edge "$SRC/edge" --zip
restore_and_compare "$A/sparse_posix.tar.gz" plain sparse "$WORK/sp/sparse"
restore_and_compare "$A/sparse_gnu.tar.gz" 2 sparse "$WORK/sp/sparse"
# no directory entries: directories are created with default modes/times
EXPECT=parallel restore_and_compare "$A/nodirs.zip" plain small "$WORK/sm/small" --zip --no-dir-mtime --no-dir-mode
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
