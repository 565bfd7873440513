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
# Paths relative to the checkout in ccache's keys: a fresh clone elsewhere reuses the cache.
export CCACHE_BASEDIR="$root"
cmake --build build -j "$(nproc)"
ctest --test-dir build --output-on-failure -j 2

# Reliability build (docs/reliability.md): one clang build of the library and the unit tests under
# AddressSanitizer + UndefinedBehaviorSanitizer (-O1), with the libFuzzer targets; runs every unit
# test and each fuzz target for 15 s. TORCHQUANT_SKIP_RELIABILITY=1 skips it (a quick local run).
if [ "${TORCHQUANT_SKIP_RELIABILITY:-0}" != 1 ]; then
  [ -f build-san/CMakeCache.txt ] || CXX=clang++ cmake -S . -B build-san -G Ninja \
    -DCMAKE_BUILD_TYPE=Release -DCMAKE_CXX_FLAGS_RELEASE=-O1 -DCMAKE_CXX_COMPILER_LAUNCHER=ccache \
    -DTORCHQUANT_CUDA=OFF -DTORCHQUANT_BUILD_BENCHMARKS=OFF -DTORCHQUANT_BUILD_EXAMPLES=OFF \
    -DTORCHQUANT_INSTALL=OFF -DTORCHQUANT_SANITIZE=address,undefined -DTORCHQUANT_BUILD_FUZZERS=ON
  cmake --build build-san -j "$(nproc)" --target torchquant_tests fuzz_descriptor fuzz_calib_cache \
    fuzz_ops fuzz_histogram
  ctest --test-dir build-san -R '^(unit_tests|fuzz_(descriptor|calib_cache|ops|histogram))$' \
    --output-on-failure -j 2 -V
fi
echo "run-tests: done in $(( $(date +%s) - start )) s"
