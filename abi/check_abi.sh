#!/usr/bin/env bash
# The ABI policy of docs/ABI.md, mechanised with libabigail:
#   check_abi.sh check BASELINE.abi LIB.so INCLUDE_DIR   compare LIB with the baseline
#   check_abi.sh update BASELINE.abi LIB.so INCLUDE_DIR  write a new baseline
#   check_abi.sh selftest                                prove the check can fail
# A removed or changed function or variable fails unless the SONAME changed
# (a SOVERSION bump); additions pass.
set -euo pipefail

soname_of() { readelf -d "$1" | sed -n 's/.*Library soname: \[\(.*\)\].*/\1/p'; }

# judge BASELINE.abi NEW.so HEADERS: exit 0 if compatible
judge() {
  local base=$1 lib=$2 headers=$3 out rc=0
  local base_soname new_soname
  base_soname=$(sed -n "s/.*soname='\([^']*\)'.*/\1/p" "$base" | head -1)
  new_soname=$(soname_of "$lib")
  out=$(abidiff --no-show-locs --headers-dir2 "$headers" "$base" "$lib" 2>&1) || rc=$?
  if (( rc & 1 || rc & 2 )); then echo "$out"; echo "abidiff failed to run (exit $rc)"; return 2; fi
  local removed changed
  removed=$(echo "$out" | sed -n 's/.*changes summary: \([0-9]*\) Removed.*/\1/p' | awk '{s+=$1} END {print s+0}')
  changed=$(echo "$out" | sed -n 's/.*Removed[^,]*, \([0-9]*\) Changed.*/\1/p' | awk '{s+=$1} END {print s+0}')
  removed=${removed:-0} changed=${changed:-0}
  if (( removed + changed > 0 )); then
    if [ "$base_soname" != "$new_soname" ]; then
      echo "ABI broken ($removed removed, $changed changed) with SONAME $base_soname -> $new_soname: allowed; refresh the baseline"
      return 0
    fi
    echo "$out"
    echo "ABI BREAK: $removed removed, $changed changed symbols, SONAME still $new_soname."
    echo "Restore them, or bump NEGCUT_VERSION_MAJOR and refresh abi/ (docs/ABI.md)."
    return 1
  fi
  echo "ABI compatible with the baseline ($new_soname)$(echo "$out" | grep -q Added && echo ', with additions')"
}

selftest() {
  local t; t=$(mktemp -d); trap 'rm -rf "$t"' RETURN
  mkdir -p "$t/inc"
  echo 'int negcut_a(int x); int negcut_b(void);' > "$t/inc/x.h"
  printf '#include "x.h"\nint negcut_a(int x){return x;}\nint negcut_b(void){return 1;}\n' > "$t/v1.c"
  printf '#include "x.h"\nint negcut_a(int x){return x;}\n' > "$t/removed.c"
  printf 'int negcut_a(long x);\nint negcut_b(void);\nint negcut_a(long x){return (int)x;}\nint negcut_b(void){return 1;}\n' > "$t/changed.c"
  printf '#include "x.h"\nint negcut_a(int x){return x;}\nint negcut_b(void){return 1;}\nint negcut_c(void){return 2;}\n' > "$t/added.c"
  for v in v1 removed changed added; do
    cc -g -shared -fPIC -I"$t/inc" -Wl,-soname,libx.so.1 -o "$t/$v.so" "$t/$v.c"
  done
  cc -g -shared -fPIC -I"$t/inc" -Wl,-soname,libx.so.2 -o "$t/bumped.so" "$t/removed.c"
  abidw --no-show-locs --headers-dir "$t/inc" --out-file "$t/base.abi" "$t/v1.so"
  judge "$t/base.abi" "$t/v1.so" "$t/inc" >/dev/null || { echo "selftest: identical library rejected"; return 1; }
  judge "$t/base.abi" "$t/added.so" "$t/inc" >/dev/null || { echo "selftest: addition rejected"; return 1; }
  judge "$t/base.abi" "$t/bumped.so" "$t/inc" >/dev/null || { echo "selftest: SONAME bump rejected"; return 1; }
  if judge "$t/base.abi" "$t/removed.so" "$t/inc" >/dev/null; then echo "selftest: removal accepted"; return 1; fi
  if judge "$t/base.abi" "$t/changed.so" "$t/inc" >/dev/null; then echo "selftest: change accepted"; return 1; fi
  echo "ABI check selftest passed (identical, added, bumped pass; removed, changed fail)"
}

case "${1:-}" in
  check) judge "$2" "$3" "$4" ;;
  update) abidw --no-show-locs --headers-dir "$4" --out-file "$2" "$3" && echo "wrote $2" ;;
  selftest) selftest ;;
  *) echo "usage: $0 check|update BASELINE LIB INCLUDE_DIR | selftest"; exit 2 ;;
esac
