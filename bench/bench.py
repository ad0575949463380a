#!/usr/bin/python3
"""pbackup benchmark driver (called by bench/run.sh; see there for the options).

For every data set: one warm-up read of the tree, then interleaved backup rounds (each round runs
every tool once, in an order rotated by one each round), a correctness check of the archives just
written, then interleaved restore rounds of pbackup's archives by pbackup and by the peer tools.
Wall time is measured from outside (the mpirun process for pbackup -n N); peak RSS comes from
/usr/bin/time -f '%e %M' around each process (for mpirun: around each rank, maximum over ranks).
Results go to stdout and to bench/results-latest.md as Markdown; raw numbers as JSON in the
work directory.
"""

import argparse
import datetime
import hashlib
import json
import os
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time

MB = 1000 * 1000
HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
TIMEOUT = 1800  # seconds per command: a hang is reported, not waited for forever

# %e %M as asked (wall s, peak RSS KiB), plus user and system CPU seconds
TIME_FMT = "%e %M %U %S"
CLK_TCK = os.sysconf("SC_CLK_TCK")
NCPU = os.cpu_count() or 1

MPI_ENV = {"OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1"}


def log(msg):
    print(msg, file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------------------------
# Running and measuring one command


class RunResult:
    def __init__(self, wall, rss_kb, rc, cmd, out_tail, cpu=None, noise=None):
        self.wall = wall
        self.rss_kb = rss_kb
        self.rc = rc
        self.cmd = cmd
        self.out_tail = out_tail
        self.cpu = cpu        # user+system seconds of the measured processes
        self.noise = noise    # CPU used by everything else during the run, % of the machine


def busy_seconds():
    """CPU seconds the whole machine spent not idle (all cores), from /proc/stat."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    idle = v[3] + (v[4] if len(v) > 4 else 0)
    return (sum(v[:8]) - idle) / CLK_TCK


def timed(cmd, tfile, cwd, ranks, logfile):
    """Run cmd (a list) under /usr/bin/time; ranks>0 means cmd is `mpirun -n ranks ...` and each
    rank writes tfile.<rank>. Returns RunResult with wall seconds from outside."""
    for f in [tfile, tfile + ".all"] + [f"{tfile}.{r}" for r in range(max(ranks, 0))]:
        if os.path.exists(f):
            os.remove(f)
    env = dict(os.environ, **MPI_ENV)
    with open(logfile, "ab") as lf:
        lf.write(("\n$ " + shlex.join(cmd) + "\n").encode())
        lf.flush()
        b0 = busy_seconds()
        t0 = time.monotonic()
        p = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=lf, stderr=lf, stdin=subprocess.DEVNULL,
                             start_new_session=True)
        # A blocking wait: Popen.wait(timeout=...) polls with sleeps of up to 50 ms, which
        # rounded every wall time up to the next poll (0.52, 0.57, 0.62 ... s): up to 8% on a
        # 0.6 s run. The timeout is a timer that kills the process group instead.
        expired = threading.Event()
        def kill():
            expired.set()
            os.killpg(p.pid, signal.SIGKILL)  # the process group this call started
        killer = threading.Timer(TIMEOUT, kill)
        killer.start()
        rc = p.wait()
        wall = time.monotonic() - t0
        killer.cancel()
        if expired.is_set():
            rc = "timeout"
        b1 = busy_seconds()
    def read_time(f):
        try:
            with open(f) as fh:
                lines = [ln for ln in fh.read().split("\n") if ln.strip()]
            # the last line is TIME_FMT; earlier ones may say "Command exited with non-zero status"
            fields = lines[-1].split()
            return int(fields[1]), float(fields[2]) + float(fields[3])
        except (OSError, IndexError, ValueError):
            return None

    rss = []
    cpu = 0.0
    files = [f"{tfile}.{r}" for r in range(ranks)] if ranks > 0 else [tfile]
    for f in files:
        v = read_time(f)
        if v:
            rss.append(v[0])
            cpu += v[1]
    if ranks > 0:
        v = read_time(tfile + ".all")
        if v:
            cpu = v[1]
    tail = ""
    if rc != 0:
        with open(logfile, "rb") as lf:
            lf.seek(0, 2)
            size = lf.tell()
            lf.seek(max(0, size - 2000))
            tail = lf.read().decode(errors="replace")
    noise = max(0.0, (b1 - b0) - cpu) / (wall * NCPU) * 100 if wall > 0 and rss else None
    return RunResult(wall, max(rss) if rss else None, rc, cmd, tail, cpu if rss else None, noise)


def time_wrap(tfile, cmd):
    return ["/usr/bin/time", "-f", TIME_FMT, "-o", tfile] + cmd


def mpi_wrap(np, tfile, cmd, mpirun_extra=()):
    # each rank runs /usr/bin/time itself and writes TFILE.<rank>
    return (["mpirun", "-n", str(np)] + list(mpirun_extra)
            + ["sh", "-c", f'exec /usr/bin/time -f "{TIME_FMT}" -o "$0.$OMPI_COMM_WORLD_RANK" "$@"', tfile]
            + cmd)


def wait_quiet(limit_pct, max_wait):
    """Wait (up to max_wait s) until the rest of the machine uses under limit_pct% of it over half
    a second; returns the seconds waited. Our own driver is idle meanwhile, so all of it is others."""
    t0 = time.monotonic()
    while True:
        b0 = busy_seconds()
        time.sleep(0.5)
        used = (busy_seconds() - b0) / 0.5 / NCPU * 100
        if used <= limit_pct or time.monotonic() - t0 >= max_wait:
            return time.monotonic() - t0 - 0.5


def sync():
    t0 = time.monotonic()
    os.sync()
    return time.monotonic() - t0


def du_bytes(path):
    """Apparent size of a file or the sum over a tree's regular files."""
    if os.path.isfile(path):
        return os.path.getsize(path)
    total = 0
    for dp, dn, fn in os.walk(path):
        for f in fn:
            p = os.path.join(dp, f)
            if os.path.isfile(p) and not os.path.islink(p):
                total += os.lstat(p).st_size
    return total


def tree_counts(path):
    files = dirs = 0
    for dp, dn, fn in os.walk(path):
        dirs += len(dn)
        files += len(fn)
    return files, dirs


# ----------------------------------------------------------------------------------------------
# The tools


class Tool:
    """One measured configuration. argv(ctx) -> (command list, cwd); ranks for mpirun runs."""

    def __init__(self, key, label, group, argv, out=None, ranks=0, pbackup=False, archive=None):
        self.key = key
        self.label = label
        self.group = group
        self.argv = argv
        self.out = out          # output file name (backup) or None
        self.ranks = ranks
        self.pbackup = pbackup
        self.archive = archive  # restore: which of our archives it reads
        self.mpirun_extra = []  # extra mpirun options (explore: --bind-to none)


def backup_tools(cfg):
    pb = cfg.pbackup
    np_ = str(cfg.np)

    def pbk(algo, ext):
        def f(c):
            return ([pb, "backup", "--sources", c.src, "--output-dir", c.out, "--algo", algo,
                     "--name", "pb", "--no-progress"], c.out)
        return f

    def tarc(flags, out):
        return lambda c: (["tar"] + flags + [os.path.join(c.out, out), "-C", c.parent, c.name], c.out)

    tools = [
        Tool("pb-gzip", f"pbackup -n {np_} gzip", "gzip", pbk("gzip", "tar.gz"), "pb.tar.gz", cfg.np, True),
        Tool("tar-czf", "tar czf", "gzip", tarc(["czf"], "peer-czf.tar.gz"), "peer-czf.tar.gz"),
        Tool("tar-pigz", "tar -I pigz -cf", "gzip", tarc(["-I", "pigz", "-cf"], "peer-pigz.tar.gz"),
             "peer-pigz.tar.gz"),
        Tool("pb-bzip2", f"pbackup -n {np_} bzip2", "bzip2", pbk("bzip2", "tar.bz2"), "pb.tar.bz2", cfg.np, True),
        Tool("tar-cjf", "tar cjf", "bzip2", tarc(["cjf"], "peer-cjf.tar.bz2"), "peer-cjf.tar.bz2"),
        Tool("tar-pbzip2", "tar -I pbzip2 -cf", "bzip2", tarc(["-I", "pbzip2", "-cf"], "peer-pbzip2.tar.bz2"),
             "peer-pbzip2.tar.bz2"),
        Tool("tar-lbzip2", "tar -I lbzip2 -cf", "bzip2", tarc(["-I", "lbzip2", "-cf"], "peer-lbzip2.tar.bz2"),
             "peer-lbzip2.tar.bz2"),
        Tool("pb-zip", f"pbackup -n {np_} zip", "zip", pbk("zip", "zip"), "pb.zip", cfg.np, True),
        Tool("zip-r", "zip -qr", "zip",
             lambda c: (["zip", "-qr", os.path.join(c.out, "peer-zip.zip"), c.name], c.parent), "peer-zip.zip"),
        Tool("pb-zstd", f"pbackup -n {np_} zstd", "zstd", pbk("zstd", "tar.zst"), "pb.tar.zst", cfg.np, True),
        Tool("tar-zstd2", "tar -I 'zstd -T2' -cf", "zstd", tarc(["-I", "zstd -T2", "-cf"], "peer-zstd2.tar.zst"),
             "peer-zstd2.tar.zst"),
        Tool("tar-zstd0", "tar -I 'zstd -T0' -cf", "zstd", tarc(["-I", "zstd -T0", "-cf"], "peer-zstd0.tar.zst"),
             "peer-zstd0.tar.zst"),
    ]
    if cfg.compare:
        # the same pbackup runs with the --compare binary, interleaved with the rest
        cb = cfg.compare

        def pbo(algo):
            def f(c):
                return ([cb, "backup", "--sources", c.src, "--output-dir", c.out, "--algo", algo,
                         "--name", "pbo", "--no-progress"], c.out)
            return f
        extra = []
        for t in tools:
            if t.pbackup:
                ext = t.out[len("pb."):]
                extra.append(Tool(t.key + "-cmp", t.label + f" [{cfg.compare_label}]", t.group,
                                  pbo({"tar.gz": "gzip", "tar.bz2": "bzip2", "zip": "zip", "tar.zst": "zstd"}[ext]),
                                  "pbo." + ext, cfg.np, True))
        tools += extra
    return [t for t in tools if t.group in cfg.algos]


def restore_tools(cfg):
    pb = cfg.pbackup
    np_ = cfg.np

    def pbr(arch):
        return lambda c: ([pb, "restore", "--source", os.path.join(c.out, arch), "--restore-to", c.rdir], c.out)

    def tarx(flags, arch):
        return lambda c: (["tar"] + flags + [os.path.join(c.out, arch), "-C", c.rdir], c.out)

    tools = []
    if "gzip" in cfg.algos:
        tools += [
            Tool("r-pb1-gz", "pbackup restore (no mpirun)", "tar.gz", pbr("pb.tar.gz"), pbackup=True, archive="pb.tar.gz"),
            Tool("r-pbn-gz", f"mpirun -n {np_} pbackup restore", "tar.gz", pbr("pb.tar.gz"), ranks=np_,
                 pbackup=True, archive="pb.tar.gz"),
            Tool("r-tar-xzf", "tar xzf", "tar.gz", tarx(["xzf"], "pb.tar.gz"), archive="pb.tar.gz"),
            Tool("r-tar-pigz", "tar -I pigz -xf", "tar.gz", tarx(["-I", "pigz", "-xf"], "pb.tar.gz"),
                 archive="pb.tar.gz"),
        ]
    if "bzip2" in cfg.algos:
        tools += [
            Tool("r-pb1-bz2", "pbackup restore (no mpirun)", "tar.bz2", pbr("pb.tar.bz2"), pbackup=True,
                 archive="pb.tar.bz2"),
            Tool("r-pbn-bz2", f"mpirun -n {np_} pbackup restore", "tar.bz2", pbr("pb.tar.bz2"), ranks=np_,
                 pbackup=True, archive="pb.tar.bz2"),
            Tool("r-tar-xjf", "tar xjf", "tar.bz2", tarx(["xjf"], "pb.tar.bz2"), archive="pb.tar.bz2"),
            Tool("r-tar-lbzip2", "tar -I lbzip2 -xf", "tar.bz2", tarx(["-I", "lbzip2", "-xf"], "pb.tar.bz2"),
                 archive="pb.tar.bz2"),
        ]
    if "zip" in cfg.algos:
        tools += [
            Tool("r-pb1-zip", "pbackup restore (no mpirun)", "zip", pbr("pb.zip"), pbackup=True, archive="pb.zip"),
            Tool("r-pbn-zip", f"mpirun -n {np_} pbackup restore", "zip", pbr("pb.zip"), ranks=np_, pbackup=True,
                 archive="pb.zip"),
            Tool("r-unzip", "unzip -q", "zip",
                 lambda c: (["unzip", "-q", os.path.join(c.out, "pb.zip"), "-d", c.rdir], c.out), archive="pb.zip"),
        ]
    if "zstd" in cfg.algos:
        tools += [
            Tool("r-pb1-zst", "pbackup restore (no mpirun)", "tar.zst", pbr("pb.tar.zst"), pbackup=True,
                 archive="pb.tar.zst"),
            Tool("r-pbn-zst", f"mpirun -n {np_} pbackup restore", "tar.zst", pbr("pb.tar.zst"), ranks=np_,
                 pbackup=True, archive="pb.tar.zst"),
            Tool("r-tar-zstd", "tar -I zstd -xf", "tar.zst", tarx(["-I", "zstd", "-xf"], "pb.tar.zst"),
                 archive="pb.tar.zst"),
        ]
    if cfg.compare:
        # the --compare binary restores the archive it wrote itself (pbo.*)
        cb = cfg.compare

        def pbro(arch):
            return lambda c: ([cb, "restore", "--source", os.path.join(c.out, arch), "--restore-to", c.rdir], c.out)
        tools += [Tool(t.key + "-cmp", t.label + f" [{cfg.compare_label}]", t.group,
                       pbro("pbo" + t.archive[len("pb"):]), ranks=t.ranks, pbackup=True,
                       archive="pbo" + t.archive[len("pb"):])
                  for t in tools if t.pbackup]
    return tools


# Targets: (pbackup key, peer key, min speed ratio or None, max size ratio or None)
BACKUP_TARGETS = [
    ("pb-gzip", "tar-czf", 1.7, 1.05),
    ("pb-gzip", "tar-pigz", 0.95, 1.05),
    ("pb-bzip2", "tar-cjf", 1.7, 1.05),
    ("pb-bzip2", "tar-pbzip2", 1.0, 1.05),
    ("pb-bzip2", "tar-lbzip2", None, 1.05),
    ("pb-zip", "zip-r", 1.7, 1.05),
    ("pb-zstd", "tar-zstd2", 0.9, 1.05),
    ("pb-zstd", "tar-zstd0", None, 1.05),
]
RESTORE_TARGETS = [
    ("r-pb1-gz", "r-tar-xzf", 1.5), ("r-pbn-gz", "r-tar-xzf", 1.5),
    ("r-pb1-gz", "r-tar-pigz", None), ("r-pbn-gz", "r-tar-pigz", None),
    ("r-pb1-bz2", "r-tar-xjf", 1.7), ("r-pbn-bz2", "r-tar-xjf", 1.7),
    ("r-pb1-bz2", "r-tar-lbzip2", None), ("r-pbn-bz2", "r-tar-lbzip2", None),
    ("r-pb1-zip", "r-unzip", None), ("r-pbn-zip", "r-unzip", None),
    ("r-pb1-zst", "r-tar-zstd", None), ("r-pbn-zst", "r-tar-zstd", None),
]


# ----------------------------------------------------------------------------------------------
# Per data set


class Ctx:
    pass


def rotate(seq, k):
    k %= max(len(seq), 1)
    return seq[k:] + seq[:k]


def warm(path):
    """Read every file once (tar to a pipe: GNU tar skips reading file data when the archive is
    /dev/null itself, so `tar cf /dev/null` alone would not warm the page cache)."""
    t0 = time.monotonic()
    subprocess.run(f"tar cf - -C {shlex.quote(os.path.dirname(path))} {shlex.quote(os.path.basename(path))}"
                   " | cat > /dev/null", shell=True, check=True)
    return time.monotonic() - t0


cfg_max_noise = 10.0   # set from the options in main()
cfg_retries = 2
cfg_noise_pause = 2.0
cfg_quiet_wait = 30.0


def new_restore_dir(ctx):
    """A new, empty directory for the next restore. The old ones stay until the data set is done
    (unless ctx.delete_between): on this machine's ext4, creating files just after deleting tens
    of thousands costs several times more system time (the allocator skips recently deleted
    inodes), which would swamp the restore times we want to compare."""
    if ctx.delete_between and ctx.rdir and os.path.isdir(ctx.rdir):
        shutil.rmtree(ctx.rdir, ignore_errors=True)  # (the fallback: no settling between runs)
    ctx.rcount += 1
    ctx.rdir = os.path.join(ctx.rbase, f"run{ctx.rcount:03d}")
    os.makedirs(ctx.rdir)
    return ctx.rdir


def mass_delete(cfg, path):
    """Delete a tree of restored files, remembering when (see settle())."""
    if not os.path.exists(path):
        return 0.0
    t0 = time.monotonic()
    shutil.rmtree(path, ignore_errors=True)
    os.sync()
    with open(os.path.join(cfg.work, ".last-mass-delete"), "w") as f:
        f.write(str(time.time()))
    return time.monotonic() - t0


def settle(cfg, name):
    """ext4 skips inodes deleted in the last 60-300 s when it allocates new ones, which makes file
    creation several times slower for a while after a big deletion. Restores (which create tens of
    thousands of files) wait until the last big deletion is --settle seconds old."""
    try:
        with open(os.path.join(cfg.work, ".last-mass-delete")) as f:
            last = float(f.read().strip())
    except (OSError, ValueError):
        return 0.0
    wait = last + cfg.settle - time.time()
    if wait > 0:
        log(f"[{name}] waiting {wait:.0f} s: restored files were deleted {cfg.settle - wait:.0f} s ago, and ext4 "
            f"creates files slowly for a few minutes after that")
        time.sleep(wait)
        return wait
    return 0.0


def disk_bytes(path):
    """Bytes the tree occupies on disk (blocks, not apparent size)."""
    total = 0
    for dp, dn, fn in os.walk(path):
        for f in fn + dn:
            try:
                total += os.lstat(os.path.join(dp, f)).st_blocks * 512
            except OSError:
                pass
    return total


def measure(tools, rounds, ctx, phase, prepare, results):
    n = len(tools)
    for r in range(rounds):
        order = rotate(tools, r)
        for i, t in enumerate(order):
            tfile = os.path.join(ctx.tmp, "time." + t.key)
            rec = results.setdefault(t.key, {"label": t.label, "group": t.group, "cmd": "",
                                             "walls": [], "rss_kb": [], "flush": [], "sizes": [],
                                             "cpu": [], "noise": [], "retried": [], "failures": []})
            for attempt in range(cfg_retries + 1):
                prepare(t)  # may pick a new restore directory: build the command after it
                cmd, cwd = t.argv(ctx)
                # mpirun runs: /usr/bin/time around each rank (peak RSS per rank) and around
                # mpirun (CPU of everything it started, mpirun included)
                full = (time_wrap(tfile + ".all", mpi_wrap(t.ranks, tfile, cmd, t.mpirun_extra)) if t.ranks
                        else time_wrap(tfile, cmd))
                rec["cmd"] = shlex.join(full)
                sync()  # flush the previous run's writes outside any timed part
                waited = wait_quiet(cfg_max_noise, cfg_quiet_wait)
                if waited >= 1.0:
                    log(f"  [{ctx.name}] waited {waited:.0f} s for other processes to quieten")
                res = timed(full, tfile, cwd, t.ranks, ctx.logfile)
                flush = sync()  # what the tool left unwritten (pbackup fsyncs inside its timed part)
                if res.rc != 0 or res.noise is None or res.noise <= cfg_max_noise or attempt == cfg_retries:
                    break
                rec["retried"].append({"wall": res.wall, "noise": res.noise})
                log(f"  [{ctx.name}] {phase} {t.label}: {res.wall:.2f} s but other processes used "
                    f"{res.noise:.0f}% of the machine meanwhile; running it again")
                time.sleep(cfg_noise_pause)
            size = None
            if t.out:
                p = os.path.join(ctx.out, t.out)
                size = os.path.getsize(p) if os.path.exists(p) else None
            if res.rc != 0:
                rec["failures"].append({"rc": res.rc, "cmd": shlex.join(full), "tail": res.out_tail})
                log(f"  !! {t.label}: exit {res.rc}: {shlex.join(full)}\n{res.out_tail}")
            else:
                rec["walls"].append(res.wall)
                if res.rss_kb is not None:
                    rec["rss_kb"].append(res.rss_kb)
                rec["flush"].append(flush)
                rec["cpu"].append(res.cpu)
                rec["noise"].append(res.noise)
                if size is not None:
                    rec["sizes"].append(size)
            log(f"  [{ctx.name}] {phase} round {r + 1}/{rounds} ({i + 1}/{n}) {t.label:34s} "
                f"{res.wall:7.2f} s" + (f"  {size / MB:8.1f} MB" if size else "")
                + (f"  rss {res.rss_kb / 1024:.0f} MB" if res.rss_kb else "")
                + (f"  cpu {res.cpu:.1f} s" if res.cpu is not None else "")
                + (f"  others {res.noise:.0f}%" if res.noise is not None else ""))


def sh(cmd, cwd=None):
    return subprocess.run(cmd, shell=True, cwd=cwd, capture_output=True, text=True,
                          env=dict(os.environ, **MPI_ENV))


def count_members(cmd):
    r = sh(cmd + " | wc -l")
    return int(r.stdout.strip() or -1) if r.returncode == 0 else None


def verify(ctx, cfg, bres):
    """Correctness, once per data set, on the archives the last timed round wrote."""
    checks = []

    def add(name, ok, detail):
        checks.append({"check": name, "ok": bool(ok), "detail": detail})
        log(f"  [{ctx.name}] verify: {name}: {'ok' if ok else 'FAILED'} ({detail})")

    o = ctx.out
    q = shlex.quote
    ref = None
    if "gzip" in cfg.algos:
        ours = count_members(f"tar tzf {q(o + '/pb.tar.gz')}")
        ref = count_members(f"tar tzf {q(o + '/peer-czf.tar.gz')}")
        add("tar.gz member count (GNU tar lists pbackup's vs tar czf's)", ours is not None and ours == ref,
            f"{ours} vs {ref}")
        r = sh(f"gzip -t {q(o + '/pb.tar.gz')}")
        add("gzip -t pb.tar.gz", r.returncode == 0, r.stderr.strip()[:200] or "clean")
        # restore with pbackup (mpirun -n N), compare with the source
        rdir = new_restore_dir(ctx)
        r = sh(f"mpirun -n {cfg.np} {q(cfg.pbackup)} restore --source {q(o + '/pb.tar.gz')} --restore-to {q(rdir)}")
        add(f"mpirun -n {cfg.np} pbackup restore exit status", r.returncode == 0, (r.stderr.strip()[-300:] or "0"))
        d = sh(f"diff -r --no-dereference {q(ctx.src)} {q(os.path.join(rdir, ctx.name))}")
        add(f"diff -r source vs pbackup-restored tar.gz", d.returncode == 0 and not d.stdout,
            (d.stdout + d.stderr).strip()[:300] or "identical")
        # GNU tar extracts pbackup's tar.gz to the same tree
        rdir = new_restore_dir(ctx)
        r = sh(f"tar xzf {q(o + '/pb.tar.gz')} -C {q(rdir)}")
        d = sh(f"diff -r --no-dereference {q(ctx.src)} {q(os.path.join(rdir, ctx.name))}")
        add("diff -r source vs GNU tar xzf of pbackup's tar.gz", r.returncode == 0 and d.returncode == 0,
            (r.stderr + d.stdout + d.stderr).strip()[:300] or "identical")
    if ref is None:
        ref = count_members(f"tar cf - -C {q(ctx.parent)} {q(ctx.name)} | tar tf -")
    if "bzip2" in cfg.algos:
        ours = count_members(f"tar -I lbzip2 -tf {q(o + '/pb.tar.bz2')}")
        add("tar.bz2 member count (GNU tar)", ours == ref, f"{ours} vs {ref}")
        r = sh(f"bzip2 -t {q(o + '/pb.tar.bz2')}")
        add("bzip2 -t pb.tar.bz2", r.returncode == 0, r.stderr.strip()[:200] or "clean")
    if "zstd" in cfg.algos:
        ours = count_members(f"tar -I zstd -tf {q(o + '/pb.tar.zst')}")
        add("tar.zst member count (GNU tar)", ours == ref, f"{ours} vs {ref}")
    if "zip" in cfg.algos:
        ours = count_members(f"unzip -Z1 {q(o + '/pb.zip')}")
        theirs = count_members(f"unzip -Z1 {q(o + '/peer-zip.zip')}")
        add("zip member count (unzip -Z1: pbackup's vs zip -r's)", ours == theirs, f"{ours} vs {theirs}")
        r = sh(f"unzip -tq {q(o + '/pb.zip')}")
        add("unzip -tq pb.zip", r.returncode == 0, (r.stdout + r.stderr).strip()[:200])
    if cfg.compare:
        lister = {"tar.gz": "tar tzf", "tar.bz2": "tar -I lbzip2 -tf", "tar.zst": "tar -I zstd -tf", "zip": "unzip -Z1"}
        for ext, cmd in lister.items():
            a, b = os.path.join(o, "pb." + ext), os.path.join(o, "pbo." + ext)
            if os.path.exists(a) and os.path.exists(b):
                la, lb = sh(f"{cmd} {q(a)} | sort"), sh(f"{cmd} {q(b)} | sort")
                same = la.returncode == 0 and lb.returncode == 0 and la.stdout == lb.stdout
                add(f"{ext}: same member list as the {cfg.compare_label} binary's archive", same,
                    f"{la.stdout.count(chr(10))} vs {lb.stdout.count(chr(10))} members")
    # pbackup's own manifest sizes (not counted in the archive size)
    man = {}
    for ext in ("tar.gz", "tar.bz2", "tar.zst", "zip"):
        p = os.path.join(o, f"pb.{ext}.manifest.json")
        if os.path.exists(p):
            man[ext] = os.path.getsize(p)
    return checks, man


def run_set(name, cfg):
    ctx = Ctx()
    ctx.name = name
    ctx.parent = cfg.data_dir
    ctx.src = os.path.join(cfg.data_dir, name)
    ctx.out = os.path.join(cfg.work, "out", name)
    ctx.tmp = os.path.join(cfg.work, "tmp", name)
    ctx.rbase = os.path.join(cfg.work, "restore", name)
    ctx.rdir = None
    ctx.rcount = 0
    ctx.logfile = os.path.join(cfg.work, f"log-{name}.txt")
    mass_delete(cfg, ctx.rbase)  # leftovers of an interrupted run
    for d in (ctx.out, ctx.tmp, ctx.rbase):
        shutil.rmtree(d, ignore_errors=True)
        os.makedirs(d)
    if os.path.exists(ctx.logfile):
        os.remove(ctx.logfile)
    res = {"name": name, "bytes": du_bytes(ctx.src)}
    res["files"], res["dirs"] = tree_counts(ctx.src)
    # every restore goes to a new directory, all deleted after the set: is there room?
    n_restores = 2 + (len(restore_tools(cfg)) * cfg.runs if cfg.restore and not cfg.explore_only else 0)
    if cfg.explore and name == cfg.explore_set:
        n_restores += 5 * len(cfg.explore_algos) * cfg.runs
    need = n_restores * disk_bytes(ctx.src) * 1.1
    free = shutil.disk_usage(cfg.work).free
    ctx.delete_between = cfg.delete_between or need > free - 5e9
    if ctx.delete_between and not cfg.delete_between:
        log(f"[{name}] only {free / 1e9:.1f} GB free for ~{need / 1e9:.1f} GB of restores: deleting each "
            "restore before the next (slower file creation for every tool afterwards)")
    res["restore_dirs_deleted_between"] = ctx.delete_between
    log(f"[{name}] {res['files']} files, {res['dirs']} dirs, {res['bytes'] / MB:.1f} MB; "
        f"log of every command: {ctx.logfile}")
    res["warm_s"] = warm(ctx.src)
    log(f"[{name}] warm-up read (tar cf - | cat > /dev/null): {res['warm_s']:.1f} s")

    # ---- backup
    btools = backup_tools(cfg)
    if cfg.explore_only:  # only pbackup's archives, once: the knobs are what we came for
        btools = [t for t in btools if t.pbackup]

    def prep_backup(t):
        for f in os.listdir(ctx.out):
            if f == t.out or f.startswith(t.out + ".") or f.startswith("." + t.out):
                os.remove(os.path.join(ctx.out, f))

    bres = {}
    measure(btools, 1 if cfg.explore_only else cfg.runs, ctx, "backup", prep_backup, bres)
    res["backup"] = bres
    res["verify"], res["manifest_bytes"] = verify(ctx, cfg, bres)

    # ---- restore (of the archives pbackup wrote in the last round)
    rtools = [t for t in restore_tools(cfg) if os.path.exists(os.path.join(ctx.out, t.archive))]
    # (only matters when the restores create many files)
    res["settle_wait_s"] = settle(cfg, name) if (cfg.restore or cfg.explore) and res["files"] > 1000 else 0.0
    for a in {t.archive for t in rtools}:
        subprocess.run(["cat", os.path.join(ctx.out, a)], stdout=subprocess.DEVNULL)

    def prep_restore(t):
        new_restore_dir(ctx)

    rres = {}
    if cfg.restore and not cfg.explore_only:
        measure(rtools, cfg.runs, ctx, "restore", prep_restore, rres)
        for t in rtools:
            if t.key in rres:
                rres[t.key]["archive"] = t.archive
    res["restore"] = rres

    # ---- optional exploration of pbackup's own knobs
    if cfg.explore and name == cfg.explore_set:
        res["explore"] = explore(ctx, cfg)
    if not cfg.keep:
        shutil.rmtree(ctx.out, ignore_errors=True)
    took = mass_delete(cfg, ctx.rbase)
    log(f"[{name}] removed {ctx.rcount} restore directories in {took:.1f} s")
    return res


EXT = {"gzip": "tar.gz", "bzip2": "tar.bz2", "zstd": "tar.zst", "zip": "zip"}


def explore(ctx, cfg):
    """pbackup's own knobs: ranks, threads, binding, block size (backup), and ranks/threads for
    restore of the archive the timed rounds left. Each variant is a Tool, measured like the rest."""
    pb = cfg.pbackup
    q = []
    n = cfg.np

    def bk(key, label, algo, ranks, extra=(), mpirun_extra=()):
        def argv(c):
            return ([pb, "backup", "--sources", c.src, "--output-dir", c.out, "--algo", algo,
                     "--name", "ex-" + key, "--no-progress"] + list(extra), c.out)
        t = Tool(key, f"backup {algo}: {label}", "explore", argv, f"ex-{key}.{EXT[algo]}", ranks, True)
        t.mpirun_extra = list(mpirun_extra)
        q.append(t)

    def rs(key, label, algo, ranks, extra=(), mpirun_extra=()):
        arch = os.path.join(ctx.out, "pb." + EXT[algo])
        if not os.path.exists(arch):
            return

        def argv(c):
            return [pb, "restore", "--source", arch, "--restore-to", c.rdir] + list(extra), c.out
        t = Tool(key, f"restore {EXT[algo]}: {label}", "explore", argv, None, ranks, True)
        t.mpirun_extra = list(mpirun_extra)
        q.append(t)

    unbound = ["--bind-to", "none"]
    for algo in cfg.explore_algos:
        bk(f"{algo}-n{n}", f"mpirun -n {n} (default)", algo, n)
        bk(f"{algo}-n{n}-unbound", f"mpirun -n {n} --bind-to none", algo, n, mpirun_extra=unbound)
        bk(f"{algo}-n{n}-yield", f"mpirun -n {n} --mca mpi_yield_when_idle 1", algo, n,
           mpirun_extra=["--mca", "mpi_yield_when_idle", "1"])
        bk(f"{algo}-n1", "mpirun -n 1 (bound to 1 core: 1 thread)", algo, 1)
        bk(f"{algo}-n1-unbound", "mpirun -n 1 --bind-to none (2 threads)", algo, 1, mpirun_extra=unbound)
        bk(f"{algo}-plain", "no mpirun (1 rank, 2 threads)", algo, 0)
        bk(f"{algo}-plain-t1", "no mpirun --threads 1", algo, 0, ["--threads", "1"])
        for b in cfg.explore_blocks:
            bk(f"{algo}-n{n}-b{b}", f"mpirun -n {n} --block-mb {b}", algo, n, ["--block-mb", str(b)])
            bk(f"{algo}-plain-b{b}", f"no mpirun --block-mb {b}", algo, 0, ["--block-mb", str(b)])
    for algo in cfg.explore_algos:
        rs(f"r-{algo}-plain", "no mpirun (2 threads)", algo, 0)
        rs(f"r-{algo}-plain-t1", "no mpirun --threads 1", algo, 0, ["--threads", "1"])
        rs(f"r-{algo}-n1-unbound", "mpirun -n 1 --bind-to none", algo, 1, mpirun_extra=unbound)
        rs(f"r-{algo}-n{n}", f"mpirun -n {n}", algo, n)
        rs(f"r-{algo}-n{n}-unbound", f"mpirun -n {n} --bind-to none", algo, n, mpirun_extra=unbound)

    res = {}

    def prep(t):
        for f in os.listdir(ctx.out):
            if f.startswith("ex-") or f.startswith(".ex-"):
                os.remove(os.path.join(ctx.out, f))
        new_restore_dir(ctx)

    measure(q, cfg.runs, ctx, "explore", prep, res)
    return res


# ----------------------------------------------------------------------------------------------
# Reporting


def med(xs):
    return statistics.median(xs) if xs else None


def fmt(x, spec=".2f", none="—"):
    return none if x is None else format(x, spec)


def noise_cell(r):
    n = med([x for x in r.get("noise", []) if x is not None])
    cell = fmt(n, ".0f")
    if r.get("retried"):
        cell += f" ({len(r['retried'])} rerun)"
    return cell


def verdict(ok):
    return "PASS" if ok else "MISS"


def report(all_res, cfg, meta):
    L = []
    L.append("# pbackup benchmark results")
    L.append("")
    L.append(f"- date: {meta['date']}; host: {meta['host']}; {meta['cores']} cores; "
             f"{meta['mem_gb']:.0f} GB RAM; git {meta['git']}")
    L.append(f"- command: `{meta['command']}`")
    L.append(f"- binary: {meta.get('binary', '?')}")
    L.append(f"- pbackup runs as `mpirun -n {cfg.np} build/pbackup backup ...` (Open MPI binds each rank to "
             f"one core; default `--threads` = the cores a rank may use); peers are invoked as listed.")
    L.append(f"- {cfg.runs} run(s) per tool, interleaved (every round runs each tool once, order rotated by one "
             "each round); the table shows the **median**, with min–max over runs.")
    L.append("- **Page cache is not dropped** (we cannot do it reliably here). Instead every data set is read "
             "once before timing (`tar cf - DIR | cat > /dev/null`; `tar cf /dev/null` would skip the data), "
             "and each archive is read once before the restore runs, so **every tool runs with a warm cache**. "
             "`sync` runs before every timed command, outside the timing.")
    L.append("- Wall time is measured from outside (for pbackup, the whole `mpirun`, startup included). "
             "Peak RSS from `/usr/bin/time -f '%e %M'`: for mpirun, the maximum over ranks (mpirun itself not "
             "counted); for `tar -I prog`, the larger of tar and the compressor (not their sum).")
    L.append("- Restores: each run extracts into a new empty directory; " + (
        "all of them are deleted only after the data set (outside any timing), because on this ext4 creating "
        "files right after deleting tens of thousands costs several times more system time (the inode "
        "allocator skips recently deleted inodes) — that would swamp the differences between tools. For the "
        f"same reason the restore runs of a set start only once the last such deletion is {cfg.settle:.0f} s old (`--settle`)."
        if not any(r.get("restore_dirs_deleted_between") for r in all_res) else
        "**each was deleted before the next run** (not enough disk space to keep them, or --delete-between): "
        "file creation right after mass deletion is slower on ext4, for every tool alike."))
    L.append("- MB = 10^6 bytes. MB/s = data set bytes (sum of regular file sizes) / median seconds, for backup "
             "and restore alike. Size ratio = pbackup archive / peer archive (manifest not counted). "
             "Speed ratio = peer median time / pbackup median time (>1: pbackup faster).")
    L.append("- `flush s`: time of a `sync` right after the run (outside the timing). pbackup fsyncs its "
             "archive before returning (inside its time); the peers leave that to the kernel, so this column "
             "is roughly what durability would add to a peer.")
    L.append(f"- `CPU s`: user+system seconds of the measured processes (all ranks; tar with its compressor). "
             f"`others %`: CPU used by every other process during the run (from /proc/stat, minus our own), in % "
             f"of the whole machine. Each run starts once the machine has been quiet (others under {cfg.max_noise:.0f}% "
             f"for half a second, waiting at most {cfg.quiet_wait:.0f} s); a run where others still exceeded {cfg.max_noise:.0f}% was discarded and run again "
             f"(at most {cfg.noise_retries} times; `rerun` counts them) — the machine is shared.")
    L.append(f"- load average at start {meta['load_start']}, at end {meta.get('load_end', '?')} "
             "(the machine is shared: expect noise of several percent).")
    L.append("")
    summary = []
    for res in all_res:
        name = res["name"]
        nbytes = res["bytes"]
        L.append(f"## Data set `{name}`: {res['files']} files, {res['dirs']} dirs, {nbytes / MB:.1f} MB")
        L.append("")
        vfail = [c for c in res["verify"] if not c["ok"]]
        L.append("Correctness: " + ("all checks passed — " if not vfail else "**FAILED** — ")
                 + "; ".join(f"{c['check']}: {'ok' if c['ok'] else 'FAILED'} ({c['detail']})" for c in res["verify"]))
        if res.get("manifest_bytes"):
            L.append("")
            L.append("pbackup manifests (beside the archive, not counted in sizes): "
                     + ", ".join(f"{k} {v / 1000:.0f} kB" for k, v in res["manifest_bytes"].items()))
        L.append("")
        # backup table
        L.append("### Backup")
        L.append("")
        L.append("| group | tool | median s | min–max s | MB/s | output MB | ratio in/out | peak RSS MB | CPU s | flush s | others % | fails |")
        L.append("|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|")
        b = res["backup"]
        for key, r in b.items():
            m = med(r["walls"])
            sz = med(r["sizes"])
            L.append(f"| {r['group']} | {'**' + r['label'] + '**' if key.startswith('pb-') else r['label']} | "
                     f"{fmt(m)} | {fmt(min(r['walls']) if r['walls'] else None)}–{fmt(max(r['walls']) if r['walls'] else None)} | "
                     f"{fmt(nbytes / MB / m if m else None, '.1f')} | {fmt(sz / MB if sz else None, '.1f')} | "
                     f"{fmt(nbytes / sz if sz else None)} | {fmt(max(r['rss_kb']) / 1024 if r['rss_kb'] else None, '.0f')} | "
                     f"{fmt(med(r['cpu']), '.1f')} | {fmt(med(r['flush']))} | {noise_cell(r)} | {len(r['failures']) or ''} |")
        L.append("")
        # restore table
        if res["restore"]:
            L.append("### Restore (pbackup's archives, into a fresh directory each run)")
            L.append("")
            L.append("| archive | tool | median s | min–max s | MB/s | peak RSS MB | CPU s | flush s | others % | fails |")
            L.append("|---|---|--:|--:|--:|--:|--:|--:|--:|--:|")
            for key, r in res["restore"].items():
                m = med(r["walls"])
                L.append(f"| {r['group']} | {'**' + r['label'] + '**' if '-pb' in key else r['label']} | {fmt(m)} | "
                         f"{fmt(min(r['walls']) if r['walls'] else None)}–{fmt(max(r['walls']) if r['walls'] else None)} | "
                         f"{fmt(nbytes / MB / m if m else None, '.1f')} | "
                         f"{fmt(max(r['rss_kb']) / 1024 if r['rss_kb'] else None, '.0f')} | {fmt(med(r['cpu']), '.1f')} | "
                         f"{fmt(med(r['flush']))} | {noise_cell(r)} | {len(r['failures']) or ''} |")
            L.append("")
        # targets
        L.append("### Ratios and targets")
        L.append("")
        L.append("| operation | pbackup | vs peer | speed ratio | target | result | size ratio | target | result |")
        L.append("|---|---|---|--:|--:|---|--:|--:|---|")
        wrong = bool(vfail)
        for pk, ek, sp_t, sz_t in BACKUP_TARGETS:
            if pk not in b or ek not in b:
                continue
            pm, em = med(b[pk]["walls"]), med(b[ek]["walls"])
            ps, es = med(b[pk]["sizes"]), med(b[ek]["sizes"])
            sp = em / pm if pm and em else None
            sz = ps / es if ps and es else None
            sp_ok = sp is not None and sp_t is not None and sp >= sp_t and not wrong and not b[pk]["failures"]
            sz_ok = sz is not None and sz <= sz_t and not wrong and not b[pk]["failures"]
            sp_v = verdict(sp_ok) if sp_t is not None else "info"
            sz_v = verdict(sz_ok) if sz_t is not None else "info"
            L.append(f"| backup {b[pk]['group']} | {b[pk]['label']} | {b[ek]['label']} | {fmt(sp, '.3f')}x | "
                     f"{'≥' + format(sp_t, '.2f') + 'x' if sp_t else '—'} | {sp_v} | {fmt(sz, '.3f')}x | "
                     f"{'≤' + format(sz_t, '.2f') + 'x' if sz_t else '—'} | {sz_v} |")
            if sp_t is not None:
                summary.append((name, f"backup {b[pk]['group']} speed vs {b[ek]['label']}", sp, sp_t, "≥", sp_v))
            if sz_t is not None:
                summary.append((name, f"backup {b[pk]['group']} size vs {b[ek]['label']}", sz, sz_t, "≤", sz_v))
        rr = res["restore"]
        for pk, ek, sp_t in RESTORE_TARGETS:
            if pk not in rr or ek not in rr:
                continue
            pm, em = med(rr[pk]["walls"]), med(rr[ek]["walls"])
            sp = em / pm if pm and em else None
            ok = sp is not None and sp_t is not None and sp >= sp_t and not wrong and not rr[pk]["failures"]
            v = verdict(ok) if sp_t is not None else "info"
            L.append(f"| restore {rr[pk]['group']} | {rr[pk]['label']} | {rr[ek]['label']} | {fmt(sp, '.3f')}x | "
                     f"{'≥' + format(sp_t, '.2f') + 'x' if sp_t else '—'} | {v} | | | |")
            if sp_t is not None:
                summary.append((name, f"restore {rr[pk]['group']}: {rr[pk]['label']} vs {rr[ek]['label']}",
                                sp, sp_t, "≥", v))
        if wrong:
            L.append("")
            L.append("**Correctness checks failed for this data set: every target counts as MISS.**")
        L.append("")
        cmp_rows = [(part, k) for part in ("backup", "restore") for k in res[part] if k + "-cmp" in res[part]]
        if cmp_rows:
            L.append("### This binary vs the --compare binary (time ratio < 1: this one is faster)")
            L.append("")
            L.append("| operation | configuration | median s | compare median s | time ratio | CPU s (this / compare) | CPU ratio | size ratio | peak RSS MB (this / compare) |")
            L.append("|---|---|--:|--:|--:|--:|--:|--:|--:|")
            for part, k in cmp_rows:
                a, c = res[part][k], res[part][k + "-cmp"]
                am, cm = med(a["walls"]), med(c["walls"])
                az, cz = med(a["sizes"]), med(c["sizes"])
                ar = max(a["rss_kb"]) / 1024 if a["rss_kb"] else None
                cr = max(c["rss_kb"]) / 1024 if c["rss_kb"] else None
                au, cu = med(a["cpu"]), med(c["cpu"])
                L.append(f"| {part} {a['group']} | {a['label']} | {fmt(am)} | {fmt(cm)} | "
                         f"{fmt(am / cm if am and cm else None, '.3f')} | {fmt(au)} / {fmt(cu)} | "
                         f"{fmt(au / cu if au and cu else None, '.3f')} | {fmt(az / cz if az and cz else None, '.4f')} | "
                         f"{fmt(ar, '.0f')} / {fmt(cr, '.0f')} |")
            L.append("")
        if res.get("explore"):
            L.append("### pbackup knobs (same interleaving, runs and noise rule; output MB for backups)")
            L.append("")
            L.append("| configuration | median s | min–max s | MB/s | output MB | peak RSS MB | CPU s | others % | fails |")
            L.append("|---|--:|--:|--:|--:|--:|--:|--:|--:|")
            for key, r in res["explore"].items():
                m = med(r["walls"])
                sz = med(r["sizes"])
                L.append(f"| {r['label']} | {fmt(m)} | {fmt(min(r['walls']) if r['walls'] else None)}–"
                         f"{fmt(max(r['walls']) if r['walls'] else None)} | {fmt(nbytes / MB / m if m else None, '.1f')} | "
                         f"{fmt(sz / MB if sz else None, '.1f')} | "
                         f"{fmt(max(r['rss_kb']) / 1024 if r['rss_kb'] else None, '.0f')} | {fmt(med(r['cpu']), '.1f')} | "
                         f"{noise_cell(r)} | {len(r['failures']) or ''} |")
            L.append("")
        fails = [(k, f) for part in ("backup", "restore", "explore") for k, r in (res.get(part) or {}).items()
                 for f in r["failures"]]
        if fails:
            L.append("### Failed commands")
            L.append("")
            for k, f in fails[:20]:
                L.append(f"- `{k}` exit {f['rc']}: `{f['cmd']}`")
                tail = f["tail"].strip().splitlines()[-5:]
                for ln in tail:
                    L.append(f"    {ln}")
            L.append("")
    if summary:
        L.append("## Summary of targets")
        L.append("")
        L.append("| data set | target | measured | wanted | result |")
        L.append("|---|---|--:|--:|---|")
        for name, what, val, t, op, v in summary:
            L.append(f"| {name} | {what} | {fmt(val, '.3f')}x | {op}{t:.2f}x | {v} |")
        npass = sum(1 for s in summary if s[5] == "PASS")
        L.append("")
        L.append(f"**{npass} of {len(summary)} targets met.**")
        L.append("")
    return "\n".join(L)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--report-from", help="only render the Markdown from a results-*.json file")
    ap.add_argument("--work")
    ap.add_argument("--data-dir")
    ap.add_argument("--sets", default="small,large,mixed")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--np", type=int, default=2)
    ap.add_argument("--algos", default="gzip,bzip2,zip,zstd")
    ap.add_argument("--pbackup", default=os.path.join(REPO, "build", "pbackup"))
    ap.add_argument("--compare", default=None,
                    help="a second pbackup binary, measured interleaved with the first (rows marked [LABEL])")
    ap.add_argument("--compare-label", default="old")
    ap.add_argument("--no-restore", dest="restore", action="store_false")
    ap.add_argument("--explore", action="store_true")
    ap.add_argument("--explore-only", action="store_true",
                    help="pbackup's knobs only: one untimed-for-targets backup per codec, no peers")
    ap.add_argument("--explore-set", default=None)
    ap.add_argument("--explore-algos", default="gzip")
    ap.add_argument("--explore-blocks", default="1,16")
    ap.add_argument("--keep", action="store_true", help="keep the archives in WORK/out")
    ap.add_argument("--settle", type=float, default=300.0,
                    help="seconds between deleting restored trees and the next timed restore")
    ap.add_argument("--delete-between", action="store_true",
                    help="delete each restore directory before the next run (default: after the data set)")
    ap.add_argument("--results", default=os.path.join(HERE, "results-latest.md"))
    ap.add_argument("--command", default=" ".join(sys.argv))
    ap.add_argument("--max-noise", type=float, default=10.0,
                    help="rerun a measurement when other processes used more than this %% of the machine")
    ap.add_argument("--noise-retries", type=int, default=2)
    ap.add_argument("--quiet-wait", type=float, default=30.0,
                    help="before each run, wait up to this many seconds for the machine to be quiet")
    cfg = ap.parse_args()
    if cfg.report_from:
        return report_from(cfg.report_from, cfg.results)
    if not cfg.work or not cfg.data_dir:
        ap.error("--work and --data-dir are required")
    global cfg_max_noise, cfg_retries, cfg_quiet_wait
    cfg_max_noise, cfg_retries, cfg_quiet_wait = cfg.max_noise, cfg.noise_retries, cfg.quiet_wait
    cfg.sets = [s for s in cfg.sets.split(",") if s]
    cfg.algos = [a for a in cfg.algos.split(",") if a]
    cfg.explore_algos = [a for a in cfg.explore_algos.split(",") if a]
    cfg.explore_blocks = [int(b) for b in cfg.explore_blocks.split(",") if b]
    cfg.explore_set = cfg.explore_set or cfg.sets[0]
    cfg.explore = cfg.explore or cfg.explore_only
    cfg.pbackup = os.path.abspath(cfg.pbackup)
    os.makedirs(cfg.work, exist_ok=True)
    cfg.pbackup_orig = cfg.pbackup
    cfg.pbackup, binary_info = snapshot(cfg.pbackup, cfg.work)
    if cfg.compare:
        cfg.compare, info = snapshot(os.path.abspath(cfg.compare), cfg.work)
        binary_info += f"; compared with [{cfg.compare_label}] {info}"

    meta = {
        "date": datetime.datetime.now().strftime("%Y-%m-%d %H:%M:%S"),
        "host": os.uname().nodename,
        "cores": os.cpu_count(),
        "mem_gb": os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1e9,
        "git": (sh(f"git -C {shlex.quote(REPO)} rev-parse --short HEAD").stdout.strip() or "?")
        + (" (+uncommitted changes)" if sh(f"git -C {shlex.quote(REPO)} status --porcelain -- src include CMakeLists.txt").stdout.strip() else ""),
        "command": cfg.command,
        "load_start": " ".join(f"{x:.2f}" for x in os.getloadavg()),
        "binary": binary_info,
    }
    meta["cfg"] = {k: getattr(cfg, k) for k in ("np", "runs", "max_noise", "noise_retries", "quiet_wait", "settle")}
    all_res = []
    t0 = time.monotonic()
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    raw = os.path.join(cfg.work, f"results-{stamp}.json")
    for i, name in enumerate(cfg.sets):
        all_res.append(run_set(name, cfg))
        meta["load_end"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
        meta["elapsed_s"] = time.monotonic() - t0
        meta["partial"] = i + 1 < len(cfg.sets)
        with open(raw, "w") as f:
            json.dump({"meta": meta, "results": all_res}, f, indent=1, default=str)
        md = render(all_res, meta)
        with open(cfg.results, "w") as f:
            f.write(md)
        if meta["partial"]:
            log(f"[{name}] done; partial results so far in {cfg.results}")
    print(md)
    log(f"\nMarkdown table written to {cfg.results}\nRaw numbers: {raw} "
        f"(re-render with: bench/bench.py --report-from {raw})")
    bad = any(not c["ok"] for r in all_res for c in r["verify"])
    return 3 if bad else 0


def snapshot(path, work):
    """Measure a private copy: build/pbackup may be relinked while the benchmark runs.
    Returns (copy, description)."""
    with open(path, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()[:12]
    built = datetime.datetime.fromtimestamp(os.path.getmtime(path)).strftime("%Y-%m-%d %H:%M:%S")
    snap_dir = os.path.join(work, "bin")
    os.makedirs(snap_dir, exist_ok=True)
    snap = os.path.join(snap_dir, "pbackup-" + digest)
    if not os.path.exists(snap):
        shutil.copy2(path, snap + ".tmp")
        os.rename(snap + ".tmp", snap)
    return snap, f"{path} (sha256 {digest}, built {built}; measured as the copy {snap})"


def render(all_res, meta):
    base = {"np": 2, "runs": 3, "max_noise": 10.0, "noise_retries": 2, "quiet_wait": 30.0, "settle": 300.0}
    cfg = argparse.Namespace(**dict(base, **meta.get("cfg", {})))
    md = report(all_res, cfg, meta)
    measured = sum(sum(r["walls"]) + sum(x["wall"] for x in r.get("retried", []))
                   for res in all_res for part in ("backup", "restore", "explore")
                   for r in (res.get(part) or {}).values())
    md += (f"\nTotal benchmark time: {meta['elapsed_s'] / 60:.1f} min, of which {measured / 60:.1f} min inside "
           "timed commands (discarded noisy runs included); the rest is waiting for a quiet machine, "
           "sync/cleanup between runs, warm-up and checks.\n")
    if meta.get("partial"):
        md += "\n**Partial results: the run is still going (or was stopped) before every data set was done.**\n"
    return md


def report_from(path, out):
    with open(path) as f:
        d = json.load(f)
    md = render(d["results"], d["meta"])
    print(md)
    with open(out, "w") as f:
        f.write(md)
    log(f"\nMarkdown table written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
