# Shared helpers for the pbackup integration tests (sourced by every test_*.sh).
#
# Each test is a standalone bash script: it sources this file, calls `setup_work`, and uses
#   run_pb ARGS...          pbackup without mpirun (one rank)
#   run_mpi N ARGS...       mpirun --oversubscribe -n N pbackup ARGS...
#   run_rc VAR CMD...       run CMD, store its exit status in VAR (never aborts under set -e)
#   make_edge_tree DIR      a small tree full of edge cases (names, links, modes, times, ...)
#   compare_trees A B [..]  compare two trees (contents, types, symlink targets, modes,
#                           mtimes in seconds, hard-link identity, owners as root)
#   fail MSG / info MSG / pass MSG
# The binary comes from $PBACKUP (default: <repo>/build/pbackup).

INTEG_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_DIR="$(cd "$INTEG_DIR/../.." && pwd)"
PBACKUP="${PBACKUP:-$REPO_DIR/build/pbackup}"
PYTHON="${PYTHON:-/usr/bin/python3}"
TEST_NAME="$(basename "${0%.sh}")"

export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_rmaps_base_oversubscribe=1
# Keep Open MPI quiet and local-only in containers.
export OMPI_MCA_btl_vader_single_copy_mechanism="${OMPI_MCA_btl_vader_single_copy_mechanism:-none}"
export LC_ALL=C.UTF-8
export TZ=UTC

ALGOS=(gzip bzip2 zstd zip)

fail() {
  echo "FAIL [$TEST_NAME]: $*" >&2
  exit 1
}
info() { echo "--- [$TEST_NAME] $*"; }

# Deferred failures: a secondary check that should not hide the checks after it.
# `defer_fail MSG` records it (and prints it now); `finish_deferred` fails if any were recorded.
DEFERRED_FAILURES=()
defer_fail() {
  echo "FAIL (deferred) [$TEST_NAME]: $*" >&2
  DEFERRED_FAILURES+=("$*")
}
finish_deferred() {
  if [ "${#DEFERRED_FAILURES[@]}" -gt 0 ]; then
    local m
    for m in "${DEFERRED_FAILURES[@]}"; do echo "  - $m" >&2; done
    fail "${#DEFERRED_FAILURES[@]} deferred check(s) failed (listed above)"
  fi
}
pass() { echo "ok   [$TEST_NAME] $*"; }

is_root() { [ "$(id -u)" -eq 0 ]; }

# Archive extension for an --algo value.
algo_ext() {
  case "$1" in
    gzip) echo tar.gz ;;
    bzip2) echo tar.bz2 ;;
    zstd) echo tar.zst ;;
    zip) echo zip ;;
    *) fail "algo_ext: unknown algo $1" ;;
  esac
}

require_pbackup() {
  [ -x "$PBACKUP" ] || fail "pbackup binary not found or not executable: $PBACKUP (set PBACKUP=...)"
}

# Creates $WORK (removed on exit, even when it contains read-only directories).
setup_work() {
  require_pbackup
  WORK="$(mktemp -d "${TMPDIR:-/tmp}/pbackup-${TEST_NAME}.XXXXXX")"
  trap cleanup_work EXIT
  info "work dir $WORK, binary $PBACKUP"
}

cleanup_work() {
  local rc=$?
  if [ -n "${WORK:-}" ] && [ -d "$WORK" ]; then
    chmod -R u+rwx "$WORK" 2>/dev/null || true
    rm -rf "$WORK"
  fi
  if [ "$rc" -eq 0 ]; then echo "PASS [$TEST_NAME]"; else echo "FAILED [$TEST_NAME] (exit $rc)" >&2; fi
  exit "$rc"
}

# run_rc VAR CMD... : runs CMD with stdout/stderr going to $WORK/last.out / $WORK/last.err,
# stores the exit status in VAR. Echoes the command.
run_rc() {
  local __var=$1
  shift
  local __rc=0
  echo "+ $*" >&2
  "$@" >"$WORK/last.out" 2>"$WORK/last.err" || __rc=$?
  printf -v "$__var" '%s' "$__rc"
}

# Prints the captured stderr/stdout of the last run_rc (for failure messages).
show_last() {
  echo "    stdout (first 20 lines):" >&2
  head -n 20 "$WORK/last.out" | sed 's/^/      /' >&2
  echo "    stderr (first 20 lines):" >&2
  head -n 20 "$WORK/last.err" | sed 's/^/      /' >&2
}

run_pb() { "$PBACKUP" "$@"; }
run_mpi() {
  local n=$1
  shift
  mpirun --oversubscribe -n "$n" "$PBACKUP" "$@"
}

# Whether the last run's stderr warns only about fifos left out of a zip (zip cannot hold them:
# each is a skipped entry, a warning, exit 1).
only_zip_fifo_warnings() {
  grep -q ': fifo not stored (skipped: zip cannot hold fifos)' "$WORK/last.err" &&
    ! grep 'warning:' "$WORK/last.err" | grep -vq -e 'fifo not stored (skipped: zip' -e '^pbackup: .*; [0-9]* warnings$'
}

# Runs a pbackup command line (through run_pb or run_mpi N) and fails unless it exits 0 (or 1
# when the only warnings are fifos a zip backup left out).
# Usage: expect_ok plain ARGS...   |   expect_ok N ARGS...
expect_ok() {
  local how=$1
  shift
  local rc
  if [ "$how" = plain ]; then run_rc rc run_pb "$@"; else run_rc rc run_mpi "$how" "$@"; fi
  if [ "$rc" -eq 1 ] && only_zip_fifo_warnings; then rc=0; fi
  if [ "$rc" -ne 0 ]; then
    show_last
    fail "expected exit 0, got $rc from: pbackup $* (ranks: $how)"
  fi
}

# Exit status must be a normal exit, not a signal / abort (>= 128 or timeout's 124).
assert_no_signal() {
  local rc=$1 what=$2
  if [ "$rc" -ge 124 ]; then
    show_last
    fail "$what: exit status $rc (killed by a signal, crashed, or timed out)"
  fi
}

# make_edge_tree DIR [nofifo]
# Builds a tree with awkward names, long/deep paths, every link kind, odd modes, old mtimes,
# owners (as root), a fifo and a ~4 MiB compressible file plus files at exact block sizes.
make_edge_tree() {
  local d=$1 opt=${2:-}
  mkdir -p "$d"
  (
    cd "$d"
    # --- names
    printf 'hello unicode\n' >"héllo wörld.txt"
    mkdir -p "日本語/サブ"
    printf 'nihongo\n' >"日本語/ファイル.txt"
    printf 'sub\n' >"日本語/サブ/深い.txt"
    mkdir -p "with space"
    printf 'spaces\n' >"with space/file  with   spaces.txt"
    printf 'dash\n' >"with space/-leading-dash"
    printf 'quote\n' >"with space/quo'te\"s \$dollar &amp; (paren) [br] {c} #h %p.txt"
    printf 'hidden\n' >"with space/.hidden"
    printf 'emoji\n' >"with space/emoji_🎉_ünïcödé.txt"

    # --- long path: total > 255 bytes (and > 1024), each component < 255 bytes
    local c1 c2 c3 c4
    c1="$(printf 'a%.0s' $(seq 1 200))"
    c2="$(printf 'é%.0s' $(seq 1 120))" # 240 bytes in UTF-8
    c3="$(printf 'long_component_%.0s' $(seq 1 15))" # 225 bytes
    c4="$(printf 'z%.0s' $(seq 1 250))"
    mkdir -p "long/$c1/$c2/$c3"
    printf 'long path file\n' >"long/$c1/$c2/$c3/$c4"
    mkdir -p "long/$c1/$c2/$c3/$c4.dir"
    printf 'x\n' >"long/$c1/$c2/$c3/$c4.dir/f.txt"

    # --- deep nesting: 30 levels
    local p=deep i
    for i in $(seq -w 1 30); do p="$p/level_$i"; done
    mkdir -p "$p"
    printf 'bottom\n' >"$p/bottom.txt"
    printf 'middle\n' >"deep/level_01/level_02/level_03/level_04/level_05/level_06/level_07/level_08/level_09/level_10/level_11/level_12/level_13/level_14/level_15/middle.txt"

    # --- symlinks (never followed by the backup)
    mkdir -p links
    ln -s "../héllo wörld.txt" links/rel
    ln -s /etc/hostname links/abs
    ln -s "does/not/exist" links/dangling
    ln -s "../日本語" links/todir
    ln -s .. links/up
    ln -s "$c4" "long/$c1/$c2/$c3/link_to_long"

    # --- hard links: 3 names in different directories, a pair in one dir, an empty pair
    mkdir -p hard/sub other
    printf 'one inode, three names\n' >hard/a.txt
    ln hard/a.txt hard/sub/b.txt
    ln hard/a.txt other/c.txt
    printf 'pair\n' >hard/x
    ln hard/x hard/y
    : >hard/empty1
    ln hard/empty1 other/empty2

    # --- empty dirs and empty files
    mkdir -p empty/dir1 empty/dir2/nested_empty
    : >empty/file0
    : >empty/.hidden0

    # --- modes
    mkdir -p perms/d700 perms/d750
    for m in 600 640 644 700 755 444 400; do
      printf 'mode %s\n' "$m" >"perms/f$m"
      chmod "$m" "perms/f$m"
    done
    printf 'in 700 dir\n' >perms/d700/f
    chmod 700 perms/d700
    chmod 750 perms/d750

    # --- owners (root only: numeric ids without a name)
    if [ "$(id -u)" -eq 0 ]; then
      mkdir -p owners
      printf 'owned\n' >owners/f
      chown 12345:23456 owners/f
      ln -s f owners/l
      chown -h 1001:1002 owners/l
      mkdir -p owners/d
      chown 4242:4343 owners/d
    fi

    # --- special files
    mkdir -p special
    if [ "$opt" != nofifo ]; then mkfifo special/fifo1; fi
    printf 'not special\n' >special/regular

    # --- data: ~4 MiB compressible text (spans many 1 MiB blocks), exact block sizes,
    #     and some incompressible bytes
    mkdir -p data
    "$PYTHON" - <<'PY'
import random
r = random.Random(1234)
words = [("w%d" % i) * (1 + i % 5) for i in range(500)]
with open("data/big.txt", "w") as f:
    n = 0
    while n < 4 * 1024 * 1024 + 12345:
        line = " ".join(r.choice(words) for _ in range(12)) + "\n"
        f.write(line)
        n += len(line)
with open("data/exact_1MiB.bin", "wb") as f:
    f.write(bytes((i * 7 + (i >> 10)) & 0xFF for i in range(1024 * 1024)))
with open("data/1MiB_plus_1.bin", "wb") as f:
    f.write(bytes((i * 13 + (i >> 9)) & 0xFF for i in range(1024 * 1024 + 1)))
with open("data/random.bin", "wb") as f:
    f.write(r.randbytes(300 * 1024))
PY

    # --- times: everything old (so an unapplied mtime shows), some very old, one with ns
    find . -depth -exec touch -h -d '2005-06-07 08:09:10 UTC' {} +
    touch -d '1990-01-02 03:04:05 UTC' "héllo wörld.txt" perms/f600 hard/a.txt data/big.txt
    touch -h -d '1995-05-05 05:05:05 UTC' links/rel links/dangling
    touch -d '2010-01-01 00:00:01.123456789 UTC' empty/file0
    touch -d '1999-12-31 23:59:59 UTC' "日本語/サブ" empty/dir2/nested_empty
    touch -d '1985-03-03 03:03:03 UTC' deep/level_01

    # --- read-only directory, made last (after its contents)
    mkdir -p ro/inner
    printf 'inside read-only dir\n' >ro/file
    printf 'inner\n' >ro/inner/g
    touch -d '2001-01-01 01:01:01 UTC' ro/file ro/inner/g ro/inner
    chmod 555 ro/inner
    chmod 555 ro
    touch -d '2002-02-02 02:02:02 UTC' ro
    touch -d '2003-03-03 03:03:03 UTC' .
  )
}

# Small tree for quick tests: a few files, a symlink, a hard link, a subdir.
make_small_tree() {
  local d=$1
  mkdir -p "$d/sub"
  printf 'alpha\n' >"$d/a.txt"
  printf 'beta\n' >"$d/sub/b.txt"
  ln -s a.txt "$d/link"
  ln "$d/a.txt" "$d/sub/hard"
  "$PYTHON" -c "
import random,sys
r=random.Random(7)
open(sys.argv[1],'w').write(''.join(r.choice('abcdefgh \n') for _ in range(3*1024*1024)))
" "$d/sub/data.txt"
  find "$d" -depth -exec touch -h -d '2004-04-04 04:04:04 UTC' {} +
}

# compare_trees A B [options]
#   --zip            hard links may be separate copies, fifos must be absent from B,
#                    symlink modes/mtimes and owners not compared
#   --no-hardlinks   do not require hard-link identity (contents still compared)
#   --no-fifo        fifos in A must be absent from B
#   --no-mode        do not compare permission bits
#   --no-mtime       do not compare mtimes
#   --no-dir-mtime   do not compare directory mtimes
#   --no-dir-mode    do not compare directory permission bits
#   --no-symlink-meta  do not compare symlink mtimes
#   --no-owner       do not compare owners (they are compared only as root anyway)
#   --no-root-meta   do not compare mode/mtime of the top directories themselves
#   --mtime-tol N    allowed mtime difference in seconds (default 0)
#   --exclude REL    ignore REL (relative path) in both trees (may repeat)
compare_trees() {
  "$PYTHON" - "$@" <<'PY'
import hashlib, os, stat, sys

args = sys.argv[1:]
a_root, b_root = args[0], args[1]
opts = args[2:]
flags = set()
tol = 0
excludes = set()
i = 0
while i < len(opts):
    o = opts[i]
    if o == "--mtime-tol":
        tol = int(opts[i + 1]); i += 2; continue
    if o == "--exclude":
        excludes.add(opts[i + 1]); i += 2; continue
    flags.add(o); i += 1
zipmode = "--zip" in flags
no_hard = zipmode or "--no-hardlinks" in flags
no_fifo = zipmode or "--no-fifo" in flags
no_mode = "--no-mode" in flags
no_mtime = "--no-mtime" in flags
no_dir_mtime = "--no-dir-mtime" in flags
no_dir_mode = "--no-dir-mode" in flags
no_link_meta = zipmode or "--no-symlink-meta" in flags
no_owner = zipmode or "--no-owner" in flags or os.geteuid() != 0
no_root_meta = "--no-root-meta" in flags

def kind(m):
    if stat.S_ISREG(m): return "file"
    if stat.S_ISDIR(m): return "dir"
    if stat.S_ISLNK(m): return "symlink"
    if stat.S_ISFIFO(m): return "fifo"
    if stat.S_ISSOCK(m): return "socket"
    if stat.S_ISCHR(m): return "chardev"
    if stat.S_ISBLK(m): return "blockdev"
    return "other"

def digest(p):
    h = hashlib.sha256()
    with open(p, "rb") as f:
        while True:
            b = f.read(1 << 20)
            if not b: break
            h.update(b)
    return h.hexdigest()

def scan(root):
    out = {}
    root_b = os.fsencode(root)
    def walk(rel):
        full = os.path.join(root_b, rel) if rel else root_b
        st = os.lstat(full)
        out[rel] = (full, st)
        if stat.S_ISDIR(st.st_mode):
            for name in sorted(os.listdir(full)):
                walk(os.path.join(rel, name) if rel else name)
    if not os.path.isdir(root):
        print("compare_trees: not a directory: %s" % root); sys.exit(1)
    walk(b"")
    return out

def show(rel):
    return os.fsdecode(rel) if rel else "(top)"

A, B = scan(a_root), scan(b_root)
ex = {os.fsencode(e) for e in excludes}
def excluded(rel):
    return any(rel == e or rel.startswith(e + b"/") for e in ex)
problems = []
a_paths = {r for r in A if not excluded(r)}
b_paths = {r for r in B if not excluded(r)}
if no_fifo:
    a_paths = {r for r in a_paths if not stat.S_ISFIFO(A[r][1].st_mode)}
for r in sorted(a_paths - b_paths):
    problems.append("missing in restored tree: %s (%s)" % (show(r), kind(A[r][1].st_mode)))
for r in sorted(b_paths - a_paths):
    problems.append("extra in restored tree: %s (%s)" % (show(r), kind(B[r][1].st_mode)))

for r in sorted(a_paths & b_paths):
    fa, sa = A[r]; fb, sb = B[r]
    ka, kb = kind(sa.st_mode), kind(sb.st_mode)
    if ka != kb:
        problems.append("%s: type %s, restored as %s" % (show(r), ka, kb)); continue
    if ka == "file":
        if sa.st_size != sb.st_size:
            problems.append("%s: size %d, restored %d" % (show(r), sa.st_size, sb.st_size))
        elif digest(fa) != digest(fb):
            problems.append("%s: contents differ" % show(r))
    if ka == "symlink" and os.readlink(fa) != os.readlink(fb):
        problems.append("%s: symlink target %r, restored %r" % (show(r), os.readlink(fa), os.readlink(fb)))
    is_top = (r == b"")
    if ka == "symlink" and no_link_meta:
        continue
    if not no_mode and not (is_top and no_root_meta) and ka != "symlink" and not (ka == "dir" and no_dir_mode):
        if stat.S_IMODE(sa.st_mode) != stat.S_IMODE(sb.st_mode):
            problems.append("%s: mode %04o, restored %04o" % (show(r), stat.S_IMODE(sa.st_mode), stat.S_IMODE(sb.st_mode)))
    if not no_mtime and not (is_top and no_root_meta) and not (ka == "dir" and no_dir_mtime):
        if abs(int(sa.st_mtime) - int(sb.st_mtime)) > tol:
            problems.append("%s: mtime %d, restored %d (diff %+d s)" % (show(r), int(sa.st_mtime), int(sb.st_mtime), int(sb.st_mtime) - int(sa.st_mtime)))
    if not no_owner and not is_top:
        if (sa.st_uid, sa.st_gid) != (sb.st_uid, sb.st_gid):
            problems.append("%s: owner %d:%d, restored %d:%d" % (show(r), sa.st_uid, sa.st_gid, sb.st_uid, sb.st_gid))

if not no_hard:
    def groups(T, paths):
        g = {}
        for r in paths:
            st = T[r][1]
            if stat.S_ISREG(st.st_mode):
                g.setdefault((st.st_dev, st.st_ino), []).append(r)
        return {r: frozenset(v) for v in g.values() for r in v}
    ga, gb = groups(A, a_paths & b_paths), groups(B, a_paths & b_paths)
    seen = set()
    for r in sorted(ga):
        if r in seen or r not in gb: continue
        seen |= ga[r]
        if ga[r] != gb[r]:
            problems.append("hard links: source group {%s} restored as {%s}" % (
                ", ".join(sorted(map(show, ga[r]))), ", ".join(sorted(map(show, gb[r])))))

if problems:
    print("compare_trees %s %s: %d difference(s)" % (a_root, b_root, len(problems)))
    for p in problems[:40]:
        print("  " + p)
    if len(problems) > 40:
        print("  ... and %d more" % (len(problems) - 40))
    sys.exit(1)
print("compare_trees: %d entries identical (%s vs %s)" % (len(a_paths), a_root, b_root))
PY
}

# assert_trees_equal A B [options] : compare_trees or fail with its report.
assert_trees_equal() {
  local out rc=0
  out="$(compare_trees "$@" 2>&1)" || rc=$?
  echo "$out"
  [ "$rc" -eq 0 ] || fail "trees differ: $1 vs $2"
}

# Relative paths (one per line, '/'-separated, prefixed with PREFIX/) of everything below DIR,
# plus PREFIX itself. Options: nofifo to drop fifos.
tree_paths() {
  local d=$1 prefix=$2 opt=${3:-}
  "$PYTHON" - "$d" "$prefix" "$opt" <<'PY'
import os, stat, sys
root, prefix, opt = sys.argv[1], sys.argv[2], sys.argv[3]
print(prefix)
for dp, dns, fns in os.walk(root):
    for n in dns + fns:
        full = os.path.join(dp, n)
        if opt == "nofifo" and stat.S_ISFIFO(os.lstat(full).st_mode):
            continue
        print(prefix + "/" + os.path.relpath(full, root))
PY
}

# Normalises `list` output: strip a leading "./" and a trailing "/", sort, unique.
normalize_list() {
  sed -e 's#^\./##' -e 's#/$##' | LC_ALL=C sort -u
}
