#!/usr/bin/env bash
# Runs on a lent GPU machine from the repository root, with build-gpu made
# by scripts/gpu-bundle.sh carried along: the CUDA tests, then the GPU
# benchmarks beside PyTorch on the same GPU. Logs go to $OUT (or ./gpu-out).
#   bash scripts/gpu-check.sh [tests|bench|all|compile]
# PyTorch runs exact fp32 unless a row says tf32 (PyTorch's own default for
# cuDNN is TF32: the "tf32" rows are the ones ANCHORS.md's GPU figures match).
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
export NEGCUT_BENCH_PYTHON=${NEGCUT_BENCH_PYTHON:-python3} NEGCUT_SOURCE_DIR=$PWD
B="$G/bin/negcut-bench"
if [ "$what" = bench ] || [ "$what" = all ]; then
  $B conv --backend cuda --reps 10 2>&1 | tee "$out/conv.log"
  for flags in "" "--eager" "--tf32" "--bf16" "--bf16 --eager"; do
    $B infer --backend cuda --reps 20 --rounds 2 $flags 2>&1 | tee -a "$out/infer.log"
  done
  for mode in cut negcut; do
    $B train --backend cuda --mode $mode --reps 5 --rounds 1 2>&1 | tee -a "$out/train.log"
    $B train --backend cuda --mode $mode --reps 5 --rounds 1 --tf32 2>&1 | tee -a "$out/train.log"
  done
  # ANCHORS.md's small case: ngf 16, 64x64 (launch-bound)
  $B infer --backend cuda --size 64 --ngf 16 --reps 50 --rounds 1 2>&1 | tee "$out/small.log"
  $B infer --backend cuda --size 64 --ngf 16 --reps 50 --rounds 1 --eager 2>&1 | tee -a "$out/small.log"
  $B train --backend cuda --mode cut --size 64 --ngf 16 --reps 20 --rounds 1 2>&1 | tee -a "$out/small.log"
  $B train --backend cuda --mode negcut --size 64 --ngf 16 --reps 20 --rounds 1 2>&1 | tee -a "$out/small.log"
fi
if [ "$what" = compile ]; then # torch.compile takes minutes: only when asked
  $B infer --backend cuda --reps 20 --rounds 1 --tf32 --compile 2>&1 | tee "$out/compile.log"
  $B infer --backend cuda --reps 20 --rounds 1 --bf16 --compile 2>&1 | tee -a "$out/compile.log"
fi
exit $rc
