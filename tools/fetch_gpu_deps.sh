#!/usr/bin/env bash
# Downloads (here, where the package registry is reachable) the Debian packages of the build
# dependencies that a GPU machine without network access may lack (fmt, doctest) into .deps/.
# tools/gpu_check.sh unpacks them into its build folder when cmake cannot find them otherwise.
# Carry .deps along to the GPU machine. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p .deps
cd .deps
for pkg in libfmt-dev libfmt9 doctest-dev; do
  ls "${pkg}"_*.deb >/dev/null 2>&1 || apt-get download "$pkg"
done
ls -l
