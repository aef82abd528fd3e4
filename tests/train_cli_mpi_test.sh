#!/usr/bin/env bash
# negcut-train-mpi as 2 ranks of an Open MPI job on generated data: the
# ranks split every global batch (6 images, batch 1 each: 3 iterations an
# epoch), only rank 0 writes the files and the progress, the losses logged
# are the global batch's; --resume continues on 2 ranks and is refused by a
# run of another size; SIGINT to rank 1 alone stops both after the same
# iteration with rank 0's checkpoint and exit 130, and the run resumes from
# it; a setup failure on one rank ends every rank before the first step;
# bad options exit 2 on every rank.
# usage: train_cli_mpi_test.sh BUILD_EXAMPLES_DIR MPIEXEC
set -euo pipefail
bin=$1
mpiexec=$2
tmp=$(mktemp -d)
# ranks that outlive a killed mpiexec (a failing run) go too: their command
# lines name $tmp
trap 'pkill -9 -f "negcut-train-mpi.*$tmp" || true; rm -rf "$tmp"' EXIT
"$bin/make_demo_data" "$tmp/data" --count 6 --test 2 --size 32 --seed 3 >/dev/null
tiny=(--ngf 4 --ndf 4 --n-blocks 1 --nce-layers 0,4,8,12 --num-patches 16 --netf-nc 16
      --load-size 36 --crop-size 32 --threads 1 --display-every 2 --save-every 4)
ck=(--dataroot "$tmp/data" --checkpoints-dir "$tmp/ck")
# A rank left waiting for the others would hang: 60 s is far beyond any run here.
mpi() { timeout -k 5 60 "$mpiexec" -n "$1" "$bin/negcut-train-mpi" "${@:2}"; }
fail() { echo "FAIL: $*"; exit 1; }

echo "== 2 ranks, NEGCUT, 6 iterations"
mpi 2 "${ck[@]}" --name m --mode negcut --iters 6 "${tiny[@]}" > "$tmp/out.jsonl" 2> "$tmp/err.txt" ||
  { cat "$tmp/err.txt"; fail "the run failed"; }
grep -q "x 2 processes): 3 iterations per epoch" "$tmp/err.txt" || { cat "$tmp/err.txt"; fail "not 2 ranks of 3 iterations an epoch"; }
[ "$(grep -c '"iter"' "$tmp/out.jsonl")" = 3 ] || fail "stdout has not 3 log lines (one rank printing)"
[ "$(grep -c '"iter"' "$tmp/ck/m/loss_log.jsonl")" = 3 ] || fail "the log has not 3 lines (one rank writing)"
[ "$(grep -c 'checkpoint at iteration' "$tmp/err.txt")" = 2 ] || fail "not 2 checkpoints from one rank"
for f in latest_net_G.safetensors latest_net_N.safetensors train_state.safetensors opt.json web/index.html; do
  [ -s "$tmp/ck/m/$f" ] || fail "missing $f"
done

echo "== resume on 2 ranks; refused on 1 and on 3"
mpi 2 "${ck[@]}" --name m --resume --iters 8 "${tiny[@]}" > /dev/null 2> "$tmp/err2.txt" ||
  { cat "$tmp/err2.txt"; fail "resume failed"; }
grep -q "resuming after iteration 6" "$tmp/err2.txt" || fail "resume did not continue at 6"
for n in 1 3; do
  rc=0
  if [ "$n" = 1 ]; then
    "$bin/negcut-train" "${ck[@]}" --name m --resume --iters 10 "${tiny[@]}" > /dev/null 2> "$tmp/err3.txt" || rc=$?
  else
    mpi 3 "${ck[@]}" --name m --resume --iters 10 "${tiny[@]}" > /dev/null 2> "$tmp/err3.txt" || rc=$?
  fi
  [ "$rc" != 0 ] || fail "a state of 2 ranks resumed on $n"
  grep -q "world=2" "$tmp/err3.txt" || { cat "$tmp/err3.txt"; fail "no reason given on $n"; }
done

echo "== SIGINT to rank 1 alone"
rc=0
mpi 2 "${ck[@]}" --name s --mode cut --n-epochs 2000 --n-epochs-decay 2000 "${tiny[@]}" \
  > /dev/null 2> "$tmp/err4.txt" &
job=$!
for _ in $(seq 100); do  # until the first checkpoint: both ranks are stepping
  grep -q "checkpoint at" "$tmp/err4.txt" 2>/dev/null && break
  sleep 0.1
done
sent=0
for pid in $(pgrep -f "negcut-train-mpi.*--name s" || true); do
  if tr '\0' '\n' < "/proc/$pid/environ" 2>/dev/null | grep -qx "OMPI_COMM_WORLD_RANK=1"; then
    kill -INT "$pid" && sent=1
  fi
done
[ "$sent" = 1 ] || { kill "$job"; fail "rank 1 not found"; }
wait "$job" || rc=$?
[ "$rc" = 130 ] || { cat "$tmp/err4.txt"; fail "exit $rc, not 130"; }
at=$(sed -n 's/.*interrupted at iteration \([0-9]*\).*/\1/p' "$tmp/err4.txt")
[ -n "$at" ] || { cat "$tmp/err4.txt"; fail "rank 0 did not stop"; }
grep -q "saved; continue" "$tmp/err4.txt" || fail "rank 0 did not save"
mpi 2 "${ck[@]}" --name s --resume --iters $((at + 2)) "${tiny[@]}" > /dev/null 2> "$tmp/err5.txt" ||
  { cat "$tmp/err5.txt"; fail "resume after SIGINT failed"; }
grep -q "resuming after iteration $at," "$tmp/err5.txt" || { cat "$tmp/err5.txt"; fail "not resumed at $at"; }

echo "== a setup failure on rank 1 alone ends both before any step"
cat > "$tmp/rank1_bad.sh" <<SH
#!/bin/sh
# rank 1 gets a data folder that does not exist (the last --dataroot wins)
if [ "\$OMPI_COMM_WORLD_RANK" = 1 ]; then exec "$bin/negcut-train-mpi" "\$@" --dataroot "$tmp/none"; fi
exec "$bin/negcut-train-mpi" "\$@"
SH
chmod +x "$tmp/rank1_bad.sh"
rc=0
timeout -k 5 60 "$mpiexec" -n 2 "$tmp/rank1_bad.sh" "${ck[@]}" --name f --iters 4 "${tiny[@]}" \
  > /dev/null 2> "$tmp/err6.txt" || rc=$?
[ "$rc" = 1 ] || { cat "$tmp/err6.txt"; fail "exit $rc, not 1"; }
grep -q "another process of the run failed" "$tmp/err6.txt" || { cat "$tmp/err6.txt"; fail "rank 0 was not told"; }
[ ! -e "$tmp/ck/f/train_state.safetensors" ] || fail "a step ran"

echo "== bad options exit 2"
rc=0
mpi 2 "${ck[@]}" --name b --ngf 0 > /dev/null 2>&1 || rc=$?
[ "$rc" = 2 ] || fail "--ngf 0 gave exit $rc"
echo "negcut-train-mpi CLI test passed"
