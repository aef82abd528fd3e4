#!/usr/bin/env bash
# One fuzz target's CTest test (tests/fuzz/CMakeLists.txt), or a longer run
# by hand:
#
#   run_fuzz.sh <harness> <target> <seeds> <work> <seconds> [libFuzzer flags...]
#
# 1. Replays, once each, the generated seeds (<seeds>/<target>/), the
#    committed inputs (corpus/<target>/) and the crash regression inputs
#    (regress/<target>/) next to this script: any crash, leak, UB report,
#    abort or timeout fails the test.
# 2. Fuzzes for <seconds> with -rss_limit_mb=2048 -timeout=10 into the
#    corpus <work>/corpus/<target>/ (kept between runs), reading the inputs
#    above too; a finding is saved as <work>/artifacts/<target>-crash-...
#    (or leak-, timeout-, oom-) and fails the test. Reproduce one with
#    `<harness> <file>`, shrink it with `<harness> -minimize_crash=1
#    -runs=10000 <file>`, and once the library is fixed commit it under
#    regress/<target>/ with an assertion in the module's Check suite.
# Extra arguments go to libFuzzer (e.g. -max_len=65536, -jobs=1 -workers=1).
set -euo pipefail
harness=$1 target=$2 seeds=$3 work=$4 seconds=$5
shift 5
here=$(cd "$(dirname "$0")" && pwd)

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:allocator_may_return_null=0}
export LSAN_OPTIONS=${LSAN_OPTIONS:-suppressions=$here/../lsan.supp}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

dirs=()
for d in "$seeds/$target" "$here/corpus/$target" "$here/regress/$target"; do
  [ -d "$d" ] && dirs+=("$d")
done
files=()
for d in "${dirs[@]}"; do
  while IFS= read -r -d '' f; do files+=("$f"); done < <(find "$d" -type f -print0 | sort -z)
done
if [ ${#files[@]} -eq 0 ]; then
  echo "run_fuzz.sh: no inputs for $target (did the fuzz_seeds test run?)" >&2
  exit 1
fi
# image.dict for images; every other target reads a safetensors file.
dict=("-dict=$here/safetensors.dict")
[ "$target" = image ] && dict=("-dict=$here/image.dict")

echo "== $target: replaying ${#files[@]} inputs"
mkdir -p "$work/corpus/$target" "$work/artifacts"
log="$work/artifacts/$target-replay.log"
if ! "$harness" -rss_limit_mb=2048 -timeout=10 "${files[@]}" >"$log" 2>&1; then
  grep -v '^Running: \|^Executed ' "$log" || true
  echo "run_fuzz.sh: $target: an input fails (the report above; whole log in $log)" >&2
  exit 1
fi

echo "== $target: fuzzing for $seconds s"
# A fixed seed (FUZZ_SEED, 1 unless set; 0: from the clock): a fresh
# corpus (a CI run's) starts the same mutations every time. Not the same
# run, though: how far it gets depends on the machine's load, and a kept
# corpus changes what it mutates. A finding reproduces from its artifact.
exec "$harness" -seed="${FUZZ_SEED:-1}" -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 \
  -artifact_prefix="$work/artifacts/$target-" -print_final_stats=1 "${dict[@]}" "$@" \
  "$work/corpus/$target" "${dirs[@]}"
