#!/usr/bin/env bash
# Runs on a lent GPU machine from the repository root, with build-gpu made
# by scripts/gpu-bundle.sh carried along: the CUDA tests, then the GPU
# benchmarks beside PyTorch on the same GPU. Logs go to $OUT (or ./gpu-out).
#   bash scripts/gpu-check.sh [tests|bench|all]
set -uo pipefail
what=${1:-all}
out=${OUT:-gpu-out}
mkdir -p "$out" /tmp/g
tar -C /tmp/g -xJf build-gpu/p.tar.xz
G=/tmp/g/p
L=$G/lib
for n in libcudnn.so.9 libcublas.so.13 libcublasLt.so.13 libcudart.so.13; do
  d=$(find /usr/local /opt /usr/lib -name "$n" 2>/dev/null | head -1)
  [ -n "$d" ] && L=$L:$(dirname "$d")
done
export LD_LIBRARY_PATH=$L${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
nvidia-smi -L
echo "LD_LIBRARY_PATH=$LD_LIBRARY_PATH"
rc=0
if [ "$what" = tests ] || [ "$what" = all ]; then
  for t in check_cuda_ops check_cuda_nets; do
    CK_FORK=no "$G/bin/$t" 2>&1 | tee "$out/$t.log"
    r=${PIPESTATUS[0]}
    echo "$t rc=$r"
    [ "$r" = 0 ] || rc=1
  done
fi
if [ "$what" = bench ] || [ "$what" = all ]; then
  export NEGCUT_BENCH_PYTHON=python3 NEGCUT_SOURCE_DIR=$PWD
  B="$G/bin/negcut-bench"
  $B conv --backend cuda --reps 10 2>&1 | tee "$out/conv.log"
  $B infer --backend cuda --reps 20 --rounds 2 2>&1 | tee "$out/infer.log"
  $B infer --backend cuda --bf16 --reps 20 --rounds 2 2>&1 | tee -a "$out/infer.log"
  $B train --backend cuda --mode cut --reps 5 --rounds 1 2>&1 | tee "$out/train.log"
  $B train --backend cuda --mode negcut --reps 5 --rounds 1 2>&1 | tee -a "$out/train.log"
  # ANCHORS.md's small case: ngf 16, 64x64 (launch-bound)
  $B infer --backend cuda --size 64 --ngf 16 --reps 50 --rounds 1 2>&1 | tee "$out/small.log"
  $B train --backend cuda --mode cut --size 64 --ngf 16 --reps 20 --rounds 1 2>&1 | tee -a "$out/small.log"
  $B train --backend cuda --mode negcut --size 64 --ngf 16 --reps 20 --rounds 1 2>&1 | tee -a "$out/small.log"
fi
exit $rc
