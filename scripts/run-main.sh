#!/usr/bin/env bash
# The README's main-job command: installs what is missing, builds the example and runs it.
# Arguments are passed to the example.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
scripts/setup.sh
scripts/configure.sh
export CCACHE_SLOPPINESS="pch_defines,time_macros,include_file_mtime,include_file_ctime"
cmake --build build -j "$(nproc)" --target quickstart
exec build/examples/quickstart/quickstart "$@"
