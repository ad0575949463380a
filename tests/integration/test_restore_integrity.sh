#!/usr/bin/env bash
# Restore never lies (DESIGN.md §6), for the parallel restore of our tar archives:
#  - a file in the restore directory that is a hard link to a file outside it is replaced,
#    never written through (big files spanning blocks included), at 1 and 2 ranks and 1 thread;
#  - restoring twice into one directory gives the same tree (hard-linked big files included);
#  - a member declaring far more data than the archive holds (1 TiB for 3 bytes): exit 2,
#    naming the manifest, and no such file left;
#  - a damaged middle block: exit 2, the lost paths listed, the big file that spanned it
#    removed, and everything else finished (directory modes, symlinks, hard links);
#  - SIGINT during a parallel restore (tar and zip): exit 130;
#  - a name twice in the archive: the last member wins (with and without a manifest);
#  - a hard link whose target is missing makes no directories on the way to it.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
setup_work

# rebuild MANIFEST EDIT... : rewrites a gzip tar archive of ours in place, block by block, after
# editing tar headers inside the blocks (each block recompressed, offsets, sizes and SHA-256s
# of blocks and archive updated, so only the edits differ). Edits:
#   size:NAME:BYTES   the member's size field (base-256)
#   name:NAME:NEW     the member's name
#   link:NAME:TARGET  the member's link target
#   cont:NAME:BYTES   the manifest's "continues" size of the blocks continuing NAME
rebuild() {
  "$PYTHON" - "$@" <<'PY'
import gzip, hashlib, json, os, sys
man_path, edits = sys.argv[1], [e.split(":", 2) for e in sys.argv[2:]]
man = json.load(open(man_path))
arc = os.path.join(os.path.dirname(man_path), man["archive"])
data = open(arc, "rb").read()
def fix_sum(h):
    h[148:156] = b" " * 8
    h[148:156] = b"%06o\0 " % sum(h)
done = set()
out = bytearray()
for b in sorted(man["blocks"], key=lambda b: b["offset"]):
    for kind, who, val in edits:
        if kind == "cont" and b.get("first_entry") == who and "continues" in b:
            b["continues"]["size"] = int(val)
            done.add((kind, who))
    packed = data[b["offset"]:b["offset"] + b["size"]]
    if b["kind"] == "block":
        raw = bytearray(gzip.decompress(packed))
        for at in range(0, len(raw) - 511, 512):
            h = raw[at:at + 512]
            if h[257:262] != b"ustar":
                continue
            name = bytes(h[0:100]).rstrip(b"\0").decode()
            for kind, who, val in edits:
                if who != name:
                    continue
                if kind == "size":
                    h[124:136] = b"\x80" + int(val).to_bytes(11, "big")
                elif kind == "name":
                    h[0:100] = val.encode().ljust(100, b"\0")
                elif kind == "link":
                    h[157:257] = val.encode().ljust(100, b"\0")
                fix_sum(h)
                raw[at:at + 512] = h
                done.add((kind, who))
        packed = gzip.compress(bytes(raw), mtime=0)
    b["offset"], b["size"] = len(out), len(packed)
    b["sha256"] = hashlib.sha256(packed).hexdigest()
    out += packed
missing = [e for e in edits if (e[0], e[1]) not in done]
if missing:
    sys.exit("rebuild: no header for %r" % missing)
open(arc, "wb").write(out)
man["archive_size"] = len(out)
sha = hashlib.sha256(out).hexdigest()
man["fragments"] = [{"name": man["archive"], "size": len(out), "sha256": sha}]
json.dump(man, open(man_path, "w"), indent=2)
open(arc + ".sha256", "w").write("%s  %s\n" % (sha, man["archive"]))
PY
}

sha() { sha256sum "$1" | cut -d' ' -f1; }
rand_file() { "$PYTHON" -c "import random,sys; open(sys.argv[1],'wb').write(random.Random(int(sys.argv[3])).randbytes(int(sys.argv[2])))" "$@"; }

# ---------------------------------------------------------------- hard links to outside files
SRC="$WORK/src/d"
mkdir -p "$SRC/sub" "$SRC/z"
rand_file "$SRC/big" $((3 * 1024 * 1024 + 777)) 1
rand_file "$SRC/sub/small" 5000 2
ln "$SRC/big" "$SRC/z/big_link"
ln -s ../big "$SRC/sub/to_big"
chmod 750 "$SRC/z"
OUT="$WORK/out"
mkdir -p "$OUT"
expect_ok 2 backup --sources "$SRC" --output-dir "$OUT" --algo gzip --block-mb 1 --name h --no-progress
grep -q '"continues"' "$OUT/h.tar.gz.manifest.json" || fail "d/big does not span blocks"

for how in "1 --threads 1" "2 --threads 1" "2"; do
  read -r n threads <<<"$how"
  R="$WORK/r-hl-$n${threads:+-1}"
  V="$WORK/outside-$n${threads:+-1}"
  mkdir -p "$R/d/sub" "$R/d/z" "$V"
  rand_file "$V/victim_big" $((5 * 1024 * 1024)) 3
  rand_file "$V/victim_small" 9000 4
  before_big=$(sha "$V/victim_big") before_small=$(sha "$V/victim_small")
  ln "$V/victim_big" "$R/d/big"
  ln "$V/victim_big" "$R/d/z/big_link"
  ln "$V/victim_small" "$R/d/sub/small"
  # shellcheck disable=SC2086
  expect_ok "$n" restore --source "$OUT/h.tar.gz" --restore-to "$R" $threads
  [ "$(sha "$V/victim_big")" = "$before_big" ] || defer_fail "-n $n $threads: the outside file linked as d/big was written to"
  [ "$(sha "$V/victim_small")" = "$before_small" ] || defer_fail "-n $n $threads: the outside file linked as d/sub/small was written to"
  compare_trees "$SRC" "$R/d" || defer_fail "-n $n $threads: restored tree differs"
  pass "-n $n $threads: hard links to outside files replaced, outside files untouched"
done

info "restoring twice into one directory"
for n in 1 2; do
  R="$WORK/r-twice-$n"
  expect_ok "$n" restore --source "$OUT/h.tar.gz" --restore-to "$R" --threads 1
  expect_ok "$n" restore --source "$OUT/h.tar.gz" --restore-to "$R" --threads 1
  compare_trees "$SRC" "$R/d" || defer_fail "-n $n: second restore into the same directory differs"
done
pass "restore twice into one directory"
finish_deferred

# ---------------------------------------------------------------- a member claiming 1 TiB
info "a member declaring 1 TiB with 3 bytes of data"
mkdir -p "$WORK/src2/t" "$WORK/out2"
printf 'abc' >"$WORK/src2/t/three"
printf 'other\n' >"$WORK/src2/t/zz"
expect_ok 1 backup --sources "$WORK/src2/t" --output-dir "$WORK/out2" --algo gzip --block-mb 1 --name huge --no-progress
rebuild "$WORK/out2/huge.tar.gz.manifest.json" "size:t/three:$((1 << 40))"
for n in 1 2; do
  R="$WORK/r-huge-$n"
  run_rc rc timeout 60 mpirun --oversubscribe -n "$n" "$PBACKUP" restore --source "$WORK/out2/huge.tar.gz" --restore-to "$R"
  assert_no_signal "$rc" "1 TiB member"
  [ "$rc" -eq 2 ] || { show_last; defer_fail "-n $n: 1 TiB member: exit $rc, not 2"; }
  grep -q "manifest .*huge.tar.gz.manifest.json" "$WORK/last.err" || { show_last; defer_fail "-n $n: 1 TiB member: the manifest is not named"; }
  [ ! -e "$R/t/three" ] || defer_fail "-n $n: 1 TiB member: $(stat -c %s "$R/t/three")-byte file t/three left behind"
  [ -z "$(find "$R" -type f -size +1G 2>/dev/null)" ] || defer_fail "-n $n: a huge file was left behind"
done
# the same for a big file spanning blocks, the manifest agreeing with the header: the blocks
# are consistent with each other, but the archive ends 1 TiB early
cp "$OUT/h.tar.gz" "$OUT/h.tar.gz.manifest.json" "$WORK/out2/"
rebuild "$WORK/out2/h.tar.gz.manifest.json" "size:d/big:$((1 << 40))" "cont:d/big:$((1 << 40))"
for n in 1 2; do
  R="$WORK/r-huge-span-$n"
  run_rc rc timeout 60 mpirun --oversubscribe -n "$n" "$PBACKUP" restore --source "$WORK/out2/h.tar.gz" --restore-to "$R"
  assert_no_signal "$rc" "1 TiB spanning member"
  [ "$rc" -eq 2 ] || { show_last; defer_fail "-n $n: 1 TiB spanning member: exit $rc, not 2"; }
  grep -q "manifest .*h.tar.gz.manifest.json" "$WORK/last.err" || { show_last; defer_fail "-n $n: 1 TiB spanning member: the manifest is not named"; }
  grep -q "not restored: 'd/big'" "$WORK/last.err" || { show_last; defer_fail "-n $n: 1 TiB spanning member: d/big not listed as lost"; }
  [ ! -e "$R/d/big" ] || defer_fail "-n $n: 1 TiB spanning member: $(stat -c %s "$R/d/big")-byte file d/big left behind"
  [ "$(cat "$R/d/sub/small" | wc -c)" -eq 5000 ] || defer_fail "-n $n: 1 TiB spanning member: d/sub/small not restored"
done
finish_deferred
pass "1 TiB member: exit 2 naming the manifest, no file left"

info "a manifest whose first_entry or continues offset lies"
# edit_manifest NAME PYTHON-EXPR-ON-BLOCKS : a copy of the h archive with its manifest edited
edit_manifest() {
  mkdir -p "$WORK/$1"
  cp "$OUT/h.tar.gz" "$OUT/h.tar.gz.manifest.json" "$WORK/$1/"
  "$PYTHON" - "$WORK/$1/h.tar.gz.manifest.json" "$2" <<'PY'
import json, sys
m = json.load(open(sys.argv[1]))
bl = sorted((b for b in m["blocks"] if b["kind"] == "block"), key=lambda b: b["raw_offset"])
exec(sys.argv[2])
json.dump(m, open(sys.argv[1], "w"), indent=2)
PY
}
edit_manifest lie-first 'bl[0]["first_entry"] = "d/not_there"'
edit_manifest lie-cont 'c = [b for b in bl if "continues" in b][0]; c["continues"]["offset"] += 512'
# a lie the manifest's own structure cannot show (it stays in path order): only the block's walk can
edit_manifest lie-name 'c = [b for b in bl if "continues" in b][-1]; c["first_entry"] += "x"'
for lie in lie-first lie-cont lie-name; do
  for n in 1 2; do
    R="$WORK/r-$lie-$n"
    run_rc rc timeout 60 mpirun --oversubscribe -n "$n" "$PBACKUP" restore --source "$WORK/$lie/h.tar.gz" --restore-to "$R"
    [ "$rc" -eq 2 ] || { show_last; defer_fail "-n $n: $lie: exit $rc, not 2"; }
    grep -q "manifest .*h.tar.gz.manifest.json" "$WORK/last.err" || { show_last; defer_fail "-n $n: $lie: the manifest is not named"; }
    if [ "$lie" = lie-name ] && ! grep -q "does not match" "$WORK/last.err"; then defer_fail "-n $n: $lie: not caught by the block's walk"; fi
    if [ -e "$R/d/big" ] && ! cmp -s "$SRC/big" "$R/d/big"; then defer_fail "-n $n: $lie: a wrong d/big was left"; fi
  done
done
finish_deferred
pass "a manifest that disagrees with its archive: exit 2 naming it"

# ---------------------------------------------------------------- a damaged middle block
info "a damaged block in the middle of a big file"
S3="$WORK/src3/m"
mkdir -p "$S3/a_dir" "$S3/big_dir" "$S3/z_dir/inner"
printf 'early\n' >"$S3/a_dir/early"
rand_file "$S3/big_dir/big" $((4 * 1024 * 1024 + 99)) 5
printf 'late\n' >"$S3/z_dir/inner/late"
ln "$S3/z_dir/inner/late" "$S3/z_dir/late_link"
ln -s inner/late "$S3/z_dir/sym"
chmod 750 "$S3/a_dir" "$S3/z_dir"
chmod 705 "$S3/z_dir/inner"
touch -d '2001-02-03 04:05:06 UTC' "$S3/a_dir" "$S3/z_dir/inner" "$S3/z_dir"
mkdir -p "$WORK/out3"
expect_ok 1 backup --sources "$S3" --output-dir "$WORK/out3" --algo gzip --block-mb 1 --name dmg --no-progress
# the compressed bytes of a block that lies wholly inside big_dir/big's data
off=$("$PYTHON" - "$WORK/out3/dmg.tar.gz.manifest.json" <<'PY'
import json, sys
bl = sorted((b for b in json.load(open(sys.argv[1]))["blocks"] if b["kind"] == "block"), key=lambda b: b["raw_offset"])
mid = [i for i in range(1, len(bl) - 1) if bl[i].get("continues") and bl[i + 1].get("continues")]
b = bl[mid[len(mid) // 2]]
print(b["offset"] + b["size"] // 2)
PY
)
printf '\x00\xff\x00\xff' | dd of="$WORK/out3/dmg.tar.gz" bs=1 seek="$off" conv=notrunc status=none
for n in 1 2; do
  R="$WORK/r-dmg-$n"
  run_rc rc timeout 60 mpirun --oversubscribe -n "$n" "$PBACKUP" restore --source "$WORK/out3/dmg.tar.gz" --restore-to "$R"
  assert_no_signal "$rc" "damaged block"
  [ "$rc" -eq 2 ] || { show_last; defer_fail "-n $n: damaged block: exit $rc, not 2"; }
  grep -q "not restored: 'm/big_dir/big'" "$WORK/last.err" || { show_last; defer_fail "-n $n: m/big_dir/big is not listed as lost"; }
  [ ! -e "$R/m/big_dir/big" ] || defer_fail "-n $n: the big file that spanned the damaged block was left ($(stat -c %s "$R/m/big_dir/big") bytes)"
  compare_trees "$S3" "$R/m" --exclude big_dir/big || defer_fail "-n $n: the rest of the tree was not finished"
done
finish_deferred
pass "damaged block: exit 2, lost file listed and removed, the rest finished"

# ---------------------------------------------------------------- SIGINT
info "SIGINT during a parallel restore"
S4="$WORK/src4/s"
mkdir -p "$S4"
for i in 1 2 3 4 5 6; do rand_file "$S4/f$i" $((3 * 1024 * 1024)) $((10 + i)); done
mkdir -p "$WORK/out4"
expect_ok 2 backup --sources "$S4" --output-dir "$WORK/out4" --algo gzip --block-mb 1 --name sig --no-progress
expect_ok 2 backup --sources "$S4" --output-dir "$WORK/out4" --algo zip --block-mb 1 --name sig --no-progress
for n in plain zip 2; do
  R="$WORK/r-sig-$n"
  if [ "$n" = plain ]; then
    "$PBACKUP" restore --source "$WORK/out4/sig.tar.gz" --restore-to "$R" --threads 1 >"$WORK/sig.out" 2>&1 &
  elif [ "$n" = zip ]; then
    "$PBACKUP" restore --source "$WORK/out4/sig.zip" --restore-to "$R" --threads 1 >"$WORK/sig.out" 2>&1 &
  else
    mpirun --oversubscribe -n 2 "$PBACKUP" restore --source "$WORK/out4/sig.tar.gz" --restore-to "$R" --threads 1 >"$WORK/sig.out" 2>&1 &
  fi
  job=$!
  # Stop the restore as soon as its directory appears (the data phase starts), interrupt it,
  # and let it go on: the interrupt arrives mid-restore however loaded the machine is.
  t_end=$((SECONDS + 30))
  pids=$job
  if [ "$n" = 2 ]; then  # the ranks are mpirun's children
    until [ "$(pgrep -P "$job" | wc -l)" -ge 2 ] || [ "$SECONDS" -ge "$t_end" ]; do sleep 0.01; done
    pids=$(pgrep -P "$job" || true)
  fi
  until [ -d "$R" ] || [ "$SECONDS" -ge "$t_end" ]; do :; done
  for p in $pids; do kill -STOP "$p" 2>/dev/null || true; done
  alive=0
  for p in $pids; do kill -0 "$p" 2>/dev/null && alive=1; done
  [ "$alive" -eq 1 ] || fail "SIGINT ($n): the restore finished before it could be interrupted (make the data bigger)"
  for p in $pids; do kill -INT "$p" 2>/dev/null || true; done
  for p in $pids; do kill -CONT "$p" 2>/dev/null || true; done
  rc=0
  wait "$job" || rc=$?
  [ "$rc" -eq 130 ] || { cat "$WORK/sig.out" >&2; defer_fail "SIGINT ($n): exit $rc, not 130"; }
  grep -q "interrupted" "$WORK/sig.out" || defer_fail "SIGINT ($n): no message says the restore was interrupted"
done
finish_deferred
pass "SIGINT: exit 130"

# ---------------------------------------------------------------- duplicate names
info "a name twice: the last member wins"
S5="$WORK/src5/u"
mkdir -p "$S5" "$WORK/out5"
ln -s target "$S5/a"
printf 'the file\n' >"$S5/b"
expect_ok 1 backup --sources "$S5" --output-dir "$WORK/out5" --algo gzip --block-mb 1 --name dup --no-progress
rebuild "$WORK/out5/dup.tar.gz.manifest.json" "name:u/b:u/a"
for n in 1 2; do
  R="$WORK/r-dup-$n"
  run_rc rc timeout 60 mpirun --oversubscribe -n "$n" "$PBACKUP" restore --source "$WORK/out5/dup.tar.gz" --restore-to "$R"
  [ "$rc" -eq 0 ] || { show_last; defer_fail "-n $n: duplicate names: exit $rc"; }
  if [ -L "$R/u/a" ] || [ "$(cat "$R/u/a" 2>/dev/null)" != "the file" ]; then
    defer_fail "-n $n: symlink then file named u/a: the file (last member) did not win"
  fi
done
# the same without a manifest, made by GNU tar appending a second member of the same name
mkdir -p "$WORK/gt/one" "$WORK/gt/two"
printf 'first\n' >"$WORK/gt/one/x"
ln -s nowhere "$WORK/gt/two/x"
tar -cf "$WORK/gt/a.tar" -C "$WORK/gt/one" x
tar -rf "$WORK/gt/a.tar" -C "$WORK/gt/two" x
tar -cf "$WORK/gt/b.tar" -C "$WORK/gt/two" x
tar -rf "$WORK/gt/b.tar" -C "$WORK/gt/one" x
run_rc rc "$PBACKUP" restore --source "$WORK/gt/a.tar" --restore-to "$WORK/r-gt-a"
[ "$rc" -eq 0 ] && [ -L "$WORK/r-gt-a/x" ] || { show_last; defer_fail "GNU tar: file then symlink: the symlink did not win"; }
run_rc rc "$PBACKUP" restore --source "$WORK/gt/b.tar" --restore-to "$WORK/r-gt-b"
[ "$rc" -eq 0 ] && [ ! -L "$WORK/r-gt-b/x" ] && [ "$(cat "$WORK/r-gt-b/x")" = first ] || { show_last; defer_fail "GNU tar: symlink then file: the file did not win"; }
finish_deferred
pass "duplicate names: last member wins"

# ---------------------------------------------------------------- hard link to a missing target
info "a hard link whose target is missing makes no directories"
S6="$WORK/src6/k"
mkdir -p "$S6" "$WORK/out6"
printf 'target\n' >"$S6/a"
ln "$S6/a" "$S6/h"
expect_ok 1 backup --sources "$S6" --output-dir "$WORK/out6" --algo gzip --block-mb 1 --name hl --no-progress
rebuild "$WORK/out6/hl.tar.gz.manifest.json" "link:k/h:k/nodir/deeper/a"
for n in 1 2; do
  R="$WORK/r-hlm-$n"
  run_rc rc timeout 60 mpirun --oversubscribe -n "$n" "$PBACKUP" restore --source "$WORK/out6/hl.tar.gz" --restore-to "$R"
  [ "$rc" -eq 2 ] || { show_last; defer_fail "-n $n: hard link to a missing target: exit $rc, not 2"; }
  [ ! -e "$R/k/nodir" ] || defer_fail "-n $n: looking up the hard link's target created k/nodir"
  [ "$(cat "$R/k/a")" = target ] || defer_fail "-n $n: k/a not restored"
done
finish_deferred
pass "hard link to a missing target: no stray directories"
