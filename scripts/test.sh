#!/usr/bin/env bash
# Builds pbackup and runs the whole test suite with ctest: doctest units and the integration
# scripts (real mpirun with 1-3 ranks, GNU tar / gzip / bzip2 / zstd / unzip checks, Slurm).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
# Open MPI picks up no stray network: tests only ever talk to this machine.
export OMPI_MCA_btl_tcp_if_include=lo OMPI_MCA_oob_tcp_if_include=lo
# Two tests at a time (CMakeLists.txt keeps those sharing a server apart, and starts the longest first).
ctest --test-dir build --output-on-failure -j "${PBACKUP_TEST_JOBS:-2}" "$@"
