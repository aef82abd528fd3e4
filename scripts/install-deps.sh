#!/usr/bin/env bash
# Installs every Debian package that the build, the tests and the examples
# need. Idempotent: when everything is there it prints one line and returns.
set -euo pipefail
packages=(
  build-essential cmake pkg-config          # toolchain
  libdnnl-dev libopenblas-dev               # oneDNN 2.6 convolutions, OpenBLAS sgemm
  ocl-icd-opencl-dev                        # Debian's oneDNN CMake config requires OpenCL (only a
                                            # Recommends of libdnnl-dev, so not installed with it)
  libpng-dev libturbojpeg0-dev              # images
  libcjson-dev                              # safetensors headers, JSON logs
  check libsubunit-dev                      # unit tests
  python3-torch python3-numpy python3-pil   # PyTorch parity tests and tools/
  abigail-tools binutils                    # ABI and symbol checks
  libasan8 libubsan1 libtsan2               # gcc's sanitizer runtimes (test-all.sh's sanitizer stages)
  clang libclang-rt-14-dev libomp-dev       # fuzzing (tests/fuzz): clang, libFuzzer, clang's OpenMP
  libopenmpi-dev openmpi-bin                # data-parallel training over MPI (tests/check_mpi.c)
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#packages[@]} packages present"
  exit 0
fi
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
echo "install-deps: installing ${missing[*]}"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "install-deps: done"
