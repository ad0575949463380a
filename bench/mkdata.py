#!/usr/bin/python3
"""Build the benchmark data sets from real files already on this machine.

Three sets, each a directory DATA_DIR/<set> (backed up as one root, stored as "<set>/..."):

  small  ~25-35k small files, ~200 MB: copies of /usr/include, the Python standard library,
         Perl modules, /usr/share/doc and man pages (real text, some already-gzipped docs).
  large  4 large files, ~300 MB: concatenated real shared libraries and executables, concatenated
         headers / source text, locale catalogues, and one file interleaving text, binary and
         random 1 MiB chunks (about one third random, i.e. incompressible).
  mixed  ~10k small files from other trees plus a few medium and two large files, ~260 MB.

Content is real and compressible (never pure random, except the marked random chunks). A set is
built in "<set>.tmp" and renamed when complete, and a finished set is reused as is: delete the
directory to rebuild it. Selection is deterministic (sorted walks, seeded random), so two runs on
the same machine build the same bytes; on another machine the sizes may differ a little, and the
script prints what it built.
"""

import argparse
import os
import random
import shutil
import sys
import time

MB = 1000 * 1000
MiB = 1 << 20


def walk_files(root, max_size=None, min_size=0, skip_dirs=()):
    """Yield regular files (not symlinks) under root in sorted order."""
    if not os.path.isdir(root):
        return
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in skip_dirs)
        for name in sorted(filenames):
            p = os.path.join(dirpath, name)
            try:
                st = os.lstat(p)
            except OSError:
                continue
            if not os.path.isfile(p) or os.path.islink(p):
                continue
            if st.st_size < min_size or (max_size is not None and st.st_size > max_size):
                continue
            if not os.access(p, os.R_OK):
                continue
            yield p, st.st_size


class Stats:
    def __init__(self):
        self.files = 0
        self.bytes = 0


def copy_tree_budget(src_root, dst_root, budget_bytes, max_files, stats, max_size=1 * MiB,
                     skip_dirs=()):
    """Copy files from src_root into dst_root/<basename of src_root>/... until the budget is used."""
    used = 0
    n = 0
    base = os.path.join(dst_root, src_root.strip("/").replace("/", "_"))
    for p, size in walk_files(src_root, max_size=max_size, skip_dirs=skip_dirs):
        if n >= max_files or used >= budget_bytes * 0.99:
            break
        if used + size > budget_bytes:
            continue
        rel = os.path.relpath(p, src_root)
        dst = os.path.join(base, rel)
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        try:
            shutil.copyfile(p, dst)
            shutil.copystat(p, dst)
        except OSError:
            continue
        used += size
        n += 1
    stats.files += n
    stats.bytes += used
    return used, n


def concat_files(paths_iter, dst, budget_bytes, piece_max=None):
    """Concatenate real files (or their first piece_max bytes) into dst, up to budget bytes."""
    written = 0
    with open(dst, "wb") as out:
        for p, size in paths_iter:
            if written >= budget_bytes:
                break
            want = min(size, budget_bytes - written)
            if piece_max:
                want = min(want, piece_max)
            try:
                with open(p, "rb") as f:
                    left = want
                    while left > 0:
                        buf = f.read(min(left, 4 * MiB))
                        if not buf:
                            break
                        out.write(buf)
                        left -= len(buf)
                        written += len(buf)
            except OSError:
                continue
    return written


def chain(*iters):
    for it in iters:
        yield from it


def binaries():
    return chain(walk_files("/usr/lib/x86_64-linux-gnu", min_size=64 * 1024, max_size=40 * MiB,
                            skip_dirs=("perl", "perl5", "perl-base", "python3", "dri", "fpc")),
                 walk_files("/usr/bin", min_size=16 * 1024),
                 walk_files("/usr/lib", min_size=64 * 1024))


def texts(*roots):
    it = chain(*(walk_files(r, max_size=4 * MiB) for r in roots))
    for p, size in it:
        if p.endswith((".gz", ".xz", ".bz2", ".zst", ".zip", ".jar", ".png", ".jpg", ".pyc",
                       ".mo", ".so", ".a", ".o", ".svgz", ".woff", ".woff2", ".ttf", ".otf")):
            continue
        yield p, size


def interleaved(dst, total, seed):
    """1 MiB chunks in the pattern text, binary, random: realistic but one third incompressible."""
    rnd = random.Random(seed)
    tsrc = texts("/usr/share/perl", "/usr/lib/python3.11", "/usr/include")
    bsrc = binaries()

    def take(src, n):
        out = bytearray()
        for p, size in src:
            try:
                with open(p, "rb") as f:
                    out += f.read(n - len(out))
            except OSError:
                continue
            if len(out) >= n:
                break
        return bytes(out)

    written = 0
    i = 0
    with open(dst, "wb") as out:
        while written < total:
            kind = i % 3
            if kind == 0:
                chunk = take(tsrc, MiB)
            elif kind == 1:
                chunk = take(bsrc, MiB)
            else:
                chunk = rnd.randbytes(MiB)
            if not chunk:  # source exhausted: fill with random rather than loop forever
                chunk = rnd.randbytes(MiB)
            chunk = chunk[: total - written]
            out.write(chunk)
            written += len(chunk)
            i += 1
    return written


def build_small(d):
    st = Stats()
    # (source, byte budget, file cap, max file size)
    plan = [
        ("/usr/include", 115 * MB, 14000, 1 * MiB),
        ("/usr/lib/python3.11", 35 * MB, 5000, 1 * MiB),
        ("/usr/lib/python3", 20 * MB, 3000, 1 * MiB),
        ("/usr/share/perl", 12 * MB, 1500, 1 * MiB),
        ("/usr/share/doc", 15 * MB, 4000, 256 * 1024),
        ("/usr/share/man", 10 * MB, 6000, 256 * 1024),
        ("/usr/share/vim", 20 * MB, 2000, 1 * MiB),
        ("/usr/share/cmake-3.25", 8 * MB, 3200, 1 * MiB),
        ("/usr/share/zoneinfo", 2 * MB, 1000, 1 * MiB),
    ]
    for src, budget, cap, mx in plan:
        copy_tree_budget(src, d, budget, cap, st, max_size=mx, skip_dirs=("__pycache__",))
    return st


def build_large(d):
    st = Stats()
    parts = [
        ("binaries.bin", lambda p: concat_files(binaries(), p, 110 * MB)),
        ("sources.txt", lambda p: concat_files(
            texts("/usr/include", "/usr/share/perl", "/usr/lib/python3.11", "/usr/share/doc"),
            p, 90 * MB)),
        ("catalogues.dat", lambda p: concat_files(
            chain(walk_files("/usr/share/locale"), walk_files("/usr/share/i18n"),
                  walk_files("/usr/share/X11")), p, 40 * MB)),
        ("interleaved-partly-random.dat", lambda p: interleaved(p, 60 * MB, seed=1234)),
    ]
    for name, fn in parts:
        n = fn(os.path.join(d, name))
        st.files += 1
        st.bytes += n
    return st


def build_mixed(d):
    st = Stats()
    small = os.path.join(d, "tree")
    os.makedirs(small)
    plan = [
        ("/usr/share/locale", 30 * MB, 2500, 512 * 1024),
        ("/usr/share/perl5", 2 * MB, 1000, 512 * 1024),
        ("/usr/share/doc", 25 * MB, 3000, 512 * 1024),
        ("/usr/share/man", 8 * MB, 3000, 256 * 1024),
        ("/usr/lib/python3/dist-packages", 25 * MB, 3000, 1 * MiB),
        ("/usr/share/X11", 5 * MB, 1500, 512 * 1024),
    ]
    for src, budget, cap, mx in plan:
        copy_tree_budget(src, small, budget, cap, st, max_size=mx, skip_dirs=("__pycache__",))
    # medium real files (2-30 MiB), copied as they are
    med = os.path.join(d, "medium")
    os.makedirs(med)
    used = 0
    for p, size in walk_files("/usr/lib/x86_64-linux-gnu", min_size=2 * MiB, max_size=30 * MiB,
                              skip_dirs=("perl", "python3", "dri", "fpc")):
        if used + size > 60 * MB:
            continue
        try:
            shutil.copyfile(p, os.path.join(med, os.path.basename(p)))
        except OSError:
            continue
        used += size
        st.files += 1
        if used > 50 * MB:
            break
    st.bytes += used
    big = os.path.join(d, "big")
    os.makedirs(big)
    gcc = chain(walk_files("/usr/lib/gcc"), walk_files("/usr/libexec"), binaries())
    st.bytes += concat_files(gcc, os.path.join(big, "toolchain.bin"), 80 * MB)
    st.bytes += concat_files(texts("/usr/share/doc", "/usr/share/perl5", "/usr/include"),
                             os.path.join(big, "text.log"), 60 * MB)
    st.files += 2
    return st


BUILDERS = {"small": build_small, "large": build_large, "mixed": build_mixed}


def tree_stats(d):
    files = dirs = 0
    total = 0
    for dirpath, dirnames, filenames in os.walk(d):
        dirs += len(dirnames)
        for f in filenames:
            p = os.path.join(dirpath, f)
            if os.path.isfile(p) and not os.path.islink(p):
                files += 1
                total += os.lstat(p).st_size
    return files, dirs, total


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-dir", required=True, help="parent of the data set directories")
    ap.add_argument("--sets", default="small,large,mixed")
    args = ap.parse_args()
    os.makedirs(args.data_dir, exist_ok=True)
    for name in [s for s in args.sets.split(",") if s]:
        if name not in BUILDERS:
            sys.exit(f"mkdata: unknown data set {name!r} (known: {', '.join(BUILDERS)})")
        final = os.path.join(args.data_dir, name)
        if os.path.isdir(final):
            files, dirs, total = tree_stats(final)
            print(f"data set {name}: reusing {final} ({files} files, {dirs} dirs, {total / MB:.1f} MB)")
            continue
        tmp = final + ".tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        os.makedirs(tmp)
        t0 = time.monotonic()
        BUILDERS[name](tmp)
        os.rename(tmp, final)
        files, dirs, total = tree_stats(final)
        print(f"data set {name}: built {final} in {time.monotonic() - t0:.1f} s "
              f"({files} files, {dirs} dirs, {total / MB:.1f} MB)")


if __name__ == "__main__":
    main()
