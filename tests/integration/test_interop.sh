#!/usr/bin/env bash
# Interoperability with the tools that read and write the same formats (issue 19), each case
# checked with the real tool:
#  1. zip names: the UTF-8 flag only on valid UTF-8 names (Python's zipfile opens the archive,
#     bsdtar extracts it with exit 0);
#  2. pax hdrcharset=BINARY for names and link targets that are not UTF-8 (bsdtar exit 0, GNU
#     tar and our reader read the bytes back);
#  3. zip: mtimes outside the DOS range are one warning with a count, a skipped fifo is a
#     warning, both counted in the summary, exit 1;
#  4. zip UT times at 1960, 2038 and 2100 from Info-ZIP zip, bsdtar and pbackup read back exactly;
#  5. zips crafted with Python: Unicode Path extra 0x7075 (with a matching and a stale CRC), the
#     old Unix extra 0x5855 (owner, UTC mtime), '\' separators from a Windows writer;
#  6. a foreign tar with ACLs: the mode comes out as GNU tar makes it (0775 stays 0775);
#  7. a zip with a member in a method libarchive cannot read among good ones: the restore goes
#     on past it, names it, exits 2, and restores as many entries as bsdtar;
#  8. encrypted foreign zips (ZipCrypto by Info-ZIP, AES-256 by 7-Zip) with --passphrase-file;
#  9. archives that make libarchive loop or eat memory stop with a clear error (--stall-timeout,
#     --stream-memory-limit);
# 10. gzip -l shows the last member's size (1024, the end marker), as docs/format.md says.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
setup_work

mtime_of() { stat -c %Y "$1"; }

# ------------------------------------------------------------------ 1. zip UTF-8 flag
info "1. zip names: UTF-8 flag only on UTF-8 names"
S1="$WORK/s1"
mkdir -p "$S1/t" "$WORK/o1"
printf 'latin1' >"$S1/t/$(printf 'caf\xe9')"
printf 'utf8' >"$S1/t/héllo"
expect_ok plain backup --sources "$S1/t" --output-dir "$WORK/o1" --algo zip --name z
"$PYTHON" - "$WORK/o1/z.zip" <<'PY' || fail "Python's zipfile cannot read the zip or the flags are wrong"
import sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z:  # raised UnicodeDecodeError when a non-UTF-8 name had the flag
    flags = {i.orig_filename.encode("utf-8", "surrogateescape") if i.flag_bits & 0x800 else i.orig_filename.encode("cp437"): i.flag_bits & 0x800 for i in z.infolist()}
    assert flags[b"t/caf\xe9"] == 0, flags
    assert flags["t/héllo".encode()] == 0x800, flags
    assert z.testzip() is None
PY
mkdir -p "$WORK/x1"
run_rc rc bsdtar -xf "$WORK/o1/z.zip" -C "$WORK/x1"
[ "$rc" -eq 0 ] || { show_last; fail "bsdtar exits $rc on our zip with a non-UTF-8 name"; }
[ "$(cat "$WORK/x1/t/$(printf 'caf\xe9')")" = latin1 ] || fail "bsdtar: the non-UTF-8 name did not come back as its bytes"
[ "$(cat "$WORK/x1/t/héllo")" = utf8 ] || fail "bsdtar: the UTF-8 name did not come back"
pass "zip: Python's zipfile opens it, bsdtar extracts it (exit 0), both names as their bytes"

# ------------------------------------------------------------------ 2. pax hdrcharset
info "2. pax hdrcharset=BINARY for names that are not UTF-8"
S2="$WORK/s2"
mkdir -p "$S2/t" "$WORK/o2"
printf 'x' >"$S2/t/$(printf 'caf\xe9')"
ln -s "$(printf 'tgt\xff')" "$S2/t/$(printf 'ln\xfe')"
printf 'y' >"$S2/t/plain"
expect_ok plain backup --sources "$S2/t" --output-dir "$WORK/o2" --algo gzip --name t
[ "$(zcat "$WORK/o2/t.tar.gz" | grep -ac 'hdrcharset=BINARY')" -ge 2 ] || fail "no hdrcharset=BINARY record in the archive"
for tool in bsdtar gnutar pbackup; do
  d="$WORK/x2_$tool"
  mkdir -p "$d"
  case $tool in
    bsdtar) run_rc rc bsdtar -xzf "$WORK/o2/t.tar.gz" -C "$d" ;;
    gnutar) run_rc rc tar -xzf "$WORK/o2/t.tar.gz" -C "$d" ;;
    pbackup) run_rc rc run_pb restore --source "$WORK/o2/t.tar.gz" --restore-to "$d" ;;
  esac
  [ "$rc" -eq 0 ] || { show_last; fail "$tool exits $rc on our tar with non-UTF-8 names"; }
  [ "$(cat "$d/t/$(printf 'caf\xe9')")" = x ] || fail "$tool: the non-UTF-8 name did not come back as its bytes"
  [ "$(readlink "$d/t/$(printf 'ln\xfe')")" = "$(printf 'tgt\xff')" ] || fail "$tool: the non-UTF-8 link target did not come back"
done
pass "tar: bsdtar, GNU tar and pbackup read non-UTF-8 names and link targets (exit 0)"

# ------------------------------------------------------------------ 3. zip clamp + fifo
info "3. zip: DOS time clamp and a skipped fifo are warnings"
S3="$WORK/s3"
mkdir -p "$S3/t" "$WORK/o3"
touch -d '2300-01-01 00:00:00 UTC' "$S3/t/f2300"
touch -d '1960-06-01 12:00:00 UTC' "$S3/t/f1960"
printf 'z' >"$S3/t/now"
mkfifo "$S3/t/ff"
run_rc rc run_pb backup --sources "$S3/t" --output-dir "$WORK/o3" --algo zip --name z
[ "$rc" -eq 1 ] || { show_last; fail "zip backup with a fifo and clamped times: exit $rc, expected 1"; }
grep -q "t/ff'*: fifo not stored" "$WORK/last.err" || { show_last; fail "the skipped fifo is not named"; }
[ "$(grep -c 'outside zip.s DOS time range' "$WORK/last.err")" -eq 1 ] || { show_last; fail "not one clamp warning"; }
grep -q '^pbackup: warning: 2 entries have mtimes outside' "$WORK/last.err" || { show_last; fail "the clamp warning does not count 2 entries"; }
grep -q '; 2 warnings' "$WORK/last.err" || { show_last; fail "the summary does not count the fifo and the clamp (2 warnings)"; }
grep -q '"path": "t/ff", "reason": ".*fifo not stored' "$WORK/o3/z.zip.manifest.json" || fail "the manifest's warning for the fifo does not name it: $(grep -A3 '"warnings"' "$WORK/o3/z.zip.manifest.json")"
pass "zip: fifo and clamp warned once each with a count, summary '2 warnings', exit 1"

# ------------------------------------------------------------------ 4. UT times
info "4. zip UT times at 1960, 2038, 2100 from Info-ZIP zip, bsdtar and pbackup"
S4="$WORK/s4"
mkdir -p "$S4/t" "$WORK/o4"
for y in 1960 2038 2100; do
  printf '%s' "$y" >"$S4/t/f$y"
  touch -d "$y-06-01 12:00:00 UTC" "$S4/t/f$y"
done
(cd "$S4" && zip -q -r "$WORK/o4/infozip.zip" t) || fail "Info-ZIP zip failed"
(cd "$S4" && bsdtar --format zip -cf "$WORK/o4/bsdtar.zip" t) || fail "bsdtar failed"
run_rc rc run_pb backup --sources "$S4/t" --output-dir "$WORK/o4" --algo zip --name pb
[ "$rc" -le 1 ] || { show_last; fail "zip backup exited $rc"; }
for z in infozip bsdtar pb; do
  d="$WORK/x4_$z"
  run_rc rc run_pb restore --source "$WORK/o4/$z.zip" --restore-to "$d" --log-level debug
  [ "$rc" -eq 0 ] || { show_last; fail "restore of $z.zip exited $rc"; }
  grep -q "zip members on" "$WORK/last.err" || { show_last; fail "$z.zip was not read by our zip reader"; }
  for y in 1960 2038 2100; do
    [ "$(mtime_of "$d/t/f$y")" = "$(mtime_of "$S4/t/f$y")" ] ||
      fail "$z.zip: f$y restored with mtime $(date -u -d @"$(mtime_of "$d/t/f$y")"), not $y-06-01"
  done
done
# Our zip read by unzip: 2038 and 2100 exact (unzip reads a UT time before 1970 as the DOS time)
mkdir -p "$WORK/x4_unzip"
unzip -q "$WORK/o4/pb.zip" -d "$WORK/x4_unzip" || fail "unzip of our zip failed"
for y in 2038 2100; do
  [ "$(mtime_of "$WORK/x4_unzip/t/f$y")" = "$(mtime_of "$S4/t/f$y")" ] || fail "unzip: our f$y comes out at $(date -u -d @"$(mtime_of "$WORK/x4_unzip/t/f$y")")"
done
pass "UT times 1960/2038/2100 exact from Info-ZIP, bsdtar and our zips; unzip reads our 2038/2100 exactly"

# ------------------------------------------------------------------ 5. crafted zips
info "5. Unicode Path 0x7075, old Unix extra 0x5855, Windows '\\' separators"
"$PYTHON" - "$WORK/c5.zip" <<'PY'
import struct, sys, zipfile, zlib
def member(z, raw_name, data, extra=b"", system=3, date=(2001, 2, 3, 4, 5, 6)):
    # Python writes non-ASCII names as UTF-8 with the flag: a placeholder byte '\x01' is
    # patched into 0x82 below, so the name is a CP437 byte string without the flag.
    zi = zipfile.ZipInfo(raw_name.replace(b"\x82", b"\x01").decode("ascii"), date_time=date)
    zi.create_system = system
    zi.external_attr = (0o100644 << 16) if system == 3 else 0x20
    zi.extra = extra
    z.writestr(zi, data)
up = lambda raw, utf8: struct.pack("<HHBI", 0x7075, 5 + len(utf8), 1, zlib.crc32(raw)) + utf8
with zipfile.ZipFile(sys.argv[1], "w") as z:
    member(z, b"caf\x82", b"unicode", up(b"caf\x82", "café".encode()))
    member(z, b"stale\x82", b"stale", up(b"other", "renamed".encode()))
    # 0x5855: atime, mtime (UTC 2011-11-11 11:11:11), uid 4321, gid 8765; the DOS date says 2001
    member(z, b"ux_old", b"ux", struct.pack("<HHIIHH", 0x5855, 12, 1300000000, 1321009871, 4321, 8765))
    member(z, b"arc\\test", b"win", system=0)
    member(z, b"..\\evil", b"evil", system=0)
data = open(sys.argv[1], "rb").read()
open(sys.argv[1], "wb").write(data.replace(b"caf\x01", b"caf\x82").replace(b"stale\x01", b"stale\x82"))
PY
run_rc rc run_pb restore --source "$WORK/c5.zip" --restore-to "$WORK/x5" --log-level debug
[ "$rc" -eq 2 ] || { show_last; fail "crafted zip: exit $rc, expected 2 (the '..' member is refused)"; }
grep -q "zip members on" "$WORK/last.err" || { show_last; fail "crafted zip was not read by our zip reader"; }
[ "$(cat "$WORK/x5/café")" = unicode ] || { ls "$WORK/x5" >&2; fail "0x7075: the Unicode Path name was not used"; }
[ "$(cat "$WORK/x5/$(printf 'stale\x82')")" = stale ] || { ls "$WORK/x5" >&2; fail "0x7075 with a stale CRC: the header name was not kept"; }
[ "$(mtime_of "$WORK/x5/ux_old")" = 1321009871 ] || fail "0x5855: mtime $(mtime_of "$WORK/x5/ux_old"), not the UTC 1321009871"
if is_root; then
  [ "$(stat -c %u:%g "$WORK/x5/ux_old")" = 4321:8765 ] || fail "0x5855: owner $(stat -c %u:%g "$WORK/x5/ux_old"), not 4321:8765"
fi
[ "$(cat "$WORK/x5/arc/test")" = win ] || { ls -R "$WORK/x5" >&2; fail "'arc\\test' from a DOS host did not become arc/test"; }
grep -q "evil.*not extracted" "$WORK/last.err" || { show_last; fail "'..\\evil' is not refused by name"; }
[ ! -e "$WORK/evil" ] || fail "'..\\evil' was written outside the restore directory"
pass "0x7075 name used when its CRC matches, 0x5855 owner and UTC mtime, arc\\test -> arc/test, ..\\evil refused"

# ------------------------------------------------------------------ 6. ACL modes
info "6. foreign tar with ACLs: modes as GNU tar restores them"
if setfacl -m u:65534:r "$WORK" 2>/dev/null; then
  setfacl -b "$WORK"
  "$PYTHON" - "$WORK/acl.tar" <<'PY'
import io, sys, tarfile
with tarfile.open(sys.argv[1], "w", format=tarfile.PAX_FORMAT) as t:
    i = tarfile.TarInfo("d"); i.type = tarfile.DIRTYPE; i.mode = 0o775; i.mtime = 1000000000
    i.pax_headers = {"SCHILY.acl.access": "user::rwx,group::r-x,mask::rwx,other::r-x,user:65534:rwx"}
    t.addfile(i)
    i = tarfile.TarInfo("d/f"); i.mode = 0o664; i.size = 3; i.mtime = 1000000000
    i.pax_headers = {"SCHILY.acl.access": "user::rw-,group::r--,mask::rw-,other::r--,user:65534:rw-"}
    t.addfile(i, io.BytesIO(b"abc"))
    # an ACL that cannot be set here (unknown user): the mode must still be the header's
    i = tarfile.TarInfo("u"); i.type = tarfile.DIRTYPE; i.mode = 0o775; i.mtime = 1000000000
    i.pax_headers = {"SCHILY.acl.access": "user::rwx,group::r-x,mask::rwx,other::r-x,user:nosuchuser:rwx"}
    t.addfile(i)
PY
  mkdir -p "$WORK/x6_gnu"
  tar --acls -xf "$WORK/acl.tar" -C "$WORK/x6_gnu" 2>/dev/null || fail "GNU tar --acls failed"
  run_rc rc run_pb restore --source "$WORK/acl.tar" --restore-to "$WORK/x6"
  [ "$rc" -eq 1 ] || { show_last; fail "ACL archive: exit $rc, expected 1 (the unknown user's ACL is a warning)"; }
  [ "$(stat -c %a "$WORK/x6/u")" = "$(stat -c %a "$WORK/x6_gnu/u")" ] ||
    fail "u (ACL not settable): mode $(stat -c %a "$WORK/x6/u"), GNU tar gives $(stat -c %a "$WORK/x6_gnu/u")"
  for p in d d/f; do
    want="$(stat -c %a "$WORK/x6_gnu/$p")" got="$(stat -c %a "$WORK/x6/$p")"
    [ "$got" = "$want" ] || fail "$p: mode $got, GNU tar gives $want"
    [ "$(getfacl -cp "$WORK/x6/$p")" = "$(getfacl -cp "$WORK/x6_gnu/$p")" ] || fail "$p: ACL differs from GNU tar's"
  done
  [ "$(stat -c %a "$WORK/x6/d"):$(stat -c %a "$WORK/x6/u")" = 775:775 ] || fail "directories d and u are not 0775"
  pass "ACL archive: modes 775/664/775 and ACLs as GNU tar --acls restores them (u's ACL not settable)"
else
  info "no ACL support here: case 6 skipped"
fi

# ------------------------------------------------------------------ 7. unreadable entries
info "7. zips with entries libarchive cannot read among good ones: go on, as far as bsdtar"
S7="$WORK/s7"
mkdir -p "$S7/s"
seq 1 3000 >"$S7/s/a"
seq 5 4000 >"$S7/s/b"
ln -s "$(printf 'a%.0s' $(seq 1 80))" "$S7/s/l"
# 7-Zip compresses the symlink too, with methods libarchive 3.6 reads only for files (PPMd) or
# not at all in zip (BZip2 for symlinks): the link first, so stopping at it restores nothing.
for m in PPMd BZip2; do (cd "$S7/s" && 7z a -tzip -mm=$m "$S7/$m.zip" l a b >/dev/null) || fail "7z -mm=$m failed"; done
# Python's zipfile, then the method of two members set to 97 (WavPack: nobody here reads it)
"$PYTHON" - "$S7/py.zip" <<'PY'
import re, struct, sys, zipfile
with zipfile.ZipFile(sys.argv[1], "w") as z:
    z.writestr("good0", "good 0\n")
    z.writestr("badQ.bin", b"x" * 100)
    zi = zipfile.ZipInfo("linkQ"); zi.create_system = 3; zi.external_attr = 0o120777 << 16
    z.writestr(zi, "good0")
    for i in range(1, 4): z.writestr("good%d" % i, "good %d\n" % i, compress_type=zipfile.ZIP_DEFLATED)
d = bytearray(open(sys.argv[1], "rb").read())
for sig, at_method, at_nlen, fixed in ((b"PK\x03\x04", 8, 26, 30), (b"PK\x01\x02", 10, 28, 46)):
    for m in re.finditer(re.escape(sig), bytes(d)):
        p = m.start(); n = struct.unpack("<H", d[p + at_nlen:p + at_nlen + 2])[0]
        if b"Q" in d[p + fixed:p + fixed + n]: d[p + at_method:p + at_method + 2] = struct.pack("<H", 97)
open(sys.argv[1], "wb").write(d)
PY
# the entries a tool restored intact: regular files as in the source, symlinks with their target
intact() {
  (cd "$1" && find . -mindepth 1 \( -type f -o -type l \) | sort | while read -r p; do
    if [ -L "$p" ]; then [ "$(readlink "$p")" = "$(readlink "$2/$p")" ] && echo "$p"
    elif [ -f "$2/$p" ] && [ ! -L "$2/$p" ] && cmp -s "$p" "$2/$p"; then echo "$p"; fi
  done)
}
mkdir -p "$S7/pysrc"
printf 'good 0\n' >"$S7/pysrc/good0"
for i in 1 2 3; do printf 'good %d\n' "$i" >"$S7/pysrc/good$i"; done
for z in PPMd BZip2 py; do
  ref="$S7/s"; [ "$z" = py ] && ref="$S7/pysrc"
  mkdir -p "$S7/bsd_$z"
  bsdtar -xf "$S7/$z.zip" -C "$S7/bsd_$z" 2>/dev/null || true
  run_rc rc run_pb restore --source "$S7/$z.zip" --restore-to "$S7/pb_$z"
  [ "$rc" -eq 2 ] || { show_last; fail "$z.zip: exit $rc, expected 2 (entries could not be read)"; }
  want="$(intact "$S7/bsd_$z" "$ref")" got="$(intact "$S7/pb_$z" "$ref")"
  all="$(cd "$S7/pb_$z" && find . -mindepth 1 \( -type f -o -type l \) | sort)"
  [ -n "$want" ] || fail "$z.zip: bsdtar restored nothing intact (test broken)"
  [ "$got" = "$want" ] || fail "$z.zip: pbackup restored [$(echo $got)], bsdtar [$(echo $want)]"
  [ "$all" = "$got" ] || fail "$z.zip: pbackup left entries that are not intact: [$(echo $all)]"
  bad=$(grep -c "cannot be read.*; not restored" "$WORK/last.err" || true)
  grep -q "^pbackup: error: $bad entr.* could not be read (named above)" "$WORK/last.err" || { show_last; fail "$z.zip: no count of the unreadable entries"; }
  [ "$bad" -ge 1 ] || { show_last; fail "$z.zip: the unreadable entries are not named"; }
  info "$z.zip: $(echo "$got" | wc -l) intact as with bsdtar, $bad named as unreadable, exit 2"
done
grep -q "'linkQ' cannot be read" "$WORK/last.err" && grep -q "'badQ.bin' cannot be read" "$WORK/last.err" || { show_last; fail "py.zip: the bad members are not named"; }
run_rc rc run_pb list --source "$S7/py.zip"
[ "$rc" -eq 2 ] && grep -q "'linkQ' cannot be read" "$WORK/last.err" && [ "$(grep -c good "$WORK/last.out")" -eq 4 ] ||
  { show_last; fail "list of py.zip: exit $rc, or the good members not listed, or linkQ not named"; }
pass "unreadable entries named and counted, the rest restored as bsdtar restores them, exit 2"

# ------------------------------------------------------------------ 8. encrypted zips
info "8. encrypted foreign zips: --passphrase-file"
S8="$WORK/s8"
mkdir -p "$S8/s"
printf 'secret data\n' >"$S8/s/a.txt"
head -c 5000 /dev/urandom >"$S8/s/b.bin"
PW='Hunter2 pass phrase'
(cd "$S8/s" && zip -q -P "$PW" "$S8/zipcrypto.zip" a.txt b.bin) || fail "zip -P failed"
(cd "$S8/s" && 7z a -tzip -mem=AES256 -p"$PW" "$S8/aes.zip" a.txt b.bin >/dev/null) || fail "7z AES failed"
printf '%s\n' "$PW" >"$S8/pw"
printf 'not it\n' >"$S8/wrong"
: >"$S8/said"
for z in zipcrypto aes; do
  run_rc rc run_pb restore --source "$S8/$z.zip" --restore-to "$S8/none_$z"
  cat "$WORK/last.err" >>"$S8/said"
  [ "$rc" -eq 2 ] && grep -q "a.txt' cannot be read.*give its passphrase with --passphrase-file" "$WORK/last.err" ||
    { show_last; fail "$z.zip without a passphrase: exit $rc, or no clear error"; }
  run_rc rc run_pb restore --source "$S8/$z.zip" --restore-to "$S8/wrong_$z" --passphrase-file "$S8/wrong"
  cat "$WORK/last.err" >>"$S8/said"
  [ "$rc" -eq 2 ] && grep -q "passphrase in .*wrong' does not open it" "$WORK/last.err" ||
    { show_last; fail "$z.zip with a wrong passphrase: exit $rc, or no clear error"; }
  [ -z "$(find "$S8/wrong_$z" -type f)" ] || fail "$z.zip with a wrong passphrase: files left behind"
  run_rc rc run_pb restore --source "$S8/$z.zip" --restore-to "$S8/ok_$z" --passphrase-file "$S8/pw"
  cat "$WORK/last.err" "$WORK/last.out" >>"$S8/said"
  [ "$rc" -eq 0 ] || { show_last; fail "$z.zip with the passphrase: exit $rc"; }
  cmp "$S8/s/a.txt" "$S8/ok_$z/a.txt" && cmp "$S8/s/b.bin" "$S8/ok_$z/b.bin" || fail "$z.zip: contents differ"
  run_rc rc run_pb list --source "$S8/$z.zip" --passphrase-file "$S8/pw"
  cat "$WORK/last.err" "$WORK/last.out" >>"$S8/said"
  [ "$rc" -eq 0 ] && [ "$(sort "$WORK/last.out" | tr '\n' ' ')" = "a.txt b.bin " ] || { show_last; fail "list of $z.zip: exit $rc"; }
done
! grep -q "Hunter2" "$S8/said" || fail "the passphrase was printed"
# a passphrase "file" without end (a device): refused after 1 MiB, memory bounded
run_rc rc bash -c 'ulimit -v 2000000; exec timeout 30 "$@"' _ "$PBACKUP" restore --source "$S8/zipcrypto.zip" --restore-to "$S8/zero" --passphrase-file /dev/zero
[ "$rc" -eq 2 ] && grep -q "first line is longer than 1 MiB" "$WORK/last.err" || { show_last; fail "--passphrase-file /dev/zero: exit $rc, or no clear error"; }
pass "ZipCrypto and AES-256 zips: clear errors without or with a wrong passphrase, restored with --passphrase-file"

# ------------------------------------------------------------------ 9. libarchive loops
info "9. archives that make libarchive loop or grow: stopped with a clear error"
D9="$INTEG_DIR/data/libarchive"
for f in iso_rockridge_ce_loop.iso.Z xar_doublelink.xar gzip_recursive_wrapped.gz; do
  t0=$(date +%s)
  run_rc rc timeout 60 "$PBACKUP" restore --source "$D9/$f" --restore-to "$WORK/x9_$f" --stall-timeout 2 --stream-memory-limit 1024
  assert_no_signal "$rc" "$f"
  [ "$rc" -eq 2 ] || { show_last; fail "$f: exit $rc, expected 2"; }
  grep -qE "no progress in 2 s|MiB of memory, past the limit of 1024 MiB" "$WORK/last.err" || { show_last; fail "$f: no clear error"; }
  info "$f: stopped after $(( $(date +%s) - t0 )) s: $(grep -oE 'no progress in 2 s|[0-9]+ MiB of memory' "$WORK/last.err")"
done
run_rc rc timeout 60 "$PBACKUP" restore --source "$D9/iso_rockridge_ce_loop.iso.Z" --restore-to "$WORK/x9m" --stall-timeout 0 --stream-memory-limit 300
[ "$rc" -eq 2 ] && grep -q "MiB of memory, past the limit of 300 MiB" "$WORK/last.err" || { show_last; fail "memory limit: exit $rc"; }
run_rc rc timeout 60 mpirun --oversubscribe -n 2 "$PBACKUP" list --source "$D9/xar_doublelink.xar" --stall-timeout 1
[ "$rc" -eq 2 ] && grep -q "no progress in 1 s" "$WORK/last.err" || { show_last; fail "list with 2 ranks: exit $rc"; }
# stopped in the middle of a member: the partial file is removed (nothing left looking restored)
mkdir -p "$WORK/x9p/in"
head -c 8000000 /dev/urandom >"$WORK/x9p/in/big.bin"
tar -C "$WORK/x9p" -cjf "$WORK/x9p.tar.bz2" in
run_rc rc timeout 60 "$PBACKUP" restore --source "$WORK/x9p.tar.bz2" --restore-to "$WORK/x9p_out" --stream-memory-limit 1
[ "$rc" -eq 2 ] && grep -q "past the limit of 1 MiB" "$WORK/last.err" || { show_last; fail "memory limit mid-member: exit $rc"; }
[ ! -e "$WORK/x9p_out/in/big.bin" ] || fail "the watchdog left a partial member: $(stat -c %s "$WORK/x9p_out/in/big.bin") of 8000000 bytes"
# time outside libarchive is no stall: `list` blocked on a pipe nobody reads for 3 s
"$PYTHON" - "$WORK/many.tar" <<'PY'
import sys, tarfile
with tarfile.open(sys.argv[1], "w", format=tarfile.GNU_FORMAT) as t:
    for i in range(6000): t.addfile(tarfile.TarInfo("dir/a-rather-long-member-name-%06d" % i))
PY
run_rc rc bash -c '"$1" list --source "$2" --stall-timeout 1 | { sleep 3; wc -l; }' _ "$PBACKUP" "$WORK/many.tar"
[ "$rc" -eq 0 ] && [ "$(cat "$WORK/last.out")" = 6000 ] || { show_last; fail "list into a slow pipe: exit $rc (stopped as a stall?)"; }
pass "ISO CE loop, XAR double link, gzip in gzip: exit 2 with the reason (stall, memory; restore and list, 1 and 2 ranks); a slow reader of list is no stall"

# ------------------------------------------------------------------ 10. gzip -l
info "10. gzip -l on a multi-member tar.gz shows the last member's ISIZE (documented, docs/format.md)"
run_rc rc gzip -l "$WORK/o2/t.tar.gz"
[ "$(awk 'NR==2 {print $2}' "$WORK/last.out")" = 1024 ] || { show_last; fail "gzip -l no longer shows the end marker's 1024: update docs/format.md"; }
[ "$(zcat "$WORK/o2/t.tar.gz" | wc -c)" -gt 1024 ] || fail "zcat | wc -c"
pass "gzip -l shows 1024 (the end marker member), as docs/format.md says; zcat | wc -c counts the real size"

finish_deferred
