#!/usr/bin/env bash
# shellcheck disable=SC2012  # ls only to show file names in messages
# pbackup under a real Slurm: the batch scripts in slurm/ on a one-node cluster brought up by
# scripts/slurm-start.sh (installs Slurm and munge from Debian if needed; root only).
#  (a) backup.sbatch with 2 tasks (srun --mpi=pmix), then restore.sbatch (launched with mpirun):
#      the restored tree equals the source; a verify job of a missing archive fails the job.
#  (0) scripts/slurm-start.sh keeps to its own directory, config and ports: it refuses (exit 2,
#      nothing changed) a directory or slurm.conf it did not create, or a port in use; the
#      system's /etc/slurm/slurm.conf is unchanged by the whole test.
#  (a') a copy of the scripts laid out as installed finds PREFIX/bin/pbackup without PBACKUP.
#  (b) backup-then-verify.sh: the verify job (--dependency=afterany) runs and succeeds; it also
#      runs and logs after a backup that exited 1, and says why it skips after an exit 2;
#      options pbackup does not know (a forgotten --) are refused before anything is submitted.
#  (d) SIGUSR1 to the batch shell (#SBATCH --signal=B:USR1@120, the time-limit warning): pbackup
#      stops cleanly, the log says so.
#  (e) backup --resume and SIGUSR1: pbackup stops with its journal kept, the job requeues itself,
#      the requeued run continues and its archive equals an uninterrupted run's.
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

# --- (0) slurm-start.sh touches nothing it did not create ---------------------------------
sys_conf_sum=$( [[ -f /etc/slurm/slurm.conf ]] && sha256sum </etc/slurm/slurm.conf || echo none)
step "(0) slurm-start.sh refuses what it did not create"
mkdir -p "$WORK/foreign"
echo "site file" >"$WORK/foreign/keep.txt"
run_rc rc env PBACKUP_SLURM_RUN="$WORK/foreign" bash "$REPO_DIR/scripts/slurm-start.sh"
[[ $rc -eq 2 ]] || { show_last; fail "slurm-start.sh into a directory it did not create: exit $rc, want 2"; }
grep -q "not created by this script" "$WORK/last.err" || { show_last; fail "slurm-start.sh does not say why it refused"; }
[[ $(ls -A "$WORK/foreign") == keep.txt && $(<"$WORK/foreign/keep.txt") == "site file" ]] ||
  fail "slurm-start.sh changed a directory it refused: $(ls -A "$WORK/foreign" | xargs)"
mkdir -p "$WORK/foreign2/etc"
touch "$WORK/foreign2/.created-by-pbackup-slurm-start"
echo "ClusterName=site" >"$WORK/foreign2/etc/slurm.conf"
run_rc rc env PBACKUP_SLURM_RUN="$WORK/foreign2" bash "$REPO_DIR/scripts/slurm-start.sh"
[[ $rc -eq 2 && $(<"$WORK/foreign2/etc/slurm.conf") == "ClusterName=site" ]] ||
  { show_last; fail "slurm-start.sh with a slurm.conf it did not write: exit $rc, want 2 and the file kept"; }
"$PYTHON" -c 'import socket,time; s=socket.socket(); s.bind(("127.0.0.1",0)); s.listen(); print(s.getsockname()[1], flush=True); time.sleep(60)' >"$WORK/port" &
holder=$!
for _ in $(seq 50); do [[ -s $WORK/port ]] && break; sleep 0.1; done
run_rc rc env PBACKUP_SLURM_RUN="$WORK/fresh" PBACKUP_SLURM_PORT="$(<"$WORK/port")" bash "$REPO_DIR/scripts/slurm-start.sh"
kill "$holder" 2>/dev/null || true
[[ $rc -eq 2 ]] && grep -q "in use by a process this script did not start" "$WORK/last.err" ||
  { show_last; fail "slurm-start.sh with its port taken: exit $rc, want 2 naming the port"; }
[[ ! -e $WORK/fresh ]] || fail "slurm-start.sh refused but created $WORK/fresh: $(ls -A "$WORK/fresh" | xargs)"
pass "slurm-start.sh refuses a foreign directory, a foreign slurm.conf and a taken port, changing nothing"

step "starting Slurm (scripts/slurm-start.sh)"
ctld_alive || started_cluster=1
bash "$REPO_DIR/scripts/slurm-start.sh" || fail "scripts/slurm-start.sh failed: no Slurm cluster"
command -v sbatch >/dev/null || fail "sbatch not found after slurm-start.sh"
export SLURM_CONF=$RUN/etc/slurm.conf  # the private cluster's (slurm-start.sh's env.sh says so too)
[[ $(<"$RUN/env.sh") == "export SLURM_CONF=$SLURM_CONF" ]] || fail "slurm-start.sh's env.sh does not name $SLURM_CONF"
[[ $(sha256sum </etc/slurm/slurm.conf 2>/dev/null || echo none) == "$sys_conf_sum" ]] ||
  fail "slurm-start.sh changed the system's /etc/slurm/slurm.conf"

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

step "(a') scripts laid out as installed, PBACKUP unset: PREFIX/bin/pbackup is used"
mkdir -p "$WORK/prefix/bin" "$WORK/prefix/share/pbackup"
cp "$PBACKUP" "$WORK/prefix/bin/pbackup"
cp -r "$SLURM_DIR" "$WORK/prefix/share/pbackup/slurm"
job=$(env -u PBACKUP PATH=/usr/bin:/bin timeout 120 sbatch --parsable --wait --ntasks=1 \
  "$WORK/prefix/share/pbackup/slurm/verify.sbatch" --source "$WORK/out-a/roundtrip.tar.gz") || fail "verify job with PBACKUP unset failed"
job=${job%%;*}
expect_log "$(log_of verify "$job")" "running: .*$WORK/prefix/bin/pbackup verify" "verify job $job with PBACKUP unset"
expect_log "$(log_of verify "$job")" 'pbackup exit status: 0$' "verify job $job with PBACKUP unset"
pass "job $job ran $WORK/prefix/bin/pbackup"

# --- (b) backup-then-verify.sh ---------------------------------------------------------
# wait_job JOBID: follows it until it leaves the queue; sets JSTATE and JEXIT (last seen)
wait_job() {
  local line deadline=$((SECONDS + 90))
  JSTATE="" JEXIT=""
  while ((SECONDS < deadline)); do
    line=$(scontrol -o show job "$1" 2>/dev/null || true)
    [[ -n $line ]] || break
    JSTATE=$(grep -o 'JobState=[A-Z_]*' <<<"$line" | cut -d= -f2)
    JEXIT=$(grep -o ' ExitCode=[0-9:]*' <<<"$line" | cut -d= -f2)
    case $JSTATE in COMPLETED|FAILED|CANCELLED|TIMEOUT|NODE_FAIL|OUT_OF_MEMORY) break ;; esac
    sleep 0.5
  done
}
step "(b) backup-then-verify.sh refuses sbatch options given without --"
before=$(squeue -h | wc -l)
run_rc rc "$SLURM_DIR/backup-then-verify.sh" --ntasks=2 --sources "$WORK/src/tree" --output-dir "$WORK/out-b" --algo zstd
[[ $rc -eq 2 ]] && grep -q "'--ntasks=2' is not an option of pbackup backup" "$WORK/last.err" ||
  { show_last; fail "backup-then-verify.sh with --ntasks=2 and no --: exit $rc, want 2 naming the option"; }
[[ -z $(sed -n 's/^backup job: //p' "$WORK/last.out") && $(squeue -h | wc -l) == "$before" ]] ||
  fail "backup-then-verify.sh submitted jobs although it refused"
pass "refused: $(head -n 1 "$WORK/last.err" | cut -c1-120)"

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
wait_job "$vjob"
vstate=$JSTATE vexit=$JEXIT
[[ $vstate == COMPLETED && $vexit == 0:0 ]] || {
  for f in "$(log_of backup "$bjob")" "$(log_of verify "$vjob")"; do [[ -f $f ]] && cat "$f" >&2; done
  fail "verify job $vjob: state ${vstate:-unknown}, exit code ${vexit:-unknown} (want COMPLETED 0:0)"; }
expect_log "$(log_of backup "$bjob")" 'pbackup exit status: 0$' "backup job $bjob"
expect_log "$(log_of verify "$vjob")" 'pbackup exit status: 0$' "verify job $vjob"
expect_log "$(log_of verify "$vjob")" "verify .*--source $archive" "verify job $vjob"
[[ -f $archive ]] || fail "no archive $archive"
pass "verify job $vjob ran after backup job $bjob: COMPLETED, exit 0:0"
sed 's/^/    /' "$(log_of verify "$vjob")"
expect_log "$(log_of verify "$vjob")" "backup job $bjob ended COMPLETED with exit 0: verifying" "verify job $vjob"

step "(b) a backup that exits 1 (a socket skipped): the verify job still runs and logs"
make_small_tree "$WORK/src/sock"
"$PYTHON" -c 'import socket,sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])' "$WORK/src/sock/s.sock"
mkdir -p "$WORK/out-b1"
chain_out=$("$SLURM_DIR/backup-then-verify.sh" --ntasks=1 -- --sources "$WORK/src/sock" \
  --output-dir "$WORK/out-b1" --algo gzip --name warn --no-progress) || fail "backup-then-verify.sh failed: $chain_out"
bjob=$(sed -n 's/^backup job: //p' <<<"$chain_out") vjob=$(sed -n 's/^verify job: //p' <<<"$chain_out")
wait_job "$vjob"
expect_log "$(log_of backup "$bjob")" 'pbackup exit status: 1$' "backup job $bjob (a socket)"
[[ $JSTATE == COMPLETED && $JEXIT == 0:0 ]] || { cat "$(log_of verify "$vjob")" >&2 || true
  fail "verify job $vjob after a backup that exited 1: ${JSTATE:-no state} ${JEXIT:-}, want COMPLETED 0:0"; }
expect_log "$(log_of verify "$vjob")" "exit 1 \(warnings" "verify job $vjob"
expect_log "$(log_of verify "$vjob")" 'pbackup exit status: 0$' "verify job $vjob"
pass "verify job $vjob verified the archive of backup job $bjob (exit 1)"

step "(b) a backup that exits 2: the verify job logs why it does not run pbackup"
chain_out=$("$SLURM_DIR/backup-then-verify.sh" --ntasks=1 -- --sources "$WORK/src/sock" \
  --output-dir "$WORK/no-such-dir" --algo gzip --name fatal --no-progress) || fail "backup-then-verify.sh failed: $chain_out"
bjob=$(sed -n 's/^backup job: //p' <<<"$chain_out") vjob=$(sed -n 's/^verify job: //p' <<<"$chain_out")
wait_job "$vjob"
expect_log "$(log_of backup "$bjob")" 'pbackup exit status: 2$' "backup job $bjob (no output dir)"
expect_log "$(log_of verify "$vjob")" "backup job $bjob exited 2 .*no archive to verify" "verify job $vjob"
expect_log "$(log_of verify "$vjob")" 'pbackup exit status: 2$' "verify job $vjob"
pass "verify job $vjob after a failed backup: logged and exited 2"

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

# --- (d) the time-limit warning: SIGUSR1 to the batch shell ----------------------------------
step "(d) backup job, then SIGUSR1 to its batch shell (as --signal=B:USR1@120 sends)"
out_d=$WORK/out-d
mkdir -p "$out_d"
djob=$(sbatch --parsable --ntasks=2 "$SLURM_DIR/backup.sbatch" --sources "$big" \
  --output-dir "$out_d" --algo bzip2 --threads 1 --name big --no-progress)
djob=${djob%%;*}
dlog=$(log_of backup "$djob")
deadline=$((SECONDS + 60))
while ((SECONDS < deadline)); do
  [[ $(squeue -h -j "$djob" -o %T 2>/dev/null) == RUNNING && -n $(find "$out_d" -maxdepth 1 -name '.*.tmp-*') ]] && break
  sleep 0.2
done
scancel --batch -s USR1 "$djob"
wait_job "$djob"
echo "--- output of job $djob:"; sed 's/^/    /' "$dlog"
expect_log "$dlog" "time-limit warning" "job $djob after SIGUSR1"
expect_log "$dlog" "stopped before the time limit" "job $djob after SIGUSR1"
expect_log "$dlog" 'pbackup exit status: 138$' "job $djob after SIGUSR1"
[[ -z $(ls -A "$out_d") ]] || fail "output dir not empty after SIGUSR1: $(ls -A "$out_d" | xargs)"
pass "SIGUSR1: pbackup stopped cleanly, the log says so"

# --- (e) backup --resume: the time-limit warning stops it, the job requeues itself ------------
step "(e) backup --resume, SIGUSR1 to its batch shell: journal kept, job requeued, the next run continues"
out_e=$WORK/out-e
mkdir -p "$out_e" "$WORK/ref-e"
ejob=$(PBACKUP_TEST_PAUSE_EACH_ROUND=0.4 sbatch --parsable --ntasks=2 "$SLURM_DIR/backup.sbatch" --sources "$big" \
  --output-dir "$out_e" --algo zstd --threads 1 --block-mb 1 --name big --no-progress --resume)
ejob=${ejob%%;*}
elog=$(log_of backup "$ejob")
deadline=$((SECONDS + 60))
while ((SECONDS < deadline)); do
  n=$(grep -c '"b":' "$out_e/.big.tar.zst.pbackup-journal" 2>/dev/null || true)
  ((${n:-0} >= 2)) && break
  sleep 0.2
done
scancel --batch -s USR1 "$ejob"
# the requeued job waits for its BeginTime (Slurm delays a requeued batch job by minutes):
# once it does, start it now; then follow it until its second run ends
deadline=$((SECONDS + 120)) updated=0
while ((SECONDS < deadline)); do
  line=$(scontrol -o show job "$ejob" 2>/dev/null || true)
  if [[ $line == *Restarts=[1-9]* ]]; then
    # the first run's end can still show as the job's state once Restarts counts: done only
    # when the log holds the second run's start too
    runs=$(grep -c 'running: ' "$elog" 2>/dev/null || true)
    if ((${runs:-0} >= 2)); then
      [[ $line == *JobState=COMPLETED* || $line == *JobState=FAILED* || $line == *JobState=CANCELLED* ]] && break
    fi
    if ((!updated)) && [[ $line == *Reason=BeginTime* ]]; then
      # not in the second the first run's credential was revoked: slurmd compares in whole
      # seconds and kills a batch job launched then ("Job credential revoked")
      sleep 2
      scontrol update JobId="$ejob" StartTime=now && updated=1
    fi
  fi
  sleep 0.3
done
info "job $ejob: $(grep -oE 'JobState=[A-Z_]+|Restarts=[0-9]+|ExitCode=[0-9:]+' <<<"$line" | xargs)"
echo "--- output of job $ejob:"; sed 's/^/    /' "$elog"
expect_log "$elog" "its journal is kept for --resume" "job $ejob after SIGUSR1"
expect_log "$elog" "requeued, it continues with --resume" "job $ejob after SIGUSR1"
expect_log "$elog" "resuming the interrupted run: [1-9][0-9]* of" "job $ejob, requeued run"
expect_log "$elog" 'pbackup exit status: 0$' "job $ejob, requeued run"
PBACKUP_TEST_PAUSE_EACH_ROUND= "$PBACKUP" backup --sources "$big" --output-dir "$WORK/ref-e" --algo zstd --block-mb 1 --name big --no-progress
cmp "$WORK/ref-e/big.tar.zst" "$out_e/big.tar.zst" || fail "job $ejob: the requeued run's archive differs from an uninterrupted run"
[[ ! -e $out_e/.big.tar.zst.pbackup-journal ]] || fail "job $ejob left its journal"
pass "--resume: stopped at the warning, requeued, continued; the archive equals an uninterrupted run's"

[[ $(sha256sum </etc/slurm/slurm.conf 2>/dev/null || echo none) == "$sys_conf_sum" ]] ||
  fail "the system's /etc/slurm/slurm.conf changed during the test"

step "done"
