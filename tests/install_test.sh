#!/usr/bin/env bash
# Installs the build into a temporary prefix, runs the installed programs,
# then builds and runs a consumer program as a user would: with pkg-config
# (shared and static) and with CMake's find_package(negcut) (shared and
# static).
# usage: install_test.sh BUILD_DIR SOURCE_DIR [PROGRAMS: 1 when the examples were built]
set -euo pipefail
build=$1 src=$2 programs=${3:-1}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cmake --install "$build" --prefix "$tmp/prefix" >/dev/null
libdir=$(find "$tmp/prefix" -name negcut.pc -printf '%h\n' | head -1)
libdir=${libdir%/pkgconfig}
export PKG_CONFIG_PATH=$libdir/pkgconfig
cc=${CC:-cc}

if [ "$programs" = 1 ]; then # the programs exist only with the examples
  echo "== the installed programs run and find the installed library"
  for p in negcut-info negcut-translate negcut-train; do
    [ -x "$tmp/prefix/bin/$p" ] || { echo "$p not installed"; exit 1; }
  done
  env -u LD_LIBRARY_PATH "$tmp/prefix/bin/negcut-info" > "$tmp/info.txt"
  grep -q "libnegcut" "$tmp/info.txt" || { echo "negcut-info printed no version"; exit 1; }
  ldd "$tmp/prefix/bin/negcut-translate" | grep "libnegcut.so.0 => $tmp/prefix" > /dev/null ||
    { ldd "$tmp/prefix/bin/negcut-translate"; echo "negcut-translate does not load the installed library"; exit 1; }
  "$tmp/prefix/bin/negcut-train" --help > /dev/null
fi

echo "== the Python binding is installed and loads the installed library"
py=$(find "$tmp/prefix" -name negcut_ctypes.py -printf '%h\n' | head -1)
if ! command -v python3 > /dev/null; then
  echo "(no python3 here: skipped)"
  py=skip
fi
[ -n "$py" ] || { echo "negcut_ctypes.py not installed"; exit 1; }
if [ "$py" != skip ]; then
# shellcheck disable=SC2016
loaded=$(cd "$tmp" && env -u LD_LIBRARY_PATH -u NEGCUT_LIBRARY PYTHONPATH="$py" python3 -c '
import os, negcut_ctypes as nc
ng = nc.Negcut(backend=2, threads=1)
with ng.trainer("cut", ngf=4, ndf=4, n_blocks=1, nce_layers=[0, 4], num_patches=4, netf_nc=4) as t:
    t.step_batch([0.5] * 3 * 32 * 32, [-0.5] * 3 * 32 * 32, 32, 32)
    assert t.progress()["iteration"] == 1
print(os.path.realpath(ng.lib._name))')
case $loaded in
  "$(realpath "$tmp/prefix")"/*) ;;
  *) echo "the installed module loaded $loaded"; exit 1 ;;
esac
fi

echo "== pkg-config, shared"
# shellcheck disable=SC2046
$cc -std=c99 -Wall -Werror -o "$tmp/pc_shared" "$src/tests/consumer/consumer.c" \
  $(pkg-config --cflags --libs negcut) -Wl,-rpath,"$libdir"
"$tmp/pc_shared"
readelf -d "$tmp/pc_shared" | grep -q 'libnegcut.so.0' || { echo "not linked to libnegcut.so.0"; exit 1; }

echo "== pkg-config --static"
# shellcheck disable=SC2046
$cc -std=c99 -Wall -Werror -o "$tmp/pc_static" "$src/tests/consumer/consumer.c" \
  $(pkg-config --cflags negcut) "$libdir/libnegcut.a" \
  $(pkg-config --static --libs negcut | sed 's/-lnegcut//') -lstdc++
"$tmp/pc_static"
if readelf -d "$tmp/pc_static" | grep -q 'libnegcut.so'; then echo "static consumer uses the .so"; exit 1; fi

echo "== CMake find_package(negcut)"
cmake -S "$src/tests/consumer" -B "$tmp/cm" -DCMAKE_PREFIX_PATH="$tmp/prefix" >/dev/null
cmake --build "$tmp/cm" >/dev/null
"$tmp/cm/consumer_shared"
"$tmp/cm/consumer_static"
echo "install test passed"
