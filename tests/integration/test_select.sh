#!/usr/bin/env bash
# Selection (issue 13): --exclude / --exclude-from globs (base names anywhere, `dir/` directories
# only, anchored patterns with '/', `**`), excluded directories not descended, --files-from
# (newline and --null lists, stdin, parent directories stored, listed directories whole, paths
# outside the roots warned about), --one-file-system with a tmpfs inside the tree, --dry-run
# writing nothing. Each with 1 rank and under mpirun -n 2 / -n 3; the archive's member list is
# read back with GNU tar.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
setup_work

T="$WORK/proj"
mkdir -p "$T"/{src/sub,build/obj,cache,a/cache,a/b/c,skip,docs}
echo main > "$T/src/main.c"
echo obj > "$T/src/main.o"
echo obj2 > "$T/src/sub/x.o"
echo keep > "$T/src/sub/x.c"
echo b > "$T/build/obj/y.o"
echo b > "$T/build/log"
echo c > "$T/cache/data"
echo c > "$T/a/cache/data"
echo f > "$T/a/cachefile"        # a file named like the excluded directory: kept ('cache/' is dirs only)
mkdir -p "$T/a/cache2"
echo d > "$T/a/b/c/deep.tmp"
echo d > "$T/a/b/c/deep.txt"
echo "line" > "$T/docs/readme"
# a socket inside an excluded directory: descending into it would warn (exit 1)
"$PYTHON" - "$T/skip/sock" <<'PY'
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.bind(sys.argv[1])
PY

# members of a tar archive, sorted, directories without their trailing '/'
members() { tar -tf "$1" | sed 's|/$||' | LC_ALL=C sort; }

cat > "$WORK/excludes" <<'EOF'
# build products
*.o

cache/
proj/build
**/c/*.tmp
skip/
EOF
expected="proj
proj/a
proj/a/b
proj/a/b/c
proj/a/b/c/deep.txt
proj/a/cache2
proj/a/cachefile
proj/docs
proj/docs/readme
proj/src
proj/src/main.c
proj/src/sub
proj/src/sub/x.c"

for ranks in 1 2 3; do
  out="$WORK/out_x$ranks"
  mkdir -p "$out"
  # half on the command line, half from the file: both add up
  run_rc rc run_mpi "$ranks" backup --sources "$T" --output-dir "$out" --algo gzip --name x \
    --exclude '*.o' --exclude 'cache/' --exclude-from "$WORK/excludes"
  [ "$rc" -eq 0 ] || fail "exclude backup (-n $ranks) exited $rc (a warning means the excluded directory was descended)"
  got="$(members "$out/x.tar.gz")"
  [ "$got" = "$expected" ] || fail "exclude (-n $ranks): members differ:
$(diff <(echo "$expected") <(echo "$got") || true)"
done
pass "--exclude / --exclude-from: base names, dirs only, anchored, **, comments; not descended; -n 1/2/3 agree"
cmp "$WORK/out_x1/x.tar.gz" "$WORK/out_x3/x.tar.gz" || fail "excluded archives differ between -n 1 and -n 3"

# an anchored pattern does not match the same name elsewhere; a leading '/' anchors too
out="$WORK/out_anch"
mkdir -p "$out"
run_rc rc run_pb backup --sources "$T" --output-dir "$out" --algo zstd --name a --exclude /proj/a/cache --exclude 'skip/'
[ "$rc" -eq 0 ] || fail "anchored exclude exited $rc"
grep -qx 'proj/cache/data' <<< "$(tar -tf "$out/a.tar.zst")" || fail "anchored /proj/a/cache also removed proj/cache"
grep -q '^proj/a/cache/' <<< "$(tar -tf "$out/a.tar.zst")" && fail "anchored /proj/a/cache not excluded"
pass "anchored patterns match only at their place"

# ---------------------------------------------------------------- --files-from
printf '%s\n' "$T/src/sub/x.c" "$T/a/b" "$T/a/b/c/deep.txt" "$WORK/elsewhere" "$T/docs/readme" > "$WORK/list"
echo outside > "$WORK/elsewhere"
expected_ff="proj
proj/a
proj/a/b
proj/a/b/c
proj/a/b/c/deep.tmp
proj/a/b/c/deep.txt
proj/docs
proj/docs/readme
proj/src
proj/src/sub
proj/src/sub/x.c"
for ranks in 1 3; do
  out="$WORK/out_ff$ranks"
  mkdir -p "$out"
  run_rc rc run_mpi "$ranks" backup --sources "$T" --output-dir "$out" --algo bzip2 --name f --files-from "$WORK/list"
  [ "$rc" -eq 1 ] || fail "--files-from with a path outside the roots: exit $rc, expected 1"
  grep -q "elsewhere" "$WORK/last.err" || fail "the path outside the roots is not named: $(cat "$WORK/last.err")"
  got="$(members "$out/f.tar.bz2")"
  [ "$got" = "$expected_ff" ] || fail "--files-from (-n $ranks): members differ:
$(diff <(echo "$expected_ff") <(echo "$got") || true)"
done
pass "--files-from: listed files, listed directory whole, parents stored, outside path warned"

# NUL-separated from stdin, relative paths, with excludes applied to listed names
mkdir -p "$WORK/out_null"
(cd "$WORK" && printf '%s\0' "proj/src/main.c" "proj/src/main.o" "proj/a/b/c/deep.txt" |
  run_mpi 2 backup --sources proj --output-dir "$WORK/out_null" --algo zip --name n --files-from - --null --exclude '*.o') ||
  fail "--files-from - --null backup failed"
got="$(unzip -Z1 "$WORK/out_null/n.zip" | sed 's|/$||' | LC_ALL=C sort)"
exp_null="proj
proj/a
proj/a/b
proj/a/b/c
proj/a/b/c/deep.txt
proj/src
proj/src/main.c"
[ "$got" = "$exp_null" ] || fail "--files-from - --null: members differ:
$(diff <(echo "$exp_null") <(echo "$got") || true)"
pass "--files-from - --null (stdin, NUL-separated, relative, with --exclude) under mpirun -n 2"

# a root given through a symlink, the list printed with resolved paths (as lfs find may)
ln -s "$T" "$WORK/plink"
mkdir -p "$WORK/out_real"
printf '%s\n' "$T/src/main.c" > "$WORK/list_real"
run_rc rc run_pb backup --sources "$WORK/plink" --output-dir "$WORK/out_real" --algo gzip --name r --files-from "$WORK/list_real"
[ "$rc" -eq 0 ] || fail "--files-from with resolved paths under a symlinked root: exit $rc: $(cat "$WORK/last.err")"
[ "$(members "$WORK/out_real/r.tar.gz")" = "$(printf 'plink\nplink/src\nplink/src/main.c')" ] ||
  fail "resolved paths: members $(members "$WORK/out_real/r.tar.gz")"
grep -q '^drwx.* plink/$' <<< "$(tar -tvf "$WORK/out_real/r.tar.gz")" || fail "the symlinked root is not stored as the directory the listed paths lie in"
pass "--files-from: resolved paths match a root given through a symlink"

# ---------------------------------------------------------------- --dry-run
out="$WORK/out_dry"
mkdir -p "$out"
run_rc rc run_mpi 2 backup --sources "$T" --output-dir "$out" --algo gzip --name d --dry-run \
  --exclude-from "$WORK/excludes"
[ "$rc" -eq 0 ] || fail "--dry-run exited $rc: $(cat "$WORK/last.err")"
[ -z "$(ls -A "$out")" ] || fail "--dry-run wrote into the output directory: $(ls -A "$out")"
got="$(sed 's|/$||' "$WORK/last.out" | LC_ALL=C sort)"
[ "$got" = "$(members "$WORK/out_x1/x.tar.gz")" ] || fail "--dry-run lists other paths than the backup stores:
$(diff <(members "$WORK/out_x1/x.tar.gz") <(echo "$got") || true)"
grep -q "13 entries would be stored (5 files, 8 directories, 0 other), 19 bytes" "$WORK/last.err" ||
  fail "--dry-run summary wrong: $(cat "$WORK/last.err")"
pass "--dry-run prints the selected paths, count and bytes, writes nothing"

# ---------------------------------------------------------------- --one-file-system
if mkdir -p "$T/mnt" && mount -t tmpfs -o size=1m pbackup-test "$T/mnt" 2>/dev/null; then
  trap 'umount "$T/mnt" 2>/dev/null || true; cleanup_work' EXIT
  echo inside > "$T/mnt/on_tmpfs"
  for ranks in 1 2; do
    out="$WORK/out_xdev$ranks"
    mkdir -p "$out"
    run_rc rc run_mpi "$ranks" backup --sources "$T" --output-dir "$out" --algo gzip --name m --one-file-system --exclude 'skip/'
    [ "$rc" -eq 0 ] || fail "--one-file-system exited $rc"
    grep -qx 'proj/mnt/' <<< "$(tar -tf "$out/m.tar.gz")" || fail "--one-file-system: the mount point itself is not stored"
    grep -q 'on_tmpfs' <<< "$(tar -tf "$out/m.tar.gz")" && fail "--one-file-system (-n $ranks) stored a file of the tmpfs"
  done
  mkdir -p "$WORK/out_xdev_off"
  run_pb backup --sources "$T" --output-dir "$WORK/out_xdev_off" --algo gzip --name m --exclude 'skip/'
  grep -q 'proj/mnt/on_tmpfs' <<< "$(tar -tf "$WORK/out_xdev_off/m.tar.gz")" || fail "without --one-file-system the tmpfs file is missing"
  umount "$T/mnt"
  pass "--one-file-system: a tmpfs inside the tree is stored as its mount point only (-n 1, -n 2)"
else
  info "SKIP --one-file-system: cannot mount a tmpfs here"
fi

# bad input: a missing --exclude-from file is fatal before anything is written
run_rc rc run_pb backup --sources "$T" --output-dir "$WORK/out_dry" --algo gzip --name e --exclude-from "$WORK/nope"
[ "$rc" -eq 2 ] && grep -q "nope" "$WORK/last.err" || fail "missing --exclude-from file: exit $rc, $(cat "$WORK/last.err")"
pass "a missing --exclude-from file is an error naming it"
