#!/usr/bin/env bash
# Installs the build dependencies that are missing, from Debian packages. Idempotent: a machine
# that already has everything is left alone and nothing is downloaded.
#   tools/setup.sh            build + test dependencies
#   tools/setup.sh --data     also the default corpus (linux-doc; CORPUS=python-doc: python3-doc)
#   tools/setup.sh --bench    also the benchmark yardstick (OpenBLAS)
set -euo pipefail

want=(cmake g++ make libfmt-dev doctest-dev libomp-dev)
# The aarch64 check of `make test` (tools/aarch64_check.sh) on x86-64 machines: Debian's cross
# compiler (it brings the ARM C library, libstdc++ and libgomp) and qemu-user to run the result;
# about 70 MB to download. fmt and doctest come from the headers above (no libfmt-dev:arm64).
if [ "$(dpkg --print-architecture)" = amd64 ]; then
  want+=(g++-aarch64-linux-gnu qemu-user)
fi
for arg in "$@"; do
  case "$arg" in
    --data)
      case "${CORPUS:-linux-doc}" in
        linux-doc) want+=(linux-doc) ;;
        python-doc) want+=(python3-doc) ;;
        *) echo "setup.sh: unknown CORPUS '${CORPUS}' (use linux-doc or python-doc)" >&2; exit 2 ;;
      esac ;;
    --bench) want+=(libopenblas-dev) ;;
    *) echo "setup.sh: unknown option '$arg' (use --data or --bench)" >&2; exit 2 ;;
  esac
done

missing=()
for pkg in "${want[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$pkg")
  fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

sudo=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "setup.sh: need root or sudo to install: ${missing[*]}" >&2; exit 1; }
  sudo="sudo"
fi
echo "setup.sh: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
# Refresh the package lists only when they are missing or stale (older than a day).
if [ -z "$(find /var/lib/apt/lists -maxdepth 1 -name '*Packages*' -mmin -1440 2>/dev/null | head -n 1)" ]; then
  $sudo apt-get update -qq
fi
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
