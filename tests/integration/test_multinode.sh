#!/usr/bin/env bash
# pbackup across nodes, on the simulated 3-node cluster of scripts/cluster/ (network and mount
# namespaces: own hostnames, TCP between nodes, a private /tmp/cluster/local per node, Slurm on
# every node). Checks, with one rank on each of node1..node3:
#  (a) backup to a shared directory gives the same bytes as one rank; restore from it
#  (b) backup to rank 0's node-local directory (hdd and usb_split): the complete archive on
#      node1 only, the same bytes as one rank, nothing on node2/node3
#  (c) restore into a node-local directory: refused before anything is written, naming node2
#      and node3; with --every-node the whole tree on every node, nothing staged left behind
#  (d) sbatch -N 3 slurm/backup.sbatch (srun --mpi=pmix) into node1's local directory
#  (e) SIGTERM to the rank on node2 of a backup into node1's local directory: every rank
#      stops, no file left in any node's output directory and no pbackup process left
#  (f) SIGTERM to the node2 rank of a restore --every-node, once node2 restores its copy: no
#      staged copy left on any node
# Exit 77 (ctest: skipped) when the cluster cannot start here (not root, no unshare/ip, no
# CAP_SYS_ADMIN/CAP_NET_ADMIN). The cluster is stopped on exit if this test started it, and
# everything the test made on the nodes is removed, whatever happened.
set -euo pipefail
# shellcheck source=tests/integration/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

CL="$REPO_DIR/scripts/cluster"
CROOT=/tmp/cluster
T0=$SECONDS
step() { echo "=== [$TEST_NAME] $* (t=$((SECONDS - T0))s)"; }
skip() { echo "SKIP [$TEST_NAME]: $*"; exit 77; }

[[ $PBACKUP == /* ]] || PBACKUP="$PWD/$PBACKUP"
is_root || skip "needs root (network namespaces, bridges, Slurm daemons)"
for c in unshare nsenter ip mpirun; do command -v "$c" >/dev/null || skip "$c not found"; done
unshare --net --uts --mount true 2>/dev/null || skip "cannot make namespaces here (unshare needs CAP_SYS_ADMIN)"
unshare --net sh -c 'ip link add pbt-probe type bridge && ip link delete pbt-probe' 2>/dev/null ||
  skip "cannot create network links (no CAP_NET_ADMIN)"

# The nodes read Open MPI settings from their own file (TCP on the cluster bridge): variables
# meant for single-node runs (tests/test.sh sets loopback only) must not override them.
unset OMPI_MCA_btl_tcp_if_include OMPI_MCA_oob_tcp_if_include OMPI_MCA_btl OMPI_MCA_pml
export SLURM_CONF=$CROOT/etc/slurm/slurm.conf
setup_work
NODES=(node1 node2 node3)
TAG=pbt$$  # this run's directories on the nodes' local disks
started_cluster=0
on_exit() {
  local rc=$?
  set +e
  if [[ -d $CROOT/nodes ]]; then rm -rf "$CROOT"/nodes/node*/local/"$TAG"*; fi
  if ((started_cluster)); then
    step "stopping the cluster"
    bash "$CL/stop-cluster.sh" >/dev/null 2>&1 || echo "stop-cluster.sh failed" >&2
  fi
  if ((rc == 77)); then
    rm -rf "$WORK"
    exit 77
  fi
  (exit "$rc")
  cleanup_work
}
trap on_exit EXIT

step "starting the 3-node cluster (scripts/cluster/start-cluster.sh)"
[[ -e $CROOT/ns/node3.mnt && ! -e $CROOT/ns/node4.mnt ]] || started_cluster=1
if ! bash "$CL/start-cluster.sh" 3 >"$WORK/cluster.log" 2>&1; then
  tail -n 15 "$WORK/cluster.log" >&2
  skip "the simulated cluster did not start (log above)"
fi

on() { "$CL/on-node.sh" "$@"; }  # on NODE CMD...
# mpi3 ARGS...: pbackup with one rank on each node, launched from node1
mpi3() { on node1 mpirun --allow-run-as-root --host node1,node2,node3 -n 3 "$PBACKUP" "$@"; }
local_of() { echo "$CROOT/nodes/$1/local/$2"; }  # a node's local path, seen from here
files_in() { find "$1" -mindepth 1 2>/dev/null | sort; }

# a tree of several blocks (--block-mb 1): 3 MiB of text, 2 MiB random, small files and links
make_small_tree "$WORK/src/tree"
head -c 2097152 /dev/urandom >"$WORK/src/tree/random.bin"
mkdir -p "$WORK/src/tree/many"
for i in $(seq 1 30); do printf 'file %d\n' "$i" >"$WORK/src/tree/many/f$i.txt"; done
OPTS=(--sources "$WORK/src/tree" --algo gzip --block-mb 1 --threads 1 --no-progress)

step "one rank, for comparison"
mkdir -p "$WORK/one" "$WORK/one-split"
expect_ok plain backup "${OPTS[@]}" --output-dir "$WORK/one" --name ref
expect_ok plain backup "${OPTS[@]}" --output-dir "$WORK/one-split" --name ref --dest-type usb_split --split-chunk-mb 1

# --- (a) shared output directory ---------------------------------------------------------
step "(a) backup to a shared directory, 3 ranks on 3 nodes"
mkdir -p "$WORK/shared"
run_rc rc mpi3 backup "${OPTS[@]}" --output-dir "$WORK/shared" --name ref
[[ $rc -eq 0 ]] || { show_last; fail "(a) backup to a shared directory exited $rc"; }
cmp "$WORK/one/ref.tar.gz" "$WORK/shared/ref.tar.gz" || fail "(a) 3-node archive differs from the 1-rank one"
grep -q "not seen from" "$WORK/last.err" && fail "(a) a shared directory was reported as not seen"
pass "(a) shared: byte-identical to one rank"
run_rc rc mpi3 restore --source "$WORK/shared/ref.tar.gz" --restore-to "$WORK/restored"
[[ $rc -eq 0 ]] || { show_last; fail "(a) restore into a shared directory exited $rc"; }
diff -r "$WORK/src/tree" "$WORK/restored/tree" || fail "(a) restored tree differs"
pass "(a) restore into a shared directory"

# --- (b) rank 0's node-local directory ----------------------------------------------------
step "(b) backup to node1's local directory (hdd, usb_split)"
for n in "${NODES[@]}"; do mkdir -p "$(local_of "$n" "$TAG-out")" "$(local_of "$n" "$TAG-split")"; done
run_rc rc mpi3 backup "${OPTS[@]}" --output-dir "$CROOT/local/$TAG-out" --name ref
[[ $rc -eq 0 ]] || { show_last; fail "(b) backup to node1's local directory exited $rc"; }
grep -q "is not seen from node2, node3" "$WORK/last.err" || { show_last; fail "(b) no notice naming node2, node3"; }
cmp "$WORK/one/ref.tar.gz" "$(local_of node1 "$TAG-out")/ref.tar.gz" || fail "(b) node-local archive differs from the 1-rank one"
for n in node2 node3; do
  [[ -z $(files_in "$(local_of $n "$TAG-out")") ]] || fail "(b) $n's local directory is not empty: $(files_in "$(local_of $n "$TAG-out")")"
done
run_rc rc mpi3 backup "${OPTS[@]}" --output-dir "$CROOT/local/$TAG-split" --name ref --dest-type usb_split --split-chunk-mb 1
[[ $rc -eq 0 ]] || { show_last; fail "(b) usb_split to node1's local directory exited $rc"; }
for f in "$WORK"/one-split/ref.tar.gz.part*; do
  cmp "$f" "$(local_of node1 "$TAG-split")/${f##*/}" || fail "(b) fragment ${f##*/} differs"
done
[[ $(ls "$(local_of node1 "$TAG-split")" | wc -l) -eq $(ls "$WORK/one-split" | wc -l) ]] || fail "(b) usb_split: not the same files as one rank"
for n in node2 node3; do [[ -z $(files_in "$(local_of $n "$TAG-split")") ]] || fail "(b) usb_split left files on $n"; done
expect_ok plain verify --source "$(local_of node1 "$TAG-split")"
pass "(b) node-local: the complete archive (and fragments) on node1, identical to one rank"

step "(b2) encrypted (age) backup to node1's local directory, restored --every-node"
age-keygen -o "$WORK/key.txt" 2>/dev/null
mkdir -p "$WORK/one-enc"
RCPT=$(age-keygen -y "$WORK/key.txt")
for n in "${NODES[@]}"; do mkdir -p "$(local_of "$n" "$TAG-enc")"; done
export PBACKUP_TEST_AGE_SEED=multinode
expect_ok plain backup "${OPTS[@]}" --output-dir "$WORK/one-enc" --name ref --encrypt-to "$RCPT"
run_rc rc mpi3 backup "${OPTS[@]}" --output-dir "$CROOT/local/$TAG-enc" --name ref --encrypt-to "$RCPT"
unset PBACKUP_TEST_AGE_SEED
[[ $rc -eq 0 ]] || { show_last; fail "(b2) encrypted backup to node1's local directory exited $rc"; }
cmp "$WORK/one-enc/ref.tar.gz.age" "$(local_of node1 "$TAG-enc")/ref.tar.gz.age" || fail "(b2) encrypted node-local archive differs from the 1-rank one"
for n in "${NODES[@]}"; do mkdir -p "$(local_of "$n" "$TAG-encr")"; done
run_rc rc mpi3 restore --source "$WORK/one-enc/ref.tar.gz.age" --identity "$WORK/key.txt" --restore-to "$CROOT/local/$TAG-encr" --every-node
[[ $rc -eq 0 ]] || { show_last; fail "(b2) restore --every-node of the encrypted archive exited $rc"; }
for n in "${NODES[@]}"; do
  diff -r "$WORK/src/tree" "$(local_of "$n" "$TAG-encr")/tree" >/dev/null || fail "(b2) --every-node of the encrypted archive: $n's tree differs"
  [[ $(ls -A "$(local_of "$n" "$TAG-encr")") == tree ]] || fail "(b2) staged copy left on $n"
done
pass "(b2) encrypted: identical to one rank on node1's disk; --every-node restores it on every node"
# --- (c) restore into node-local directories ----------------------------------------------
step "(c) restore into a node-local directory: refused, then --every-node"
run_rc rc mpi3 restore --source "$WORK/shared/ref.tar.gz" --restore-to "$CROOT/local/$TAG-r/deep"
[[ $rc -eq 2 ]] || { show_last; fail "(c) restore into a node-local directory exited $rc, want 2"; }
grep -q "node2, node3" "$WORK/last.err" || { show_last; fail "(c) the refusal does not name node2, node3"; }
grep -q -- "--every-node" "$WORK/last.err" || { show_last; fail "(c) the refusal does not mention --every-node"; }
for n in "${NODES[@]}"; do
  [[ ! -e $(local_of "$n" "$TAG-r") ]] || fail "(c) the refused restore wrote on $n: $(files_in "$(local_of "$n" "$TAG-r")")"
done
pass "(c) refused, nothing written"
run_rc rc mpi3 restore --source "$WORK/shared/ref.tar.gz" --restore-to "$CROOT/local/$TAG-r/deep" --every-node
[[ $rc -eq 0 ]] || { show_last; fail "(c) restore --every-node exited $rc"; }
for n in "${NODES[@]}"; do
  d=$(local_of "$n" "$TAG-r/deep")
  diff -r "$WORK/src/tree" "$d/tree" || fail "(c) --every-node: $n's tree differs"
  [[ $(ls -A "$d") == tree ]] || fail "(c) --every-node left more than the tree on $n: $(ls -A "$d")"
done
pass "(c) --every-node: the whole tree on every node, nothing else"

# --- (d) Slurm: sbatch -N 3 ---------------------------------------------------------------
step "(d) sbatch -N 3 slurm/backup.sbatch (srun --mpi=pmix) into node1's local directory"
mkdir -p "$WORK/jobs"
for n in "${NODES[@]}"; do mkdir -p "$(local_of "$n" "$TAG-slurm")"; done
export PBACKUP
rc=0
out=$(cd "$WORK/jobs" && timeout 120 "$CL/on-node.sh" node1 sbatch --parsable --wait -N 3 --ntasks=3 --ntasks-per-node=1 \
  "$REPO_DIR/slurm/backup.sbatch" "${OPTS[@]}" --output-dir "$CROOT/local/$TAG-slurm" --name ref) || rc=$?
job=${out%%;*}
log="$WORK/jobs/pbackup-backup-$job.out"
[[ $rc -eq 0 ]] || { cat "$log" >&2 || true; fail "(d) sbatch job $job exited $rc"; }
grep -q 'launcher=srun' "$log" || { cat "$log" >&2; fail "(d) the job did not use srun"; }
grep -q 'ntasks=3' "$log" || { cat "$log" >&2; fail "(d) the job did not run 3 tasks"; }
cmp "$WORK/one/ref.tar.gz" "$(local_of node1 "$TAG-slurm")/ref.tar.gz" || fail "(d) the job's archive differs from the 1-rank one"
for n in node2 node3; do [[ -z $(files_in "$(local_of $n "$TAG-slurm")") ]] || fail "(d) the job left files on $n"; done
pass "(d) sbatch -N 3 job $job: identical archive on node1"

# term_rank1 PATTERN LOG WHAT: SIGTERM to the rank-1 process among those matching PATTERN, then
# waits for mpirun ($pid) and fails unless it exits non-zero (WHAT names the run); sets rc.
term_rank1() {
  local pattern=$1 log=$2 what=$3 p rank1=""
  for p in $(pgrep -f "$pattern" || true); do
    [[ $(tr '\0' '\n' <"/proc/$p/environ" 2>/dev/null | sed -n 's/^OMPI_COMM_WORLD_RANK=//p') == 1 ]] && rank1=$p
  done
  [[ -n $rank1 ]] || { cat "$log" >&2; fail "$what: rank 1 not found (finished already?)"; }
  kill -TERM "$rank1"
  rc=0
  wait "$pid" || rc=$?
  [[ $rc -ne 0 ]] || { cat "$log" >&2; fail "$what exited 0"; }
}

# --- (e) SIGTERM to a 3-node backup -------------------------------------------------------
step "(e) SIGTERM to a backup running on 3 nodes"
head -c 25165824 /dev/urandom >"$WORK/src/big.bin"  # bzip2 on random data: a few seconds
for n in "${NODES[@]}"; do mkdir -p "$(local_of "$n" "$TAG-term")"; done
node1_out=$(local_of node1 "$TAG-term")
on node1 mpirun --allow-run-as-root --host node1,node2,node3 -n 3 "$PBACKUP" backup --sources "$WORK/src/big.bin" \
  --output-dir "$CROOT/local/$TAG-term" --algo bzip2 --block-mb 1 --threads 1 --no-progress --name term \
  >"$WORK/term.out" 2>&1 &
pid=$!
for _ in $(seq 1 300); do
  [[ -n $(find "$node1_out" -name '.*tmp-pbackup' 2>/dev/null) ]] && break
  kill -0 "$pid" 2>/dev/null || break
  sleep 0.05
done
[[ -n $(find "$node1_out" -name '.*tmp-pbackup' 2>/dev/null) ]] || { cat "$WORK/term.out" >&2; fail "(e) the backup wrote no temporary file to interrupt"; }
# SIGTERM to the rank on node2 alone (it writes nothing itself: its blocks go to node1): every
# rank must stop and node1's temporary file go. (mpirun would pass a SIGTERM on only 1 s later.)
term_rank1 "^$PBACKUP backup --sources $WORK/src/big.bin" "$WORK/term.out" "(e) the interrupted backup"
sleep 1
for n in "${NODES[@]}"; do
  [[ -z $(files_in "$(local_of "$n" "$TAG-term")") ]] || fail "(e) files left on $n: $(files_in "$(local_of "$n" "$TAG-term")")"
done
[[ -z $(pgrep -f "^$PBACKUP backup --sources $WORK/src/big.bin" || true) ]] || fail "(e) pbackup processes outlived the job"
grep -q "interrupted by SIGTERM" "$WORK/term.out" || { cat "$WORK/term.out" >&2; fail "(e) no 'interrupted by SIGTERM' message"; }
pass "(e) SIGTERM to rank 1 on node2: mpirun exited $rc, nothing left on any node"

# --- (f) SIGTERM to a restore --every-node --------------------------------------------------
step "(f) SIGTERM to the node2 rank of a restore --every-node"
mkdir -p "$WORK/rnd" "$WORK/out-f"
# bzip2 on random data restores slowly: node1 and node3 are still restoring when rank 1 is
# stopped, so rank 1 waits for them (and its watchdog may end it) after cleaning up its copy
head -c 41943040 /dev/urandom >"$WORK/rnd/r.bin"
expect_ok plain backup --sources "$WORK/rnd" --output-dir "$WORK/out-f" --algo bzip2 --block-mb 2 --threads 2 --name f --no-progress
node2_r=$(local_of node2 "$TAG-f")
on node1 mpirun --allow-run-as-root --host node1,node2,node3 -n 3 "$PBACKUP" restore --source "$WORK/out-f/f.tar.bz2" \
  --restore-to "$CROOT/local/$TAG-f" --every-node --threads 1 >"$WORK/f.out" 2>&1 &
pid=$!
for _ in $(seq 1 400); do
  [[ -e $node2_r/rnd ]] && break  # staged, node2's own restore under way
  kill -0 "$pid" 2>/dev/null || break
  sleep 0.02
done
term_rank1 "^$PBACKUP restore --source $WORK/out-f/f.tar.bz2" "$WORK/f.out" "(f) the interrupted restore"
sleep 1
for n in "${NODES[@]}"; do
  left=$(find "$(local_of "$n" "$TAG-f")" -name '.pbackup-*' 2>/dev/null)
  [[ -z $left ]] || { cat "$WORK/f.out" >&2; fail "(f) staging left on $n: $left"; }
done
[[ -z $(pgrep -f "^$PBACKUP restore --source $WORK/out-f/f.tar.bz2" || true) ]] || fail "(f) pbackup processes outlived the job"
pass "(f) SIGTERM to rank 1: mpirun exited $rc, no staged copy left on any node"

finish_deferred
