#!/usr/bin/env bash
# Installs what torchquant's build, tests, benchmarks and examples need, idempotently:
#  - Debian packages (apt-get, only the missing ones)
#  - .venv/ with the pinned torch wheel from PyPI (LibTorch for CMake, Python for interop tests)
# A second run installs nothing and takes seconds.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
torch_version="$(cat "$root/scripts/torch-version.txt")"

packages=(cmake ninja-build ccache g++ git libgtest-dev libgmock-dev libbenchmark-dev libfmt-dev libyaml-cpp-dev
          nlohmann-json3-dev libcli11-dev zlib1g-dev dataset-fashion-mnist
          clang libclang-rt-14-dev librapidcheck-dev libjemalloc2 patchelf)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing Debian packages: ${missing[*]}"
  sudo_cmd=""
  [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
  $sudo_cmd apt-get update -q
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

venv="$root/.venv"
if ! ls "$venv"/lib/python3*/site-packages/torch-"$torch_version".dist-info >/dev/null 2>&1; then
  python="${PYTHON:-python3}"
  echo "setup: creating $venv with torch==$torch_version (LibTorch comes from this wheel)"
  [ -x "$venv/bin/python" ] || "$python" -m venv "$venv"
  "$venv/bin/python" -m pip install -q --upgrade pip
  "$venv/bin/python" -m pip install -q "torch==$torch_version" numpy
fi
echo "setup: ok (torch $torch_version in $venv)"
