#!/usr/bin/env bash
# negcut-train end to end on generated data: a short NEGCUT run writes every
# checkpoint, the state, the options, the JSON-lines log and the HTML report;
# --resume continues from the saved iteration; SIGINT saves and exits 130;
# negcut-translate reads the generator it wrote; bad options exit 2.
# usage: train_cli_test.sh BUILD_EXAMPLES_DIR [BACKEND]
set -euo pipefail
bin=$1
backend=(${2:+--backend "$2"})
# shellcheck source=tests/cuda_device.sh
source "$(dirname "$0")/cuda_device.sh"
[ "${2:-}" = cuda ] && need_cuda_device "$bin/negcut-info"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$bin/make_demo_data" "$tmp/data" --count 6 --test 2 --size 32 --seed 3 >/dev/null
net=(--ngf 4 --ndf 4 --n-blocks 1 --nce-layers 0,4,8,12 --num-patches 16 --netf-nc 16
     --load-size 36 --crop-size 32 --threads 1 "${backend[@]}")
tiny=("${net[@]}" --display-every 2 --save-every 4)
run=$tmp/ck/t
"$bin/negcut-train" --dataroot "$tmp/data" --name t --checkpoints-dir "$tmp/ck" --mode negcut \
  --iters 5 "${tiny[@]}" > "$tmp/out.jsonl"
for f in latest_net_G.safetensors latest_net_D.safetensors latest_net_F.safetensors \
         latest_net_N.safetensors latest_net_F_.safetensors train_state.safetensors opt.json \
         loss_log.jsonl web/index.html web/losses.png; do
  [ -s "$run/$f" ] || { echo "missing $f"; exit 1; }
done
grep -q '"iter"' "$run/loss_log.jsonl" || { echo "log has no iterations"; exit 1; }
grep -q 'real_A' "$run/web/index.html" || { echo "report has no samples"; exit 1; }

echo "== resume"
"$bin/negcut-train" --dataroot "$tmp/data" --name t --checkpoints-dir "$tmp/ck" --resume \
  --iters 8 "${tiny[@]}" > "$tmp/out2.jsonl" 2> "$tmp/err2.txt"
grep -q "5" "$tmp/err2.txt" || { cat "$tmp/err2.txt"; echo "resume did not say where it continued"; exit 1; }

echo "== integers beyond 2^53 survive opt.json and --resume"
big=(--save-every 123456789012345678 --display-every 999999999999999999)
"$bin/negcut-train" --dataroot "$tmp/data" --name big --checkpoints-dir "$tmp/ck" --mode cut \
  --iters 1 "${net[@]}" "${big[@]}" > /dev/null 2>&1
"$bin/negcut-train" --dataroot "$tmp/data" --name big --checkpoints-dir "$tmp/ck" --resume \
  --iters 2 "${net[@]}" > /dev/null 2> "$tmp/err3.txt" ||
  { cat "$tmp/err3.txt"; echo "resume with huge integers failed"; exit 1; }
grep -q '"123456789012345678"' "$tmp/ck/big/opt.json" &&
  grep -q '"999999999999999999"' "$tmp/ck/big/opt.json" ||
  { cat "$tmp/ck/big/opt.json"; echo "opt.json lost the huge integers"; exit 1; }

echo "== a damaged image stops the run with a checkpoint; without it, --resume goes on"
cp -r "$tmp/data" "$tmp/bad"
victim=$(ls "$tmp/bad/trainA" | sed -n 4p)
head -c 200 "$tmp/data/trainA/$victim" > "$tmp/bad/trainA/$victim"
rc=0
"$bin/negcut-train" --dataroot "$tmp/bad" --name d --checkpoints-dir "$tmp/ck" --mode cut \
  --iters 30 "${net[@]}" --save-every 100 > /dev/null 2> "$tmp/err4.txt" || rc=$?
[ "$rc" = 1 ] && grep -q "$victim" "$tmp/err4.txt" && grep -q "saved iteration" "$tmp/err4.txt" &&
  [ -s "$tmp/ck/d/train_state.safetensors" ] ||
  { cat "$tmp/err4.txt"; echo "a damaged image gave exit $rc without a checkpoint"; exit 1; }
rm "$tmp/bad/trainA/$victim"
"$bin/negcut-train" --dataroot "$tmp/bad" --name d --checkpoints-dir "$tmp/ck" --resume \
  --iters 30 "${net[@]}" > /dev/null 2> "$tmp/err5.txt" ||
  { cat "$tmp/err5.txt"; echo "resume after removing the damaged image failed"; exit 1; }

echo "== SIGINT saves and exits 130"
# A schedule far longer than the 3 s before the signal, on any machine.
rc=0
timeout --preserve-status -s INT 3 "$bin/negcut-train" --dataroot "$tmp/data" --name s \
  --checkpoints-dir "$tmp/ck" --mode cut --n-epochs 2000 --n-epochs-decay 2000 "${tiny[@]}" \
  > /dev/null 2>&1 &
first=$!
# meanwhile a second run on the same folder is refused
sleep 1
rc2=0
"$bin/negcut-train" --dataroot "$tmp/data" --name s --checkpoints-dir "$tmp/ck" --mode cut \
  --iters 2 "${tiny[@]}" > /dev/null 2> "$tmp/err6.txt" || rc2=$?
[ "$rc2" = 1 ] && grep -q "another negcut-train is running" "$tmp/err6.txt" ||
  { cat "$tmp/err6.txt"; echo "a second run on one folder gave exit $rc2"; exit 1; }
wait "$first" || rc=$?
[ "$rc" = 130 ] || { echo "SIGINT gave exit $rc"; exit 1; }
[ -s "$tmp/ck/s/train_state.safetensors" ] || { echo "no state saved on SIGINT"; exit 1; }

echo "== a closed standard output does not stop training (negcut-train | head)"
rc=0
"$bin/negcut-train" --dataroot "$tmp/data" --name p --checkpoints-dir "$tmp/ck" --mode cut \
  --iters 4 --display-every 1 "${net[@]}" 2> "$tmp/err11.txt" | head -1 > /dev/null ||
  rc=${PIPESTATUS[0]}
[ "$rc" = 0 ] && grep -q "standard output is closed" "$tmp/err11.txt" &&
  grep -q "iteration 4" "$tmp/err11.txt" && [ -s "$tmp/ck/p/train_state.safetensors" ] ||
  { cat "$tmp/err11.txt"; echo "a closed pipe gave exit $rc"; exit 1; }

echo "== a resume that trains nothing leaves opt.json alone; one that does rewrites it"
before=$(md5sum < "$run/opt.json")
"$bin/negcut-train" --dataroot "$tmp/data" --name t --checkpoints-dir "$tmp/ck" --resume --iters 2 \
  --lr 0.5 "${tiny[@]}" > /dev/null 2>&1 || true
[ "$(md5sum < "$run/opt.json")" = "$before" ] || { echo "a resume that stopped at once rewrote opt.json"; exit 1; }
"$bin/negcut-train" --dataroot "$tmp/data" --name t --checkpoints-dir "$tmp/ck" --resume --iters 9 \
  --lr 0.0005 "${tiny[@]}" > /dev/null 2>&1
grep -q '"lr":[[:space:]]*0.0005' "$run/opt.json" || { cat "$run/opt.json"; echo "the resumed run's --lr was not saved"; exit 1; }

echo "== the generator translates"
"$bin/negcut-translate" --model "$run/latest_net_G.safetensors" --output "$tmp/tr" "${backend[@]}" \
  "$tmp/data/testA" 2>/dev/null
[ "$(ls "$tmp/tr" | wc -l)" = 2 ] || { echo "translations missing"; exit 1; }

if [ "${2:-}" = cuda ]; then
  echo "== a GPU that is not there is named (--device)"
  rc=0
  "$bin/negcut-translate" --model "$run/latest_net_G.safetensors" --output "$tmp/tr9" \
    "${backend[@]}" --device 4096 "$tmp/data/testA" 2> "$tmp/err9.txt" || rc=$?
  [ "$rc" != 0 ] && grep -q "device 4096, but" "$tmp/err9.txt" ||
    { cat "$tmp/err9.txt"; echo "negcut-translate --device 4096 gave exit $rc"; exit 1; }
  rc=0
  "$bin/negcut-train" --dataroot "$tmp/data" --name gpu9 --checkpoints-dir "$tmp/ck" "${backend[@]}" \
    --device 4096 --iters 1 > /dev/null 2> "$tmp/err10.txt" || rc=$?
  [ "$rc" = 1 ] && grep -q "device 4096, but" "$tmp/err10.txt" ||
    { cat "$tmp/err10.txt"; echo "negcut-train --device 4096 gave exit $rc"; exit 1; }
fi

echo "== bad options exit 2"
for bad in "--ngf 0" "--mode nope" "--crop-size 64 --load-size 32" "--nce-layers 0,99" \
           "--input-nc 1 --output-nc 3 --nce-idt 0" "--device -1" "--crop-size 5" "--seed -1" \
           "--n-layers-d 5 --crop-size 32 --load-size 36"; do
  rc=0
  # shellcheck disable=SC2086
  "$bin/negcut-train" --dataroot "$tmp/data" --name b --checkpoints-dir "$tmp/ck" $bad >/dev/null 2>&1 || rc=$?
  [ "$rc" = 2 ] || { echo "'$bad' gave exit $rc"; exit 1; }
done
echo "negcut-train CLI test passed"
