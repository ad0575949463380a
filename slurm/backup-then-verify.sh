#!/usr/bin/env bash
# Submit a pbackup backup job and a verify job that runs when the backup job has ended (below).
#
#   slurm/backup-then-verify.sh [SBATCH_OPTION... --] BACKUP_ARGUMENT...
#
#   slurm/backup-then-verify.sh --ntasks=16 --time=04:00:00 -- \
#       --sources /scratch/proj --output-dir /archive/proj --algo zstd
#
# sbatch options before `--` apply to both jobs; VERIFY_SBATCH_OPTIONS (words) are added to the
# verify job's only, e.g. VERIFY_SBATCH_OPTIONS="--ntasks=4". Without --name the archive is
# named backup_YYYYMMDD_HHMMSS (pbackup's own default) here, so that the verify job knows it.
# Prints the archive path and both job ids:
#   archive: /archive/proj/backup_20250101_120000.tar.zst
#   backup job: 1234
#   verify job: 1235
# The verify job waits for the backup job to end, whatever its end (--dependency=afterany), and
# always writes its log: after a backup that exited 1 (warnings, e.g. a socket skipped; the
# archive is complete) it verifies the archive; after one that exited 2 (nothing committed) it
# says so and exits 2 without running pbackup. Options that `pbackup backup` does not know are
# refused before anything is submitted (sbatch options belong before `--`).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

usage() { sed -n '2,20p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2; exit 2; }
die() { echo "backup-then-verify.sh: $*" >&2; exit 2; }

sb_opts=() args=()
if printf '%s\n' "$@" | grep -qx -- '--'; then
  while (($#)) && [[ $1 != -- ]]; do sb_opts+=("$1"); shift; done
  shift
fi
args=("$@")
((${#args[@]})) || usage

# Find --output-dir, --algo, --name (as "--opt value" or "--opt=value").
out="" algo="" name=""
for ((i = 0; i < ${#args[@]}; i++)); do
  a=${args[i]}
  case $a in
    --output-dir=*) out=${a#*=} ;;
    --algo=*) algo=${a#*=} ;;
    --name=*) name=${a#*=} ;;
    --output-dir|--algo|--name)
      ((i + 1 < ${#args[@]})) || die "$a needs a value"
      v=${args[i + 1]}
      case $a in --output-dir) out=$v ;; --algo) algo=$v ;; --name) name=$v ;; esac
      ((i++)) || true ;;
    -h|--help) usage ;;
  esac
done
# Every option must be one `pbackup backup --help` lists: a forgotten `--` would otherwise
# submit sbatch options (e.g. --ntasks=16) to pbackup, failing only once the job runs.
# shellcheck source=slurm/common.sh
pb=$(PBACKUP_COMMON_FUNCTIONS_ONLY=1 && source "$here/common.sh" && pbackup_binary) || die "$pb"
help=$("$pb" backup --help) || die "$pb backup --help failed"
mapfile -t known < <(grep -oE '^ +(-[a-zA-Z], )?--[a-z0-9-]+( arg)?' <<<"$help" | sed -E 's/^ +(-[a-zA-Z], )?//')
takes_value() {  # takes_value --NAME -> 0 with a value, 1 without, 2 unknown
  local k
  for k in "${known[@]}"; do
    [[ $k == "$1 arg" ]] && return 0
    [[ $k == "$1" ]] && return 1
  done
  return 2
}
for ((i = 0; i < ${#args[@]}; i++)); do
  a=${args[i]}
  [[ $a == -* ]] || continue
  rc=0; takes_value "${a%%=*}" || rc=$?
  if ((rc == 2)); then
    die "'$a' is not an option of pbackup backup (see: $pb backup --help); sbatch options go before --: backup-then-verify.sh [SBATCH_OPTION... --] BACKUP_ARGUMENT..."
  fi
  if ((rc == 0)) && [[ $a != *=* ]]; then
    if [[ $a == --sources ]]; then
      while ((i + 1 < ${#args[@]})) && [[ ${args[i + 1]} != --* ]]; do ((i++)) || true; done
    else
      ((i++)) || true
    fi
  fi
done
[[ -n $out ]] || die "--output-dir is required"
[[ -n $algo ]] || die "--algo is required"
case $algo in
  gzip) ext=tar.gz ;; bzip2) ext=tar.bz2 ;; zstd) ext=tar.zst ;; zip) ext=zip ;;
  *) die "--algo $algo: expected zip, gzip, bzip2 or zstd" ;;
esac
if [[ -z $name ]]; then
  name=backup_$(date +%Y%m%d_%H%M%S)
  args+=(--name "$name")
fi
# an absolute archive path, so the verify job does not depend on the directory it starts in
[[ $out == /* ]] || out=$PWD/$out
archive=${out%/}/$name.$ext

read -r -a verify_opts <<<"${VERIFY_SBATCH_OPTIONS:-}"

backup_job=$(sbatch --parsable "${sb_opts[@]}" "$here/backup.sbatch" "${args[@]}")
backup_job=${backup_job%%;*}
# afterany: the verify job runs (and logs) however the backup ended; common.sh reads the backup
# job's exit code from PBACKUP_AFTER_JOB and skips the verification only after an exit 2.
verify_job=$(PBACKUP_AFTER_JOB=$backup_job sbatch --parsable "${sb_opts[@]}" "${verify_opts[@]}" \
  --dependency=afterany:"$backup_job" "$here/verify.sbatch" --source "$archive")
verify_job=${verify_job%%;*}
echo "archive: $archive"
echo "backup job: $backup_job"
echo "verify job: $verify_job"
