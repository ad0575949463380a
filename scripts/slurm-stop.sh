#!/usr/bin/env bash
# Stop the daemons scripts/slurm-start.sh started (slurmd, slurmctld and its own munged), by their
# pid files only (never by name), after cancelling leftover jobs so no slurmstepd or job process
# outlives slurmd. Nothing of the system's Slurm or munge is touched. Idempotent.
set -uo pipefail
RUN=${PBACKUP_SLURM_RUN:-/run/pbackup-slurm}
export SLURM_CONF=$RUN/etc/slurm.conf  # our cluster's, not the site's

alive() {  # alive PIDFILE COMM -> prints the pid if it is alive and is COMM
  local pid
  [[ -s $1 ]] || return 1
  pid=$(<"$1")
  [[ -r /proc/$pid/comm && $(</proc/"$pid"/comm) == "$2" ]] && echo "$pid"
}

if [[ -f $SLURM_CONF ]] && alive "$RUN/slurmctld.pid" slurmctld >/dev/null; then
  mapfile -t jobs < <(squeue -h -o %A 2>/dev/null)
  if ((${#jobs[@]})); then
    scancel "${jobs[@]}"
    for _ in $(seq 50); do [[ -z $(squeue -h -o %A 2>/dev/null) ]] && break; sleep 0.2; done
  fi
fi
for f in "$RUN/slurmd.pid:slurmd" "$RUN/slurmctld.pid:slurmctld" "$RUN/munge/munged.pid:munged"; do
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
