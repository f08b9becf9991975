#!/usr/bin/env bash
# Build healthreg and run every test (ctest). Installs missing packages.
#   HR_SANITIZE=1 scripts/test.sh   build and test with ASan+UBSan
#   HR_BUILD_DIR=dir                build directory (default: build, or
#                                   build-asan with HR_SANITIZE=1)
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/deps.sh

san=OFF
dir=${HR_BUILD_DIR:-build}
if [ "${HR_SANITIZE:-0}" = 1 ]; then
	san=ON
	dir=${HR_BUILD_DIR:-build-asan}
fi
werror=OFF
[ "${CI:-}" = true ] && werror=ON

cmake -S . -B "$dir" -DHR_SANITIZE=$san -DHR_WERROR=$werror >/dev/null
cmake --build "$dir" -j"$(nproc)"
cd "$dir"
ctest --output-on-failure -j2 "$@"
