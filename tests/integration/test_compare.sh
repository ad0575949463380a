#!/usr/bin/env bash
# compare (issue 13), like tar --compare, from the catalog: exit 0 when the live tree is what
# the archive holds, 1 with each difference listed (size, mtime, mode, owner, symlink target,
# type, hard link, missing, new; --checksum: contents with size and mtime unchanged), 2 on
# error (no catalog). --against DIR compares a restored copy.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
setup_work

T="$WORK/proj"
mkdir -p "$T/d" "$T/e"
for f in size mtime mode owner content gone kind; do echo "data $f" > "$T/$f"; done
ln -s size "$T/link"
ln "$T/size" "$T/d/hard"
echo keep > "$T/d/same"
mkfifo "$T/e/fifo"
mkdir -p "$WORK/out"
(cd "$WORK" && run_mpi 2 backup --sources proj --output-dir out --algo zstd --name c) >/dev/null 2>&1 || fail "backup failed"

cd "$WORK"   # the manifest records the source as given (relative): compare runs from there
run_rc rc run_mpi 2 compare --source out/c.tar.zst
[ "$rc" -eq 0 ] || fail "unchanged tree: exit $rc: $(cat "$WORK/last.out" "$WORK/last.err")"
run_rc rc run_pb compare --source out/c.tar.zst --checksum
[ "$rc" -eq 0 ] || fail "unchanged tree with --checksum: exit $rc: $(cat "$WORK/last.out" "$WORK/last.err")"
pass "an unchanged tree compares equal (-n 2; --checksum)"

# every kind of change
echo "longer data size" > "$T/size"   # size and mtime of d/hard, stored first (size is its hard link)
touch -d '2001-01-01 00:00:00' "$T/mtime"
chmod 600 "$T/mode"
is_root && chown 12345 "$T/owner"
printf 'DATA content\n' > "$T/content.new" && touch -r "$T/content" "$T/content.new" && mv "$T/content.new" "$T/content"
rm "$T/gone"
rm "$T/kind" && mkdir "$T/kind"
ln -sfn mode "$T/link"
echo new > "$T/brand_new"
run_rc rc run_pb compare --source out/c.tar.zst
[ "$rc" -eq 1 ] || fail "changed tree: exit $rc, expected 1: $(cat "$WORK/last.err")"
cp "$WORK/last.out" "$WORK/diffs"
for want in "proj/d/hard: size differs" "proj/mtime: mod time differs" "proj/mode: mode differs" \
            "proj/gone: missing on disk" "proj/kind: file type differs" "proj/link: symlink target differs" \
            "proj/brand_new: new (not in the archive)"; do
  grep -qxF "$want" "$WORK/diffs" || fail "compare did not report '$want'; it said:
$(cat "$WORK/diffs")"
done
is_root && { grep -qxF "proj/owner: uid differs" "$WORK/diffs" || fail "owner change not reported"; }
grep -q "^proj/content" "$WORK/diffs" && fail "contents reported without --checksum (size and mtime are unchanged)"
grep -q "^proj/d/same" "$WORK/diffs" && fail "an unchanged file was reported"
run_rc rc run_pb compare --source out/c.tar.zst --checksum
[ "$rc" -eq 1 ] && grep -qxF "proj/content: contents differ" "$WORK/last.out" || fail "--checksum missed a content change: $(cat "$WORK/last.out")"
pass "size, mtime, mode, owner, type, symlink target, missing and new files reported; --checksum finds same-size content changes"

# --against: a restored copy compares equal
run_rc rc run_mpi 2 restore --source out/c.tar.zst --restore-to "$WORK/r"
[ "$rc" -eq 0 ] || fail "restore failed: $(cat "$WORK/last.err")"
run_rc rc run_pb compare --source out/c.tar.zst --against "$WORK/r" --checksum
[ "$rc" -eq 0 ] || fail "restored copy: exit $rc: $(cat "$WORK/last.out" "$WORK/last.err")"
ln -f "$WORK/r/proj/d/same" "$WORK/r/proj/d/hard2" 2>/dev/null || true
rm "$WORK/r/proj/d/hard" && cp "$WORK/r/proj/size" "$WORK/r/proj/d/hard" && touch -r "$WORK/r/proj/size" "$WORK/r/proj/d/hard"
run_rc rc run_pb compare --source out/c.tar.zst --against "$WORK/r"
grep -qF "proj/d/hard: not linked to proj/size" "$WORK/last.out" || grep -qF "proj/size: not linked to proj/d/hard" "$WORK/last.out" ||
  fail "a broken hard link was not reported: $(cat "$WORK/last.out")"
pass "--against DIR compares a restored copy; a broken hard link is reported"

# no catalog: an error
mkdir -p "$WORK/foreign" && tar -C "$WORK" -czf "$WORK/foreign/f.tar.gz" proj
run_rc rc run_pb compare --source "$WORK/foreign/f.tar.gz" --against "$WORK"
[ "$rc" -eq 2 ] && grep -q "no catalog" "$WORK/last.err" || fail "foreign archive: exit $rc: $(cat "$WORK/last.err")"
pass "compare without a catalog exits 2"
