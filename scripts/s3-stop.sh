#!/usr/bin/env bash
# Stop the daemons scripts/s3-start.sh started, by their pid files in $S3_ROOT/run only (never by
# name); a pid whose command line is not the daemon started from this S3_ROOT is left alone (the
# pid file is stale). S3_WIPE=1 also deletes $S3_ROOT (data, config, logs). Idempotent.
set -uo pipefail
R=${S3_ROOT:-/tmp/pbackup-s3}
B=${S3_BACKEND_PORT:-6210}

ours() {  # ours NAME PID -> 0 if PID is the daemon NAME started from this S3_ROOT
  [[ -r /proc/$2/cmdline ]] || return 1
  case $1 in
    memcached) tr '\0' ' ' <"/proc/$2/cmdline" | grep -q -- "^memcached .*-p $((B + 3)) " ;;
    *) tr '\0' ' ' <"/proc/$2/cmdline" | grep -qF -- "$R/etc/$1-server.conf" ;;
  esac
}

running() {  # running PID -> 0 if PID exists and is not a zombie
  local st
  st=$(sed -n 's/^.*) \(.\).*$/\1/p' "/proc/$1/stat" 2>/dev/null) || return 1
  [[ -n $st && $st != Z ]]
}

# SIGTERM to all at once (each Swift server takes ~2 s to exit), the proxy first; then wait,
# and SIGKILL whatever is still there after 10 s.
pids=()
for n in proxy object container account memcached; do
  f=$R/run/$n.pid
  [[ -f $f ]] || continue
  pid=$(<"$f")
  if [[ $pid =~ ^[0-9]+$ ]] && ours "$n" "$pid"; then
    kill "$pid" 2>/dev/null && pids+=("$n:$pid")
  fi
  rm -f "$f"
done
for _ in $(seq 100); do
  alive=0
  for np in "${pids[@]}"; do running "${np#*:}" && alive=1; done
  ((alive)) || break
  sleep 0.1
done
for np in "${pids[@]}"; do
  n=${np%%:*} pid=${np#*:}
  if running "$pid"; then
    echo "s3-stop.sh: $n ($pid) ignored SIGTERM, sending SIGKILL" >&2
    kill -9 "$pid" 2>/dev/null
  fi
  echo "stopped $n ($pid)"
done
# only a directory s3-start.sh made (its marker) is deleted, never one S3_ROOT names by mistake
if [[ ${S3_WIPE:-0} == 1 && -d $R ]]; then
  if [[ -f $R/.created-by-pbackup-s3-start ]]; then
    rm -rf "$R"
  else
    echo "s3-stop.sh: S3_WIPE=1: $R was not created by scripts/s3-start.sh: not deleting it" >&2
  fi
fi
exit 0
