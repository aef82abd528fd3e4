#!/usr/bin/env bash
# negcut-bench runs its cases end to end on a backend (tiny networks, our
# side only; timings are not checked): every case prints its row, and on a
# backend with CUDA graphs the non-eager cases say that they were recorded
# and launched; on CUDA no timed run takes memory from the driver, and each
# waits for the device twice (the run's own download and the timing's sync).
# usage: bench_smoke.sh NEGCUT_BENCH BACKEND
set -euo pipefail
bench=$1
backend=$2
# shellcheck source=tests/cuda_device.sh
source "$(dirname "$0")/cuda_device.sh"
[ "$backend" = cuda ] && need_cuda_device "$(dirname "$bench")/negcut-info"
tiny=(--size 32 --ngf 8 --blocks 2 --reps 2 --rounds 1 --no-torch --backend "$backend")
cases=("infer" "infer --bf16" "infer --batch 2" "train --mode cut" "train --mode negcut"
       "train --mode negcut --batch 2")
[ "$backend" = cuda ] && cases+=("infer --eager" "infer --tf32" "train --mode cut --eager"
                                 "train --mode cut --tf32")
out=$(mktemp)
all=$(mktemp)
trap 'rm -f "$out" "$all"' EXIT
for c in "${cases[@]}"; do
  # shellcheck disable=SC2086
  "$bench" $c "${tiny[@]}" > "$out" 2>&1 || { cat "$out"; echo "'$c' failed"; exit 1; }
  cat "$out" >> "$all"
  row="${c%% *}"
  grep -Eq "^$row .*\| *[0-9.]+ s \(" "$out" || { cat "$out"; echo "'$c': no timing row"; exit 1; }
  if [ "$backend" = cuda ] && [[ "$c" != *--eager* ]]; then
    grep -q "CUDA graphs: [1-9][0-9]* recorded, [1-9][0-9]* launched" "$out" ||
      { cat "$out"; echo "'$c': no CUDA graphs"; exit 1; }
  fi
  if [ "$backend" = cuda ]; then
    grep -q "per timed run: 0.00 cudaMalloc" "$out" ||
      { cat "$out"; echo "'$c': cudaMalloc in the timed runs"; exit 1; }
  fi
  echo "ok: $c"
done
# Every row reaches the table the GPU session's note is made from.
table=$(python3 "$(dirname "$0")/../tools/bench_table.py" "$all") ||
  { cat "$all"; echo "bench_table.py failed on these rows"; exit 1; }
rows=$(grep -c "^| $backend | " <<< "$table" || true)
[ "$rows" = "${#cases[@]}" ] || { echo "$table"; echo "bench_table.py: $rows rows of ${#cases[@]}"; exit 1; }
if [ "$backend" = cuda ]; then
  steady=$(grep -c "^| cuda | .*| 0, 2 |$" <<< "$table" || true)
  [ "$steady" = "${#cases[@]}" ] ||
    { echo "$table"; echo "$steady rows of ${#cases[@]} with 0 cudaMalloc and 2 waits per run"; exit 1; }
fi
echo "negcut-bench smoke test passed ($backend)"
