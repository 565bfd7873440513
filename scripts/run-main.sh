#!/usr/bin/env bash
# The README's main-job command: installs what is missing, builds the example and runs it.
# Arguments are passed to the example.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
scripts/setup.sh
scripts/configure.sh
export CCACHE_SLOPPINESS="pch_defines,time_macros,include_file_mtime,include_file_ctime"
# Paths relative to the checkout in ccache's keys: a fresh clone elsewhere reuses the cache.
export CCACHE_BASEDIR="$root"
cmake --build build -j "$(nproc)" --target fashion_mnist
exec build/examples/fashion_mnist/fashion_mnist --output-dir "${TORCHQUANT_OUT:-fashion_mnist_out}" "$@"
