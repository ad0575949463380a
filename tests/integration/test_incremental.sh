#!/usr/bin/env bash
# Incremental backups (issue 15): a chain of three levels made with --incremental-from, with
# every kind of change between them (content of the same size, content whose mtime was reset
# with touch (ctime catches it), append, deleted file and directory, added file, renamed
# directory, chmod, chown, a file replaced by a directory and by a symlink, new hard links).
# Each level is a standard archive GNU tar lists and holds only new and changed entries (and
# every directory); restore of each level equals a snapshot taken at that moment; list, list
# --long, find and compare go through the newest catalog; 1 and 3 ranks give byte-identical
# levels; a missing or altered middle level is an error naming it; a chain on usb_split.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
setup_work

SRC="$WORK/src"
OUT="$WORK/out"
mkdir -p "$SRC" "$OUT"
T="$SRC/tree"
mkdir -p "$T/deldir" "$T/olddir/f2" "$T/keepdir"
echo "never changes" > "$T/same.txt"
echo "aaaa" > "$T/samesize.txt"
echo "bbbb" > "$T/reset.txt"
echo "line 1" > "$T/append.log"
echo "doomed" > "$T/del.txt"
echo x > "$T/deldir/x"; echo y > "$T/deldir/y"
echo one > "$T/olddir/f1"; echo sub > "$T/olddir/f2/sub"; echo three > "$T/olddir/f3"
echo "#!/bin/sh" > "$T/mode.sh"; chmod 644 "$T/mode.sh"
echo owner > "$T/own.txt"
echo "was a file" > "$T/todir"
echo "was a file too" > "$T/tolink"
echo "linked" > "$T/hl_src"
echo kept > "$T/keepdir/k"
ln -s same.txt "$T/link"
head -c 300000 /dev/urandom > "$T/big.bin"
# enough files for several 1 MiB blocks over 3 ranks: unchanged records on both sides of the cuts
mkdir -p "$T/many"
for i in $(seq 1 240); do head -c 12000 /dev/urandom > "$T/many/f$i"; done

snap() { rm -rf "$WORK/snap$1"; mkdir -p "$WORK/snap$1"; cp -a "$T" "$WORK/snap$1/"; }

# level k: 1 rank, and the same level with 3 ranks (must be byte-identical)
level() {
  local k=$1; shift
  expect_ok plain backup --sources "$T" --output-dir "$OUT" --name "L$k" --block-mb 1 --no-progress "$@"
  expect_ok 3 backup --sources "$T" --output-dir "$WORK/n3" --name "L$k" --block-mb 1 --no-progress "$@"
  cmp "$OUT/L$k.tar.gz" "$WORK/n3/L$k.tar.gz" || fail "level $k: 1 and 3 ranks give different archives"
  cmp "$OUT/L$k.tar.gz.catalog.zst" "$WORK/n3/L$k.tar.gz.catalog.zst" || fail "level $k: 1 and 3 ranks give different catalogs"
  tar tzf "$OUT/L$k.tar.gz" > "$WORK/members$k" || fail "GNU tar cannot list level $k"
  info "level $k: $(grep -c "\"kind\": \"block\"" "$OUT/L$k.tar.gz.manifest.json") blocks, $(wc -l < "$WORK/members$k") members"
  snap "$k"
}
mkdir -p "$WORK/n3"
level 0
pass "level 0 (full)"

# ---- level 1: every kind of change ----
echo "AAAA" > "$T/samesize.txt"                       # same size, new content
cp -p "$T/reset.txt" "$WORK/ref"; echo "BBBB" > "$T/reset.txt"; touch -r "$WORK/ref" "$T/reset.txt"  # mtime reset
echo "line 2" >> "$T/append.log"
rm "$T/del.txt"
rm -r "$T/deldir"
echo "added" > "$T/new.txt"
mv "$T/olddir" "$T/newdir"
chmod 755 "$T/mode.sh"
chown 1234:4321 "$T/own.txt"
rm "$T/todir"; mkdir "$T/todir"; echo inside > "$T/todir/in"
rm "$T/tolink"; ln -s same.txt "$T/tolink"
ln "$T/hl_src" "$T/hl_new"
# 34 files grow by 40 KB: two blocks of changes, so kept records lie on both sides of a cut
for i in $(seq 1 240); do [ $((i % 7)) -ne 0 ] || head -c 40000 /dev/urandom >> "$T/many/f$i"; done
level 1 --incremental-from "$OUT/L0.tar.gz"
m="$WORK/members1"
for p in tree/samesize.txt tree/reset.txt tree/append.log tree/new.txt tree/newdir/ tree/mode.sh tree/own.txt tree/todir/in tree/tolink tree/hl_src tree/hl_new tree/keepdir/; do
  grep -qx "$p" "$m" || { cat "$m"; fail "level 1 lacks changed $p"; }
done
grep -qx tree/many/f7 "$m" || fail "level 1 lacks changed many/f7"
[ "$(grep -c '^tree/many/f' "$m")" -eq 34 ] || fail "level 1 stores $(grep -c '^tree/many/f' "$m") of many/, not the 34 changed"
# the renamed directory's files keep inode, size, mtime and ctime: the catalog points at level 0
for p in tree/same.txt tree/big.bin tree/link tree/keepdir/k tree/many/f1 tree/newdir/f1 tree/newdir/f2/sub tree/newdir/f3; do
  ! grep -qx "$p" "$m" || fail "level 1 stores unchanged $p"
done
grep -q '"chain": \[' "$OUT/L1.tar.gz.manifest.json" || fail "level 1 manifest names no chain"
pass "level 1 stores only what changed (GNU tar lists it; 1 and 3 ranks identical)"

# ---- level 2 (from a folder as PREV is not allowed to be ambiguous: use the archive) ----
echo "two" >> "$T/newdir/f1"
rm -r "$T/newdir/f2"
mv "$T/newdir" "$T/newdir2"   # renamed again: f3's data is still level 0's tree/olddir/f3
echo "added 2" > "$T/todir/second"
ln "$T/new.txt" "$T/new_hard"
chmod 600 "$T/same.txt"  # chmod only: stored again, content equal
level 2 --incremental-from "$OUT/L1.tar.gz"
grep -qx tree/same.txt "$WORK/members2" || fail "level 2 lacks chmod'ed same.txt"
grep -qx tree/newdir2/f1 "$WORK/members2" || fail "level 2 lacks changed newdir2/f1"
! grep -q 'f3$' "$WORK/members2" || fail "level 2 stores the twice-renamed f3"
! grep -qx tree/big.bin "$WORK/members2" || fail "level 2 stores unchanged big.bin"
pass "level 2"

# ---- restore every level: exactly its snapshot ----
for k in 0 1 2; do
  rm -rf "$WORK/r$k"; mkdir "$WORK/r$k"
  expect_ok plain restore --source "$OUT/L$k.tar.gz" --restore-to "$WORK/r$k"
  assert_trees_equal "$WORK/snap$k/tree" "$WORK/r$k/tree"
  rm -rf "$WORK/r$k"; mkdir "$WORK/r$k"
  expect_ok 3 restore --source "$OUT/L$k.tar.gz" --restore-to "$WORK/r$k"
  assert_trees_equal "$WORK/snap$k/tree" "$WORK/r$k/tree"
done
rm -rf "$WORK/r2"; mkdir "$WORK/r2"
expect_ok plain restore --json --source "$OUT/L2.tar.gz" --restore-to "$WORK/r2"
n=$(cd "$WORK/r2" && find tree | wc -l)
grep -q "\"entries\":$n," "$WORK/last.out" || fail "restore --json of level 2 does not count its $n entries: $(cat "$WORK/last.out")"
pass "restore of each level (1 and 3 ranks) equals its snapshot"

# --only through the chain: the selected paths, each from the archive holding its latest version
rm -rf "$WORK/ro"; mkdir "$WORK/ro"
expect_ok 2 restore --source "$OUT/L2.tar.gz" --restore-to "$WORK/ro" --only tree/newdir2 --only tree/big.bin
assert_trees_equal "$WORK/snap2/tree/newdir2" "$WORK/ro/tree/newdir2"
cmp "$WORK/snap2/tree/big.bin" "$WORK/ro/tree/big.bin" || fail "--only big.bin (level 0) differs"
[ ! -e "$WORK/ro/tree/same.txt" ] || fail "--only restored an unselected path"
run_rc rc run_pb restore --source "$OUT/L2.tar.gz" --restore-to "$WORK/ro" --only tree/deldir
[ "$rc" -eq 2 ] && grep -q "tree/deldir.*not found" "$WORK/last.err" || { show_last; fail "--only of a path deleted at level 2 not refused"; }
pass "restore --only through the chain"

# ---- list, list --long, find, compare through the newest catalog ----
expect_ok plain backup --sources "$T" --output-dir "$WORK" --name full --no-progress
expect_ok plain list --source "$OUT/L2.tar.gz"; sort "$WORK/last.out" > "$WORK/l2"
expect_ok plain list --source "$WORK/full.tar.gz"; sort "$WORK/last.out" > "$WORK/lf"
diff "$WORK/l2" "$WORK/lf" || fail "list of level 2 differs from a full backup's"
expect_ok plain list --long --source "$OUT/L2.tar.gz"; cp "$WORK/last.out" "$WORK/ll2"
expect_ok plain list --long --source "$WORK/full.tar.gz"
diff "$WORK/ll2" "$WORK/last.out" || fail "list --long of level 2 differs from a full backup's"
expect_ok plain list --json --source "$OUT/L2.tar.gz"
[ "$(grep -c '"path"' "$WORK/last.out")" -eq "$(wc -l < "$WORK/lf")" ] || fail "list --json of level 2 does not list the whole tree"
expect_ok plain find 'big.bin' --source "$OUT/L2.tar.gz"
grep -q 'tree/big.bin' "$WORK/last.out" || fail "find through level 2's catalog missed big.bin (stored in level 0)"
expect_ok plain compare --source "$OUT/L2.tar.gz" --against "$SRC"
pass "list, list --long, find, compare through the newest catalog"

# ---- a missing or altered middle level ----
mv "$OUT/L1.tar.gz.manifest.json" "$WORK/m1"
rm -rf "$WORK/rx"; mkdir "$WORK/rx"
run_rc rc run_pb restore --source "$OUT/L2.tar.gz" --restore-to "$WORK/rx"
[ "$rc" -eq 2 ] || fail "restore without level 1 exited $rc"
grep -q "L1.tar.gz.manifest.json.*missing" "$WORK/last.err" || { show_last; fail "missing level 1 not named"; }
[ -z "$(ls -A "$WORK/rx")" ] || fail "restore without level 1 wrote files"
sed 's/"entries"/"entries" /' "$WORK/m1" > "$OUT/L1.tar.gz.manifest.json"
run_rc rc run_pb restore --source "$OUT/L2.tar.gz" --restore-to "$WORK/rx"
[ "$rc" -eq 2 ] && grep -q "L1.tar.gz.manifest.json.*altered" "$WORK/last.err" || { show_last; fail "altered level 1 not refused"; }
mv "$WORK/m1" "$OUT/L1.tar.gz.manifest.json"
pass "a missing or altered middle level is an error naming it"

# ---- a forged previous catalog whose records name a level past the chain is refused ----
F="$WORK/forged"; mkdir -p "$F"
cp "$OUT"/L0.tar.gz* "$F/"
tail -c +33 "$F/L0.tar.gz.catalog.zst" | zstd -dq > "$WORK/recs"
"$PYTHON" - "$F/L0.tar.gz.catalog.zst" "$WORK/recs" "$F/L0.tar.gz.manifest.json" <<'PY'
import hashlib, json, struct, subprocess, sys
cat, recs, man = sys.argv[1:]
head = bytearray(open(cat, 'rb').read(32))
r = bytearray(open(recs, 'rb').read())
struct.pack_into('<I', r, 4 + 80, 7)   # record 0's level: 7, in a chain of 1
z = subprocess.run(['zstd', '-q', '-c', '--check'], input=bytes(r), stdout=subprocess.PIPE, check=True).stdout
data = bytes(head) + z
open(cat, 'wb').write(data)
text = open(man).read()
m = json.loads(text)
old = m['catalog']
text = text.replace('"size": %d, "sha256": "%s"' % (old['size'], old['sha256']),
                    '"size": %d, "sha256": "%s"' % (len(data), hashlib.sha256(data).hexdigest()))
open(man, 'w').write(text)
PY
run_rc rc run_pb backup --sources "$T" --output-dir "$F" --name f1 --no-progress --incremental-from "$F/L0.tar.gz"
[ "$rc" -eq 2 ] && grep -q "names level 7 of a chain of 1" "$WORK/last.err" || { show_last; fail "a forged level in PREV's catalog was not refused"; }
[ ! -e "$F/f1.tar.gz" ] || fail "a refused level left an archive"
pass "a previous catalog naming a level past its chain is refused"

# ---- a file damaged in a level (gone once the list was final) is not created by the chain restore ----
echo "changed for level 3" > "$T/reset.txt"
PBACKUP_TEST_PAUSE_AFTER_SCAN=3 timeout 60 "$PBACKUP" backup --sources "$T" --output-dir "$OUT" --name L3 \
  --incremental-from "$OUT/L2.tar.gz" --log-level info --no-progress >"$WORK/v.out" 2>"$WORK/v.err" &
pid=$!
for i in $(seq 1 400); do grep -q "entries unchanged since" "$WORK/v.err" && break; sleep 0.05; done
grep -q "entries unchanged since" "$WORK/v.err" || fail "level 3 did not report its unchanged entries"
rm "$T/reset.txt"
rc=0; wait "$pid" || rc=$?
[ "$rc" -eq 1 ] || fail "level 3 with a vanished file exited $rc: $(cat "$WORK/v.err")"
grep -q '"damaged": \["tree/reset.txt"\]' "$OUT/L3.tar.gz.manifest.json" || fail "level 3 does not list reset.txt as damaged"
rm -rf "$WORK/r3"; mkdir "$WORK/r3"
run_rc rc run_mpi 2 restore --source "$OUT/L3.tar.gz" --restore-to "$WORK/r3"
[ "$rc" -eq 2 ] && grep -q "reset.txt.*damaged" "$WORK/last.err" || { show_last; fail "damaged reset.txt not reported by the chain restore"; }
[ ! -e "$WORK/r3/tree/reset.txt" ] || fail "the chain restore created the damaged reset.txt"
cmp "$T/big.bin" "$WORK/r3/tree/big.bin" || fail "level 3 restore lost big.bin"
pass "a damaged file of a level is reported and not created"

# ---- usb_split chain ----
S="$WORK/split"; mkdir -p "$S"
expect_ok plain backup --sources "$T" --output-dir "$S" --name s0 --dest-type usb_split --split-chunk-mb 1 --no-progress
snap s0
echo "changed for split" > "$T/samesize.txt"; rm "$T/new_hard"
expect_ok plain backup --sources "$T" --output-dir "$S" --name s1 --dest-type usb_split --split-chunk-mb 1 --no-progress --incremental-from "$S"/s0.tar.gz
snap s1
for k in s0 s1; do
  rm -rf "$WORK/r$k"; mkdir "$WORK/r$k"
  expect_ok 2 restore --source "$S/$k.tar.gz" --restore-to "$WORK/r$k"
  assert_trees_equal "$WORK/snap$k/tree" "$WORK/r$k/tree"
done
pass "usb_split chain"

# ---- an encrypted chain (age): the previous level's catalog is read with --identity ----
if command -v age-keygen >/dev/null; then
  E="$WORK/enc"; mkdir -p "$E"
  age-keygen -o "$WORK/key.txt" 2>/dev/null
  pub=$(age-keygen -y "$WORK/key.txt")
  expect_ok 2 backup --sources "$T" --output-dir "$E" --name e0 --encrypt-to "$pub" --no-progress
  snap e0
  echo "changed for the encrypted level" > "$T/samesize.txt"; mv "$T/newdir2" "$T/newdir3"
  run_rc rc run_pb backup --sources "$T" --output-dir "$E" --name e1 --encrypt-to "$pub" --no-progress --incremental-from "$E/e0.tar.gz.age"
  [ "$rc" -eq 2 ] && grep -q "identity" "$WORK/last.err" || { show_last; fail "an encrypted PREV without --identity was not refused"; }
  # a plaintext level on an encrypted PREV would write every name of PREV into its plaintext catalog
  run_rc rc run_pb backup --sources "$T" --output-dir "$E" --name p1 --no-progress --incremental-from "$E/e0.tar.gz.age" --identity "$WORK/key.txt"
  [ "$rc" -eq 2 ] && grep -q "is encrypted: this level must be encrypted too" "$WORK/last.err" || { show_last; fail "a plaintext level on an encrypted PREV was not refused"; }
  [ ! -e "$E/p1.tar.gz" ] && [ ! -e "$E/p1.tar.gz.catalog.zst" ] || fail "a refused plaintext level left files"
  expect_ok 2 backup --sources "$T" --output-dir "$E" --name e1 --encrypt-to "$pub" --no-progress \
    --incremental-from "$E/e0.tar.gz.age" --identity "$WORK/key.txt"
  snap e1
  ! grep -q newdir3/f3 "$E/e1.tar.gz.manifest.json" || fail "plaintext manifest names a file"
  for k in e0 e1; do
    rm -rf "$WORK/r$k"; mkdir "$WORK/r$k"
    expect_ok 2 restore --source "$E/$k.tar.gz.age" --restore-to "$WORK/r$k" --identity "$WORK/key.txt"
    assert_trees_equal "$WORK/snap$k/tree" "$WORK/r$k/tree"
  done
  expect_ok plain list --source "$E/e1.tar.gz.age" --identity "$WORK/key.txt"
  grep -qx tree/newdir3/f3 "$WORK/last.out" || fail "list of the encrypted level misses newdir3/f3"
  pass "an encrypted chain"
fi

# ---- one inode at two paths: a source given inside another ----
# T2/sub/f is in level 0; level 1 backs up T2 and T2/sub, so sub/f shows the same inode with one
# link. It is no rename (T2/sub/f is still there): both paths must restore, with 1 and 3 ranks
# alike (each rank decides on the entries it scanned).
info "a source inside another: one inode at two paths"
O="$WORK/overlap"
mkdir -p "$O/T2/sub" "$O/d1" "$O/d3"
for i in $(seq 1 12); do echo "file $i" >"$O/T2/sub/f$i"; done
echo other >"$O/T2/g"
expect_ok plain backup --sources "$O/T2" --output-dir "$O/d1" --name o0 --no-progress
cp "$O/d1"/o0.* "$O/d3"/
expect_ok plain backup --sources "$O/T2" "$O/T2/sub" --output-dir "$O/d1" --name o1 --no-progress --incremental-from "$O/d1/o0.tar.gz"
expect_ok 3 backup --sources "$O/T2" "$O/T2/sub" --output-dir "$O/d3" --name o1 --no-progress --incremental-from "$O/d3/o0.tar.gz"
for d in d1 d3; do
  rm -rf "$O/r$d" && mkdir "$O/r$d"
  expect_ok plain restore --source "$O/$d/o1.tar.gz" --restore-to "$O/r$d"
  for i in $(seq 1 12); do
    [ "$(cat "$O/r$d/T2/sub/f$i" 2>/dev/null)" = "file $i" ] || fail "$d: T2/sub/f$i not restored from the level"
    [ "$(cat "$O/r$d/sub/f$i" 2>/dev/null)" = "file $i" ] || fail "$d: sub/f$i not restored from the level"
  done
done
cmp -s "$O/d1/o1.tar.gz" "$O/d3/o1.tar.gz" || fail "a source inside another: 1 and 3 ranks made different levels"
cmp -s "$O/d1/o1.tar.gz.catalog.zst" "$O/d3/o1.tar.gz.catalog.zst" || fail "a source inside another: 1 and 3 ranks made different catalogs"
pass "a source inside another: both paths restore, 1 and 3 ranks identical"
