#!/usr/bin/env bash
# Stop the daemons scripts/slurm-start.sh started, by their pid files only (never by name), after
# cancelling leftover jobs so no slurmstepd or job process outlives slurmd. A munged that
# slurm-start.sh found already running has no pid file there and is left alone. Idempotent.
set -uo pipefail
RUN=${PBACKUP_SLURM_RUN:-/run/pbackup-slurm}

alive() {  # alive PIDFILE COMM -> prints the pid if it is alive and is COMM
  local pid
  [[ -s $1 ]] || return 1
  pid=$(<"$1")
  [[ -r /proc/$pid/comm && $(</proc/"$pid"/comm) == "$2" ]] && echo "$pid"
}

if alive "$RUN/slurmctld.pid" slurmctld >/dev/null; then
  mapfile -t jobs < <(squeue -h -o %A 2>/dev/null)
  if ((${#jobs[@]})); then
    scancel "${jobs[@]}"
    for _ in $(seq 50); do [[ -z $(squeue -h -o %A 2>/dev/null) ]] && break; sleep 0.2; done
  fi
fi
for f in "$RUN/slurmd.pid:slurmd" "$RUN/slurmctld.pid:slurmctld" "$RUN/munged.pid:munged"; do
  file=${f%%:*} comm=${f##*:}
  if pid=$(alive "$file" "$comm"); then
    kill "$pid"
    for _ in $(seq 50); do [[ -d /proc/$pid ]] || break; sleep 0.2; done
    [[ -d /proc/$pid ]] && { echo "$comm ($pid) ignored SIGTERM, sending SIGKILL" >&2; kill -9 "$pid"; }
    echo "stopped $comm ($pid)"
  fi
  rm -f "$file"
done
exit 0
