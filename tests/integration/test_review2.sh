#!/usr/bin/env bash
# Adversarial review of xattrs/ACLs, sparse files, selection and catalogs (issues 12, 13):
# hostile archives must not crash, flood, write outside or through links; answers must be right.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
setup_work
cd "$WORK"

# ---------------------------------------------------------------- hostile xattr records
"$PYTHON" - <<'PY'
import tarfile, io
def add(t, name, pax, data=b'x', typ=tarfile.REGTYPE, link='', uname='root'):
    ti = tarfile.TarInfo(name); ti.type = typ; ti.linkname = link; ti.uname = uname
    ti.size = len(data) if typ == tarfile.REGTYPE else 0
    ti.pax_headers = pax; ti.mode = 0o644; ti.mtime = 1
    t.addfile(ti, io.BytesIO(data) if typ == tarfile.REGTYPE else None)
with tarfile.open('xattrs.tar', 'w', format=tarfile.PAX_FORMAT) as t:
    add(t, 'd/a', {'SCHILY.xattr.user.ok': 'v1', 'SCHILY.xattr.user.%00nul': 'v', 'SCHILY.xattr.user/../x': 'v'})
    add(t, 'd/l', {'SCHILY.xattr.user.onlink': 'v'}, typ=tarfile.SYMTYPE, link='../target')
    add(t, 'd/m', {'SCHILY.xattr.user.many%d' % i: 'v' * 10 for i in range(3000)})
    add(t, 'd/evil', {}, uname='ev\nil\x1b[2J')
PY
echo keep >target
rc=0
"$PBACKUP" restore --source xattrs.tar --restore-to r1 2>err1 || rc=$?
[ "$rc" -le 1 ] || fail "restore of hostile xattr records: exit $rc"
[ "$(getfattr --only-values -n user.ok r1/d/a 2>/dev/null)" = v1 ] || fail "user.ok not restored beside hostile names"
getfattr -n user.onlink target >/dev/null 2>&1 && fail "an xattr of a symlink member went through the link"
n=$(grep -c 'user.many' err1 || true)
[ "$n" -le 10 ] || fail "$n warning lines for one file's refused attributes (one each; a hostile header floods)"
grep -q 'more extended attributes not restored' err1 || fail "no summary line for the refused attributes"
pass "hostile xattr records: restored what fits, link not followed, $n warning lines for ~3000 refused"

# list --long of a foreign archive: a uname with a newline and an escape sequence stays on its line
"$PBACKUP" list --long --source xattrs.tar >list.txt
[ "$(wc -l <list.txt)" -eq 4 ] || { cat list.txt; fail "list --long: a uname with a newline broke the one-line-per-entry output"; }
grep -q $'\x1b' list.txt && fail "list --long printed an escape sequence from a uname"
pass "list --long: owner names escaped"

# ---------------------------------------------------------------- compare and symlinks
# A directory of the live tree swapped for a symlink to an identical copy elsewhere: compare
# (and --checksum) must not judge its files through the link.
mkdir -p cmp/src/d cmp/out cmp/elsewhere
echo hello >cmp/src/d/f
"$PBACKUP" backup --sources cmp/src --output-dir cmp/out --name c --algo gzip --no-progress 2>/dev/null
cp -a cmp/src/d/f cmp/elsewhere/f
mv cmp/src/d cmp/src/d.real
ln -s ../elsewhere cmp/src/d
rc=0
"$PBACKUP" compare --source cmp/out/c.tar.gz --checksum >cmp.txt 2>&1 || rc=$?
[ "$rc" -eq 1 ] || { cat cmp.txt; fail "compare: exit $rc"; }
grep -q '^src/d/f: missing on disk' cmp.txt || { cat cmp.txt; fail "compare judged src/d/f through a symlinked directory"; }
pass "compare: no symlink followed below the root"

# A symlink given as the source root (followed, stored under the link's name): compare finds it.
mkdir -p lroot/real/x lroot/out
echo a >lroot/real/x/y
ln -s real lroot/link
"$PBACKUP" backup --sources lroot/link --output-dir lroot/out --name r --algo gzip --no-progress 2>/dev/null
rc=0
"$PBACKUP" compare --source lroot/out/r.tar.gz --checksum >cmp2.txt 2>&1 || rc=$?
[ "$rc" -eq 0 ] || { cat cmp2.txt; fail "compare of a backup of a symlinked root: exit $rc (expected 0, identical)"; }
echo b >lroot/real/x/y
rc=0
"$PBACKUP" compare --source lroot/out/r.tar.gz >cmp2.txt 2>&1 || rc=$?
[ "$rc" -eq 1 ] && grep -q '^link/x/y: ' cmp2.txt || { cat cmp2.txt; fail "compare of a symlinked root missed a change (exit $rc)"; }
echo new >lroot/real/x/added
rc=0
"$PBACKUP" compare --source lroot/out/r.tar.gz >cmp2.txt 2>&1 || rc=$?
grep -q '^link/x/added: new' cmp2.txt || { cat cmp2.txt; fail "compare of a symlinked root: a new file below it not reported"; }
pass "compare: a symlinked source root is compared under its stored name"

# ---------------------------------------------------------------- --files-from is read in pieces
# /dev/zero as a newline list is one endless line: refused after 1 MiB, not read into memory
# until the machine runs out (the whole file was read before splitting).
mkdir -p fl/src fl/out
echo x >fl/src/f
rc=0
timeout 5 "$PBACKUP" backup --sources fl/src --files-from /dev/zero --output-dir fl/out --name z --dry-run 2>fl.err || rc=$?
[ "$rc" -eq 2 ] && grep -q 'an item longer than' fl.err || { cat fl.err; fail "--files-from /dev/zero: exit $rc (expected 2, item too long)"; }
printf 'fl/src/f\0\0fl/src/f\0' >fl.lst
"$PBACKUP" backup --sources fl/src --files-from fl.lst --null --output-dir fl/out --name z --dry-run >fl.out 2>&1
grep -qx 'src/f' fl.out || { cat fl.out; fail "--files-from --null lost a name"; }
pass "--files-from: bounded memory, NUL lists still read"

# ---------------------------------------------------------------- forged GNU sparse 1.0 maps
# A foreign sparse member whose map puts data past its realsize: archive_write_disk computes a
# negative length and writes from past the end of libarchive's buffer ("Bad address"); refused
# before it is handed over. Overlapping or unsorted maps and a 2^62 offset must not crash or hang.
"$PYTHON" - <<'PY'
import tarfile, io
def sparse(name, realsize, mp, data):
    body = mp.encode(); body += b'\0' * ((-len(body)) % 512); body += data
    ti = tarfile.TarInfo('GNUSparseFile.0/' + name); ti.size = len(body); ti.mode = 0o644
    ti.pax_headers = {'GNU.sparse.major': '1', 'GNU.sparse.minor': '0', 'GNU.sparse.name': name,
                      'GNU.sparse.realsize': str(realsize)}
    with tarfile.open(name + '.tar', 'w', format=tarfile.PAX_FORMAT) as t:
        t.addfile(ti, io.BytesIO(body))
sparse('past', 100, '1\n200\n10\n', b'c' * 10)
sparse('overlap', 100, '2\n0\n10\n5\n10\n', b'a' * 20)
sparse('unsorted', 100, '2\n50\n10\n0\n10\n', b'b' * 20)
sparse('huge', 2**63 - 1, '1\n%d\n4\n' % 2**62, b'dddd')
sparse('longmap', 100, '1000000\n0\n1\n', b'e')
PY
rc=0
timeout 30 "$PBACKUP" restore --source past.tar --restore-to sp_past 2>sp.err || rc=$?
[ "$rc" -eq 2 ] && grep -q 'past its size' sp.err || { cat sp.err; fail "sparse data past realsize: exit $rc, not refused as damage"; }
[ ! -e sp_past/past ] || fail "sparse data past realsize: a file was left"
for c in overlap unsorted huge longmap; do
  rc=0
  timeout 30 "$PBACKUP" restore --source $c.tar --restore-to sp_$c >/dev/null 2>&1 || rc=$?
  [ "$rc" -le 2 ] || fail "forged sparse map '$c': exit $rc (crash or hang)"
done
pass "forged sparse maps: data past the size refused, the rest no crash or hang"

# ---------------------------------------------------------------- catalog swapped for a symlink
cp cmp/out/c.tar.gz.catalog.zst saved.catalog
ln -sf /etc/passwd cmp/out/c.tar.gz.catalog.zst
rc=0
"$PBACKUP" list --long --source cmp/out/c.tar.gz >sym.txt 2>&1 || rc=$?
[ "$rc" -eq 2 ] && ! grep -q 'root:' sym.txt || { cat sym.txt; fail "a catalog that is a symlink was followed (exit $rc)"; }
cp saved.catalog cmp/out/c.tar.gz.catalog.zst --remove-destination
pass "a catalog swapped for a symlink is refused, not followed"

# ---------------------------------------------------------------- directory xattrs held back, bounded
# The streaming restore applies directories' xattrs at the end; 200 directories with ~900 KB of
# records each compress to ~260 KB and were all held (~200 MB). Past 64 MiB they go on at once.
if [ -x /usr/bin/time ]; then
  "$PYTHON" - <<'PY'
import tarfile
with tarfile.open('bomb.tar.gz', 'w:gz', format=tarfile.PAX_FORMAT) as t:
    for i in range(200):
        ti = tarfile.TarInfo('d%d' % i); ti.type = tarfile.DIRTYPE; ti.mode = 0o755
        ti.pax_headers = {'SCHILY.xattr.user.big%d' % k: 'v' * 60000 for k in range(15)}
        t.addfile(ti)
PY
  rc=0
  /usr/bin/time -f '%M' -o bomb.rss "$PBACKUP" restore --source bomb.tar.gz --restore-to bomb_r >/dev/null 2>bomb.err || rc=$?
  [ "$rc" -le 1 ] || { tail -3 bomb.err; fail "xattr bomb: exit $rc"; }
  rss=$(tail -1 bomb.rss)
  [ "$rss" -lt 140000 ] || fail "xattr bomb: restore peaked at $rss KB for a $(stat -c %s bomb.tar.gz)-byte archive (directory records held without bound)"
  grep -q 'are applied when each directory is made' bomb.err || fail "xattr bomb: no warning that directory records went on early"
  pass "directory xattrs held back within 64 MiB (peak $rss KB for a 260 KB archive of ~180 MB of records)"
fi

finish_deferred
