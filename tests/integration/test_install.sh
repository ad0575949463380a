#!/usr/bin/env bash
# Installation (issue 18): the man page documents every long option `pbackup COMMAND --help`
# lists and renders without groff warnings; `cmake --install` puts bin/pbackup, the man page,
# the Slurm scripts, a modulefile and the docs under the prefix; `cpack -G DEB` makes a package
# with its runtime dependencies declared, extracted into a private root (dpkg -x) and checked
# with an apt-get simulation: the system's packages are never touched.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
setup_work

MAN="$REPO_DIR/docs/pbackup.1"
BUILD_DIR="$(cd "$(dirname "$PBACKUP")" && pwd)"
[ -f "$BUILD_DIR/CMakeCache.txt" ] || fail "$PBACKUP is not in a CMake build directory ($BUILD_DIR has no CMakeCache.txt)"

# ---------------------------------------------------------------- man page
[ -f "$MAN" ] || fail "no man page $MAN"
missing=()
for cmd in backup consolidate restore list verify find compare report cloud-cleanup; do
  opts=$("$PBACKUP" "$cmd" --help | grep -oE '^ +(-[a-zA-Z], )?--[a-z0-9][a-z0-9-]*' | grep -oE -- '--[a-z0-9-]+') ||
    fail "pbackup $cmd --help lists no long options"
  for o in $opts; do
    roff=${o//-/\\-}
    grep -qF -- "$roff" "$MAN" || missing+=("$cmd $o")
  done
done
"$PBACKUP" --help | grep -q -- "--version" || fail "pbackup --help does not mention --version"
grep -qF -- '\-\-version' "$MAN" || missing+=("--version")
[ "${#missing[@]}" -eq 0 ] || fail "options in --help missing from docs/pbackup.1: ${missing[*]}"
for section in NAME SYNOPSIS DESCRIPTION "EXIT STATUS" FILES ENVIRONMENT EXAMPLES; do
  grep -q "^\.SH \"\?$section" "$MAN" || fail "docs/pbackup.1 has no $section section"
done
warn=$(groff -man -ww -z "$MAN" 2>&1)
[ -z "$warn" ] || fail "groff -ww warns about docs/pbackup.1: $warn"
warn=$(MANWIDTH=80 man -l "$MAN" 2>&1 >/dev/null)
[ -z "$warn" ] || fail "man -l warns about docs/pbackup.1: $warn"
pass "man page: every --help option documented, renders without warnings"

# ---------------------------------------------------------------- cmake --install
INST="$WORK/inst"
cmake --install "$BUILD_DIR" --prefix "$INST" >"$WORK/install.log" 2>&1 || { cat "$WORK/install.log" >&2; fail "cmake --install failed"; }
for f in bin/pbackup share/man/man1/pbackup.1 share/doc/pbackup/README.md share/doc/pbackup/admin-guide.md; do
  [ -s "$INST/$f" ] || fail "cmake --install: no $f"
done
[ -x "$INST/bin/pbackup" ] || fail "installed bin/pbackup is not executable"
for f in "$REPO_DIR"/slurm/*; do
  [ -f "$INST/share/pbackup/slurm/$(basename "$f")" ] || fail "cmake --install: slurm/$(basename "$f") not installed"
done
for f in "$INST"/share/pbackup/slurm/*.sbatch "$INST"/share/pbackup/slurm/*.sh; do
  case $f in */common.sh) continue ;; esac
  [ -x "$f" ] || fail "installed $f is not executable"
done
[ "$("$INST/bin/pbackup" --version)" = "$("$PBACKUP" --version)" ] || fail "installed pbackup --version differs from the built one"
want=$(sed -n 's/^project(pbackup VERSION \([0-9.]*\).*/\1/p' "$REPO_DIR/CMakeLists.txt")
mf="$INST/share/pbackup/modulefiles/pbackup/$want"
[ -f "$mf" ] || fail "no modulefile $mf"
head -n 1 "$mf" | grep -q '^#%Module' || fail "modulefile lacks the #%Module header"
grep -q "^set prefix $INST\$" "$mf" || fail "modulefile does not name the install prefix $INST: $(grep prefix "$mf" | head -n 1)"
if grep -q @ "$mf"; then fail "modulefile has unfilled @...@ placeholders"; fi
pass "cmake --install: bin, man, slurm, modulefile, docs under $INST"

# ---------------------------------------------------------------- cpack DEB
command -v dpkg-deb >/dev/null || fail "dpkg-deb not found"
(cd "$BUILD_DIR" && cpack --config CPackConfig.cmake -G DEB -B "$WORK/pkg") >"$WORK/cpack.log" 2>&1 ||
  { tail -n 20 "$WORK/cpack.log" >&2; fail "cpack -G DEB failed"; }
deb=$(ls "$WORK"/pkg/pbackup_*.deb 2>/dev/null | head -n 1)
[ -n "$deb" ] || fail "cpack made no pbackup_*.deb"
depends=$(dpkg-deb -f "$deb" Depends)
for d in libarchive13 libzstd1 libbz2-1.0 libdeflate0 libboost-mpi openmpi-bin libcurl4; do
  [[ $depends == *"$d"* ]] || fail "the package's Depends lacks $d: $depends"
done
dpkg-deb -c "$deb" >"$WORK/contents"
for f in ./usr/bin/pbackup ./usr/share/man/man1/pbackup.1 ./usr/share/pbackup/slurm/backup.sbatch \
  ./usr/share/doc/pbackup/README.md "./usr/share/pbackup/modulefiles/pbackup/$want"; do
  grep -q " $f\$" "$WORK/contents" || fail "the package lacks $f"
done
dpkg -x "$deb" "$WORK/root"
"$WORK/root/usr/bin/pbackup" --version | grep -q "^pbackup $want" || fail "the packaged pbackup does not run"
grep -q "^set prefix /usr\$" "$WORK/root/usr/share/pbackup/modulefiles/pbackup/$want" || fail "the packaged modulefile does not name /usr"
if command -v apt-get >/dev/null; then
  apt-get install -s "$deb" >"$WORK/apt.log" 2>&1 || { tail -n 20 "$WORK/apt.log" >&2; fail "apt-get cannot install the package (simulated)"; }
  grep -q "^Inst pbackup" "$WORK/apt.log" || { tail -n 5 "$WORK/apt.log" >&2; fail "apt-get simulation does not install pbackup"; }
fi
pass "DEB $(basename "$deb"): Depends: $depends"
