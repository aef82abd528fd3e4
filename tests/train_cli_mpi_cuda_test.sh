#!/usr/bin/env bash
# negcut-train-mpi on --backend cuda, 2 ranks of an Open MPI job (the MPI
# here is not CUDA-aware, so the trainers hand it host copies of their
# gradients, NEGCUT_ALLREDUCE_HOST): each rank takes the GPU of its rank on
# the machine, so with one GPU rank 1 fails before any step, naming device 1,
# and every rank exits 1; with two they train; --device 0 puts both on GPU 0
# (with --allreduce-host, which asks for the host copies whatever MPI says).
# The losses logged at every iteration are the CPU backend's 2-rank run's
# (to 1e-3 relative: cuDNN and oneDNN sum in different orders). Ranks on
# different backends are refused before any step. Where negcut-train-mpi
# has NCCL (NCCL=ON; on the emulator, tests/cudaemu's NCCL over MPI), the
# run with a GPU per rank sums through NCCL, named on stderr, and saves the
# bytes of the same run with --no-nccl (MPI on host copies): a sum of two
# floats is one rounding either way.
# On the emulator (EMU), NCCL's setup failing on rank 1 alone stops every
# rank at the first step, each saying so, none waiting for the others.
# usage: train_cli_mpi_cuda_test.sh BUILD_EXAMPLES_DIR MPIEXEC [NCCL [EMU]]
set -euo pipefail
bin=$1
mpiexec=$2
nccl=${3:-OFF}
emu=${4:-}
# shellcheck source=tests/cuda_device.sh
source "$(dirname "$0")/cuda_device.sh"
need_cuda_device "$bin/negcut-info"
devices=$("$bin/negcut-info" 2>&1 | sed -n 's/.*cuda (.*, \([0-9]*\) devices\{0,1\}).*/\1/p' | head -1)
[ -n "$devices" ] || { "$bin/negcut-info"; echo "FAIL: no device count"; exit 1; }
tmp=$(mktemp -d)
trap 'pkill -9 -f "negcut-train-mpi.*$tmp" || true; rm -rf "$tmp"' EXIT
"$bin/make_demo_data" "$tmp/data" --count 6 --test 2 --size 32 --seed 3 >/dev/null
tiny=(--mode negcut --iters 3 --ngf 4 --ndf 4 --n-blocks 1 --nce-layers 0,4,8,12 --num-patches 16
      --netf-nc 16 --load-size 36 --crop-size 32 --threads 1 --display-every 1)
ck=(--dataroot "$tmp/data" --checkpoints-dir "$tmp/ck")
mpi() { timeout -k 5 300 "$mpiexec" -n 2 "$bin/negcut-train-mpi" "$@"; }
fail() { echo "FAIL: $*"; exit 1; }

echo "== the CPU backend's run (the oracle)"
mpi "${ck[@]}" --name cpu --backend cpu "${tiny[@]}" > "$tmp/cpu.jsonl" 2> "$tmp/cpu.err" ||
  { cat "$tmp/cpu.err"; fail "the CPU run failed"; }

echo "== one GPU per rank ($devices present)"
rc=0
mpi "${ck[@]}" --name own --backend cuda "${tiny[@]}" > "$tmp/own.jsonl" 2> "$tmp/own.err" || rc=$?
if [ "$devices" -ge 2 ]; then
  [ "$rc" = 0 ] || { cat "$tmp/own.err"; fail "exit $rc with $devices GPUs"; }
  grep -q "on cuda (device 0, " "$tmp/own.err" || { cat "$tmp/own.err"; fail "rank 0 not on device 0"; }
  runs=(own)
  if [ "$nccl" = ON ]; then
    grep -q "NCCL .* sums the gradients over 2 GPUs" "$tmp/own.err" ||
      { cat "$tmp/own.err"; fail "NCCL not named"; }
    echo "== --no-nccl: the same run through MPI"
    mpi "${ck[@]}" --name mpi --backend cuda --no-nccl "${tiny[@]}" > "$tmp/mpi.jsonl" \
      2> "$tmp/mpi.err" || { cat "$tmp/mpi.err"; fail "the --no-nccl run failed"; }
    ! grep -q NCCL "$tmp/mpi.err" || { cat "$tmp/mpi.err"; fail "NCCL used with --no-nccl"; }
    for f in latest_net_G latest_net_D latest_net_F; do
      cmp -s "$tmp/ck/own/$f.safetensors" "$tmp/ck/mpi/$f.safetensors" ||
        fail "$f: NCCL's run and MPI's differ"
    done
    echo "NCCL and MPI runs saved the same G, D and F"
    if [ "$emu" = EMU ]; then
      echo "== NCCL's setup fails on rank 1"
      rc=0
      NGC_EMU_NCCL_FAIL_RANK=1 mpi "${ck[@]}" --name bad --backend cuda "${tiny[@]}" \
        > /dev/null 2> "$tmp/bad.err" || rc=$?
      [ "$rc" != 0 ] || { cat "$tmp/bad.err"; fail "exit 0 with NCCL's setup failed"; }
      grep -q "rank 1: NCCL setup: unhandled system error" "$tmp/bad.err" &&
        grep -q "rank 0: NCCL setup: another rank failed (--no-nccl" "$tmp/bad.err" ||
        { cat "$tmp/bad.err"; fail "the ranks did not both say why"; }
      [ ! -e "$tmp/ck/bad/train_state.safetensors" ] || fail "a state was saved"
    fi
  fi
else
  [ "$rc" = 1 ] || { cat "$tmp/own.err"; fail "exit $rc, not 1, with rank 1 on a missing GPU"; }
  grep -q "device 1, but 1 present" "$tmp/own.err" || { cat "$tmp/own.err"; fail "device 1 not named"; }
  [ ! -e "$tmp/ck/own/train_state.safetensors" ] || fail "a step ran"
  runs=()
fi

echo "== --device 0: both ranks on GPU 0"
mpi "${ck[@]}" --name one --backend cuda --device 0 --allreduce-host "${tiny[@]}" \
  > "$tmp/one.jsonl" 2> "$tmp/one.err" || { cat "$tmp/one.err"; fail "the run on GPU 0 failed"; }
runs+=(one)

echo "== rank 1 on the CPU, rank 0 on the GPU: refused"
cat > "$tmp/rank1_cpu.sh" <<SH
#!/bin/sh
# rank 1 gets --backend cpu (the last one wins)
if [ "\$OMPI_COMM_WORLD_RANK" = 1 ]; then exec "$bin/negcut-train-mpi" "\$@" --backend cpu; fi
exec "$bin/negcut-train-mpi" "\$@"
SH
chmod +x "$tmp/rank1_cpu.sh"
rc=0
timeout -k 5 300 "$mpiexec" -n 2 "$tmp/rank1_cpu.sh" "${ck[@]}" --name mixed --backend cuda \
  --device 0 "${tiny[@]}" > /dev/null 2> "$tmp/mixed.err" || rc=$?
[ "$rc" = 1 ] || { cat "$tmp/mixed.err"; fail "exit $rc, not 1, with ranks on two backends"; }
grep -q "different backends" "$tmp/mixed.err" || { cat "$tmp/mixed.err"; fail "not named"; }
[ ! -e "$tmp/ck/mixed/train_state.safetensors" ] || fail "a step ran on mixed backends"

for r in "${runs[@]}"; do
  python3 - "$tmp/cpu.jsonl" "$tmp/$r.jsonl" "$r" <<'PY' || fail "$r: losses differ from the CPU's"
import json, sys
cpu = [json.loads(l) for l in open(sys.argv[1])]
gpu = [json.loads(l) for l in open(sys.argv[2])]
assert len(cpu) == len(gpu) == 3, (len(cpu), len(gpu))
worst = 0.0
for a, b in zip(gpu, cpu):
    for k in ("D_real", "D_fake", "G_GAN", "NCE", "NCE_Y", "G", "N", "div"):
        err = abs(a[k] - b[k]) / (abs(b[k]) + 1e-3)
        worst = max(worst, err)
        if err > 1e-3:
            sys.exit(f"iteration {a['iter']} {k}: cuda {a[k]}, cpu {b[k]}")
print(f"{sys.argv[3]}: 3 iterations, every loss within {worst:.1e} of the CPU's (relative)")
PY
done
echo "negcut-train-mpi cuda test passed"
