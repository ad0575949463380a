#!/usr/bin/env bash
# age encryption (issue 16): backup --encrypt-to/--encrypt-to-file/--passphrase-file writes
# BASE.EXT.age that the age CLI decrypts (and pbackup reads the age CLI's output); the same
# bytes for 1 and 3 ranks with a fixed test seed, and the plaintext is the unencrypted archive;
# several recipients; wrong key and no key refused; a flipped byte, a truncation, two swapped
# chunks and a missing fragment are errors naming the damage, never garbage on disk; --only
# reads only the chunks it needs; usb_split fragments are slices of the .age file; no source
# name appears in plaintext in any file written.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
setup_work
command -v age >/dev/null || fail "the age CLI is missing (scripts/deps.sh installs it)"

src="$WORK/src"
mkdir -p "$src/zebraDIRsecret"
echo "first file" >"$src/aardvarkFIRST.txt"
seq 1 150000 >"$src/zebraDIRsecret/quokkaNUMBERS.txt"
head -c 2500000 /dev/urandom >"$src/zebraDIRsecret/wombatRANDOM.bin"
names=(aardvarkFIRST zebraDIRsecret quokkaNUMBERS wombatRANDOM)
out="$WORK/out"
mkdir -p "$out"
age-keygen -o "$WORK/k1.txt" 2>/dev/null
age-keygen -o "$WORK/k2.txt" 2>/dev/null
age-keygen -o "$WORK/k3.txt" 2>/dev/null
pub1=$(age-keygen -y "$WORK/k1.txt")
pub2=$(age-keygen -y "$WORK/k2.txt")
printf '# a comment\n\n%s\n' "$pub2" >"$WORK/recipients.txt"

expect_fail() {  # expect_fail WHAT PATTERN ARGS... : exit 2 and PATTERN in stderr
  local what=$1 pat=$2 rc
  shift 2
  run_rc rc run_pb "$@"
  assert_no_signal "$rc" "$what"
  [ "$rc" -eq 2 ] || { show_last; fail "$what: expected exit 2, got $rc"; }
  grep -q -- "$pat" "$WORK/last.err" || { show_last; fail "$what: no '$pat' in the message"; }
}

info "X25519, 1 and 3 ranks with a fixed seed: identical, and the plaintext is the unencrypted archive"
export PBACKUP_TEST_AGE_SEED=fixed-test-seed
expect_ok plain backup --sources "$src" --output-dir "$out" --name one --encrypt-to "$pub1" --block-mb 1 --no-progress
expect_ok 3 backup --sources "$src" --output-dir "$out" --name three --encrypt-to "$pub1" --block-mb 1 --no-progress
grep -q "PBACKUP_TEST_AGE_SEED is set: .* NOT random" "$WORK/last.err" || { show_last; fail "a fixed test seed was used silently"; }
unset PBACKUP_TEST_AGE_SEED
expect_ok 3 backup --sources "$src" --output-dir "$out" --name plain --block-mb 1 --no-progress
cmp "$out/one.tar.gz.age" "$out/three.tar.gz.age" || fail "1 and 3 ranks wrote different .age files with the same seed"
age -d -i "$WORK/k1.txt" "$out/three.tar.gz.age" | cmp - "$out/plain.tar.gz" || fail "age -d does not give the unencrypted archive"
[ "$(grep -c '"offset"' "$out/three.tar.gz.age.manifest.json")" -ge 3 ] || fail "expected several blocks"

info "the age CLI decrypts it; pbackup restores, lists and verifies it in parallel"
mkdir -p "$WORK/r-age"
age -d -i "$WORK/k1.txt" "$out/three.tar.gz.age" | tar xzf - -C "$WORK/r-age"
compare_trees "$src" "$WORK/r-age/src"
expect_ok 2 restore --source "$out/three.tar.gz.age" --restore-to "$WORK/r-pb" --identity "$WORK/k1.txt"
compare_trees "$src" "$WORK/r-pb/src"
grep -q "from 4 of 4 blocks\|blocks on 2 rank" "$WORK/last.err" || { show_last; fail "restore was not parallel"; }
expect_ok 2 verify --source "$out/three.tar.gz.age" --identity "$WORK/k1.txt"
expect_ok plain list --source "$out/three.tar.gz.age" --identity "$WORK/k1.txt"
grep -q "quokkaNUMBERS.txt" "$WORK/last.out" || fail "list does not name the members"
expect_ok plain list --long --source "$out/three.tar.gz.age" --identity "$WORK/k1.txt"
grep -q "wombatRANDOM.bin" "$WORK/last.out" || fail "list --long (from the sealed catalog) does not name the members"

info "zstd and bzip2 too: age -d | tar, and a parallel restore"
for algo in zstd bzip2; do
  ext=$(algo_ext "$algo")
  case $algo in zstd) z=--zstd ;; bzip2) z=-j ;; esac
  expect_ok 2 backup --sources "$src" --output-dir "$out" --name c-$algo --algo "$algo" --encrypt-to "$pub1" --block-mb 1 --no-progress
  age -d -i "$WORK/k1.txt" "$out/c-$algo.$ext.age" | tar $z -tf - >"$WORK/c.list" || fail "$algo: age -d | tar cannot read it"
  grep -q quokkaNUMBERS "$WORK/c.list" || fail "$algo: age -d | tar lists the wrong members"
  expect_ok 2 restore --source "$out/c-$algo.$ext.age" --restore-to "$WORK/r-c-$algo" --identity "$WORK/k1.txt"
  compare_trees "$src" "$WORK/r-c-$algo/src"
done
expect_fail "zip" "needs a tar format" backup --sources "$src" --output-dir "$out" --name z --algo zip --encrypt-to "$pub1"

info "no key, a wrong key"
expect_fail "no key" "give --identity" restore --source "$out/three.tar.gz.age" --restore-to "$WORK/r-nokey"
expect_fail "wrong key" "no identity matched" restore --source "$out/three.tar.gz.age" --restore-to "$WORK/r-wrong" --identity "$WORK/k3.txt"
[ ! -e "$WORK/r-wrong/src" ] || fail "a wrong key left files behind"

info "several recipients (--encrypt-to and --encrypt-to-file): each key opens it, with age and pbackup"
expect_ok plain backup --sources "$src" --output-dir "$out" --name multi --encrypt-to "$pub1" --encrypt-to-file "$WORK/recipients.txt" --no-progress
for k in k1 k2; do
  age -d -i "$WORK/$k.txt" "$out/multi.tar.gz.age" | cmp -s - <(age -d -i "$WORK/k1.txt" "$out/multi.tar.gz.age") || fail "age -d with $k"
  expect_ok plain restore --source "$out/multi.tar.gz.age" --restore-to "$WORK/r-multi-$k" --identity "$WORK/$k.txt"
  compare_trees "$src" "$WORK/r-multi-$k/src"
done

info "a foreign .age (tar czf - | age -r) restores by streaming"
tar czf - -C "$WORK" src | age -r "$pub1" >"$WORK/foreign.tar.gz.age"
expect_ok 2 restore --source "$WORK/foreign.tar.gz.age" --restore-to "$WORK/r-foreign" --identity "$WORK/k1.txt"
compare_trees "$src" "$WORK/r-foreign/src"

info "tampering: a flipped byte, a truncation, two swapped chunks"
a="$out/three.tar.gz.age"
size=$(stat -c %s "$a")
cp "$a" "$WORK/keep.age"
printf '\xff' | dd of="$a" bs=1 seek=$((size / 2)) conv=notrunc status=none
expect_fail "flipped byte (restore)" "does not authenticate" restore --source "$a" --restore-to "$WORK/r-flip" --identity "$WORK/k1.txt"
grep -q "block at byte" "$WORK/last.err" || { show_last; fail "the flipped byte's error does not name the block"; }
expect_fail "flipped byte (verify)" "corrupted" verify --source "$a" --identity "$WORK/k1.txt"
cp "$a" "$WORK/flipped.age" && mv "$WORK/flipped.age" "$WORK/flipped.tar.gz.age"
expect_fail "flipped byte (stream)" "does not authenticate" restore --source "$WORK/flipped.tar.gz.age" --restore-to "$WORK/r-flip2" --identity "$WORK/k1.txt"
[ ! -e "$WORK/r-flip2/src/zebraDIRsecret/wombatRANDOM.bin" ] || fail "the stream restore left a damaged file"
cp "$WORK/keep.age" "$a"
truncate -s $((size - 1)) "$a"
expect_fail "truncated" "truncated" restore --source "$a" --restore-to "$WORK/r-trunc" --identity "$WORK/k1.txt"
cp "$WORK/keep.age" "$a"
hdr=$(( $(grep -a -b -m1 '^---' "$a" | cut -d: -f1) + $(grep -a -m1 '^---' "$a" | wc -c) + 16 ))
c=65552
dd if="$WORK/keep.age" of="$a" bs=1 skip=$((hdr + 2 * c)) seek=$((hdr + 1 * c)) count=$c conv=notrunc status=none
dd if="$WORK/keep.age" of="$a" bs=1 skip=$((hdr + 1 * c)) seek=$((hdr + 2 * c)) count=$c conv=notrunc status=none
expect_fail "swapped chunks" "encrypted chunk 1 " restore --source "$a" --restore-to "$WORK/r-swap" --identity "$WORK/k1.txt"
age -d -i "$WORK/k1.txt" "$a" >/dev/null 2>&1 && fail "age -d accepted swapped chunks (test is wrong)"

info "--only reads only the chunks it needs: damage far from the member does not matter"
cp "$WORK/keep.age" "$a"
printf '\xff' | dd of="$a" bs=1 seek=$((size - 100)) conv=notrunc status=none
expect_ok plain restore --source "$a" --restore-to "$WORK/r-only" --identity "$WORK/k1.txt" --only src/aardvarkFIRST.txt
cmp "$src/aardvarkFIRST.txt" "$WORK/r-only/src/aardvarkFIRST.txt" || fail "--only restored the wrong bytes"
cp "$WORK/keep.age" "$a"

info "scrypt: pbackup both ways, and the age CLI both ways (through script(1) for its tty)"
echo "correct horse battery" >"$WORK/pass.txt"
echo "wrong horse" >"$WORK/wrong.txt"
expect_ok 2 backup --sources "$src" --output-dir "$out" --name pw --passphrase-file "$WORK/pass.txt" --no-progress
expect_ok 2 restore --source "$out/pw.tar.gz.age" --restore-to "$WORK/r-pw" --passphrase-file "$WORK/pass.txt"
compare_trees "$src" "$WORK/r-pw/src"
expect_fail "wrong passphrase" "passphrase does not decrypt" restore --source "$out/pw.tar.gz.age" --restore-to "$WORK/r-pw2" --passphrase-file "$WORK/wrong.txt"
if grep -a -r -q -F -e "correct horse" -e "wrong horse" "$out" "$WORK/last.err" "$WORK/last.out"; then fail "a passphrase appears in a file written or a message"; fi
if command -v script >/dev/null; then
  printf 'correct horse battery\n' | timeout 60 script -qec "age -d -o '$WORK/pw.tgz' '$out/pw.tar.gz.age'" /dev/null >/dev/null 2>&1 || true
  [ -s "$WORK/pw.tgz" ] || fail "age -d could not decrypt the scrypt archive"
  tar tzf "$WORK/pw.tgz" >"$WORK/pw.list" || fail "tar cannot read age -d's output"
  grep -q quokkaNUMBERS "$WORK/pw.list" || fail "age -d of the scrypt archive is not the archive"
  printf 'pp two\npp two\n' | timeout 60 script -qec "age -p -o '$WORK/agep.tar.gz.age' '$WORK/pw.tgz'" /dev/null >/dev/null 2>&1 || true
  echo "pp two" >"$WORK/pass2.txt"
  [ -s "$WORK/agep.tar.gz.age" ] || fail "age -p did not write"
  expect_ok plain restore --source "$WORK/agep.tar.gz.age" --restore-to "$WORK/r-agep" --passphrase-file "$WORK/pass2.txt"
  compare_trees "$src" "$WORK/r-agep/src"
fi

info "usb_split: fragments are slices of the .age file"
mkdir -p "$out/split"
export PBACKUP_TEST_AGE_SEED=fixed-test-seed
expect_ok 3 backup --sources "$src" --output-dir "$out/split" --name one --encrypt-to "$pub1" --block-mb 1 \
  --dest-type usb_split --split-chunk-mb 1 --no-progress
unset PBACKUP_TEST_AGE_SEED
parts=("$out/split"/one.tar.gz.age.part*)
[ "${#parts[@]}" -ge 2 ] || fail "expected several fragments, got ${#parts[@]}"
cat "${parts[@]}" | cmp - "$out/one.tar.gz.age" || fail "the fragments do not concatenate to the .age file"
expect_ok 2 restore --source "$out/split" --restore-to "$WORK/r-split" --identity "$WORK/k1.txt"
compare_trees "$src" "$WORK/r-split/src"
printf '\xff' | dd of="${parts[1]}" bs=1 seek=1000 conv=notrunc status=none
expect_fail "flipped byte in a fragment" "fragment '.*part0002'" verify --source "$out/split" --identity "$WORK/k1.txt"
mv "${parts[1]}" "$WORK/gone"
expect_fail "missing fragment" "part0002" restore --source "$out/split" --restore-to "$WORK/r-split2" --identity "$WORK/k1.txt"
mv "$WORK/gone" "${parts[1]}"

info "no source name in plaintext in any file written"
for f in "$out"/*.age* "$out"/split/*; do
  for n in "${names[@]}"; do
    if grep -a -q -F "$n" "$f"; then fail "$f holds the name $n in plaintext"; fi
  done
done
# nor a plaintext block's SHA-256 (it would confirm a guessed file's content): the same tree's
# unencrypted archive has the same blocks, whose hashes must not appear beside the .age file
hashes=$(grep -o '"raw_size": [0-9]*, "sha256": "[0-9a-f]\{64\}"' "$out/plain.tar.gz.manifest.json" | grep -o '[0-9a-f]\{64\}')
[ -n "$hashes" ] || fail "the unencrypted manifest lists no block hashes (test is wrong)"
for hsh in $hashes; do
  if grep -a -q -F "$hsh" "$out/three.tar.gz.age.manifest.json"; then fail "the plaintext manifest holds the plaintext block hash $hsh"; fi
done
# the unencrypted archive's manifest does hold them (so the grep can find names)
grep -a -q -F wombatRANDOM "$out/plain.tar.gz.manifest.json" || fail "the grep check cannot see names (test is wrong)"

pass "age encryption"
