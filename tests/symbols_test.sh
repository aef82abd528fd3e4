#!/usr/bin/env bash
# The shared library exports only negcut_* symbols, and exports every
# function the public headers declare.
# usage: symbols_test.sh LIBNEGCUT_SO INCLUDE_DIR
set -euo pipefail
so=$1 inc=$2
exported=$(nm -D --defined-only "$so" | awk '{print $3}' | sed 's/@.*//' | sort -u)
[ -n "$exported" ] || { echo "no symbols exported"; exit 1; }
bad=$(echo "$exported" | grep -v '^negcut_' || true)
if [ -n "$bad" ]; then echo "exported symbols outside negcut_*:"; echo "$bad"; exit 1; fi
declared=$(grep -rhoE 'NEGCUT_API[^;(]*[ *](negcut_[a-z0-9_]+)\(' "$inc" |
  sed -E 's/.*(negcut_[a-z0-9_]+)\($/\1/' | sort -u)
missing=$(comm -23 <(echo "$declared") <(echo "$exported"))
if [ -n "$missing" ]; then echo "declared but not exported:"; echo "$missing"; exit 1; fi
echo "$(echo "$exported" | wc -l) symbols exported, all negcut_*, all declared ones present"
