#!/usr/bin/env bash
# Dependencies one way (docs/DESIGN.md §8): cli -> core -> format/codec/dest -> util -> include.
# Fails, naming file and line, when a file under src/ includes a header from a folder it must
# not depend on:
#   util                 includes only include/ (pbackup/...) and util/
#   format, codec, dest  must not include core/, cli/ or mpi/; format not codec/ internals
#                        (it gets a Codec through pbackup/codec.h); dest not format/ or codec/
#   crypto               includes only include/, util/ and crypto/ (the age framing)
#   core                 must not include cli/ or mpi/
#   include/pbackup      includes only pbackup/ headers
#   nothing includes cli/ but cli itself
# usage: scripts/check-deps.sh [REPO_DIR]   (run by ctest as check_deps)
set -euo pipefail
repo=${1:-"$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"}
cd "$repo"

# folder -> folders (first path component of a quoted include) it may include
declare -A allowed=(
  [include]="pbackup"
  [util]="pbackup util"
  [codec]="pbackup util codec"
  [format]="pbackup util format"
  [dest]="pbackup util dest"
  [crypto]="pbackup util crypto"
  [core]="pbackup util codec format dest crypto core"
  [mpi]="pbackup util mpi"
  [cli]="pbackup util core mpi cli"
)

bad=0
while IFS= read -r -d '' f; do
  case $f in
    include/*) folder=include ;;
    src/*) folder=${f#src/}; folder=${folder%%/*} ;;
  esac
  ok=${allowed[$folder]:-}
  if [[ -z $ok ]]; then
    echo "check-deps: $f: folder src/$folder has no rule in scripts/check-deps.sh" >&2
    bad=1
    continue
  fi
  while IFS= read -r hit; do
    line=${hit%%:*}
    inc=${hit#*:}
    inc=${inc#*\"}
    inc=${inc%%\"*}
    top=${inc%%/*}
    [[ $inc == */* ]] || top=""
    if [[ " $ok " != *" $top "* ]]; then
      echo "check-deps: $f:$line includes \"$inc\": $folder may include only: $ok" >&2
      bad=1
    fi
  done < <(grep -n '^[[:space:]]*#[[:space:]]*include[[:space:]]*"' "$f" || true)
done < <(find include src -type f \( -name '*.h' -o -name '*.cpp' \) -print0 | sort -z)

if ((bad)); then
  echo "check-deps: FAIL (dependencies must go one way: cli -> core -> format/codec/dest -> util -> include)" >&2
  exit 1
fi
echo "check-deps: ok"
