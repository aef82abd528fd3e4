#!/usr/bin/env bash
# Runs on a lent GPU machine from the repository root, with build-gpu made
# by scripts/gpu-bundle.sh carried along: the CUDA tests, then the GPU
# benchmarks beside PyTorch on the same GPU. Logs go to $OUT (or ./gpu-out).
#   [GPU_CHECK_DEADLINE=s] bash scripts/gpu-check.sh [tests|bench|all|compile|sanitize]
# sanitize: the CUDA tests under compute-sanitizer (memcheck, then racecheck
# on the op tests), for when a test crashes or a result looks corrupted;
# it needs a machine whose runtime lets the sanitizer in (Firecracker, not
# gVisor: /work/.library/device/KINDS.md).
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
# GPU_CHECK_DEADLINE (seconds since this script started): nothing starts
# with less than 15 s left and nothing runs past it, so that a run under the
# device tool's time limit still ends by itself and writes table.md.
deadline=${GPU_CHECK_DEADLINE:-0}
bounded() { # limit, then a command: run under timeout, within the deadline
  local limit=$1
  shift
  if [ "$deadline" -gt 0 ]; then
    local left=$((deadline - SECONDS))
    if [ "$left" -lt 15 ]; then
      echo "skipped (GPU_CHECK_DEADLINE): ${*##*/}"
      return 124
    fi
    [ "$left" -lt "$limit" ] && limit=$left
  fi
  timeout "$limit" "$@"
}
if [ "$what" = tests ] || [ "$what" = all ]; then
  for t in check_cuda_ops check_cuda_nets "check_params cuda" "check_parallel cuda"; do
    log=${t%% *}
    # shellcheck disable=SC2086 # a program and its argument
    bounded 400 env CK_FORK=no $G/bin/$t 2>&1 | tee "$out/$log.log"
    r=${PIPESTATUS[0]}
    echo "$t rc=$r"
    [ "$r" = 0 ] || rc=1
  done
  # The programs on --backend cuda: negcut-train's CLI test, every bench case.
  bounded 300 bash tests/train_cli_test.sh "$G/bin" cuda 2>&1 | tee "$out/train_cli.log" | tail -3
  r=${PIPESTATUS[0]}
  echo "train_cli cuda rc=$r"
  [ "$r" = 0 ] || rc=1
  bounded 300 bash tests/bench_smoke.sh "$G/bin/negcut-bench" cuda 2>&1 | tee "$out/bench_smoke.log"
  r=${PIPESTATUS[0]}
  echo "bench_smoke cuda rc=$r"
  [ "$r" = 0 ] || rc=1
fi
export NEGCUT_BENCH_PYTHON=${NEGCUT_BENCH_PYTHON:-python3} NEGCUT_SOURCE_DIR=$PWD
B="$G/bin/negcut-bench"
# Each benchmark is bounded (T seconds) so that one that hangs cannot eat the
# session's device time; the most important rows come first.
T=${GPU_CHECK_LIMIT:-150}
bench() { # log, then negcut-bench arguments
  local log=$1
  shift
  bounded "$T" "$B" "$@" --backend cuda 2>&1 | tee -a "$out/$log"
}
if [ "$what" = bench ] || [ "$what" = all ]; then
  for flags in "" "--eager" "--tf32" "--bf16"; do
    bench infer.log infer --reps 20 --rounds 2 $flags
  done
  # both sides with TF32 convolutions: PyTorch's default, what ANCHORS.md measured
  for mode in cut negcut; do
    bench train.log train --mode $mode --reps 5 --rounds 1 --tf32
  done
  for mode in cut negcut; do # both exact fp32
    bench train.log train --mode $mode --reps 5 --rounds 1
  done
  # ANCHORS.md's small case: ngf 16, 64x64 (launch-bound)
  bench small.log infer --size 64 --ngf 16 --reps 50 --rounds 1
  bench small.log infer --size 64 --ngf 16 --reps 50 --rounds 1 --eager
  bench small.log train --mode cut --size 64 --ngf 16 --reps 20 --rounds 1
  bench small.log train --mode cut --size 64 --ngf 16 --reps 20 --rounds 1 --eager
  bench small.log train --mode negcut --size 64 --ngf 16 --reps 20 --rounds 1
  bench small.log train --mode negcut --size 64 --ngf 16 --reps 20 --rounds 1 --eager
  # ANCHORS.md's batch-4 and 512x512 rows (PyTorch's default TF32 convolutions)
  for flags in "--tf32" "--bf16"; do
    bench batch.log infer --batch 4 --reps 20 --rounds 1 $flags
    bench batch.log infer --size 512 --reps 20 --rounds 1 $flags
  done
  for mode in cut negcut; do
    bench batch.log train --mode $mode --batch 4 --reps 5 --rounds 1 --tf32
  done
  for mode in cut negcut; do # ours without graphs
    bench train.log train --mode $mode --reps 5 --rounds 1 --eager --no-torch
  done
  # conv_algo: AUTO keeps cuDNN's Winograd and FFT algorithms out of the
  # training forward passes on CUDA (not yet measured), DIRECT out of every
  # pass; against the default row, ours only
  for c in direct winograd; do
    bench train.log train --mode cut --reps 5 --rounds 1 --no-torch --conv $c
  done
  bench infer.log infer --reps 20 --rounds 2 --bf16 --eager
  bench conv.log conv --reps 10
fi
if [ "$what" = sanitize ]; then
  S=$(command -v compute-sanitizer || ls /usr/local/cuda*/bin/compute-sanitizer 2>/dev/null | head -1)
  for t in check_cuda_ops check_cuda_nets; do
    CK_FORK=no timeout 400 "$S" --tool memcheck --error-exitcode 3 "$G/bin/$t" 2>&1 |
      tee "$out/$t.memcheck.log" | tail -40
  done
  CK_FORK=no timeout 300 "$S" --tool racecheck --error-exitcode 3 "$G/bin/check_cuda_ops" 2>&1 |
    tee "$out/check_cuda_ops.racecheck.log" | tail -40
fi
if [ "$what" = compile ]; then # torch.compile takes minutes: only when asked
  T=400
  bench compile.log infer --reps 20 --rounds 1 --tf32 --compile
  bench compile.log infer --reps 20 --rounds 1 --bf16 --compile
fi
if [ "$what" = bench ] || [ "$what" = all ] || [ "$what" = compile ]; then
  # every bench row so far, with ANCHORS.md's targets
  logs=()
  for f in infer train small batch compile; do [ -f "$out/$f.log" ] && logs+=("$out/$f.log"); done
  [ ${#logs[@]} -gt 0 ] && python3 tools/bench_table.py "${logs[@]}" > "$out/table.md" &&
    cat "$out/table.md"
fi
exit $rc
