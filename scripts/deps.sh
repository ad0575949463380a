#!/usr/bin/env bash
# Installs the Debian 12 packages pbackup needs to build and test. Idempotent: apt-get skips
# what is already there, and the package lists are refreshed only when a package is missing.
set -euo pipefail
PKGS=(
  build-essential cmake pkg-config
  libopenmpi-dev openmpi-bin
  libboost-mpi-dev libboost-serialization-dev
  libarchive-dev zlib1g-dev libdeflate-dev libbz2-dev libzstd-dev libssl-dev libcurl4-openssl-dev
  libcxxopts-dev doctest-dev nlohmann-json3-dev libpugixml-dev
  # fuzzing (tests/fuzz/run.sh): clang 14 with its sanitizer and libFuzzer runtimes
  clang libclang-rt-14-dev
  # peer tools the tests and the benchmark check archives with
  tar gzip bzip2 xz-utils zstd unzip zip libarchive-tools pigz pbzip2 lbzip2 time
  # 7-Zip: encrypted (AES) and PPMd/BZip2 zips for test_interop.sh
  p7zip-full
  # the age CLI: encrypted archives are checked against it both ways (test_encrypt.sh)
  age
  # setfattr/getfattr and setfacl/getfacl for the metadata tests (test_xattrs.sh)
  attr acl
  python3 curl procps util-linux coreutils
  # packaging and docs checks (test_install.sh), the HTML report in a real browser (test_report.sh)
  dpkg-dev groff-base man-db chromium
)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  SUDO=""; [[ $(id -u) -eq 0 ]] || SUDO=sudo
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
