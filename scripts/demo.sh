#!/usr/bin/env bash
# Sets up the machine, then backs up a small example tree with 2 MPI ranks, lists and restores
# it, and checks the restored tree against the original.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --target pbackup  # the binary only: the test binaries are for scripts/test.sh
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
work=$(mktemp -d /tmp/pbackup-demo.XXXXXX)
mkdir -p "$work/docs/notes" "$work/photos" "$work/backups"
cp -r docs/. "$work/docs/" 2>/dev/null || true
for i in $(seq 1 50); do echo "note $i: $(date -u)" > "$work/docs/notes/note$i.txt"; done
head -c 5000000 /dev/urandom > "$work/photos/raw.bin"
ln -s ../docs "$work/photos/docs-link"
set -x
mpirun -n 2 build/pbackup backup --sources "$work/docs" "$work/photos" --output-dir "$work/backups" --algo gzip --name demo
build/pbackup list --source "$work/backups/demo.tar.gz" | head -5
mpirun -n 2 build/pbackup restore --source "$work/backups/demo.tar.gz" --restore-to "$work/restored"
diff -r "$work/docs" "$work/restored/docs" && diff -r --no-dereference "$work/photos" "$work/restored/photos"
tar tzf "$work/backups/demo.tar.gz" > /dev/null
set +x
ls -la "$work/backups"
echo "demo OK: archive, manifest and restored tree are in $work"
