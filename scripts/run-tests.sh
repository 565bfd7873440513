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

# Reliability builds (docs/reliability.md): the unit tests under AddressSanitizer +
# UndefinedBehaviorSanitizer (GCC, -O1), and the libFuzzer targets (clang), each in its own build
# directory. TORCHQUANT_SKIP_RELIABILITY=1 skips them (a quick local run).
if [ "${TORCHQUANT_SKIP_RELIABILITY:-0}" != 1 ]; then
  common=(-G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_CXX_FLAGS_RELEASE=-O1
          -DCMAKE_CXX_COMPILER_LAUNCHER=ccache -DTORCHQUANT_CUDA=OFF -DTORCHQUANT_BUILD_BENCHMARKS=OFF
          -DTORCHQUANT_BUILD_EXAMPLES=OFF -DTORCHQUANT_INSTALL=OFF
          -DTORCHQUANT_SANITIZE=address,undefined)
  [ -f build-asan/CMakeCache.txt ] || cmake -S . -B build-asan "${common[@]}"
  cmake --build build-asan -j "$(nproc)" --target torchquant_tests
  ctest --test-dir build-asan -R '^unit_tests$' --output-on-failure
  [ -f build-fuzz/CMakeCache.txt ] || CXX=clang++ cmake -S . -B build-fuzz "${common[@]}" \
    -DTORCHQUANT_BUILD_TESTS=OFF -DTORCHQUANT_BUILD_FUZZERS=ON
  cmake --build build-fuzz -j "$(nproc)"
  ctest --test-dir build-fuzz -R '^fuzz_' --output-on-failure -j 2 -V
fi
echo "run-tests: done in $(( $(date +%s) - start )) s"
