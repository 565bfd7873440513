#!/usr/bin/env bash
# The README's test command: installs what is missing, builds everything (CUDA sources included
# when the toolkit is present) and runs the whole test suite through ctest.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
start=$(date +%s)
scripts/setup.sh
scripts/configure.sh
export CCACHE_SLOPPINESS="pch_defines,time_macros,include_file_mtime,include_file_ctime"
cmake --build build -j "$(nproc)"
ctest --test-dir build --output-on-failure -j 2
echo "run-tests: done in $(( $(date +%s) - start )) s"
