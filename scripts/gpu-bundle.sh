#!/usr/bin/env bash
# Builds, on this (GPU-less) machine, what the device check needs and packs
# it with the shared libraries the GPU image lacks (oneDNN, OpenBLAS, libpng,
# cJSON, Check...) into build-gpu/p.tar.xz, for scripts/gpu-check.sh on a
# lent GPU machine (carry build-gpu). The GPU image has its own CUDA runtime,
# cuBLAS and cuDNN 9; those are not packed. sm_90 only: H100 and H200.
set -euo pipefail
cd "$(dirname "$0")/.."
cmake -S . -B build-cuda -DCMAKE_BUILD_TYPE=Release -DNEGCUT_WITH_CUDA=ON \
  -DCMAKE_CUDA_ARCHITECTURES=90 >/dev/null
cmake --build build-cuda -j"$(nproc)" --target check_cuda_ops check_cuda_nets check_params check_parallel negcut-bench \
  negcut-train negcut-translate negcut-info make_demo_data
rm -rf build-gpu && mkdir -p build-gpu/p/bin build-gpu/p/lib
cp build-cuda/tests/{check_cuda_ops,check_cuda_nets,check_params,check_parallel} build-gpu/p/bin/
cp build-cuda/examples/{negcut-bench,negcut-train,negcut-translate,negcut-info,make_demo_data} \
  build-gpu/p/bin/
cp -P build-cuda/libnegcut.so* build-gpu/p/lib/ # the CLI programs link it
# Every shared library they load, except glibc's, the C++ runtime and zlib (the
# GPU image has newer ones, which its cuDNN needs) and CUDA's.
ldd build-gpu/p/bin/* | awk '/=> \// {print $3}' | sort -u |
  grep -v -E '/(libc|libm|libdl|librt|libpthread|libstdc\+\+|libgcc_s|libz|ld-linux[^/]*)\.so|libcud|libcublas|libnvidia' |
  while read -r lib; do cp -L "$lib" build-gpu/p/lib/; done
tar -C build-gpu -cJf build-gpu/p.tar.xz p && rm -rf build-gpu/p
ls -l build-gpu/p.tar.xz
