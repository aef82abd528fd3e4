#!/usr/bin/env bash
# tools/bench_table.py on a log written here: rows of both backends, the
# other side run or not, each target met or missed, the CUDA workers' counts
# per timed run (the largest of the rounds, lines that come before the rows
# they belong to; none carried to a row whose run printed none), and a log
# without rows.
set -euo pipefail
tool=$1
d=$(mktemp -d)
trap 'rm -rf "$d"' EXIT
cat > "$d/gpu.log" <<'LOG'
negcut-bench: CUDA graphs: 1 recorded, 23 launched
negcut-bench: per timed run: 0.00 cudaMalloc, 2.00 host waits (the timing's sync included)
negcut-bench: per timed run: 0.00 cudaMalloc, 3.00 host waits (the timing's sync included)
case                         | libnegcut (cuda)                     | PyTorch                              | speed | RSS
infer 256x256 ngf 64 tf32    | 0.001700 s (0.001650-0.001900)   1500 MiB | 0.004100 s (0.004000-0.004300)   2600 MiB |  2.41x |  0.58
negcut-bench: per timed run: 0.50 cudaMalloc, 2.00 host waits (the timing's sync included)
infer 256x256 ngf 64 bf16    | 0.001300 s (0.001250-0.001400)   1400 MiB | 0.003700 s (0.003600-0.003800)   2500 MiB |  2.85x |  0.56
negcut-bench: per timed run: 0.00 cudaMalloc, 2.00 host waits (the timing's sync included)
train cut 256x256 ngf 64 tf32 |  0.03000 s (0.02900-0.03100)   3000 MiB |  0.06700 s (0.06600-0.06900)   5000 MiB |  2.23x |  0.60
train cut 64x64 ngf 16       | 0.009000 s (0.008800-0.009500)    900 MiB | (PyTorch not run)
infer 256x256 ngf 64 tf32 vs compile | 0.001860 s (0.001800-0.001900)   1500 MiB | 0.001860 s (0.001850-0.001870)   2600 MiB |  1.00x |  0.58
skipped (GPU_CHECK_DEADLINE): negcut-bench infer --size 512 --reps 20 --rounds 1 --bf16 --backend cuda
LOG
cat > "$d/cpu.log" <<'LOG'
case                         | libnegcut (cpu)                      | PyTorch                              | speed | RSS
train negcut 256x256 ngf 64  |    5.230 s (5.080-5.650)   1916 MiB |   16.86 s (16.00-17.00)   4735 MiB |  3.22x |  0.40
LOG
out=$(python3 "$tool" "$d/gpu.log" "$d/cpu.log")
echo "$out"
expect() { grep -qF -- "$1" <<< "$out" || { echo "missing: $1"; exit 1; }; }
expect "| cuda | infer 256x256 ngf 64 tf32 | 1.70 ms (1.65 ms-1.90 ms) | 4.10 ms (4.00 ms-4.30 ms) | 2.41x | 0.58 | under 1.8 ms (torch.compile's 1.86) | yes | 0, 3 |"
expect "| cuda | infer 256x256 ngf 64 bf16 | 1.30 ms (1.25 ms-1.40 ms) | 3.70 ms (3.60 ms-3.80 ms) | 2.85x | 0.56 | under 1.2 ms (torch.compile's 1.30) | no | 0.5, 2 |"
expect "| cuda | train cut 256x256 ngf 64 tf32 | 30.0 ms (29.0 ms-31.0 ms) | 67.0 ms (66.0 ms-69.0 ms) | 2.23x | 0.60 | 2x PyTorch eager | yes | 0, 2 |"
expect "| cuda | train cut 64x64 ngf 16 | 9.00 ms (8.80 ms-9.50 ms) | not run |  |  | 7x PyTorch eager |  |  |"
expect "| cpu | train negcut 256x256 ngf 64 | 5.23 s (5.08 s-5.65 s) | 16.9 s (16.0 s-17.0 s) | 3.22x | 0.40 | 3x PyTorch | yes |  |"
expect "| cuda | infer 256x256 ngf 64 tf32 vs compile | 1.86 ms (1.80 ms-1.90 ms) | 1.86 ms (1.85 ms-1.87 ms) | 1.00x | 0.58 | faster than torch.compile | no |  |"
expect "| cuda | skipped (deadline): infer --size 512 --reps 20 --rounds 1 --bf16 --backend cuda |"
[ "$(grep -c '^| cuda\|^| cpu' <<< "$out")" = 7 ] || { echo "expected 7 rows"; exit 1; }
: > "$d/empty.log"
if python3 "$tool" "$d/empty.log" 2> "$d/err"; then echo "a log without rows must fail"; exit 1; fi
grep -q "no negcut-bench rows" "$d/err"
echo "bench_table test passed"
