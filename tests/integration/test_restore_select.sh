#!/usr/bin/env bash
# restore --only with globs and --only-from (issue 13) on the parallel tar path (-n 2), the
# parallel zip path (-n 3) and the streaming path (a foreign tar); a glob matching nothing is an
# error. Restoring into a non-empty directory: overwrite (default), --keep-old-files (error,
# exit 2, file untouched), --skip-old-files (kept silently), --keep-newer-files (newer kept,
# older replaced), as GNU tar.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
setup_work

T="$WORK/proj"
mkdir -p "$T/src/sub" "$T/docs" "$T/cache"
echo a > "$T/src/a.c"; echo b > "$T/src/sub/b.c"; echo h > "$T/src/a.h"
echo r > "$T/docs/readme"; echo c > "$T/cache/blob"
head -c 2500000 /dev/urandom > "$T/src/big.c"   # spans blocks (--block-mb 1)
mkdir -p "$WORK/out"
run_pb backup --sources "$T" --output-dir "$WORK/out" --algo gzip --name g --block-mb 1 2>/dev/null
run_pb backup --sources "$T" --output-dir "$WORK/out" --algo zip --name z --block-mb 1 2>/dev/null
mkdir -p "$WORK/foreign" && tar -C "$WORK" -cf "$WORK/foreign/f.tar" proj

# restored regular files, relative, sorted
files() { (cd "$1" && find . -type f | sed 's|^\./||' | LC_ALL=C sort); }

want="proj/src/a.c
proj/src/big.c
proj/src/sub/b.c"
for spec in "2 $WORK/out/g.tar.gz" "3 $WORK/out/z.zip" "1 $WORK/foreign/f.tar"; do
  set -- $spec
  d="$WORK/r_$(basename "$2")"
  run_rc rc run_mpi "$1" restore --source "$2" --restore-to "$d" --only '*.c'
  [ "$rc" -eq 0 ] || fail "--only '*.c' from $(basename "$2") (-n $1): exit $rc: $(cat "$WORK/last.err")"
  [ "$(files "$d")" = "$want" ] || fail "--only '*.c' from $(basename "$2"): restored
$(files "$d")"
  cmp "$T/src/big.c" "$d/proj/src/big.c" || fail "big.c differs after a glob restore from $(basename "$2")"
done
pass "--only '*.c' (base-name glob) on the parallel tar, parallel zip and streaming paths"

printf '%s\n' '# docs and one header' 'proj/docs' '' 'proj/src/*.h' > "$WORK/only"
run_rc rc run_mpi 2 restore --source "$WORK/out/g.tar.gz" --restore-to "$WORK/of" --only-from "$WORK/only"
[ "$rc" -eq 0 ] || fail "--only-from: exit $rc: $(cat "$WORK/last.err")"
[ "$(files "$WORK/of")" = "$(printf 'proj/docs/readme\nproj/src/a.h')" ] || fail "--only-from restored: $(files "$WORK/of")"
run_rc rc run_mpi 2 restore --source "$WORK/out/g.tar.gz" --restore-to "$WORK/none" --only 'nothing*'
[ "$rc" -eq 2 ] && grep -q "nothing\*.*not found" "$WORK/last.err" || fail "a glob matching nothing: exit $rc: $(cat "$WORK/last.err")"
pass "--only-from (comments, blank lines, anchored glob, directory); a glob matching nothing exits 2"

# restoring over existing files
prep() {  # fresh target with an old and a new copy of two files
  rm -rf "$WORK/t" && mkdir -p "$WORK/t/proj/src" "$WORK/t/proj/docs"
  echo OLD > "$WORK/t/proj/src/a.c" && touch -d '2000-01-01' "$WORK/t/proj/src/a.c"
  echo NEW > "$WORK/t/proj/docs/readme" && touch -d '2099-01-01' "$WORK/t/proj/docs/readme"
  echo OLDBIG > "$WORK/t/proj/src/big.c" && touch -d 2000-01-01 "$WORK/t/proj/src/big.c"   # spans blocks: rank 0 creates it up front
}
for src in "$WORK/out/g.tar.gz" "$WORK/out/z.zip"; do
  prep
  run_rc rc run_mpi 2 restore --source "$src" --restore-to "$WORK/t"
  [ "$rc" -eq 0 ] && [ "$(cat "$WORK/t/proj/src/a.c")" = a ] && [ "$(cat "$WORK/t/proj/docs/readme")" = r ] || fail "default overwrite ($src): exit $rc"
  prep
  run_rc rc run_mpi 2 restore --source "$src" --restore-to "$WORK/t" --keep-old-files
  [ "$rc" -eq 2 ] || fail "--keep-old-files ($src): exit $rc, expected 2"
  grep -q "proj/src/a.c.*already exists" "$WORK/last.err" || fail "--keep-old-files did not name the file: $(cat "$WORK/last.err")"
  [ "$(cat "$WORK/t/proj/src/a.c")" = OLD ] || fail "--keep-old-files replaced a file"
  [ "$(cat "$WORK/t/proj/src/big.c")" = OLDBIG ] || fail "--keep-old-files replaced a file spanning blocks ($src)"
  [ "$(cat "$WORK/t/proj/src/sub/b.c")" = b ] || fail "--keep-old-files did not restore the others"
  prep
  run_rc rc run_mpi 2 restore --source "$src" --restore-to "$WORK/t" --skip-old-files
  [ "$rc" -eq 0 ] && [ "$(cat "$WORK/t/proj/src/a.c")" = OLD ] && [ "$(cat "$WORK/t/proj/docs/readme")" = NEW ] || fail "--skip-old-files ($src): exit $rc"
  [ "$(cat "$WORK/t/proj/src/sub/b.c")" = b ] || fail "--skip-old-files did not restore the others"
  [ "$(cat "$WORK/t/proj/src/big.c")" = OLDBIG ] || fail "--skip-old-files replaced a file spanning blocks ($src)"
  prep
  run_rc rc run_mpi 2 restore --source "$src" --restore-to "$WORK/t" --keep-newer-files
  [ "$rc" -eq 0 ] || fail "--keep-newer-files ($src): exit $rc: $(cat "$WORK/last.err")"
  [ "$(cat "$WORK/t/proj/src/a.c")" = a ] || fail "--keep-newer-files kept an older file"
  [ "$(cat "$WORK/t/proj/docs/readme")" = NEW ] || fail "--keep-newer-files replaced a newer file"
  cmp -s "$T/src/big.c" "$WORK/t/proj/src/big.c" || fail "--keep-newer-files kept an older file spanning blocks ($src)"
done
run_rc rc run_pb restore --source "$WORK/out/g.tar.gz" --restore-to "$WORK/t" --keep-old-files --skip-old-files
[ "$rc" -eq 2 ] || fail "two policies at once were accepted"
# the parallel tar path decides from the catalog; without one (a foreign tar) the restore streams
prep
run_rc rc run_mpi 2 restore --source "$WORK/foreign/f.tar" --restore-to "$WORK/t" --skip-old-files
[ "$rc" -eq 0 ] && [ "$(cat "$WORK/t/proj/src/big.c")" = OLDBIG ] && [ "$(cat "$WORK/t/proj/src/sub/b.c")" = b ] || fail "--skip-old-files on a foreign tar: exit $rc"
pass "--keep-old-files, --skip-old-files, --keep-newer-files as GNU tar (tar.gz parallel from the catalog, zip and foreign tar streamed, -n 2)"
