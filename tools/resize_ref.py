#!/usr/bin/env python3
"""Reference images for tests/check_data.c, made by PIL.

    resize_ref.py OUT_DIR

writes OUT_DIR/manifest.txt and PNG files:

  resize <name> <mode> <sw> <sh> <dw> <dh>
      <name>_src.png (sw x sh, mode RGB or L) and <name>_pil.png, PIL's
      Image.resize((dw, dh), Image.BICUBIC) of it: what our bicubic must match.
  pipe <name> <mode> <preprocess> <load> <crop> <x> <y> <flip>
      <name>_src.png and <name>_pil.png: the reference's training transform
      (CUT's data/base_dataset.py get_transform: Grayscale, Resize /
      __scale_width, crop at (x, y), __make_power_2, flip) with those random
      choices fixed, as 8-bit pixels before ToTensor.

Sources are random noise (the hardest case for fixed-point rounding) and
smooth gradients, several sizes, up and down, square and not. Only PIL and
numpy are needed; the seed is fixed, so the files are the same every run.
"""
import os
import sys

import numpy as np
from PIL import Image

BICUBIC = Image.BICUBIC


def source(kind, w, h, mode, rng):
    c = 3 if mode == "RGB" else 1
    if kind == "random":
        a = rng.integers(0, 256, size=(h, w, c), dtype=np.uint8)
    else:  # smooth gradients plus a soft disc: every channel different
        y, x = np.mgrid[0:h, 0:w].astype(np.float64)
        fx, fy = x / max(w - 1, 1), y / max(h - 1, 1)
        d = np.hypot(fx - 0.4, fy - 0.6)
        planes = [255 * fx, 255 * fy * (1 - fx) + 60, 255 * np.clip(1.2 - 2 * d, 0, 1)]
        a = np.stack(planes[:c], axis=-1).round().clip(0, 255).astype(np.uint8)
    if c == 1:
        return Image.fromarray(a[:, :, 0], "L")
    return Image.fromarray(a, "RGB")


# The reference's helpers (CUT data/base_dataset.py), verbatim in effect.
def scale_width(img, target_width, crop_width, method=BICUBIC):
    ow, oh = img.size
    if ow == target_width and oh >= crop_width:
        return img
    w = target_width
    h = int(max(target_width * oh / ow, crop_width))
    return img.resize((w, h), method)


def make_power_2(img, base, method=BICUBIC):
    ow, oh = img.size
    h = int(round(oh / base) * base)
    w = int(round(ow / base) * base)
    if h == oh and w == ow:
        return img
    return img.resize((w, h), method)


def pipeline(img, pre, load, crop, x, y, flip, gray):
    if gray:
        img = img.convert("L")
    if pre == "resize_and_crop":
        img = img.resize((load, load), BICUBIC)  # torchvision Resize([h, w])
    elif pre.startswith("scale_width"):
        img = scale_width(img, load, crop)
    if pre.endswith("crop"):
        img = img.crop((x, y, x + crop, y + crop))
    img = make_power_2(img, 4)
    if flip:
        img = img.transpose(Image.FLIP_LEFT_RIGHT)
    return img


RESIZE = [  # name, kind, mode, sw, sh, dw, dh
    ("up_small", "random", "RGB", 64, 48, 286, 286),
    ("mixed", "random", "RGB", 300, 200, 286, 286),
    ("down_512", "random", "RGB", 512, 512, 286, 286),
    ("down_big", "random", "RGB", 1000, 750, 286, 286),
    ("down_odd", "random", "RGB", 37, 53, 13, 7),
    ("up_10x", "random", "RGB", 10, 10, 100, 100),
    ("near", "random", "RGB", 256, 256, 257, 255),
    ("pow2", "random", "RGB", 258, 258, 256, 256),
    ("only_w", "random", "RGB", 200, 100, 150, 100),
    ("only_h", "random", "RGB", 200, 100, 200, 37),
    ("scale_width", "random", "RGB", 500, 333, 286, 190),
    ("one_px", "random", "RGB", 1, 1, 5, 5),
    ("to_one", "random", "RGB", 5, 3, 1, 1),
    ("grad_up", "gradient", "RGB", 64, 48, 286, 286),
    ("grad_down", "gradient", "RGB", 1000, 750, 286, 286),
    ("grad_mixed", "gradient", "RGB", 123, 456, 286, 286),
    ("gray_mixed", "random", "L", 300, 200, 286, 286),
    ("gray_grad", "gradient", "L", 640, 480, 286, 286),
]

PIPE = [  # name, kind, sw, sh, gray, preprocess, load, crop, x, y, flip
    ("rc", "random", 300, 200, 0, "resize_and_crop", 286, 256, 17, 29, 0),
    ("rc_flip", "gradient", 640, 480, 0, "resize_and_crop", 286, 256, 30, 0, 1),
    ("rc_gray", "random", 300, 200, 1, "resize_and_crop", 286, 256, 5, 11, 1),
    ("rc_odd", "random", 120, 90, 0, "resize_and_crop", 100, 90, 3, 7, 0),
    ("crop", "random", 150, 140, 0, "crop", 286, 128, 21, 12, 1),
    ("crop_odd", "gradient", 150, 140, 0, "crop", 286, 101, 40, 2, 0),
    ("sw", "random", 500, 333, 0, "scale_width", 286, 256, 0, 0, 0),
    ("sw_tall", "gradient", 300, 900, 0, "scale_width", 286, 256, 0, 0, 1),
    ("sw_short", "random", 600, 100, 0, "scale_width", 286, 256, 0, 0, 0),
    ("swc", "random", 500, 600, 0, "scale_width_and_crop", 286, 256, 30, 50, 1),
    ("swc_wide", "gradient", 500, 333, 1, "scale_width_and_crop", 286, 256, 12, 0, 0),
    ("none", "random", 143, 98, 0, "none", 286, 256, 0, 0, 0),
    ("none_flip", "gradient", 130, 66, 1, "none", 286, 256, 0, 0, 1),
]


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    rng = np.random.default_rng(20240607)
    lines = []
    for name, kind, mode, sw, sh, dw, dh in RESIZE:
        src = source(kind, sw, sh, mode, rng)
        src.save(os.path.join(out, name + "_src.png"))
        src.resize((dw, dh), BICUBIC).save(os.path.join(out, name + "_pil.png"))
        lines.append("resize %s %s %d %d %d %d" % (name, mode, sw, sh, dw, dh))
    for name, kind, sw, sh, gray, pre, load, crop, x, y, flip in PIPE:
        src = source(kind, sw, sh, "RGB", rng)
        src.save(os.path.join(out, name + "_src.png"))
        ref = pipeline(src, pre, load, crop, x, y, flip, gray)
        ref.save(os.path.join(out, name + "_pil.png"))
        lines.append("pipe %s %s %s %d %d %d %d %d" % (name, "L" if gray else "RGB", pre, load,
                                                      crop, x, y, flip))
    tmp = os.path.join(out, "manifest.txt.tmp")
    with open(tmp, "w") as f:
        f.write("\n".join(lines) + "\n")
    os.replace(tmp, os.path.join(out, "manifest.txt"))
    print("resize_ref: %d resize and %d pipeline cases in %s" % (len(RESIZE), len(PIPE), out))


if __name__ == "__main__":
    main()
