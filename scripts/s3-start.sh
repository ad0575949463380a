#!/usr/bin/env bash
# Bring up a real S3 endpoint on loopback for pbackup's S3 tests: a single-node OpenStack Swift
# 2.30 (Debian 12 packages) with its s3api middleware (real SigV4 checking, multipart, ListObjectsV2)
# on http://127.0.0.1:$S3_PORT. Everything binds to 127.0.0.1 only.
#
# Settings (environment):
#   S3_ROOT          state dir: config, rings, data, logs, pid files (default /tmp/pbackup-s3)
#   S3_PORT          S3 port (default 8080)
#   S3_BACKEND_PORT  first of 4 internal ports: object, container, account, memcached (default 6210)
#   S3_KEY           access key, "account:user" as Swift's tempauth wants (default test:tester)
#   S3_SECRET        secret key (default testing)
#   S3_BUCKETS       comma-separated buckets to create (existing ones are kept)
#
# Idempotent: daemons already running from this S3_ROOT (by pid file) are reused; the first run on
# a fresh machine installs the packages with apt-get (root needed then). Every daemon started gets a
# pid file in $S3_ROOT/run; scripts/s3-stop.sh stops exactly those. ~4 s to start, ~270 MB RSS.
set -euo pipefail

R=${S3_ROOT:-/tmp/pbackup-s3}
PORT=${S3_PORT:-8080}
B=${S3_BACKEND_PORT:-6210}
KEY=${S3_KEY:-test:tester}
SECRET=${S3_SECRET:-testing}
BUCKETS=${S3_BUCKETS:-}
PKGS=(swift swift-proxy swift-account swift-container swift-object memcached curl python3)

die() { echo "s3-start.sh: $*" >&2; exit 2; }
[[ $KEY == *:* ]] || die "S3_KEY must be account:user (Swift tempauth), got '$KEY'"
# S3_ROOT is ours alone: a directory holding anything this script did not create (no marker) is
# refused, before anything is installed, written or started. System config is never touched.
MARK=$R/.created-by-pbackup-s3-start
if [[ -e $R && ! -f $MARK ]]; then
  [[ -d $R && -z $(ls -A "$R") ]] || die "S3_ROOT=$R exists and was not created by this script: not touching it (choose a new directory)"
fi

# 1. packages (idempotent; apt-get update only when the package lists are missing or stale)
need=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || need+=("$p")
done
if ((${#need[@]})); then
  [[ $(id -u) -eq 0 ]] || die "missing packages ${need[*]}; run as root (or install them) first"
  command -v apt-get >/dev/null || die "missing packages ${need[*]} and no apt-get"
  echo "s3-start.sh: installing ${need[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt() { apt-get -o DPkg::Lock::Timeout=600 -y -qq --no-install-recommends "$@"; }
  if ! apt install "${need[@]}" >/dev/null 2>&1; then
    apt-get -o DPkg::Lock::Timeout=600 update -qq
    apt install "${need[@]}" >/dev/null
  fi
fi

# 2. configuration (rewritten each time: cheap, and keeps it in step with the settings)
mkdir -p "$R/etc" "$R/srv/d1" "$R/run"
touch "$MARK"
printf '[swift-hash]\nswift_hash_path_suffix = pbackup-s3test\n[storage-policy:0]\nname = gold\ndefault = yes\n' \
  >"$R/etc/swift.conf"
hdr() {  # hdr PORT PIPELINE
  printf '[DEFAULT]\nbind_ip = 127.0.0.1\nbind_port = %s\nworkers = 0\nuser = %s\nswift_dir = %s/etc\n' \
    "$1" "$(id -un)" "$R"
  printf 'devices = %s/srv\nmount_check = false\nlog_level = WARNING\n' "$R"
  printf '[pipeline:main]\npipeline = %s\n' "$2"
}
i=0
for n in object container account; do
  { hdr $((B + i)) $n-server; printf '[app:%s-server]\nuse = egg:swift#%s\n' $n $n; } >"$R/etc/$n-server.conf"
  i=$((i + 1))
done
# rings: one device, one replica each; rebuilt if the backend port changed
if [[ ! -f $R/etc/account.ring.gz || "$(cat "$R/etc/ring.port" 2>/dev/null)" != "$B" ]]; then
  /usr/bin/python3 - "$R/etc" "$B" <<'PY'
import sys
from swift.common.ring import RingBuilder
for i, n in enumerate(['object', 'container', 'account']):
    rb = RingBuilder(6, 1, 1)
    rb.add_dev({'id': 0, 'region': 1, 'zone': 1, 'ip': '127.0.0.1', 'port': int(sys.argv[2]) + i,
                'device': 'd1', 'weight': 1})
    rb.rebalance()
    rb.get_ring().save('%s/%s.ring.gz' % (sys.argv[1], n))
PY
  echo "$B" >"$R/etc/ring.port"
fi
{
  hdr "$PORT" "catch_errors gatekeeper healthcheck proxy-logging cache listing_formats s3api tempauth copy slo dlo proxy-logging proxy-server"
  printf '[app:proxy-server]\nuse = egg:swift#proxy\naccount_autocreate = true\n'
  printf '[filter:s3api]\nuse = egg:swift#s3api\nlocation = us-east-1\nmax_upload_part_num = 10000\n'
  printf '[filter:tempauth]\nuse = egg:swift#tempauth\nuser_%s_%s = %s .admin\n' "${KEY%%:*}" "${KEY#*:}" "$SECRET"
  printf '[filter:slo]\nuse = egg:swift#slo\nmax_manifest_segments = 10000\n'
  printf '[filter:cache]\nuse = egg:swift#memcache\nmemcache_servers = 127.0.0.1:%s\n' $((B + 3))
  for f in catch_errors gatekeeper healthcheck proxy_logging listing_formats copy dlo; do
    printf '[filter:%s]\nuse = egg:swift#%s\n' "${f/_logging/-logging}" $f
  done
} >"$R/etc/proxy-server.conf"

# 3. daemons. A pid file counts only if its process is alive and its command line names our
#    config (or, for memcached, our port): a stale file from a reboot is not trusted.
ours() {  # ours NAME -> 0 if $R/run/NAME.pid is a live daemon started from this S3_ROOT
  local f=$R/run/$1.pid pid
  [[ -s $f ]] || return 1
  pid=$(<"$f")
  [[ -r /proc/$pid/cmdline ]] || return 1
  case $1 in
    memcached) tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q -- "^memcached .*-p $((B + 3)) " ;;
    *) tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "$R/etc/$1-server.conf" ;;
  esac
}
port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
start() {  # start NAME PORT CMD...
  local n=$1 p=$2; shift 2
  ours "$n" && return 0
  rm -f "$R/run/$n.pid"
  port_busy "$p" && die "port 127.0.0.1:$p (for $n) is in use by a process this script did not start; stop it or set S3_PORT / S3_BACKEND_PORT"
  "$@" >"$R/run/$n.log" 2>&1 </dev/null &
  echo $! >"$R/run/$n.pid"
}
# check every port first, so a conflict starts nothing
for np in "memcached:$((B + 3))" "object:$B" "container:$((B + 1))" "account:$((B + 2))" "proxy:$PORT"; do
  if ! ours "${np%%:*}" && port_busy "${np#*:}"; then
    die "port 127.0.0.1:${np#*:} (for ${np%%:*}) is in use by a process this script did not start; stop it or set S3_PORT / S3_BACKEND_PORT"
  fi
done
mc_user=(); [[ $(id -u) -eq 0 ]] && mc_user=(-u nobody)
start memcached $((B + 3)) memcached "${mc_user[@]}" -l 127.0.0.1 -p $((B + 3)) -U 0 -m 64
i=0
for n in object container account; do
  start $n $((B + i)) "swift-$n-server" "$R/etc/$n-server.conf" -v
  i=$((i + 1))
done
start proxy "$PORT" swift-proxy-server "$R/etc/proxy-server.conf" -v

# 4. wait until a signed request succeeds, then create the buckets
s3() {  # s3 [CURL-ARGS...] PATH -> prints the HTTP status
  local path=${*: -1}
  curl -s -o /dev/null -w '%{http_code}' --max-time 10 --aws-sigv4 aws:amz:us-east-1:s3 \
    -H 'x-amz-content-sha256: UNSIGNED-PAYLOAD' "${@:1:$#-1}" \
    "http://${KEY//:/%3A}:$SECRET@127.0.0.1:$PORT/$path" || true
}
# every backend must listen (the proxy answers 200 to ListBuckets before the container server is
# up, and a bucket PUT then fails with 503)
all_listen() { local p; for p in $((B + 3)) $B $((B + 1)) $((B + 2)) "$PORT"; do port_busy "$p" || return 1; done; }
ready=0
for _ in $(seq 300); do
  all_listen && [[ $(s3 "") == 200 ]] && { ready=1; break; }
  for n in memcached object container account proxy; do
    ours "$n" || { echo "s3-start.sh: $n exited; log:" >&2; tail -n 20 "$R/run/$n.log" >&2; exit 1; }
  done
  sleep 0.2
done
((ready)) || { echo "s3-start.sh: S3 (swift) did not answer in 60 s; logs in $R/run" >&2
               tail -n 5 "$R"/run/*.log >&2; exit 1; }
for bkt in ${BUCKETS//,/ }; do
  for _ in $(seq 20); do  # a fresh account can answer 503 for a moment
    code=$(s3 -X PUT "$bkt"); [[ $code == 503 ]] || break; sleep 0.25
  done
  case $code in
    200|409) ;;  # 409: BucketAlreadyOwnedByYou / BucketAlreadyExists
    *) die "creating bucket '$bkt' failed: HTTP $code" ;;
  esac
  [[ $(s3 -I "$bkt") == 200 ]] || die "bucket '$bkt' not visible after creation"
done
echo "S3 ready: http://127.0.0.1:$PORT key=$KEY buckets=${BUCKETS:-none} (state $R, pids in $R/run)"
