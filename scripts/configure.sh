#!/usr/bin/env bash
# Configures build/ (Release, Ninja, ccache) unless it is configured already. Extra arguments go to
# cmake.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
export CCACHE_SLOPPINESS="pch_defines,time_macros,include_file_mtime,include_file_ctime"
# Paths relative to the checkout in ccache's keys: a fresh clone elsewhere reuses the cache.
export CCACHE_BASEDIR="$root"
if [ ! -f build/CMakeCache.txt ] || [ $# -gt 0 ]; then
  cmake --preset release "$@"
fi
