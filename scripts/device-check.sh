#!/usr/bin/env bash
# The GPU check, as one command for the `device` tool (carry [".device"], made by
# scripts/device-bundle.sh): the whole unit-test suite, the *_CUDA tests (CUDA kernels against the
# CPU kernels, bit for bit, on every reference case) run when a GPU is visible, then bench_cuda
# (each op's bytes per second against a device-to-device copy). Nothing is built there.
# Writes to $OUT (the tool's folder; .device/out elsewhere): tests.xml, tests.log,
# bench_cuda.json and cuda_benchmarks.md (scripts/cuda-report.py). Fails if a test fails, or if
# a GPU is visible and no *_CUDA test ran.
# Also runs on a machine without a GPU (CI does: .ci/run), where the *_CUDA tests are left out
# and bench_cuda reports that there is no device. TORCHQUANT_DEVICE_TESTS narrows the tests (a
# gtest filter); PYTHON names a python with torch (default python3).
set -uo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bundle="$root/.device"
out="${OUT:-$bundle/out}"
python="${PYTHON:-python3}"
mkdir -p "$out"
[ -x "$bundle/bin/torchquant_tests" ] || { echo "device-check: no bundle: scripts/device-bundle.sh"
                                           exit 1; }

# The machine's torch (its libraries are the ones ours were linked against: same version) and
# the CUDA runtime that comes with it.
libs="$("$python" - <<'EOF'
import glob, os, torch
base = os.path.dirname(torch.__file__)
site = os.path.dirname(base)
dirs = [os.path.join(base, "lib")]
dirs += sorted({os.path.dirname(p) for p in glob.glob(os.path.join(site, "nvidia", "**",
                                                                   "libcudart.so.*"),
                                                        recursive=True)})
print(":".join(dirs))
EOF
)" || { echo "device-check: $python has no torch"; exit 1; }
export LD_LIBRARY_PATH="$bundle/lib:$libs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
# (grep without -q: it reads all of ldd's output, so pipefail sees no SIGPIPE.)
if ldd "$bundle/bin/torchquant_tests" "$bundle/bin/bench_cuda" | grep "not found" >/dev/null; then
  echo "device-check: using this bundle's C++ runtime (fallback/):"
  ldd "$bundle/bin/torchquant_tests" | grep "not found"
  export LD_LIBRARY_PATH="$LD_LIBRARY_PATH:$bundle/fallback"
fi
export TORCHQUANT_REFERENCE_DIR="$bundle/reference" TORCHQUANT_TEST_DATA_DIR="$root/tests/data"
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-4}"

command -v nvidia-smi >/dev/null && nvidia-smi -L
gpus="$("$python" -c 'import torch; print(torch.cuda.device_count())')"
echo "device-check: torch sees $gpus GPU(s); CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2)"

status=0
start=$(date +%s)
"$bundle/bin/torchquant_tests" --gtest_filter="${TORCHQUANT_DEVICE_TESTS:--CheckpointPython.*}" \
  --gtest_output="xml:$out/tests.xml" >"$out/tests.log" 2>&1 || status=1
grep -E '^\[  (PASSED|FAILED|SKIPPED) |^\[==========\]|No CUDA device' "$out/tests.log"
cuda_tests=$(grep -c '^\[       OK \] .*_CUDA' "$out/tests.log")
echo "device-check: tests in $(( $(date +%s) - start )) s; *_CUDA tests passed: $cuda_tests"
if [ "$gpus" -gt 0 ] && [ "$cuda_tests" -eq 0 ] && [ -z "${TORCHQUANT_DEVICE_TESTS:-}" ]; then
  echo "device-check: a GPU is visible but no *_CUDA test ran"
  status=1
fi

"$bundle/bin/bench_cuda" --benchmark_format=json --benchmark_repetitions=5 \
  >"$out/bench_cuda.json" 2>"$out/bench_cuda.log" || status=1
"$python" "$root/scripts/cuda-report.py" "$out/bench_cuda.json" | tee "$out/cuda_benchmarks.md"
exit $status
