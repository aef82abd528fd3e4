#!/usr/bin/env bash
# Sets up, builds and runs every test: the release build with -Werror (all
# CTest labels: unit, parity, packaging, slow, and cuda, which skips without a GPU),
# its unit and parity tests again with oneDNN capped to lesser instruction
# sets, then the CUDA backend's tests (label cuda) against the CPU emulator of
# tests/cudaemu, then an address+undefined sanitizer build (without CUDA)
# that must export the same ABI and runs the unit tests, then the threaded
# tests under ThreadSanitizer, then the libFuzzer targets of tests/fuzz,
# briefly.
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=$(nproc)
bash scripts/install-deps.sh

echo "== release build"
cmake -S . -B build -DNEGCUT_WERROR=ON >/dev/null
cmake --build build -j"$jobs" >/dev/null
ctest --test-dir build --output-on-failure -j"$jobs"

echo "== the unit and parity tests on lesser instruction sets"
# oneDNN picks its kernels (and so the arithmetic) by instruction set, and
# the library its algorithms (Winograd, bf16) by what oneDNN runs: capped to
# AVX-512 without BF16 (bf16 inference falls back to float32) and to AVX2 (no
# Winograd, oneDNN's AVX2 kernels), the suites must hold as they would on
# such a machine. The PyTorch references are made again under the cap too
# (PyTorch's oneDNN obeys it), as they would be there. A cap above what the
# CPU has changes nothing.
for isa in AVX512_CORE AVX2; do
  echo "-- ONEDNN_MAX_CPU_ISA=$isa"
  ONEDNN_MAX_CPU_ISA=$isa ctest --test-dir build --output-on-failure -L 'unit|parity' -j"$jobs"
done

echo "== the CUDA backend on the CPU, against the emulator of tests/cudaemu"
# The CUDA suites above skip without a GPU; here they run the backend's own
# code (kernels, transfers, caching allocator, graph capture and replay) on
# an emulated CUDA runtime, cuDNN and cuBLAS. It needs the CUDA headers.
cuda_inc=$(dirname "$(command -v nvcc 2>/dev/null || echo /usr/local/cuda/bin/nvcc)")/../include
if [ -f "$cuda_inc/cuda_runtime.h" ] &&
   { [ -f "$cuda_inc/cudnn.h" ] || [ -f /usr/include/cudnn.h ] || ls /usr/include/*/cudnn.h >/dev/null 2>&1; }; then
  cmake -S . -B build-emu -DNEGCUT_WITH_CUDA=OFF -DNEGCUT_CUDA_EMU=ON -DNEGCUT_BUILD_EXAMPLES=ON \
    -DNEGCUT_WERROR=ON >/dev/null
  emu_targets=(check_cuda_ops check_cuda_nets check_params check_parallel negcut-train
               negcut-translate negcut-bench negcut-info make_demo_data)
  # negcut-train-mpi exists where CMake found MPI
  emu_help=$(cmake --build build-emu --target help)
  [[ $emu_help == *negcut-train-mpi* ]] && emu_targets+=(negcut-train-mpi)
  cmake --build build-emu -j"$jobs" --target "${emu_targets[@]}" >/dev/null
  ctest --test-dir build-emu --output-on-failure -L cuda -j"$jobs"
else
  echo "SKIPPED: no CUDA toolkit headers (cuda_runtime.h, cudnn.h) for the emulated CUDA build"
fi

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

echo "== thread sanitizer (the tests whose threads are the library's users')"
# One model translated by four threads at once (check_translate), two
# trainers on two threads with an allreduce between them and the data
# loader's own thread (check_parallel). Their contexts run one thread each:
# libgomp's barriers are invisible to ThreadSanitizer, so OpenMP teams would
# only give false reports. tests/tsan.supp leaves out the runtimes built
# without it (libgomp, oneDNN, OpenBLAS).
cmake -S . -B build-tsan -DNEGCUT_TSAN=ON -DNEGCUT_WITH_CUDA=OFF -DNEGCUT_BUILD_EXAMPLES=OFF \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo -DNEGCUT_WERROR=ON >/dev/null
cmake --build build-tsan -j"$jobs" --target check_translate check_parallel >/dev/null
# gcc 12's ThreadSanitizer refuses kernels that randomise mmap with more
# bits than it knows ("unexpected memory mapping"); without address space
# randomisation (setarch -R) it runs there.
tsan_prefix=()
echo 'int main(void) { return 0; }' | cc -fsanitize=thread -x c - -o build-tsan/tsan_probe
if ! build-tsan/tsan_probe 2>/dev/null; then
  tsan_prefix=(setarch "$(uname -m)" -R)
  "${tsan_prefix[@]}" build-tsan/tsan_probe 2>/dev/null || tsan_prefix=(false)
fi
if [ "${tsan_prefix[*]}" = false ]; then
  echo "SKIPPED: ThreadSanitizer programs do not start on this kernel, even under setarch -R"
else
  CK_FORK=no OMP_NUM_THREADS=1 TSAN_OPTIONS="suppressions=$PWD/tests/tsan.supp halt_on_error=1" \
    "${tsan_prefix[@]}" ctest --test-dir build-tsan --output-on-failure \
    -R '^(check_translate|check_parallel)$' -j"$jobs"
fi

echo "== fuzzing (clang, libFuzzer)"
# The library built by clang for libFuzzer, with the address and undefined
# sanitizers; each parser of outside bytes (images, safetensors, models,
# networks, training states) replays its seeds and the inputs that once
# crashed it (tests/fuzz/regress), then is fuzzed for 20 s.
CC=clang cmake -S . -B build-fuzz -DNEGCUT_FUZZ=ON -DNEGCUT_WITH_CUDA=OFF -DNEGCUT_WERROR=ON >/dev/null
cmake --build build-fuzz -j"$jobs" >/dev/null
ctest --test-dir build-fuzz --output-on-failure -L fuzz -j"$jobs"
