#!/usr/bin/env bash
# shellcheck disable=SC2012  # ls only to show file names in messages
# pbackup under a real Slurm: the batch scripts in slurm/ on a one-node cluster brought up by
# scripts/slurm-start.sh (installs Slurm and munge from Debian if needed; root only).
#  (a) backup.sbatch with 2 tasks (srun --mpi=pmix), then restore.sbatch (launched with mpirun):
#      the restored tree equals the source; a verify job of a missing archive fails the job.
#  (b) backup-then-verify.sh: the verify job, held by --dependency=afterok, runs and succeeds.
#  (c) scancel of a running backup: pbackup gets SIGTERM, no archive, manifest or hidden temp
#      file is left in the output directory and no pbackup process outlives the job.
# The cluster is stopped on exit if this test started it. No Slurm is a failure, not a skip.
set -euo pipefail
# shellcheck source=tests/integration/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

SLURM_DIR="$REPO_DIR/slurm"
T0=$SECONDS
step() { echo "=== [$TEST_NAME] $* (t=$((SECONDS - T0))s)"; }

[ "$(id -u)" -eq 0 ] || fail "needs root: scripts/slurm-start.sh installs packages and starts daemons"
[[ $PBACKUP == /* ]] || PBACKUP="$PWD/$PBACKUP"
export PBACKUP
setup_work

# --- the cluster: started here, stopped on exit only if it was not already up ---------------
started_cluster=0
RUN=${PBACKUP_SLURM_RUN:-/run/pbackup-slurm}
ctld_alive() { [[ -s $RUN/slurmctld.pid && -r /proc/$(<"$RUN/slurmctld.pid")/comm ]] &&
  [[ $(</proc/"$(<"$RUN/slurmctld.pid")"/comm) == slurmctld ]]; }
on_exit() {
  local rc=$?
  set +e  # under errexit, `(exit "$rc")` below would end the trap before cleanup_work
  if ((rc != 0)) && [[ -d ${WORK:-} ]]; then
    echo "--- job logs:" >&2
    for f in "$WORK"/jobs/*.out; do [[ -f $f ]] && { echo "--- $f" >&2; tail -n 25 "$f" >&2; }; done
    squeue 2>/dev/null >&2 || true
  fi
  if ((started_cluster)); then
    step "stopping the cluster"
    bash "$REPO_DIR/scripts/slurm-stop.sh" || true
  fi
  (exit "$rc")
  cleanup_work
}
trap on_exit EXIT

step "starting Slurm (scripts/slurm-start.sh)"
ctld_alive || started_cluster=1
bash "$REPO_DIR/scripts/slurm-start.sh" || fail "scripts/slurm-start.sh failed: no Slurm cluster"
command -v sbatch >/dev/null || fail "sbatch not found after slurm-start.sh"

JOBS=$WORK/jobs job=""
mkdir -p "$JOBS"
cd "$JOBS"  # job output files (pbackup-backup-JOBID.out, ...) land here

log_of() { echo "$JOBS/pbackup-$1-$2.out"; }  # log_of backup|restore|verify JOBID
# submit VAR KIND SBATCH_OPTIONS... -- PBACKUP_ARGS... : sbatch --wait; VAR=job id, rc in RC
submit() {
  local __var=$1 kind=$2 opts=() out
  shift 2
  while [[ $1 != -- ]]; do opts+=("$1"); shift; done
  shift
  RC=0
  echo "+ sbatch --wait ${opts[*]} slurm/$kind.sbatch $*"
  out=$(timeout 120 sbatch --parsable --wait "${opts[@]}" "${SCRIPT_DIR:-$SLURM_DIR}/$kind.sbatch" "$@") || RC=$?
  out=${out%%$'\n'*}
  out=${out%%;*}
  [[ $out =~ ^[0-9]+$ ]] || fail "sbatch gave no job id for $kind (exit $RC): $out"
  printf -v "$__var" '%s' "$out"
}
expect_log() {  # expect_log FILE REGEX WHAT
  [[ -f $1 ]] || fail "$3: no job output file $1"
  grep -Eq -- "$2" "$1" || { sed 's/^/    /' "$1" >&2; fail "$3: '$2' not in $1"; }
}

# --- (a) backup (srun) and restore (mpirun) round trip -----------------------------------
step "(a) backup job, 2 tasks"
make_small_tree "$WORK/src/tree"
mkdir -p "$WORK/src/tree/many"
for i in $(seq 1 40); do printf 'file %d\n' "$i" >"$WORK/src/tree/many/f$i.txt"; done
mkdir -p "$WORK/out-a" "$WORK/out-b" "$WORK/out-c"  # pbackup does not create --output-dir
submit job backup --ntasks=2 -- --sources "$WORK/src/tree" --output-dir "$WORK/out-a" \
  --algo gzip --name roundtrip --no-progress
log=$(log_of backup "$job")
[[ $RC -eq 0 ]] || { cat "$log" >&2; fail "backup job $job exited $RC"; }
expect_log "$log" 'launcher=srun' "backup job $job should use srun --mpi=pmix"
expect_log "$log" 'pbackup exit status: 0$' "backup job $job"
[[ -f $WORK/out-a/roundtrip.tar.gz && -f $WORK/out-a/roundtrip.tar.gz.manifest.json ]] ||
  fail "backup job $job: no roundtrip.tar.gz + manifest in out-a: $(ls -A "$WORK/out-a" | tr "\n" " ")"
pass "backup job $job: $(ls "$WORK/out-a" | tr "\n" " ")"

step "(a) restore job, 2 tasks, launched with mpirun"
export PBACKUP_LAUNCHER=mpirun  # sbatch passes the environment into the job
submit job restore --ntasks=2 -- \
  --source "$WORK/out-a/roundtrip.tar.gz" --restore-to "$WORK/restored-a"
unset PBACKUP_LAUNCHER
log=$(log_of restore "$job")
[[ $RC -eq 0 ]] || { cat "$log" >&2; fail "restore job $job exited $RC"; }
expect_log "$log" 'launcher=mpirun' "restore job $job"
expect_log "$log" 'pbackup exit status: 0$' "restore job $job"
diff -r "$WORK/src/tree" "$WORK/restored-a/tree" || fail "restored tree differs (diff -r)"
assert_trees_equal "$WORK/src/tree" "$WORK/restored-a/tree"
pass "restore job $job reproduced the tree"

step "(a) verify job of a missing archive fails"
submit job verify --ntasks=1 -- --source "$WORK/out-a/missing.tar.gz"
log=$(log_of verify "$job")
[[ $RC -eq 2 ]] || { cat "$log" >&2; fail "verify of a missing archive: job $job exited $RC, want 2"; }
expect_log "$log" 'pbackup exit status: 2$' "verify job $job"
pass "verify job $job exited 2"

# The job runs a spool copy of the script: it found slurm/common.sh through the submitted
# script's path (scontrol) above. A copy with no common.sh beside it fails clearly, and works
# with PBACKUP_SLURM_DIR.
step "(a) a copied verify.sbatch without common.sh, then with PBACKUP_SLURM_DIR"
mkdir -p "$WORK/copy"
cp "$SLURM_DIR/verify.sbatch" "$WORK/copy/"
SCRIPT_DIR=$WORK/copy submit job verify --ntasks=1 -- --source "$WORK/out-a/roundtrip.tar.gz"
log=$(log_of verify "$job")
[[ $RC -eq 2 ]] || { cat "$log" >&2; fail "copied verify.sbatch without common.sh: job $job exited $RC, want 2"; }
expect_log "$log" 'error: slurm/common.sh not found' "copied verify.sbatch, job $job"
PBACKUP_SLURM_DIR=$SLURM_DIR SCRIPT_DIR=$WORK/copy submit job verify --ntasks=1 -- --source "$WORK/out-a/roundtrip.tar.gz"
log=$(log_of verify "$job")
[[ $RC -eq 0 ]] || { cat "$log" >&2; fail "copied verify.sbatch with PBACKUP_SLURM_DIR: job $job exited $RC"; }
pass "a copy without common.sh exits 2 and says so; PBACKUP_SLURM_DIR finds it"

# --- (b) backup-then-verify.sh ---------------------------------------------------------
step "(b) backup-then-verify.sh"
make_small_tree "$WORK/src/chain"
chain_out=$("$SLURM_DIR/backup-then-verify.sh" --ntasks=2 -- --sources "$WORK/src/chain" \
  --output-dir "$WORK/out-b" --algo zstd --no-progress) || fail "backup-then-verify.sh failed: $chain_out"
echo "$chain_out"
archive=$(sed -n 's/^archive: //p' <<<"$chain_out")
bjob=$(sed -n 's/^backup job: //p' <<<"$chain_out")
vjob=$(sed -n 's/^verify job: //p' <<<"$chain_out")
[[ $bjob =~ ^[0-9]+$ && $vjob =~ ^[0-9]+$ && $archive == "$WORK/out-b/backup_"*.tar.zst ]] ||
  fail "backup-then-verify.sh output not understood"
# Follow the verify job until it leaves the queue; remember the last state scontrol showed.
vstate="" vexit="" deadline=$((SECONDS + 90))
while ((SECONDS < deadline)); do
  line=$(scontrol -o show job "$vjob" 2>/dev/null || true)
  [[ -n $line ]] || break
  vstate=$(grep -o 'JobState=[A-Z_]*' <<<"$line" | cut -d= -f2)
  vexit=$(grep -o ' ExitCode=[0-9:]*' <<<"$line" | cut -d= -f2)
  case $vstate in COMPLETED|FAILED|CANCELLED|TIMEOUT|NODE_FAIL|OUT_OF_MEMORY) break ;; esac
  sleep 0.5
done
[[ $vstate == COMPLETED && $vexit == 0:0 ]] || {
  for f in "$(log_of backup "$bjob")" "$(log_of verify "$vjob")"; do [[ -f $f ]] && cat "$f" >&2; done
  fail "verify job $vjob: state ${vstate:-unknown}, exit code ${vexit:-unknown} (want COMPLETED 0:0)"; }
expect_log "$(log_of backup "$bjob")" 'pbackup exit status: 0$' "backup job $bjob"
expect_log "$(log_of verify "$vjob")" 'pbackup exit status: 0$' "verify job $vjob"
expect_log "$(log_of verify "$vjob")" "verify .*--source $archive" "verify job $vjob"
[[ -f $archive ]] || fail "no archive $archive"
pass "verify job $vjob ran after backup job $bjob: COMPLETED, exit 0:0"
sed 's/^/    /' "$(log_of verify "$vjob")"

# --- (c) scancel of a running backup ------------------------------------------------------
step "(c) generating a bigger tree"
big=$WORK/src/big
mkdir -p "$big"
for i in $(seq -w 1 24); do head -c 7680K /dev/urandom | base64 -w 100 >"$big/f$i.txt"; done
info "big tree: $(du -sh "$big" | cut -f1)"
out_c=$WORK/out-c
step "(c) backup job (bzip2, 1 thread per rank), to be cancelled"
cjob=$(sbatch --parsable --ntasks=2 "$SLURM_DIR/backup.sbatch" --sources "$big" \
  --output-dir "$out_c" --algo bzip2 --threads 1 --name big --no-progress)
cjob=${cjob%%;*}
clog=$(log_of backup "$cjob")
temps() { find "$out_c" -maxdepth 1 -name '.*.tmp-*' 2>/dev/null; }
finals() { find "$out_c" -maxdepth 1 \( -name 'big.*' -o -name '*.manifest.json' \) 2>/dev/null; }
state="" deadline=$((SECONDS + 60))
while ((SECONDS < deadline)); do
  state=$(squeue -h -j "$cjob" -o %T 2>/dev/null || true)
  [[ $state == RUNNING && -n $(temps) ]] && break
  [[ -z $state || $state == COMPLETING ]] && break
  sleep 0.2
done
[[ $state == RUNNING && -n $(temps) ]] || {
  [[ -f $clog ]] && cat "$clog" >&2
  fail "backup job $cjob: state '${state}', temp files [$(temps | xargs)]: never saw it running with a temp file"; }
info "job $cjob RUNNING with temp file(s): $(temps | xargs -n1 basename | xargs)"
sleep 1
[[ -z $(finals) ]] || fail "backup job $cjob finished before it could be cancelled: $(finals | xargs)"
step "(c) scancel $cjob"
scancel "$cjob"
deadline=$((SECONDS + 40)) last=""
while ((SECONDS < deadline)); do
  line=$(scontrol -o show job "$cjob" 2>/dev/null || true)
  [[ -n $line ]] && last=$line
  [[ -z $(squeue -h -j "$cjob" 2>/dev/null || true) ]] && break
  sleep 0.2
done
[[ -z $(squeue -h -j "$cjob" 2>/dev/null || true) ]] || fail "job $cjob still in the queue 40 s after scancel"
info "job $cjob: $(grep -o 'JobState=[A-Z_]*' <<<"$last") $(grep -o ' ExitCode=[0-9:]*' <<<"$last")"
# pbackup removes its temporary files on SIGTERM; allow a few seconds
for _ in $(seq 50); do
  [[ -z $(temps) ]] && ! pgrep -f -- "--output-dir $out_c" >/dev/null && break
  sleep 0.2
done
echo "--- output of the cancelled job $cjob:"
[[ -f $clog ]] && sed 's/^/    /' "$clog"
[[ -z $(pgrep -f -- "--output-dir $out_c" || true) ]] ||
  fail "pbackup processes outlived cancelled job $cjob: $(pgrep -af -- "--output-dir $out_c")"
[[ -z $(temps) ]] || fail "temp files left after scancel of job $cjob: $(temps | xargs)"
[[ -z $(finals) ]] || fail "archive files left after scancel of job $cjob: $(finals | xargs)"
[[ -z $(ls -A "$out_c") ]] || fail "output dir not empty after scancel: $(ls -A "$out_c" | tr "\n" " ")"
grep -q 'interrupted' "$clog" || fail "job $cjob log does not say pbackup was interrupted"
pass "cancelled backup left $out_c empty; pbackup said it was interrupted"

step "done"
