#!/usr/bin/env bash
# Sets up a fresh Debian 12 machine for pbackup and builds it: installs the Debian packages
# (scripts/deps.sh), then configures and builds Release into build/ (binary: build/pbackup).
# Idempotent: run it again after pulling changes. Arguments go to `cmake --build`: the demo
# passes `--target pbackup` (the binary only, no test binaries); the tests build everything.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j "$(nproc)" "$@"
echo "built: $(pwd)/build/pbackup"
