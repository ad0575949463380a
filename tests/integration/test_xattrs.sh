#!/usr/bin/env bash
# Metadata fidelity (issue 12): extended attributes (user.*, trusted.* as root, names and values
# with '=', '%', NUL, newline), POSIX ACLs (access and default), owner names and symlinked roots.
#  - pbackup stores them as GNU tar does (SCHILY.xattr.* / SCHILY.acl.* pax records, uname/gname)
#    and restores them on every path: parallel tar at 1 and 3 ranks (a file spanning blocks
#    too), the libarchive stream (no manifest), GNU tar's and bsdtar's archives (both xattr
#    forms); GNU tar --xattrs --acls extracts ours with everything.
#  - archives stay byte-identical for 1 and 3 ranks.
#  - an attribute the target refuses (trusted.* as non-root, a namespace the file system does
#    not know) is a warning naming file and attribute (exit 1), the rest restores.
#  - owner names: as root, restore maps names to ids where the name exists (like GNU tar);
#    --numeric-owner uses the ids.
#  - a symlink given as a source is followed and stored under its own name, with a notice.
#  - zip says once per kind how many entries lose xattrs/ACLs (exit 0).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
setup_work
[ -n "${KEEP_WORK:-}" ] && trap - EXIT
command -v setfattr >/dev/null && command -v setfacl >/dev/null || fail "setfattr/setfacl missing (packages attr, acl: scripts/deps.sh)"
probe="$WORK/probe"
touch "$probe"
setfattr -n user.probe -v 1 "$probe" 2>/dev/null && setfacl -m u:nobody:r "$probe" 2>/dev/null ||
  fail "the file system under $WORK holds no user xattrs or ACLs; set TMPDIR to a directory on ext4/xfs"
rm "$probe"

# Every xattr (ACLs included: system.posix_acl_*) of every non-symlink below $1, as one text.
dump_xattrs() {
  "$PYTHON" - "$1" <<'PY'
import os, sys
root = sys.argv[1]
out = []
for d, dirs, files in os.walk(root):
    for n in sorted(dirs + files):
        p = os.path.join(d, n)
        if os.path.islink(p):
            continue
        for a in sorted(os.listxattr(p, follow_symlinks=False)):
            out.append("%s %s=%s" % (os.path.relpath(p, root), a, os.getxattr(p, a, follow_symlinks=False).hex()))
print("\n".join(sorted(out)))
PY
}
same_xattrs() {  # A B WHAT [REGEX of lines to leave out]
  if ! diff <(dump_xattrs "$1" | grep -v "${4:-^$}") <(dump_xattrs "$2" | grep -v "${4:-^$}") >"$WORK/xdiff"; then
    cat "$WORK/xdiff" >&2
    fail "$3: extended attributes or ACLs differ from the source"
  fi
}

S="$WORK/src/t"
mkdir -p "$S/d/sub" "$S/plain" "$WORK/out"
printf 'alpha\n' >"$S/f"
setfattr -n user.project -v alpha "$S/f"
setfacl -m u:nobody:r--,g:nogroup:rw- "$S/f"
setfacl -d -m u:nobody:rx "$S/d"
setfacl -m u:nobody:rwx "$S/d"
setfattr -n user.bin -v 0x00ff0a3d25 "$S/d"                   # NUL, 0xff, newline, '=', '%'
setfattr -n 'user.odd=name%x' -v 'v=1' "$S/d/sub"            # '=' and '%' in the name
printf 'ro\n' >"$S/ro"
setfattr -n user.ro -v yes "$S/ro"
chmod 0444 "$S/ro"
head -c 3000000 /dev/urandom >"$S/big"                      # spans blocks at --block-mb 1
setfattr -n user.big -v spanning "$S/big"
setfacl -m u:nobody:r "$S/big"
printf 'none\n' >"$S/plain/none"
mkfifo "$S/fifo"
setfattr -n user.fifo -v 1 "$S/fifo" 2>/dev/null || true     # not every kernel allows it
ln -s f "$S/link"
if is_root; then
  setfattr -n trusted.t -v secret "$S/f"
  chown nobody:nogroup "$S/plain/none"
fi

# ---------------------------------------------------------------- backup: 1 and 3 ranks
expect_ok plain backup --sources "$S" --output-dir "$WORK/out" --algo gzip --block-mb 1 --name one
expect_ok 3 backup --sources "$S" --output-dir "$WORK/out" --algo gzip --block-mb 1 --name three
cmp "$WORK/out/one.tar.gz" "$WORK/out/three.tar.gz" || fail "archives with xattrs differ between 1 and 3 ranks"
"$PYTHON" - "$WORK/out/one.tar.gz.manifest.json" <<'PY' || fail "the manifest does not count the entries with xattrs / ACLs"
import json, sys
m = json.load(open(sys.argv[1]))
sys.exit(0 if m.get("acl_entries") == 3 and m.get("xattr_entries", 0) >= 5 else print(m.get("acl_entries"), m.get("xattr_entries")) or 1)
PY
pass "xattrs and ACLs: byte-identical archives at 1 and 3 ranks, counted in the manifest"
if is_root; then
  tar tvzf "$WORK/out/one.tar.gz" >"$WORK/tv"
  grep -q ' nobody/nogroup .*t/plain/none$' "$WORK/tv" || fail "owner names not stored (tar tv)"
  grep -q ' root/root .*t/f$' "$WORK/tv" || fail "owner names not stored for root (tar tv)"
  pass "uname/gname stored as GNU tar shows them"
fi

# ---------------------------------------------------------------- restore on every path
R="$WORK/r1"
expect_ok plain restore --source "$WORK/out/one.tar.gz" --restore-to "$R"
same_xattrs "$S" "$R/t" "parallel restore, 1 rank"
compare_trees "$S" "$R/t" || fail "parallel restore, 1 rank: tree differs"
R="$WORK/r3"
expect_ok 3 restore --source "$WORK/out/three.tar.gz" --restore-to "$R"
same_xattrs "$S" "$R/t" "parallel restore, 3 ranks"
compare_trees "$S" "$R/t" || fail "parallel restore, 3 ranks: tree differs"
pass "parallel restore (1 and 3 ranks) brings back every xattr and ACL"

mkdir "$WORK/nomanifest"
cp "$WORK/out/one.tar.gz" "$WORK/nomanifest/"
R="$WORK/rs"
expect_ok plain restore --source "$WORK/nomanifest/one.tar.gz" --restore-to "$R"
same_xattrs "$S" "$R/t" "streaming restore (no manifest)"
pass "streaming restore (libarchive) brings back every xattr and ACL"

R="$WORK/rgnu"
mkdir "$R"
tar --xattrs --xattrs-include='*' --acls -xzf "$WORK/out/one.tar.gz" -C "$R" || fail "GNU tar cannot extract our archive"
same_xattrs "$S" "$R/t" "GNU tar extracting our archive"
pass "GNU tar --xattrs --acls extracts our xattrs and ACLs"

# GNU tar's and bsdtar's own archives (SCHILY records; bsdtar adds LIBARCHIVE.xattr.* and
# comma-separated ACLs with ids), restored by pbackup at 1 and 3 ranks (streaming).
(cd "$WORK/src" && tar --xattrs --xattrs-include='*' --acls --format=pax -czf "$WORK/gnu.tar.gz" t)
(cd "$WORK/src" && bsdtar --xattrs --acls --format=pax -czf "$WORK/bsd.tar.gz" t)
for a in gnu bsd; do
  for n in plain 3; do
    R="$WORK/r_${a}_$n"
    expect_ok "$n" restore --source "$WORK/$a.tar.gz" --restore-to "$R"
    # bsdtar writes a name holding '=' raw in its SCHILY key (ambiguous): left out for it
    same_xattrs "$S" "$R/t" "pbackup restoring ${a}tar's archive ($n)" "$([ $a = bsd ] && echo '^d/sub user.odd')"
  done
done
pass "GNU tar's and bsdtar's xattrs and ACLs restore through pbackup"

# ---------------------------------------------------------------- refused attributes
# A namespace ext4 does not know: the rest restores, a warning names file and attribute.
"$PYTHON" - "$WORK/foreign.tar" <<'PY'
import io, sys, tarfile
with tarfile.open(sys.argv[1], "w", format=tarfile.PAX_FORMAT) as t:
    i = tarfile.TarInfo("x/file"); data = b"data\n"; i.size = len(data); i.mode = 0o644
    i.pax_headers = {"SCHILY.xattr.lustre.lov": "stripe", "SCHILY.xattr.user.ok": "yes"}
    t.addfile(i, io.BytesIO(data))
PY
run_rc rc run_pb restore --source "$WORK/foreign.tar" --restore-to "$WORK/rf"
[ "$rc" -eq 1 ] || { show_last; fail "refused xattr: expected exit 1 (a warning), got $rc"; }
grep -q "lustre.lov.*x/file\|x/file.*lustre.lov" "$WORK/last.err" || { show_last; fail "refused xattr: the warning does not name file and attribute"; }
[ "$(getfattr --only-values -n user.ok "$WORK/rf/x/file" 2>/dev/null)" = yes ] || fail "refused xattr: the other attribute was not restored"
pass "an xattr the file system refuses is a warning naming file and attribute"

if is_root && command -v setpriv >/dev/null; then
  # trusted.* restored by a non-root user: refused, a warning; everything else restores,
  # user.* on the read-only file too (attributes go on before the mode).
  chmod 755 "$WORK" "$WORK/out"
  mkdir "$WORK/rn" && chown nobody "$WORK/rn"
  run_rc rc setpriv --reuid=nobody --regid=nogroup --clear-groups "$PBACKUP" restore --source "$WORK/out/one.tar.gz" --restore-to "$WORK/rn"
  [ "$rc" -eq 1 ] || { show_last; fail "non-root restore of trusted.*: expected exit 1, got $rc"; }
  grep -q "trusted.t.*t/f\|t/f.*trusted.t" "$WORK/last.err" || { show_last; fail "non-root restore: the refused trusted.t is not named with its file"; }
  [ "$(getfattr --only-values -n user.ro "$WORK/rn/t/ro")" = yes ] || fail "non-root restore: user.ro on the read-only file is missing"
  getfacl -p "$WORK/rn/t/d" | grep -q '^default:user:nobody:r-x' || fail "non-root restore: default ACL missing"
  chmod 755 "$WORK/nomanifest"
  mkdir "$WORK/rns" && chown nobody "$WORK/rns"
  run_rc rc setpriv --reuid=nobody --regid=nogroup --clear-groups "$PBACKUP" restore --source "$WORK/nomanifest/one.tar.gz" --restore-to "$WORK/rns"
  [ "$rc" -eq 1 ] || { show_last; fail "non-root streaming restore of trusted.*: expected exit 1, got $rc"; }
  grep -q "trusted.t.*t/f\|t/f.*trusted.t" "$WORK/last.err" || { show_last; fail "non-root streaming restore: trusted.t not named"; }
  [ "$(getfattr --only-values -n user.ro "$WORK/rns/t/ro")" = yes ] || fail "non-root streaming restore: user.ro on the read-only file is missing"
  [ "$(stat -c %a "$WORK/rns/t/ro")" = 444 ] || fail "non-root streaming restore: the read-only file's mode is $(stat -c %a "$WORK/rns/t/ro")"
  pass "non-root restore (parallel and stream): trusted.* refused with a warning, the rest (read-only file too) restored"

  # ------------------------------------------------------------ owner names
  name=pbkmeta$$
  trap 'userdel "$name" 2>/dev/null || true; cleanup_work' EXIT
  useradd -M -N -s /usr/sbin/nologin -u 4242 "$name"
  O="$WORK/own/o"
  mkdir -p "$O"
  echo x >"$O/mine"
  chown 4242 "$O/mine"
  expect_ok plain backup --sources "$O" --output-dir "$WORK/out" --algo gzip --name own
  usermod -u 4343 "$name"
  for n in plain 3; do
    rm -rf "$WORK/ro_$n" "$WORK/rq_$n"
    expect_ok "$n" restore --source "$WORK/out/own.tar.gz" --restore-to "$WORK/ro_$n"
    [ "$(stat -c %u "$WORK/ro_$n/o/mine")" = 4343 ] || fail "owner name not mapped to this host's id ($n): $(stat -c %u "$WORK/ro_$n/o/mine")"
    expect_ok "$n" restore --source "$WORK/out/own.tar.gz" --restore-to "$WORK/rq_$n" --numeric-owner
    [ "$(stat -c %u "$WORK/rq_$n/o/mine")" = 4242 ] || fail "--numeric-owner did not keep the archive's id ($n)"
  done
  mkdir "$WORK/ownstream" && cp "$WORK/out/own.tar.gz" "$WORK/ownstream/"
  expect_ok plain restore --source "$WORK/ownstream/own.tar.gz" --restore-to "$WORK/ros"
  [ "$(stat -c %u "$WORK/ros/o/mine")" = 4343 ] || fail "owner name not mapped on the streaming path"
  expect_ok plain restore --source "$WORK/ownstream/own.tar.gz" --restore-to "$WORK/rqs" --numeric-owner
  [ "$(stat -c %u "$WORK/rqs/o/mine")" = 4242 ] || fail "--numeric-owner ignored on the streaming path"
  userdel "$name"
  pass "owner names map to this host's ids as root (1 and 3 ranks, streaming); --numeric-owner keeps ids"
fi

# ---------------------------------------------------------------- symlinked source roots
mkdir -p "$WORK/real/data/in" "$WORK/links"
echo a >"$WORK/real/data/in/a"
ln -s a "$WORK/real/data/in/inner"                            # stays a link
echo file >"$WORK/real/one.txt"
ln -s ../real/data "$WORK/links/proj"
ln -s "$WORK/real/one.txt" "$WORK/links/note"
for n in plain 3; do
  rm -f "$WORK/out/sl.tar.gz"*
  expect_ok "$n" backup --sources "$WORK/links/proj" "$WORK/links/note" --output-dir "$WORK/out" --algo gzip --name sl
  grep -q "proj.*symlink.*following" "$WORK/last.err" || { show_last; fail "no notice that the source symlink is followed"; }
  tar tzf "$WORK/out/sl.tar.gz" | sort >"$WORK/sl.list"
  printf 'note\nproj/\nproj/in/\nproj/in/a\nproj/in/inner\n' | diff - "$WORK/sl.list" || fail "symlinked roots: wrong members ($n)"
  rm -rf "$WORK/rsl"
  expect_ok plain restore --source "$WORK/out/sl.tar.gz" --restore-to "$WORK/rsl"
  [ -d "$WORK/rsl/proj" ] && [ ! -L "$WORK/rsl/proj" ] && [ "$(cat "$WORK/rsl/proj/in/a")" = a ] || fail "symlinked dir root not restored as a directory"
  [ -L "$WORK/rsl/proj/in/inner" ] || fail "a link inside a followed root was followed"
  [ -f "$WORK/rsl/note" ] && [ ! -L "$WORK/rsl/note" ] && [ "$(cat "$WORK/rsl/note")" = file ] || fail "symlinked file root not restored as a file"
done
pass "symlinked source roots are followed and stored under the link's name (1 and 3 ranks)"

# ---------------------------------------------------------------- zip: said, not silent
run_rc rc run_pb backup --sources "$S" --output-dir "$WORK/out" --algo zip --name z
[ "$rc" -eq 1 ] && only_zip_fifo_warnings || { show_last; fail "zip backup of a tree with xattrs (and a fifo): expected exit 1 for the fifo alone, got $rc"; }
grep -q "[0-9]\+ entries have extended attributes.*zip" "$WORK/last.err" || { show_last; fail "zip: no notice about xattrs"; }
grep -q "[0-9]\+ entries have POSIX ACLs.*zip" "$WORK/last.err" || { show_last; fail "zip: no notice about ACLs"; }
[ "$(grep -c 'extended attributes' "$WORK/last.err")" -eq 1 ] || fail "zip: the xattr notice is not said once"
pass "zip names once per kind how many entries lose xattrs and ACLs"
