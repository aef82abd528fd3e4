#!/usr/bin/env bash
# The main job: set up, build, and show what the library does today.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
cmake -S . -B build >/dev/null
cmake --build build -j"$(nproc)" >/dev/null
./build/examples/negcut-info
