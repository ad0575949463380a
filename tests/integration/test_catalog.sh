#!/usr/bin/env bash
# The catalog (issue 13): BASE.EXT.catalog.zst beside every backup, listed with its SHA-256 in
# the manifest, equal to what the archive holds for any rank count (list --long against GNU
# tar tvf and against libarchive reading the archive alone), byte-identical for -n 1 and -n 3,
# its block/offset pointing at the entry's tar header (decoded here by Python from the layout
# in docs/format.md), read instead of the archive (list --long works with the archive's data
# damaged), refused when damaged or missing; find over several backups; plain list escapes
# control characters; usb_split carries the catalog beside its fragments.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
setup_work

SRC="$WORK/src"
make_edge_tree "$SRC/edge"
mkdir -p "$SRC/edge/big"
head -c 3000000 /dev/urandom > "$SRC/edge/big/needle.bin"   # spans blocks with --block-mb 1
touch "$SRC/edge/big/new
line"

# "mode owner size date time name..." -> the same without the owner column (tar prints ids,
# we print names) and with directories' trailing '/' as tar has it
strip_owner() { awk '{ $2=""; print }'; }

for spec in gzip:1 gzip:3 zstd:2 zip:1 zip:3; do
  algo=${spec%%:*} ranks=${spec##*:}
  ext="$(algo_ext "$algo")"
  out="$WORK/out_${algo}_$ranks"
  mkdir -p "$out"
  run_rc rc run_mpi "$ranks" backup --sources "$SRC/edge" --output-dir "$out" --algo "$algo" --name c --block-mb 1
  [ "$rc" -le 1 ] || fail "$algo -n $ranks backup exited $rc: $(cat "$WORK/last.err")"
  [ -s "$out/c.$ext.catalog.zst" ] || fail "$algo -n $ranks: no catalog beside the archive"
  want_sha="$("$PYTHON" -c 'import json,sys; print(json.load(open(sys.argv[1]))["catalog"]["sha256"])' "$out/c.$ext.manifest.json")"
  [ "$want_sha" = "$(sha256sum < "$out/c.$ext.catalog.zst" | cut -d' ' -f1)" ] || fail "$algo: manifest's catalog SHA-256 is not the file's"
  run_rc rc run_mpi "$ranks" list --long --source "$out/c.$ext"
  [ "$rc" -eq 0 ] || fail "$algo -n $ranks: list --long exited $rc: $(cat "$WORK/last.err")"
  cp "$WORK/last.out" "$WORK/cat_${algo}_$ranks.txt"
  # the same archive alone (no manifest, no catalog): list --long reads it through libarchive
  mkdir -p "$WORK/alone_$algo$ranks"
  cp "$out/c.$ext" "$WORK/alone_$algo$ranks/"
  run_rc rc run_pb list -l --source "$WORK/alone_$algo$ranks/c.$ext"
  [ "$rc" -eq 0 ] || fail "$algo: list -l of the archive alone exited $rc"
  diff <(strip_owner < "$WORK/cat_${algo}_$ranks.txt") <(strip_owner < "$WORK/last.out") >&2 ||
    fail "$algo -n $ranks: the catalog's list --long differs from the archive's (libarchive)"
  if [ "$algo" != zip ]; then
    # GNU tar's own listing (it escapes names as we do; owners are numeric in our headers)
    diff <(strip_owner < "$WORK/cat_${algo}_$ranks.txt") <(tar -tvf "$out/c.$ext" | strip_owner) >&2 ||
      fail "$algo -n $ranks: the catalog's list --long differs from tar tvf"
  fi
done
cmp "$WORK/out_gzip_1/c.tar.gz.catalog.zst" "$WORK/out_gzip_3/c.tar.gz.catalog.zst" || fail "catalog differs between -n 1 and -n 3"
cmp "$WORK/out_zip_1/c.zip.catalog.zst" "$WORK/out_zip_3/c.zip.catalog.zst" || fail "zip catalog differs between -n 1 and -n 3"
pass "catalog == archive (tar tvf, libarchive) for gzip/zstd/zip at -n 1/2/3; byte-identical across rank counts"

# the documented layout, decoded independently; each tar entry's (block, offset) is its header
zstd -q -dc < <(tail -c +33 "$WORK/out_gzip_3/c.tar.gz.catalog.zst") > "$WORK/records.bin"
"$PYTHON" - "$WORK/out_gzip_3/c.tar.gz.catalog.zst" "$WORK/records.bin" "$WORK/out_gzip_3/c.tar.gz" "$WORK/out_gzip_3/c.tar.gz.manifest.json" <<'PY' || fail "catalog layout / block offsets wrong"
import json, struct, sys, zlib
head = open(sys.argv[1], 'rb').read(32)
magic, version, flags, count, raw = struct.unpack('<8sIIQQ', head)
assert magic == b'PBKCATLG' and version == 2 and flags == 0, head
recs = open(sys.argv[2], 'rb').read()
assert len(recs) == raw, (len(recs), raw)
man = json.load(open(sys.argv[4]))
blocks = [b for b in man['blocks'] if b['kind'] == 'block']
arch = open(sys.argv[3], 'rb').read()
cache = {}
pos = n = checked = 0
while pos < len(recs):
    (length,) = struct.unpack_from('<I', recs, pos)
    body = recs[pos + 4: pos + 4 + length]
    typ, fl, _, mode, uid, gid, size, mtime, nsec, block, off = struct.unpack_from('<BBHIIIQqIQQ', body, 0)
    at = 84  # version 2: ctime, dev, ino, level after the 52 bytes of version 1; then 5 names (the last: member)
    names = []
    for _ in range(5):
        (l,) = struct.unpack_from('<I', body, at); at += 4
        names.append(body[at:at + l]); at += l
    assert at == length
    path = names[0].decode('utf-8', 'surrogateescape')
    if off != 2**64 - 1:
        if block not in cache:
            b = blocks[block]
            cache[block] = zlib.decompress(arch[b['offset']:b['offset'] + b['size']], 31)
        hdr = cache[block][off:off + 512]
        pax = b''
        if hdr[156:157] == b'x':  # a pax header first: it may name the entry; the ustar header follows
            plen = int(hdr[124:136].strip(b'\0 ') or b'0', 8)
            pax = cache[block][off + 512: off + 512 + plen]
            start = off + 512 + (plen + 511) // 512 * 512
            hdr = cache[block][start:start + 512]
        assert hdr[257:262] == b'ustar', (path, hdr[:100])
        if b' path=' in pax:
            assert b' path=' + names[0] + b'\n' in pax or b' path=' + names[0] + b'/\n' in pax, (path, pax[:200])
        else:
            name = hdr[345:500].rstrip(b'\0') + b'/' + hdr[0:100].rstrip(b'\0') if hdr[345] else hdr[0:100].rstrip(b'\0')
            assert name.rstrip(b'/') == names[0], (path, name)
        checked += 1
    pos += 4 + length
    n += 1
assert n == count, (n, count)
assert checked == count, (checked, count)
print(f"{n} records, {checked} header offsets checked")
PY
pass "catalog byte layout as documented; every tar entry's block and offset land on its header"

# read instead of the archive: damage the archive's data (same size), list --long still answers
cp -r "$WORK/out_gzip_1" "$WORK/dam"
"$PYTHON" - "$WORK/dam/c.tar.gz" <<'PY'
import os, sys
f = open(sys.argv[1], 'r+b'); size = os.path.getsize(sys.argv[1]); f.seek(size // 2); f.write(b'\xff' * 4096)
PY
run_rc rc run_pb list --long --source "$WORK/dam/c.tar.gz"
[ "$rc" -eq 0 ] && cmp -s "$WORK/last.out" "$WORK/cat_gzip_1.txt" || fail "list --long needed the archive's data (exit $rc)"
run_rc rc run_pb list --source "$WORK/dam/c.tar.gz"
[ "$rc" -eq 2 ] || fail "plain list of a damaged archive exited $rc (it reads the archive)"
pass "list --long answers from the catalog alone"

# a damaged or missing catalog is refused, naming it
cp -r "$WORK/out_gzip_1" "$WORK/badcat"
"$PYTHON" - "$WORK/badcat/c.tar.gz.catalog.zst" <<'PY'
import sys
f = open(sys.argv[1], 'r+b'); f.seek(40); b = f.read(1); f.seek(40); f.write(bytes([b[0] ^ 1]))
PY
run_rc rc run_pb list -l --source "$WORK/badcat/c.tar.gz"
[ "$rc" -eq 2 ] && grep -q "catalog.*SHA-256" "$WORK/last.err" || fail "damaged catalog: exit $rc, $(cat "$WORK/last.err")"
[ ! -s "$WORK/last.out" ] || fail "damaged catalog: records were printed before the SHA-256 check"
rm "$WORK/badcat/c.tar.gz.catalog.zst"
run_rc rc run_pb list -l --source "$WORK/badcat/c.tar.gz"
[ "$rc" -eq 2 ] && grep -q "catalog" "$WORK/last.err" || fail "missing catalog: exit $rc, $(cat "$WORK/last.err")"
pass "a damaged (SHA-256) or missing catalog is an error naming it"

# plain list escapes control characters in names (one line per member)
run_rc rc run_pb list --source "$WORK/out_gzip_1/c.tar.gz"
grep -qx 'edge/big/new\\nline' "$WORK/last.out" || fail "plain list did not escape a newline: $(grep -n 'new' "$WORK/last.out")"
[ "$(wc -l < "$WORK/last.out")" -eq "$(wc -l < "$WORK/cat_gzip_1.txt")" ] || fail "plain list: not one line per member"
pass "plain list escapes newlines in names"

# usb_split: the catalog travels beside the fragments; list --long from the folder
mkdir -p "$WORK/usb"
run_rc rc run_mpi 2 backup --sources "$SRC/edge" --output-dir "$WORK/usb" --algo bzip2 --name u --dest-type usb_split --split-chunk-mb 1
[ "$rc" -le 1 ] || fail "usb_split backup exited $rc"
[ -s "$WORK/usb/u.tar.bz2.catalog.zst" ] || fail "usb_split: no catalog beside the fragments"
run_rc rc run_pb list -l --source "$WORK/usb"
[ "$rc" -eq 0 ] && [ "$(wc -l < "$WORK/last.out")" -eq "$(wc -l < "$WORK/cat_gzip_1.txt")" ] || fail "usb_split list -l: exit $rc"
pass "usb_split: catalog beside the fragments, list --long from the folder"

# find over several backups: folders and an archive, from catalogs only
run_rc rc run_pb find 'needle.*' --source "$WORK/out_gzip_1" "$WORK/usb" "$WORK/out_zip_3/c.zip"
[ "$rc" -eq 0 ] || fail "find exited $rc: $(cat "$WORK/last.err")"
want="$(printf '%s\t%s\n' "$WORK/out_gzip_1/c.tar.gz" edge/big/needle.bin "$WORK/usb/u.tar.bz2" edge/big/needle.bin "$WORK/out_zip_3/c.zip" edge/big/needle.bin)"
[ "$(cat "$WORK/last.out")" = "$want" ] || fail "find output:
$(cat "$WORK/last.out")
expected:
$want"
run_rc rc run_pb find 'edge/big' --source "$WORK/out_gzip_1"
[ "$(cat "$WORK/last.out")" = "$(printf '%s\t%s' "$WORK/out_gzip_1/c.tar.gz" edge/big)" ] || fail "anchored find: $(cat "$WORK/last.out")"
run_rc rc run_pb find 'nothing-like-this' --source "$WORK/out_gzip_1"
[ "$rc" -eq 1 ] || fail "find with no match exited $rc (expected 1, as grep)"
run_rc rc run_pb find '*.bin' --source "$WORK/alone_gzip1"
[ "$rc" -eq 2 ] || fail "find in a folder without backups exited $rc"
pass "find: several backups (folder, usb_split folder, zip archive), anchored patterns, no match -> 1"
