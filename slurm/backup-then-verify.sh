#!/usr/bin/env bash
# Submit a pbackup backup job and a verify job that starts only if the backup succeeded
# (exit 0; a backup with warnings, exit 1, is not verified: look at its log first).
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
# The verify job is cancelled by Slurm if the backup fails (--kill-on-invalid-dep=yes).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

usage() { sed -n '2,17p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2; exit 2; }
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
verify_job=$(sbatch --parsable "${sb_opts[@]}" "${verify_opts[@]}" --dependency=afterok:"$backup_job" \
  --kill-on-invalid-dep=yes "$here/verify.sbatch" --source "$archive")
verify_job=${verify_job%%;*}
echo "archive: $archive"
echo "backup job: $backup_job"
echo "verify job: $verify_job"
