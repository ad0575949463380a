#!/usr/bin/env bash
# usb_split: fragments of exactly --split-chunk-mb MiB whose concatenation is byte-identical
# to the single-file archive; GNU tar reads the concatenation; restore and list find the set
# by themselves (or by --original-base-filename when a folder holds several); verify passes on
# a good set and names a deleted, a truncated, a bit-flipped and an extra fragment.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
setup_work

make_edge_tree "$WORK/src" nofifo
head -c 2500000 /dev/urandom >"$WORK/src/random.bin"   # every codec then needs several 1 MiB fragments
mkdir -p "$WORK/out"
chunk=1   # MiB: the 4+ MiB file and --block-mb 1 make blocks straddle fragment boundaries

for algo in gzip bzip2 zstd zip; do
  ext=$(algo_ext "$algo")
  for n in 1 3; do
    info "$algo, $n rank(s)"
    od="$WORK/out/$algo-$n"
    mkdir -p "$od"
    expect_ok "$n" backup --sources "$WORK/src" --output-dir "$od" --algo "$algo" --name s \
      --dest-type usb_split --split-chunk-mb "$chunk" --block-mb 1 --no-progress
    expect_ok "$n" backup --sources "$WORK/src" --output-dir "$od" --algo "$algo" --name single \
      --block-mb 1 --no-progress
    parts=("$od"/s."$ext".part*)
    [ "${#parts[@]}" -ge 2 ] || fail "$algo: expected several fragments, got ${#parts[@]}"
    for ((i = 0; i < ${#parts[@]} - 1; i++)); do
      size=$(stat -c %s "${parts[$i]}")
      [ "$size" -eq $((chunk << 20)) ] || fail "$algo: ${parts[$i]} has $size bytes, not $((chunk << 20))"
    done
    cat "$od"/s."$ext".part* | cmp - "$od/single.$ext" || fail "$algo: fragments do not concatenate to the single-file archive"
    (cd "$od" && sha256sum -c --quiet "s.$ext.sha256") || fail "$algo: sha256sum -c rejects the checksum file"
    [ -f "$od/s.$ext.manifest.json" ] || fail "$algo: no manifest"
    if [ "$algo" != zip ]; then
      case $algo in gzip) z=-z ;; bzip2) z=-j ;; zstd) z=--zstd ;; esac
      cat "$od"/s."$ext".part* | tar $z -tf - >/dev/null || fail "$algo: GNU tar cannot read the concatenation"
    fi
    expect_ok "$n" verify --source "$od/s.$ext.part0001" --original-base-filename "s.$ext"
    expect_ok "$n" restore --source "$od" --restore-to "$WORK/r-$algo-$n" --original-base-filename "s.$ext"
    if [ "$algo" = zip ]; then compare_trees "$WORK/src" "$WORK/r-$algo-$n/src" --zip; else compare_trees "$WORK/src" "$WORK/r-$algo-$n/src"; fi
    pass "$algo at $n rank(s): fragments, concatenation, checksums, verify, restore"
  done
done

info "a folder with one set is found by itself; the original tool's flags work"
od="$WORK/out/auto"
mkdir -p "$od"
expect_ok 2 backup --sources "$WORK/src" --output-dir "$od" --algo gzip --name only --dest-type usb_split --split-chunk-mb 1 --no-progress
expect_ok plain restore --source "$od" --restore-to "$WORK/r-auto"
compare_trees "$WORK/src" "$WORK/r-auto/src"
expect_ok plain restore --source "$od" --restore-to "$WORK/r-compat" --is-split --original-base-filename only.tar.gz
expect_ok plain list --source "$od"
grep -q "^src/héllo wörld.txt$" "$WORK/last.out" || fail "list of a fragment folder misses a member"
pass "auto-detected set, --is-split --original-base-filename, list"

info "split -b style set of a GNU tar archive (no manifest) restores in order"
sd="$WORK/out/gnusplit"
mkdir -p "$sd"
tar -C "$WORK" -czf - src | split -b 300k -d -a 4 - "$sd/gnu.tar.gz.part"
expect_ok plain restore --source "$sd" --restore-to "$WORK/r-gnu"
compare_trees "$WORK/src" "$WORK/r-gnu/src"
pass "foreign split set"

info "verify names a deleted, a truncated, a bit-flipped and an extra fragment"
good="$WORK/out/bzip2-3"
for damage in delete truncate flip extra; do
  d="$WORK/damaged-$damage"
  cp -a "$good" "$d"
  case $damage in
    delete) rm "$d/s.tar.bz2.part0002"; want="part0002' is missing" ;;
    truncate) truncate -s 1000 "$d/s.tar.bz2.part0002"; want="part0002' has 1000 bytes" ;;
    flip) printf '\xff' | dd of="$d/s.tar.bz2.part0002" bs=1 seek=5000 conv=notrunc status=none; want="part0002' is corrupted" ;;
    extra) last=$(ls "$d"/s.tar.bz2.part* | tail -1); n=${last##*part}; cp "$last" "$d/s.tar.bz2.part$(printf %04d $((10#$n + 1)))"; want="extra fragment" ;;
  esac
  run_rc rc timeout 60 mpirun --oversubscribe -n 2 "$PBACKUP" verify --source "$d"
  assert_no_signal "$rc" "verify ($damage)"
  [ "$rc" -ne 0 ] || { show_last; fail "verify accepted a set with a $damage fragment"; }
  grep -q "$want" "$WORK/last.err" || { show_last; fail "verify ($damage) did not say: $want"; }
  if [ "$damage" != extra ]; then
    run_rc rc timeout 60 "$PBACKUP" restore --source "$d" --restore-to "$WORK/r-dmg-$damage"
    assert_no_signal "$rc" "restore ($damage)"
    [ "$rc" -ne 0 ] || fail "restore of a set with a $damage fragment exited 0"
    grep -q "part000" "$WORK/last.err" || { show_last; fail "restore ($damage) did not name the fragment"; }
  fi
  pass "verify + restore catch a $damage fragment"
done

info "bad --split-chunk-mb is refused before any work"
for bad in 0 -3 abc 1.5; do
  run_rc rc "$PBACKUP" backup --sources "$WORK/src" --output-dir "$WORK/out" --algo gzip --dest-type usb_split --split-chunk-mb "$bad"
  [ "$rc" -eq 2 ] || fail "--split-chunk-mb $bad: exit $rc, expected 2"
  grep -q "split-chunk-mb" "$WORK/last.err" || fail "--split-chunk-mb $bad: message does not name the option"
done
[ -z "$(ls "$WORK/out" | grep -v -E '^(gzip|bzip2|zstd|zip)-[13]$|^(auto|gnusplit)$' || true)" ] || fail "a refused run left files in the output dir"
pass "bad chunk sizes refused"
