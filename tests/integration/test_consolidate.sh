#!/usr/bin/env bash
# consolidate (issue 15): a synthetic full backup of the tree at an incremental level, built from
# the chain's archives without reading the live tree. A 3-level chain (content change, mtime
# reset, append, delete, add, renamed directory, chmod, symlink, hard link, xattr, a sparse file spanning blocks); consolidating
# level 3 gives an ordinary full backup (no chain, catalog level 0) that restores to the snapshot
# (1 and 3 ranks, byte-identical), GNU tar extracts, that is byte-identical to a full backup of
# the same tree state, verify accepts, and on which a next --incremental-from of the unchanged tree stores no
# file data; a missing level, a damaged block (naming level and member) and
# options it does not take are errors; a file damaged at backup time stays damaged.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
setup_work

SRC="$WORK/src"
OUT="$WORK/out"
mkdir -p "$SRC" "$OUT"
T="$SRC/tree"
mkdir -p "$T/deldir" "$T/olddir/sub" "$T/many"
echo "never changes" > "$T/same.txt"
echo "aaaa" > "$T/samesize.txt"
echo "bbbb" > "$T/reset.txt"
echo "line 1" > "$T/append.log"
echo x > "$T/deldir/x"
echo one > "$T/olddir/f1"; echo sub > "$T/olddir/sub/s"
echo "#!/bin/sh" > "$T/mode.sh"; chmod 644 "$T/mode.sh"
ln -s same.txt "$T/link"
head -c 3000000 /dev/urandom > "$T/big.bin"  # spans several 1 MiB blocks
for i in $(seq 1 60); do head -c 9000 /dev/urandom > "$T/many/f$i"; done
setfattr -n user.tag -v level1 "$T/same.txt" 2>/dev/null || true
truncate -s 30M "$T/sparse.img"  # holes; its data (2 MiB) spans blocks
dd if=/dev/urandom of="$T/sparse.img" bs=1M count=2 seek=10 conv=notrunc status=none

snap() { rm -rf "$WORK/snap$1"; mkdir -p "$WORK/snap$1"; cp -a "$T" "$WORK/snap$1/"; }
level() {  # level NAME [PREV]
  local args=(backup --sources "$T" --output-dir "$OUT" --algo gzip --block-mb 1 --name "$1" --no-progress)
  [ -n "${2:-}" ] && args+=(--incremental-from "$OUT/$2.tar.gz")
  expect_ok plain "${args[@]}"
}

level L1
sleep 0.05
# level 2: same-size content, mtime reset, append, delete a directory, add, chmod, hard link
echo "AAAA" > "$T/samesize.txt"
m=$(stat -c %y "$T/reset.txt"); echo "BBBB" > "$T/reset.txt"; touch -d "$m" "$T/reset.txt"
echo "line 2" >> "$T/append.log"
rm -rf "$T/deldir"
echo new > "$T/added.txt"
chmod 755 "$T/mode.sh"
ln "$T/added.txt" "$T/hardlink"
# a level reads a stored file's xattrs and holes after dropping the unchanged ones (the scan
# leaves them out): the byte-identical check below catches a level that lost them
setfattr -n user.tag -v level2 "$T/append.log" 2>/dev/null || true
truncate -s 20M "$T/sparse2.img"
dd if=/dev/urandom of="$T/sparse2.img" bs=1M count=1 seek=5 conv=notrunc status=none
level L2 L1
sleep 0.05
# level 3: rename a directory (its files are carried under new names), change a block of many/
mv "$T/olddir" "$T/newdir"
head -c 9000 /dev/urandom > "$T/many/f7"
rm "$T/many/f8"
level L3 L2
snap 3

info "consolidate level 3 (1 rank and 3 ranks)"
expect_ok plain consolidate --source "$OUT/L3.tar.gz" --output-dir "$OUT" --name C1 --block-mb 1 --no-progress --json
grep -q '"command": *"consolidate"' "$WORK/last.out" || fail "consolidate --json does not name its command: $(cat "$WORK/last.out")"
expect_ok 3 consolidate --source "$OUT/L3.tar.gz" --output-dir "$OUT" --name C3 --block-mb 1 --no-progress
cmp "$OUT/C1.tar.gz" "$OUT/C3.tar.gz" || fail "1 and 3 ranks give different consolidated archives"
expect_ok plain verify --source "$OUT/C1.tar.gz"
python3 - "$OUT/C1.tar.gz.manifest.json" <<'PY' || fail "the consolidated manifest still names a chain"
import json, sys
m = json.load(open(sys.argv[1]))
sys.exit(1 if m.get("chain") else 0)
PY
pass "1 and 3 ranks byte-identical, no chain in the manifest"

info "restore of the consolidated archive equals the snapshot"
expect_ok 2 restore --source "$OUT/C1.tar.gz" --restore-to "$WORK/r1"
assert_trees_equal "$WORK/snap3/tree" "$WORK/r1/tree"
[ "$(stat -c %i "$WORK/r1/tree/added.txt")" = "$(stat -c %i "$WORK/r1/tree/hardlink")" ] || fail "hard link lost"
if getfattr -n user.tag "$T/same.txt" >/dev/null 2>&1; then
  [ "$(getfattr --only-values -n user.tag "$WORK/r1/tree/same.txt" 2>/dev/null)" = level1 ] || fail "xattr lost by consolidate"
fi
pass "restore equals the snapshot"

info "GNU tar extracts it"
mkdir -p "$WORK/gnu"
tar -xzf "$OUT/C1.tar.gz" -C "$WORK/gnu" || fail "GNU tar cannot extract the consolidated archive"
cmp "$WORK/gnu/tree/big.bin" "$T/big.bin" || fail "GNU tar: big.bin differs"
cmp "$WORK/gnu/tree/sparse.img" "$T/sparse.img" || fail "GNU tar: sparse.img differs"
cmp "$WORK/gnu/tree/newdir/sub/s" "$T/newdir/sub/s" || fail "GNU tar: renamed member differs"
pass "GNU tar extracts it"

info "byte-identical to a full backup of the same tree state"
expect_ok plain backup --sources "$T" --output-dir "$OUT" --algo gzip --block-mb 1 --name FULL --no-progress
cmp "$OUT/C1.tar.gz" "$OUT/FULL.tar.gz" || fail "the consolidated archive differs from a full backup of the same tree"
cmp "$OUT/C1.tar.gz.catalog.zst" "$OUT/FULL.tar.gz.catalog.zst" || fail "the consolidated catalog differs from a full backup's"
pass "archive and catalog byte-identical to a full backup"

info "a next level from the consolidated archive on the unchanged tree stores no file data"
expect_ok plain backup --sources "$T" --output-dir "$OUT" --algo gzip --name N1 --no-progress --incremental-from "$OUT/C1.tar.gz"
stored=$(tar -tvzf "$OUT/N1.tar.gz" | awk '$1 ~ /^-/ && $3 > 0' | grep -v -e ' tree/added.txt$' -e ' tree/hardlink' || true)
[ -z "$stored" ] || fail "the level after the consolidated archive stores file data: $stored"
pass "no file data stored (files with several links excepted, as for any level)"

info "a missing level is an error naming it"
mv "$OUT/L2.tar.gz" "$WORK/L2.tar.gz"
run_rc rc run_pb consolidate --source "$OUT/L3.tar.gz" --output-dir "$OUT" --name BAD --no-progress
mv "$WORK/L2.tar.gz" "$OUT/L2.tar.gz"
[ "$rc" -eq 2 ] || { show_last; fail "missing level: expected exit 2, got $rc"; }
grep -q "L2" "$WORK/last.err" || { show_last; fail "the error does not name the missing level"; }
[ ! -e "$OUT/BAD.tar.gz" ] || fail "an archive was left behind"
pass "missing level: exit 2 naming it"

info "a damaged block of a middle level is an error naming the level, its archive and a member"
cp "$OUT/L2.tar.gz" "$WORK/L2.good"
# the first data block of L2 (its manifest's first "block" record): flip a byte in its middle
python3 - "$OUT/L2.tar.gz" <<'PY'
import json, sys
a = sys.argv[1]
m = json.load(open(a + ".manifest.json"))
b = next(x for x in m["blocks"] if x.get("kind", "block") == "block")
with open(a, "r+b") as f:
    f.seek(b["offset"] + b["size"] // 2); c = f.read(1); f.seek(-1, 1); f.write(bytes([c[0] ^ 0xFF]))
PY
run_rc rc run_pb consolidate --source "$OUT/L3.tar.gz" --output-dir "$OUT" --name BAD3 --no-progress
cp "$WORK/L2.good" "$OUT/L2.tar.gz"
[ "$rc" -eq 2 ] || { show_last; fail "damaged level: expected exit 2, got $rc"; }
grep -q "level 1 ('L2.tar.gz')" "$WORK/last.err" && grep -q "checksum mismatch" "$WORK/last.err" && grep -q "tree/" "$WORK/last.err" ||
  { show_last; fail "the error does not name the level, its archive and a member"; }
[ ! -e "$OUT/BAD3.tar.gz" ] || fail "an archive was left behind"
pass "damaged block: exit 2 naming level 1, L2.tar.gz and the member"

info "a forged catalog (re-hashed in the manifest) claiming a huge file is refused before it sizes the plan"
FZ="$WORK/forged"; mkdir -p "$FZ"
cp "$OUT"/L1.tar.gz* "$OUT"/L2.tar.gz* "$FZ/"
tail -c +33 "$FZ/L2.tar.gz.catalog.zst" | zstd -dq > "$WORK/recs"
python3 - "$FZ/L2.tar.gz.catalog.zst" "$WORK/recs" "$FZ/L2.tar.gz.manifest.json" <<'PY2'
import hashlib, json, struct, subprocess, sys
cat, recs, man = sys.argv[1:]
head = bytes(open(cat, 'rb').read(32))
r = bytearray(open(recs, 'rb').read())
pos = 0
while pos < len(r):
    n = struct.unpack_from('<I', r, pos)[0]
    plen = struct.unpack_from('<I', r, pos + 4 + 84)[0]
    if r[pos + 4] == 0 and r[pos + 4 + 88:pos + 4 + 88 + plen] == b'tree/same.txt':  # level 0's file
        struct.pack_into('<Q', r, pos + 4 + 16, 1 << 50)  # its size: 1 PiB
    pos += 4 + n
data = head + subprocess.run(['zstd', '-q', '-c', '--check'], input=bytes(r), stdout=subprocess.PIPE, check=True).stdout
open(cat, 'wb').write(data)
text = open(man).read()
old = json.loads(text)['catalog']
text = text.replace('"size": %d, "sha256": "%s"' % (old['size'], old['sha256']),
                    '"size": %d, "sha256": "%s"' % (len(data), hashlib.sha256(data).hexdigest()))
open(man, 'w').write(text)
PY2
run_rc rc bash -c "ulimit -v 2000000; exec \"\$@\"" _ "$PBACKUP" consolidate --source "$FZ/L2.tar.gz" --output-dir "$FZ" --name BAD4 --no-progress
[ "$rc" -eq 2 ] && grep -q "level 0 ('L1.tar.gz'), member 'tree/same.txt': the catalog says it stores 1125899906842624 bytes" "$WORK/last.err" ||
  { show_last; fail "a forged catalog size: expected exit 2 naming level, archive and member"; }
[ ! -e "$FZ/BAD4.tar.gz" ] || fail "an archive was left behind"
pass "forged catalog size: exit 2 naming the member, no plan of 1 PiB"

info "a file damaged at backup time stays damaged (listed, not restored, exit 1 naming it)"
D="$WORK/dsrc/d"
mkdir -p "$D" "$WORK/dout"
echo keep > "$D/keep"; echo gone > "$D/gone"
PBACKUP_TEST_PAUSE_AFTER_SCAN=1 "$PBACKUP" backup --sources "$D" --output-dir "$WORK/dout" --name DA --no-progress 2>"$WORK/da.err" &
sleep 0.5; rm "$D/gone"; wait $! || true
grep -q '"d/gone"' "$WORK/dout/DA.tar.gz.manifest.json" || fail "setup: d/gone not damaged in DA"
run_rc rc run_pb consolidate --source "$WORK/dout/DA.tar.gz" --output-dir "$WORK/dout" --name DC --no-progress
[ "$rc" -eq 1 ] && grep -q "'d/gone': damaged at backup time in level 0" "$WORK/last.err" || { show_last; fail "damaged entry: expected exit 1 naming it"; }
grep -q '"damaged": \["d/gone"\]' "$WORK/dout/DC.tar.gz.manifest.json" || fail "the consolidated manifest does not list d/gone as damaged"
pass "damaged entry stays damaged"

info "options consolidate does not take are refused"
for bad in "--exclude x" "--encrypt-to age1x" "--algo zip" "--sources $T"; do
  run_rc rc run_pb consolidate --source "$OUT/L3.tar.gz" --output-dir "$OUT" --name BAD2 $bad
  [ "$rc" -eq 2 ] || { show_last; fail "consolidate $bad: expected exit 2, got $rc"; }
done
run_rc rc run_pb consolidate --output-dir "$OUT" --name BAD2
[ "$rc" -eq 2 ] && grep -q -- "--source is required" "$WORK/last.err" || { show_last; fail "no --source: expected exit 2 saying so"; }
[ ! -e "$OUT/BAD2.tar.gz" ] || fail "an archive was left behind"
pass "--exclude, --encrypt-to, --algo zip, --sources, no --source: exit 2"
