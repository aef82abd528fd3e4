#!/usr/bin/env bash
# Sets up, builds and runs every test: the release build with -Werror (all
# CTest labels: unit, parity, packaging, slow, and cuda, which skips without a GPU),
# then an address+undefined sanitizer build (without CUDA) that must export
# the same ABI and runs the unit tests.
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=$(nproc)
bash scripts/install-deps.sh

echo "== release build"
cmake -S . -B build -DNEGCUT_WERROR=ON >/dev/null
cmake --build build -j"$jobs" >/dev/null
ctest --test-dir build --output-on-failure -j"$jobs"

echo "== sanitizer build (address, undefined)"
cmake -S . -B build-asan -DNEGCUT_SANITIZE=ON -DNEGCUT_WITH_CUDA=OFF \
  -DNEGCUT_BUILD_EXAMPLES=OFF -DCMAKE_BUILD_TYPE=Debug -DNEGCUT_WERROR=ON >/dev/null
cmake --build build-asan -j"$jobs" >/dev/null

echo "== the public ABI is the same without CUDA"
# build/ has CUDA when nvcc is found; build-asan/ never does.
diff <(nm -D --defined-only build/libnegcut.so | awk '{print $3}' | sort) \
     <(nm -D --defined-only build-asan/libnegcut.so | awk '{print $3}' | sort)
bash abi/check_abi.sh check abi/libnegcut.abi build-asan/libnegcut.so include

echo "== unit tests under the sanitizers"
# Check runs each test in the suite process (no fork) so reports stay whole.
CK_FORK=no ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
  LSAN_OPTIONS=suppressions=$PWD/tests/lsan.supp UBSAN_OPTIONS=print_stacktrace=1 \
  ctest --test-dir build-asan --output-on-failure -L unit -j"$jobs"
