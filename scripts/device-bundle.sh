#!/usr/bin/env bash
# Packs into .device/ (ignored by git) what a GPU machine lent through the `device` tool needs to
# run the CUDA tests and the CUDA benchmark without building anything there (it has torch 2.11
# with CUDA but none of our Debian packages, and each session's device time is short):
#   bin/        torchquant_tests and bench_cuda from the release build, RUNPATH removed
#   lib/        libtorchquant and the Debian libraries they load that are not glibc's, the C++
#               runtime's, torch's or CUDA's (yaml-cpp, Google Benchmark, ...)
#   fallback/   this machine's C++ runtime and OpenMP, used there only if the image lacks them
#   reference/  pytorch_quantization's reference vectors (../shared does not travel)
# Usage: scripts/device-bundle.sh [build-dir]   (after scripts/run-tests.sh: the build must have
# the CUDA kernels, which needs nvcc and the CUDA torch wheel, as scripts/setup.sh installs)
# Then, where `status` says can_start_another: true, run `bash scripts/device-check.sh` with
# carry [".device"] (docs/reliability.md, "CUDA").
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${1:-$root/build}"
bundle="$root/.device"
reference="${TORCHQUANT_REFERENCE_DIR:-$root/../shared/reference/pytorch_quantization}"

command -v patchelf >/dev/null || { echo "device-bundle: patchelf missing: scripts/setup.sh" >&2
                                    exit 1; }
cmake --build "$build" --target torchquant torchquant_tests bench_cuda
nm -D "$build/libtorchquant.so" | grep quant_kernel_cuda >/dev/null ||
  { echo "device-bundle: $build has no CUDA kernels (nvcc or the CUDA torch wheel missing?)" >&2
    exit 1; }

rm -rf "$bundle"
mkdir -p "$bundle/bin" "$bundle/lib" "$bundle/fallback" "$bundle/reference"
programs=("$build/tests/torchquant_tests" "$build/tests/benchmarks/bench_cuda")
cp "${programs[@]}" "$bundle/bin/"
soname="$(patchelf --print-soname "$build/libtorchquant.so")"
cp -L "$build/libtorchquant.so" "$bundle/lib/$soname"

# What the programs load, by where ldd finds it here.
while read -r name path; do
  case "$name" in
    libc.so.*|libm.so.*|libmvec.so.*|libpthread.so.*|libdl.so.*|librt.so.*|libutil.so.*| \
    ld-linux*|linux-vdso*|"$soname") ;;  # glibc's (any machine has them) and ours
    libstdc++.so.*|libgcc_s.so.*|libgomp.so.*) cp -L "$path" "$bundle/fallback/$name" ;;
    *)
      case "$path" in
        */torch/lib/*|*/nvidia/*|/usr/local/cuda*) ;;  # the GPU machine's torch and CUDA
        *) cp -L "$path" "$bundle/lib/$name" ;;
      esac ;;
  esac
done < <(ldd "${programs[@]}" "$build/libtorchquant.so" | awk '$2 == "=>" && $3 ~ /^\// {print $1, $3}' |
         sort -u)
for f in "$bundle"/bin/* "$bundle"/lib/*; do patchelf --remove-rpath "$f"; done
cp -r "$reference"/. "$bundle/reference/"
echo "device-bundle: $(du -sh "$bundle" | cut -f1) in $bundle:" $(cd "$bundle" && ls bin lib fallback)
