#!/usr/bin/env python3
"""Writes the reference generator (tools/negcut_ref.py, random weights as
negcut-bench's) to an ONNX file, for the ONNX Runtime side of
negcut-bench infer --ort. Height and width are dynamic axes.

    export_onnx.py OUT.onnx [--ngf 64] [--blocks 9] [--size 256]
"""
import argparse
import os
import sys
import warnings

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import negcut_ref as ref  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--ngf", type=int, default=64)
    ap.add_argument("--blocks", type=int, default=9)
    ap.add_argument("--size", type=int, default=256)
    a = ap.parse_args()
    torch.manual_seed(0)
    g = ref.ResnetGenerator(ngf=a.ngf, n_blocks=a.blocks).eval()
    ref.init_xavier(g, 1.0)
    x = torch.rand(1, 3, a.size, a.size) * 2 - 1
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the exporter's notes on constant folding
        torch.onnx.export(g, x, a.out, opset_version=13, input_names=["x"], output_names=["y"],
                          dynamic_axes={"x": {2: "h", 3: "w"}, "y": {2: "h", 3: "w"}})


if __name__ == "__main__":
    main()
