#!/usr/bin/env bash
# negcut-translate end to end: a reference generator converted from a .pth,
# a folder of PNG and JPEG images of mixed sizes, a single file to a file,
# standard input, and failures (missing model, corrupt image) that exit
# non-zero with a message. Every output must have its input's size.
# usage: translate_cli_test.sh NEGCUT_TRANSLATE SOURCE_DIR
set -euo pipefail
bin=$1 src=$2 py=/usr/bin/python3
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cd "$tmp"
$py - "$src/tools" <<'PY'
import sys
sys.path.insert(0, sys.argv[1])
import numpy as np, torch
from PIL import Image
import negcut_ref as r
torch.manual_seed(0)
g = r.ResnetGenerator(ngf=8, n_blocks=2)
r.init_xavier(g, 1.0)
torch.save(g.state_dict(), "G.pth")
rng = np.random.default_rng(1)
import os
os.makedirs("in", exist_ok=True)
for name, (w, h) in {"a.png": (64, 48), "b.jpg": (37, 53), "c.png": (250, 133), "d.jpeg": (9, 8)}.items():
    img = rng.integers(0, 255, (h, w, 3), dtype=np.uint8)
    Image.fromarray(img).save("in/" + name, **({"quality": 95} if name.endswith(("jpg", "jpeg")) else {}))
Image.fromarray(rng.integers(0, 255, (20, 20), dtype=np.uint8)).save("gray.png")
open("in/notes.txt", "w").write("not an image")
PY
$py "$src/tools/pth2safetensors.py" G.pth G.safetensors >/dev/null

echo "== folder of mixed sizes and formats"
"$bin" --model G.safetensors --output out in
$py - <<'PY'
from PIL import Image
import os
names = sorted(os.listdir("out"))
assert names == ["a.png", "b.jpg", "c.png", "d.jpeg"], names
for n in names:
    a, b = Image.open("in/" + n), Image.open("out/" + n)
    assert a.size == b.size, (n, a.size, b.size)
    assert b.format == ("PNG" if n.endswith("png") else "JPEG"), (n, b.format)
print("sizes kept:", [(n, Image.open("out/" + n).size) for n in names])
PY

echo "== one file to a file, gray input, standard input"
"$bin" --model G.safetensors --output one.png in/c.png --threads 1
"$bin" --model G.safetensors --output gray_out.png gray.png
"$bin" --model G.safetensors --output stdin.png - < in/a.png
$py -c "
from PIL import Image
assert Image.open('one.png').size == (250, 133)
assert Image.open('gray_out.png').size == (20, 20)
assert Image.open('stdin.png').size == (64, 48)
"
# Same input through a file and through stdin: the same bytes out.
"$bin" --model G.safetensors --output file_a.png in/a.png
cmp file_a.png stdin.png

echo "== failures exit non-zero with a message"
if "$bin" --model missing.safetensors in/a.png 2>err.txt; then echo "missing model accepted"; exit 1; fi
grep -q "missing.safetensors" err.txt
head -c 100 in/a.png > broken.png
if "$bin" --model G.safetensors --output bad broken.png in/b.jpg 2>err.txt; then echo "broken image accepted"; exit 1; fi
grep -q "broken.png" err.txt
[ -f bad/b.jpg ] || { echo "the good image of a failing run was not written"; exit 1; }
if "$bin" --model G.safetensors 2>/dev/null; then echo "no input accepted"; exit 1; fi
if "$bin" --model G.safetensors --tile 3 in/a.png 2>/dev/null; then echo "tile 3 accepted"; exit 1; fi
echo "negcut-translate CLI test passed"
