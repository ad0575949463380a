# shellcheck shell=bash
# The part of backup.sbatch, restore.sbatch and verify.sbatch that is the same: sourced by them
# (after they set SUBCOMMAND) with the job's arguments. Not a job script itself.
#
#
# Environment (all optional):
#   PBACKUP           path of the pbackup binary (default: the one installed or built next to
#                     these scripts, else `pbackup` found on PATH)
#   PBACKUP_LAUNCHER  srun | mpirun | none  (default: srun --mpi=pmix if this Slurm has pmix,
#                     else mpirun, else a single rank run directly)
#   PBACKUP_LAUNCHER_ARGS  extra words for the launcher, e.g. "--mca btl ^openib" for mpirun
# The job's exit status is pbackup's (0 ok, 1 warnings, 2 fatal, >128 killed by a signal); the
# last line of the job's output is "pbackup exit status: N".
# scancel / time limit: Slurm sends SIGTERM to pbackup itself, which removes its temporary
# files and exits (backup --resume keeps them and its journal; at the SIGUSR1 time-limit
# warning the job stops pbackup with SIGTERM and requeues itself: slurm/README.md); a SIGTERM/SIGINT/SIGUSR1/SIGUSR2 that reaches only this batch shell (e.g.
# `scancel --batch -s TERM`, `#SBATCH --signal=B:TERM@300`) is passed on to pbackup.
# The pbackup binary: $PBACKUP, else the one installed or built next to these scripts
# (PREFIX/bin/pbackup for PREFIX/share/pbackup/slurm, build/pbackup for a source tree's slurm/),
# else `pbackup` on PATH. Prints the path, or an error message and returns 1.
pbackup_binary() {
  local here pb c
  here=$(cd "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
  pb=${PBACKUP:-}
  if [[ -n $pb && $pb != */* ]]; then
    c=$(type -P "$pb" || true)
    [[ -n $c ]] || { echo "error: PBACKUP=$pb is not on PATH"; return 1; }
    pb=$c
  fi
  if [[ -z $pb ]]; then
    for c in "$here/../../../bin/pbackup" "$here/../build/pbackup" "$(type -P pbackup || true)"; do
      [[ -n $c && -f $c && -x $c ]] && { pb=$c; break; }
    done
    [[ -n $pb ]] || { echo "error: pbackup not found next to $here nor on PATH: set PBACKUP=/path/to/pbackup"; return 1; }
    pb=$(cd "$(dirname -- "$pb")" && pwd)/$(basename -- "$pb")
  fi
  [[ -f $pb && -x $pb ]] || { echo "error: PBACKUP=$pb is not an executable file"; return 1; }
  printf '%s\n' "$pb"
}
# backup-then-verify.sh sources this file for the function above only.
[[ -n ${PBACKUP_COMMON_FUNCTIONS_ONLY:-} ]] && return 0

set -uo pipefail
log() { printf '[%(%F %T)T] %s\n' -1 "$*"; }
finish() { log "pbackup exit status: $1"; exit "$1"; }
[[ ${SUBCOMMAND:-} =~ ^(backup|restore|verify)$ ]] || { log "error: slurm/common.sh: SUBCOMMAND must be backup, restore or verify"; finish 2; }
pb=$(pbackup_binary) || { log "$pb"; finish 2; }

# A verify chained after a backup (backup-then-verify.sh: --dependency=afterany and
# PBACKUP_AFTER_JOB=the backup's job id) runs after a backup that exited 0 or 1 (warnings: the
# archive is complete), not after an exit 2 (nothing was committed). Slurm forgets a finished
# job after MinJobAge: then the archive's manifest decides (verify says if it is missing).
if [[ $SUBCOMMAND == verify && -n ${PBACKUP_AFTER_JOB:-} ]]; then
  after=$(scontrol -o show job "$PBACKUP_AFTER_JOB" 2>/dev/null || true)
  after_state=$(grep -o 'JobState=[A-Z_]*' <<<"$after" | cut -d= -f2 || true)
  after_exit=$(grep -o ' ExitCode=[0-9]*' <<<"$after" | cut -d= -f2 || true)
  if [[ -z $after ]]; then
    log "backup job $PBACKUP_AFTER_JOB is no longer known to Slurm: verifying what it left"
  elif [[ $after_exit == 2 ]]; then
    log "backup job $PBACKUP_AFTER_JOB exited 2 ($after_state): it committed nothing, there is no archive to verify"
    finish 2
  else
    note=""; [[ $after_exit == 1 ]] && note=" (warnings, named in its log; the archive is complete)"
    log "backup job $PBACKUP_AFTER_JOB ended $after_state with exit ${after_exit:-unknown}$note: verifying"
  fi
fi

# Ranks: the tasks of the allocation (--ntasks, or one per node when only --nodes was given).
ntasks=${SLURM_NTASKS:-${SLURM_JOB_NUM_NODES:-1}}
args=("$@")
# Threads per rank = the CPUs Slurm allocated to each task, unless the user chose --threads:
# --cpus-per-task if given, else the first node's allocated CPUs / its tasks (1 unless the job
# has whole nodes). Without this, ranks that Slurm does not bind to cores (TaskPlugin=task/none)
# would each start a thread per core of the node.
has_threads=0
resume=0  # backup --resume: at the time-limit warning, stop (the journal stays) and requeue
for a in "${args[@]}"; do
  [[ $a == --threads || $a == --threads=* ]] && has_threads=1
  [[ $SUBCOMMAND == backup && $a == --resume ]] && resume=1
done
((resume)) && [[ -n ${SLURM_RESTART_COUNT:-} ]] && log "requeued run $SLURM_RESTART_COUNT of job ${SLURM_JOB_ID:-}: pbackup takes up the journal (--resume)"
if ((!has_threads)) && [[ -n ${SLURM_JOB_ID:-} ]]; then
  threads=${SLURM_CPUS_PER_TASK:-}
  if [[ -z $threads ]]; then
    node_cpus=${SLURM_JOB_CPUS_PER_NODE:-}; node_cpus=${node_cpus%%[(,]*}
    node_tasks=${SLURM_TASKS_PER_NODE:-}; node_tasks=${node_tasks%%[(,]*}
    if [[ $node_cpus =~ ^[0-9]+$ && $node_tasks =~ ^[1-9][0-9]*$ ]]; then
      threads=$((node_cpus / node_tasks)); ((threads >= 1)) || threads=1
    fi
  fi
  [[ -n $threads ]] && args+=(--threads "$threads")
fi

launcher=${PBACKUP_LAUNCHER:-auto}
if [[ $launcher == auto ]]; then
  if command -v srun >/dev/null && [[ -n ${SLURM_JOB_ID:-} ]] && srun --mpi=list 2>&1 | grep -qw pmix; then
    launcher=srun
  elif command -v mpirun >/dev/null; then
    launcher=mpirun
  else
    launcher=none
  fi
fi
read -r -a extra <<<"${PBACKUP_LAUNCHER_ARGS:-}"
case $launcher in
  srun)
    # srun (22.05+) does not inherit --cpus-per-task from the allocation: pass it on.
    cmd=(srun --mpi=pmix --ntasks="$ntasks" ${SLURM_CPUS_PER_TASK:+--cpus-per-task="$SLURM_CPUS_PER_TASK"} "${extra[@]}") ;;
  mpirun)
    # Open MPI's mpirun refuses to run as root unless told; it takes hosts and slots from Slurm.
    if [[ $(id -u) -eq 0 ]]; then export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1; fi
    # On SIGTERM/SIGINT mpirun sends its ranks SIGCONT, SIGTERM this many seconds later and
    # SIGKILL as long again after that (default 1). pbackup removes its temporary files at the
    # SIGTERM and stops within 1.5 s (aborting a cloud upload): 2 s gives it that time.
    export OMPI_MCA_odls_base_sigkill_timeout=${OMPI_MCA_odls_base_sigkill_timeout:-2}
    cmd=(mpirun -n "$ntasks" "${extra[@]}") ;;
  none)
    ((ntasks == 1)) || log "warning: PBACKUP_LAUNCHER=none: running one rank, not $ntasks"
    cmd=() ;;
  *) log "error: PBACKUP_LAUNCHER=$launcher: expected srun, mpirun or none"; finish 2 ;;
esac

log "job ${SLURM_JOB_ID:-none} (${SLURM_JOB_NAME:-}) on ${SLURM_JOB_NODELIST:-$(hostname -s)}: ntasks=$ntasks cpus-per-task=${SLURM_CPUS_PER_TASK:-unset} launcher=$launcher"
log "running:$(printf ' %q' "${cmd[@]}" "$pb" "$SUBCOMMAND" "${args[@]}")"

# Run in the background and wait, so this shell can pass on a signal that reaches only it and
# still report pbackup's own exit status after pbackup has cleaned up.
"${cmd[@]}" "$pb" "$SUBCOMMAND" "${args[@]}" &
child=$!
# scancel and the time limit signal every process of the job, pbackup and the launcher included:
# passing the signal on again would be a duplicate (and a second SIGTERM makes mpirun give up on
# its ranks at once). So pass it on only while Slurm still has the job RUNNING, i.e. when the
# signal was meant for this shell alone.
got_signal=  # the last signal the traps below saw
requeue=     # set at the time-limit warning of a backup --resume
# shellcheck disable=SC2317  # called from the traps below
on_signal() {
  local state
  got_signal=$1
  state=$(squeue -h -j "${SLURM_JOB_ID:-0}" -o %T 2>/dev/null || true)
  case $state in
    CANCELLED*|COMPLETING*|TIMEOUT*|PREEMPTED*|NODE_FAIL*|DEADLINE*|FAILED*)
      log "batch shell got SIG$1 (job $state): waiting for pbackup to clean up and exit" ;;
    *) local sig=$1
       if [[ $1 == USR1 ]] && ((resume)); then
         # backup --resume: SIGTERM keeps the temporary file and the journal; requeued below
         log "batch shell got SIGUSR1, the time-limit warning (#SBATCH --signal=B:USR1@SECONDS): stopping pbackup (SIGTERM), its journal is kept for --resume"
         sig=TERM requeue=1
       elif [[ $1 == USR1 ]]; then
         log "batch shell got SIGUSR1, the time-limit warning (#SBATCH --signal=B:USR1@SECONDS): stopping pbackup cleanly before the limit"
       else
         log "batch shell got SIG$1: passing it on to pbackup"
       fi
       if [[ $launcher == srun ]]; then
         # to the job steps (pbackup's ranks) but not to this shell; SIGTERM sent to srun itself
         # would make it SIGKILL the ranks ("forcing job termination")
         scancel --signal="$sig" "$SLURM_JOB_ID" || kill -s "$sig" "$child" 2>/dev/null
       else
         kill -s "$sig" "$child" 2>/dev/null
       fi ;;
  esac
}
# shellcheck disable=SC2064  # $sig is meant to expand now
for sig in TERM INT USR1 USR2; do trap "on_signal $sig" "$sig"; done
while kill -0 "$child" 2>/dev/null; do wait "$child"; done
wait "$child"; rc=$?
# mpirun (Open MPI 4.1) exits 1 (sometimes 2) when it is signalled itself, whatever its ranks
# returned; 1 would read as "done with warnings". After a signal, report 128+N as pbackup's
# ranks (and srun) do; the ranks' log line says "interrupted by SIG...".
if [[ $launcher == mpirun && -n $got_signal ]] && ((rc == 1 || rc == 2)); then
  log "mpirun exited $rc after SIG$got_signal: reporting $((128 + $(kill -l "$got_signal")))"
  rc=$((128 + $(kill -l "$got_signal")))
fi
if [[ -n $requeue ]] && ((rc > 128)); then
  # The job must be requeueable (#SBATCH --requeue in backup.sbatch, or JobRequeue=1); with
  # --open-mode=append the next run's lines follow these in the same log.
  if scontrol requeue "$SLURM_JOB_ID"; then
    log "stopped before the time limit with the journal kept: job $SLURM_JOB_ID requeued, it continues with --resume"
  else
    log "stopped before the time limit with the journal kept, but the job could not be requeued (submit with --requeue): run the same sbatch command again to continue"
  fi
elif [[ $got_signal == USR1 ]] && ((rc == 128 + 10)); then
  log "stopped before the time limit: pbackup removed its temporary files, nothing was written; submit again with a longer --time"
fi
finish "$rc"
