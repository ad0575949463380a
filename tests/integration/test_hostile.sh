#!/usr/bin/env bash
# Restoring hostile archives never writes outside --restore-to (DESIGN.md §6) and never crashes:
# "../x", absolute paths, "a/../../x", deep "../../..", a symlink to an outside directory
# followed by a member through it (absolute and relative targets), a symlink then a regular
# file of the same name (must not write through the link), hard links to an outside file
# (absolute and "../") followed by data for the link name, the same things in zip form, a
# symlink already present in the target, and two pbackup archives restored one over the
# other (parallel restore path, with manifests) where the second goes through a symlink the
# first created. Exit status may be 0, 1 or 2, but not a signal or a timeout.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
setup_work

ID="pbk$$_$RANDOM$RANDOM"
A="$WORK/archives"
mkdir -p "$A" "$WORK/outside_dir"
printf 'original outside content\n' >"$WORK/outside.txt"
touch -d '2000-01-01 00:00:00 UTC' "$WORK/outside.txt" "$WORK/outside_dir"
OUTSIDE_SUM="$(sha256sum <"$WORK/outside.txt")"
OUTSIDE_STAT="$(stat -c '%s %Y %a %h %i' "$WORK/outside.txt")"

info "crafting hostile archives (marker $ID)"
"$PYTHON" - "$A" "$WORK" "$ID" <<'PY'
import io, os, sys, tarfile, warnings, zipfile
warnings.simplefilter("ignore")  # duplicate names are intended
A, WORK, ID = sys.argv[1:4]
PWN = b"PWNED " + ID.encode() + b"\n"

def tar(name, members, gz=False):
    mode = "w:gz" if gz else "w"
    with tarfile.open(os.path.join(A, name), mode, format=tarfile.GNU_FORMAT) as t:
        for m in members:
            kind, path = m[0], m[1]
            ti = tarfile.TarInfo(path)
            ti.mtime = 1000000000
            ti.mode = 0o644
            if kind == "file":
                data = m[2] if len(m) > 2 else PWN
                ti.size = len(data)
                t.addfile(ti, io.BytesIO(data))
            elif kind == "dir":
                ti.type = tarfile.DIRTYPE; ti.mode = 0o755
                t.addfile(ti)
            elif kind == "symlink":
                ti.type = tarfile.SYMTYPE; ti.linkname = m[2]; ti.mode = 0o777
                t.addfile(ti)
            elif kind == "hardlink":
                ti.type = tarfile.LNKTYPE; ti.linkname = m[2]
                t.addfile(ti)

def zipf(name, members):
    with zipfile.ZipFile(os.path.join(A, name), "w") as z:
        for m in members:
            kind, path = m[0], m[1]
            zi = zipfile.ZipInfo(path, date_time=(2001, 1, 1, 0, 0, 0))
            zi.create_system = 3
            if kind == "file":
                zi.external_attr = 0o100644 << 16
                z.writestr(zi, PWN)
            elif kind == "symlink":
                zi.external_attr = 0o120777 << 16
                z.writestr(zi, m[2].encode())
            elif kind == "dir":
                zi.external_attr = (0o40777 << 16) | 0x10
                z.writestr(zi, b"")
            # make sure zipfile kept the name verbatim
            assert zi.filename == path, (zi.filename, path)

ok = ("file", "ok.txt", b"benign\n")
tar("dotdot.tar", [ok, ("file", "../evil_dotdot_" + ID)])
tar("absolute.tar.gz", [ok, ("file", "/tmp/abs_evil_" + ID), ("file", WORK + "/abs_evil2_" + ID)], gz=True)
tar("dotdot_mid.tar", [("dir", "a"), ("file", "a/../../evil_mid_" + ID)])
tar("dotdot_deep.tar.gz", [("file", "../" * 30 + "tmp/deep_evil_" + ID)], gz=True)
tar("symlink_abs_dir.tar", [("symlink", "link", WORK + "/outside_dir"), ("file", "link/evil_symabs_" + ID)])
tar("symlink_up.tar.gz", [("symlink", "up", ".."), ("file", "up/evil_symup_" + ID)], gz=True)
tar("symlink_chain.tar", [("dir", "d"), ("symlink", "d/l", "../.."), ("file", "d/l/evil_chain_" + ID)])
tar("symlink_nested.tar", [("dir", "d"), ("symlink", "d/in", "."), ("symlink", "d/in/out", "../../outside_dir"),
                           ("file", "d/out/evil_nested_" + ID)])
tar("symlink_then_file.tar", [("symlink", "f", WORK + "/outside.txt"), ("file", "f")])
tar("symlink_rel_then_file.tar.gz", [("symlink", "g", "../outside.txt"), ("file", "g")], gz=True)
tar("hardlink_abs.tar", [("hardlink", "hl", WORK + "/outside.txt"), ("file", "hl")])
tar("hardlink_rel.tar.gz", [("hardlink", "hl", "../outside.txt"), ("file", "hl")], gz=True)
tar("hardlink_via_symlink.tar", [("symlink", "s", WORK), ("hardlink", "h", "s/outside.txt"), ("file", "h")])
zipf("zip_dotdot.zip", [("file", "ok.txt"), ("file", "../evil_zipdd_" + ID)])
zipf("zip_absolute.zip", [("file", "/tmp/abs_evil_zip_" + ID)])
zipf("zip_symlink.zip", [("symlink", "zlink", WORK + "/outside_dir"), ("file", "zlink/evil_zipsym_" + ID)])
zipf("zip_symlink_up.zip", [("symlink", "zup", ".."), ("file", "zup/evil_zipup_" + ID)])
zipf("zip_symlink_then_file.zip", [("symlink", "zf", WORK + "/outside.txt"), ("file", "zf")])
# two spellings of one path: a 0777 directory, then a symlink to a directory outside
zipf("zip_alias_dir_symlink.zip", [("dir", "x/d/"), ("symlink", "x/./d", WORK + "/outside_dir")])
zipf("zip_alias_file_symlink.zip", [("file", "y//f"), ("symlink", "y/f", WORK + "/outside.txt")])
PY

snapshot() { # state of everything outside the restore targets
  find "$WORK" -mindepth 1 \( -path "$WORK/t_*" -o -path "$WORK/last.*" -o -path "$WORK/snap.*" \) -prune -o \
    -printf '%p|%y|%s|%T@|%m|%l\n' | LC_ALL=C sort
}

check_clean() { # WHAT
  local what=$1 found
  found="$(find /tmp -maxdepth 4 \( -path "$WORK/t_*" -o -path "$WORK/archives" \) -prune -o -name "*$ID*" -print 2>/dev/null || true)"
  [ -z "$found" ] || fail "$what: files created outside the target: $found"
  for p in /evil_dotdot_$ID /tmp/abs_evil_$ID /tmp/deep_evil_$ID /tmp/abs_evil_zip_$ID; do
    [ ! -e "$p" ] || fail "$what: created $p"
  done
  [ "$(sha256sum <"$WORK/outside.txt")" = "$OUTSIDE_SUM" ] || fail "$what: outside.txt was modified: $(head -c 100 "$WORK/outside.txt")"
  [ "$(stat -c '%s %Y %a %h %i' "$WORK/outside.txt")" = "$OUTSIDE_STAT" ] ||
    fail "$what: outside.txt metadata changed: $(stat -c '%s %Y %a %h %i' "$WORK/outside.txt") (was $OUTSIDE_STAT)"
  [ -z "$(ls -A "$WORK/outside_dir")" ] || fail "$what: outside_dir is no longer empty: $(ls -A "$WORK/outside_dir")"
  snapshot >"$WORK/snap.after"
  if ! diff "$WORK/snap.before" "$WORK/snap.after" >"$WORK/snap.diff"; then
    cat "$WORK/snap.diff" >&2
    fail "$what: something outside the target changed"
  fi
}

k=0
restore_hostile() { # ARCHIVE HOW [pre-existing symlink setup: NAME TARGET]
  local arc=$1 how=$2 rc
  k=$((k + 1))
  local t="$WORK/t_$k"
  mkdir -p "$t"
  if [ $# -ge 4 ]; then ln -s "$4" "$t/$3"; fi
  snapshot >"$WORK/snap.before"
  if [ "$how" = plain ]; then
    run_rc rc timeout 30 "$PBACKUP" restore --source "$arc" --restore-to "$t"
  else
    run_rc rc timeout 30 mpirun --oversubscribe -n "$how" "$PBACKUP" restore --source "$arc" --restore-to "$t"
  fi
  assert_no_signal "$rc" "restore of $(basename "$arc")"
  check_clean "$(basename "$arc")"
  local msg
  msg="$(head -n 2 "$WORK/last.err" | tr '\n' ' ' | cut -c1-160)"
  pass "$(basename "$arc") (ranks $how): exit $rc, nothing outside the target${msg:+; stderr: $msg}"
}

for arc in dotdot.tar absolute.tar.gz dotdot_mid.tar dotdot_deep.tar.gz symlink_abs_dir.tar \
  symlink_up.tar.gz symlink_chain.tar symlink_nested.tar symlink_then_file.tar \
  symlink_rel_then_file.tar.gz hardlink_abs.tar hardlink_rel.tar.gz hardlink_via_symlink.tar \
  zip_dotdot.zip zip_absolute.zip zip_symlink.zip zip_symlink_up.zip zip_symlink_then_file.zip \
  zip_alias_dir_symlink.zip zip_alias_file_symlink.zip; do
  restore_hostile "$A/$arc" plain
done
# a few again with 2 ranks
restore_hostile "$A/symlink_abs_dir.tar" 2
restore_hostile "$A/hardlink_abs.tar" 2
restore_hostile "$A/zip_symlink.zip" 2
restore_hostile "$A/zip_alias_dir_symlink.zip" 2

# a symlink already present in the target directory
mkdir -p "$WORK/pre/x"
printf 'through existing link\n' >"$WORK/pre/x/evil_pre_$ID"
tar -C "$WORK/pre" -cf "$A/pre.tar" x
rm -rf "$WORK/pre"
restore_hostile "$A/pre.tar" plain x "$WORK/outside_dir"

# pbackup archives (with manifests: the parallel restore path): the first one creates
# t/link -> outside_dir, the second one holds a directory t/link/ with a file in it.
info "pbackup archive over a symlink created by an earlier pbackup archive"
mkdir -p "$WORK/pa/t" "$WORK/pb/t/link" "$WORK/pout_a" "$WORK/pout_b"
ln -s "$WORK/outside_dir" "$WORK/pa/t/link"
printf 'x\n' >"$WORK/pb/t/link/evil_pbk_$ID"
for algo in gzip zip; do
  ext="$(algo_ext "$algo")"
  expect_ok 2 backup --sources "$WORK/pa/t" --output-dir "$WORK/pout_a" --algo "$algo" --name a
  expect_ok 2 backup --sources "$WORK/pb/t" --output-dir "$WORK/pout_b" --algo "$algo" --name b
  mv "$WORK/pb" "$WORK/pb_moved_away"
  k=$((k + 1))
  t="$WORK/t_$k"
  mkdir -p "$t"
  snapshot >"$WORK/snap.before"
  run_rc rc timeout 30 mpirun --oversubscribe -n 2 "$PBACKUP" restore --source "$WORK/pout_a/a.$ext" --restore-to "$t"
  assert_no_signal "$rc" "restore a.$ext"
  [ "$rc" -eq 0 ] || { show_last; fail "restore of the benign archive a.$ext exited $rc"; }
  [ -L "$t/t/link" ] || fail "a.$ext: symlink t/link not restored"
  run_rc rc timeout 30 mpirun --oversubscribe -n 2 "$PBACKUP" restore --source "$WORK/pout_b/b.$ext" --restore-to "$t"
  assert_no_signal "$rc" "restore b.$ext over a.$ext"
  check_clean "pbackup $algo archive over a symlink"
  pass "pbackup $algo: second restore did not write through t/link (exit $rc)"
  mv "$WORK/pb_moved_away" "$WORK/pb"
  rm -f "$WORK"/pout_a/* "$WORK"/pout_b/*
done

pass "no hostile archive wrote outside the target"
