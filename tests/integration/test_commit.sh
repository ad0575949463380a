#!/usr/bin/env bash
# Backup never lies (issue 11): exit 0 means a complete, restorable archive; every failure is
# loud (exit 2) and leaves nothing of the run behind.
#  - a usb_split set that fits in one fragment verifies, lists and restores (mpirun -n 2);
#  - a set renamed from s.* to r.* (several fragments) verifies, lists and restores;
#  - --split-chunk-mb without --dest-type usb_split (or cloud) is refused;
#  - two backups with the same --name into one folder at once (hdd and usb_split, mpirun -n 2,
#    several tries): exactly one exits 0 and its archive restores to ITS source; the other
#    exits 2 saying the name is taken; no temporary file is left;
#  - the disk fills up exactly while the manifest is written (a small tmpfs): exit 2 and no
#    file at all is left (before: the archive and its .sha256 had their final names);
#  - out-of-range --level/--s3-part-mb/--threads/--block-mb/--split-chunk-mb are refused;
#  - restore/list of a zero-byte .tar.gz/.zip or a short text file: exit 2, nothing created.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
setup_work

MNT="$WORK/full"
on_exit() {
  local rc=$?
  mountpoint -q "$MNT" 2>/dev/null && umount "$MNT"
  (exit "$rc")
  cleanup_work
}
trap on_exit EXIT

make_small_tree "$WORK/srcA/data"
make_small_tree "$WORK/srcB/data"
head -c 3000000 /dev/urandom >"$WORK/srcA/data/a.bin"
head -c 2000000 /dev/urandom >"$WORK/srcB/data/b.bin"   # a different archive of the same root name

# listing DIR : every name in DIR (hidden ones too), on one line
listing() { ls -A "$1" | tr '\n' ' '; }

# ---------------------------------------------------------------- one fragment
info "usb_split set in one fragment (--split-chunk-mb 4000, the README's FAT32 recipe)"
od="$WORK/one"
mkdir -p "$od"
expect_ok 2 backup --sources "$WORK/srcA/data" --output-dir "$od" --algo gzip --name s --dest-type usb_split --split-chunk-mb 4000 --no-progress
[ "$(ls "$od" | tr '\n' ' ')" = "s.tar.gz.catalog.zst s.tar.gz.manifest.json s.tar.gz.part0001 s.tar.gz.sha256 " ] || fail "one-fragment set: unexpected files: $(listing "$od")"
(cd "$od" && sha256sum -c --quiet s.tar.gz.sha256) || fail "one-fragment set: sha256sum -c"
expect_ok 2 verify --source "$od"
expect_ok 2 list --source "$od"
grep -q '^data/sub/b.txt$' "$WORK/last.out" || fail "one-fragment set: list misses data/sub/b.txt"
expect_ok 2 restore --source "$od" --restore-to "$WORK/r-one"
assert_trees_equal "$WORK/srcA/data" "$WORK/r-one/data"
expect_ok 2 restore --source "$od/s.tar.gz.part0001" --restore-to "$WORK/r-one-frag"
assert_trees_equal "$WORK/srcA/data" "$WORK/r-one-frag/data"
cp "$od/s.tar.gz.part0001" "$od/s.tar.gz.part0002"
run_rc rc "$PBACKUP" verify --source "$od"
[ "$rc" -eq 2 ] && grep -q "extra fragment .*s.tar.gz.part0002" "$WORK/last.err" || { show_last; fail "one-fragment set: an extra fragment was not named (exit $rc)"; }
rm "$od/s.tar.gz.part0002"
pass "one-fragment usb_split set: verify, list, restore (folder and fragment), extra fragment named"

# ---------------------------------------------------------------- renamed set
info "a fragment set renamed from s.* to r.* is found by its name on disk"
rd="$WORK/renamed"
mkdir -p "$rd"
expect_ok 2 backup --sources "$WORK/srcA/data" --output-dir "$rd" --algo zstd --name s --dest-type usb_split --split-chunk-mb 1 --block-mb 1 --no-progress
n_parts=$(ls "$rd"/s.tar.zst.part* | wc -l)
[ "$n_parts" -ge 3 ] || fail "renamed set: expected several fragments, got $n_parts"
for f in "$rd"/s.tar.zst*; do mv "$f" "$rd/r${f##*/s}"; done
expect_ok 2 verify --source "$rd"
expect_ok plain list --source "$rd/r.tar.zst.part0002"
grep -q '^data/a.bin$' "$WORK/last.out" || fail "renamed set: list misses data/a.bin"
expect_ok 2 restore --source "$rd" --restore-to "$WORK/r-renamed"
assert_trees_equal "$WORK/srcA/data" "$WORK/r-renamed/data"
# the manifest still guards the set: a truncated renamed fragment is named
truncate -s 1000 "$rd/r.tar.zst.part0002"
run_rc rc "$PBACKUP" verify --source "$rd"
[ "$rc" -eq 2 ] && grep -q "r.tar.zst.part0002' has 1000 bytes" "$WORK/last.err" || { show_last; fail "renamed set: a truncated fragment was not named (exit $rc)"; }
# a manifest naming a file outside the set is refused, not read
"$PYTHON" - "$rd/r.tar.zst.manifest.json" <<'PY'
import json, sys
m = json.load(open(sys.argv[1]))
m["fragments"][1]["name"] = m["archive"] + "/../../../etc/hostname.part0002"
json.dump(m, open(sys.argv[1], "w"))
PY
run_rc rc "$PBACKUP" verify --source "$rd"
[ "$rc" -eq 2 ] && grep -Eq "which is not a fragment of|is not a plain file name" "$WORK/last.err" || { show_last; fail "a manifest naming a file outside the set was not refused (exit $rc)"; }
pass "renamed set ($n_parts fragments): verify, list, restore; damage still named; foreign names refused"

# ---------------------------------------------------------------- --split-chunk-mb alone
info "--split-chunk-mb without --dest-type usb_split is refused"
sd="$WORK/splitonly"
mkdir -p "$sd"
run_rc rc "$PBACKUP" backup --sources "$WORK/srcA/data" --output-dir "$sd" --algo gzip --name s --split-chunk-mb 1 --no-progress
[ "$rc" -eq 2 ] || { show_last; fail "--split-chunk-mb alone: exit $rc, expected 2"; }
grep -q -- "--split-chunk-mb needs --dest-type usb_split" "$WORK/last.err" || { show_last; fail "--split-chunk-mb alone: unclear message"; }
run_rc rc "$PBACKUP" backup --sources "$WORK/srcA/data" --output-dir "$sd" --algo gzip --name s --dest-type usb_split --no-progress
[ "$rc" -eq 2 ] && grep -q -- "--dest-type usb_split needs --split-chunk-mb" "$WORK/last.err" || { show_last; fail "usb_split without a size: exit $rc"; }
[ -z "$(listing "$sd")" ] || fail "refused runs left files: $(listing "$sd")"
pass "--split-chunk-mb alone and usb_split without a size: exit 2, nothing written"

# ---------------------------------------------------------------- same --name at once
# Both runs start together (mpirun -n 2 each) with different sources and one --name.
race() { # TYPE TRY
  local type=$1 try=$2 d="$WORK/race-$1-$2" ext=tar.gz extra=() rcA rcB win lose
  mkdir -p "$d"
  [ "$type" = usb_split ] && extra=(--dest-type usb_split --split-chunk-mb 1)
  mpirun --oversubscribe -n 2 "$PBACKUP" backup --sources "$WORK/srcA/data" --output-dir "$d" --algo gzip --block-mb 1 \
    --name same "${extra[@]}" --no-progress >"$WORK/A.out" 2>"$WORK/A.err" &
  local pa=$!
  mpirun --oversubscribe -n 2 "$PBACKUP" backup --sources "$WORK/srcB/data" --output-dir "$d" --algo gzip --block-mb 1 \
    --name same "${extra[@]}" --no-progress >"$WORK/B.out" 2>"$WORK/B.err" &
  local pb=$!
  rcA=0; wait "$pa" || rcA=$?
  rcB=0; wait "$pb" || rcB=$?
  info "$type try $try: exit $rcA and $rcB"
  if [ "$rcA" -eq 0 ] && [ "$rcB" -eq 2 ]; then win=A; lose=B
  elif [ "$rcA" -eq 2 ] && [ "$rcB" -eq 0 ]; then win=B; lose=A
  else
    cat "$WORK/A.err" "$WORK/B.err" >&2
    fail "$type try $try: two backups with one --name exited $rcA and $rcB (exactly one must succeed)"
  fi
  grep -q -E "already exists|taken" "$WORK/$lose.err" || { cat "$WORK/$lose.err" >&2; fail "$type try $try: the loser did not say the name is taken"; }
  info "  loser $lose: $(grep -m1 -E "already exists|taken" "$WORK/$lose.err" | cut -c1-140)"
  case "$(listing "$d")" in
    *.tmp-pbackup*) fail "$type try $try: temporary files left: $(listing "$d")" ;;
  esac
  if [ "$type" = hdd ]; then
    [ "$(listing "$d")" = "same.$ext same.$ext.catalog.zst same.$ext.manifest.json same.$ext.sha256 " ] || fail "$type try $try: files: $(listing "$d")"
  else
    case "$(listing "$d")" in
      "same.$ext.catalog.zst same.$ext.manifest.json same.$ext.part0001 "*"same.$ext.sha256 ") ;;
      *) fail "$type try $try: files: $(listing "$d")" ;;
    esac
  fi
  (cd "$d" && sha256sum -c --quiet "same.$ext.sha256") || fail "$type try $try: sha256sum -c"
  run_rc rc mpirun --oversubscribe -n 2 "$PBACKUP" verify --source "$d"
  [ "$rc" -eq 0 ] || { show_last; fail "$type try $try: the surviving archive does not verify"; }
  run_rc rc "$PBACKUP" restore --source "$d" --restore-to "$WORK/r-race-$type-$try"
  [ "$rc" -eq 0 ] || { show_last; fail "$type try $try: the surviving archive does not restore"; }
  assert_trees_equal "$WORK/src$win/data" "$WORK/r-race-$type-$try/data" >/dev/null
  rm -rf "$WORK/r-race-$type-$try" "$d"
}
for try in 1 2 3; do race hdd "$try"; done
for try in 1 2 3; do race usb_split "$try"; done
pass "same --name at once: one archive, whole and the winner's own; the loser says the name is taken"

# ---------------------------------------------------------------- disk full at the manifest
# A long directory name makes every block's manifest record long; the data are zeros (written,
# not holes: a sparse file would be stored as a few bytes), so the archive is small. The tmpfs
# holds the archive, the checksum file and the catalog, not the manifest.
info "disk full exactly while the manifest is written"
long="$WORK/zeros"
p="$long"
for i in 1 2 3 4 5 6 7 8; do p="$p/$(printf 'd%.0s' $(seq 1 240))"; done
mkdir -p "$p"
for i in $(seq -w 1 40); do head -c 1048576 /dev/zero >"$p/zero$i"; done
page() { echo $(((($1 + 4095) / 4096) * 4096)); }
disk_full_types=(hdd usb_split)
is_root || { info "not root: no tmpfs can be mounted; the disk-full case is skipped"; disk_full_types=(); }
for type in "${disk_full_types[@]}"; do
  extra=()
  [ "$type" = usb_split ] && extra=(--dest-type usb_split --split-chunk-mb 1)
  md="$WORK/measure-$type"
  mkdir -p "$md"
  expect_ok plain backup --sources "$long" --output-dir "$md" --algo gzip --block-mb 1 --name full "${extra[@]}" --no-progress
  arch=0
  for f in "$md"/full.tar.gz "$md"/full.tar.gz.part*; do [ -f "$f" ] && arch=$((arch + $(page "$(stat -c %s "$f")"))); done
  sums=$(page "$(stat -c %s "$md/full.tar.gz.sha256")")
  cat=$(page "$(stat -c %s "$md/full.tar.gz.catalog.zst")")
  man=$(stat -c %s "$md/full.tar.gz.manifest.json")
  size=$((arch + sums + cat + 16384))
  [ "$man" -gt $((16384 + 3 * 4096)) ] || fail "test setup: manifest of $man bytes is too small to overflow the tmpfs"
  mkdir -p "$MNT"
  mount -t tmpfs -o "size=$((size / 1024))k" tmpfs "$MNT"
  info "$type: archive $arch, checksums $sums, catalog $cat, manifest $man bytes; tmpfs of $size bytes"
  run_rc rc mpirun --oversubscribe -n 2 "$PBACKUP" backup --sources "$long" --output-dir "$MNT" --algo gzip --block-mb 1 --name full "${extra[@]}" --no-progress
  left="$(listing "$MNT")"
  umount "$MNT"
  [ "$rc" -eq 2 ] || { show_last; fail "$type: disk full at the manifest: exit $rc, expected 2"; }
  grep -q "No space left" "$WORK/last.err" || { show_last; fail "$type: the error does not say the disk is full"; }
  [ -z "$left" ] || fail "$type: disk full at the manifest left files: $left"
  pass "$type: disk full while writing the manifest: exit 2, nothing left"
done

# ---------------------------------------------------------------- option ranges
info "out-of-range numbers are refused with the valid range"
od="$WORK/opts"
mkdir -p "$od"
while IFS='|' read -r args want; do
  # shellcheck disable=SC2086
  run_rc rc "$PBACKUP" backup --sources "$WORK/srcA/data" --output-dir "$od" --name o $args --no-progress
  [ "$rc" -eq 2 ] || { show_last; fail "'$args': exit $rc, expected 2"; }
  grep -q -- "$want" "$WORK/last.err" || { show_last; fail "'$args': message lacks: $want"; }
done <<'EOF'
--algo bzip2 --level 0|--level must be a whole number from 1 to 9
--algo bzip2 --level 10|--level must be a whole number from 1 to 9
--algo gzip --level 15|--level must be a whole number from 1 to 12
--algo zip --level 12|--level must be a whole number from 1 to 9
--algo zstd --level 23|--level must be a whole number from 1 to 22
--algo gzip --level -1|--level must be a whole number
--output-dir s3://b/p --s3-part-mb 17592186044421|--s3-part-mb must be a whole number from 5 to 5120
--output-dir s3://b/p --s3-part-mb 4|--s3-part-mb must be a whole number from 5 to 5120
--threads 0|--threads must be a whole number from 1 to 1024
--threads 99999999999|--threads must be a whole number from 1 to 1024
--block-mb 0|--block-mb must be a whole number from 1 to 1024
--block-mb 18446744073709551617|--block-mb must be a whole number from 1 to 1024
--dest-type usb_split --split-chunk-mb 18446744073709551617|--split-chunk-mb must be a whole number
EOF
[ -z "$(listing "$od")" ] || fail "refused runs left files: $(listing "$od")"
expect_ok plain backup --sources "$WORK/srcA/data" --output-dir "$od" --name ok --algo bzip2 --level 1 --threads 1 --block-mb 2 --no-progress
pass "ranges enforced; valid values still work"

# ---------------------------------------------------------------- not an archive
info "restore/list of something that is not an archive: exit 2, nothing created"
nd="$WORK/notarch"
mkdir -p "$nd"
: >"$nd/empty.tar.gz"
: >"$nd/empty.zip"
printf 'hello\nworld\n' >"$nd/text.tar"
printf 'just a note\n' >"$nd/note.zip"
for f in empty.tar.gz empty.zip text.tar note.zip; do
  hows=(plain)
  case $f in empty.tar.gz | text.tar) hows+=(2) ;; esac  # the MPI path twice, not four times (seconds)
  for how in "${hows[@]}"; do
    if [ "$how" = plain ]; then run_rc rc "$PBACKUP" restore --source "$nd/$f" --restore-to "$WORK/r-not-$f"
    else run_rc rc mpirun --oversubscribe -n 2 "$PBACKUP" restore --source "$nd/$f" --restore-to "$WORK/r-not-$f"; fi
    [ "$rc" -eq 2 ] || { show_last; fail "restore of $f ($how): exit $rc, expected 2"; }
    [ ! -e "$WORK/r-not-$f" ] || fail "restore of $f ($how) created $(find "$WORK/r-not-$f" | tr '\n' ' ')"
  done
  run_rc rc "$PBACKUP" list --source "$nd/$f"
  [ "$rc" -eq 2 ] || { show_last; fail "list of $f: exit $rc, expected 2"; }
done
pass "zero-byte and text files are refused by restore and list, creating nothing"

finish_deferred
