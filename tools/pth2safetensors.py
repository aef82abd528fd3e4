#!/usr/bin/env python3
"""Converts a reference CUT / NEGCUT checkpoint (e.g. latest_net_G.pth) to a
safetensors file that libnegcut loads:

    pth2safetensors.py INPUT.pth OUTPUT.safetensors

Tensor names are kept as the reference's state_dict names, with the
`module.` prefix that CPU-trained runs get (DataParallel) removed. For a
generator the architecture is written to the metadata (read off the names
and shapes); libnegcut can also infer it itself.
"""
import os
import re
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import safetensors_io  # noqa: E402


def generator_metadata(sd):
    if "model.1.weight" not in sd or sd["model.1.weight"].dim() != 4:
        return None
    w = sd["model.1.weight"]
    ngf, input_nc = w.shape[0], w.shape[1]
    no_aa = "model.7.filt" not in sd
    start = 10 if no_aa else 12
    blocks = 0
    while "model.%d.conv_block.1.weight" % (start + blocks) in sd:
        blocks += 1
    m = start + blocks
    no_aa_up = "model.%d.filt" % m not in sd
    last = sd.get("model.%d.weight" % (m + (6 if no_aa_up else 8) + 1))
    if last is None:
        return None
    return {"net": "generator", "input_nc": input_nc, "output_nc": last.shape[0], "ngf": ngf,
            "n_blocks": blocks, "no_antialias": int(no_aa), "no_antialias_up": int(no_aa_up),
            "format": "libnegcut"}


def main(argv):
    if len(argv) != 3:
        sys.stderr.write(__doc__)
        return 2
    obj = torch.load(argv[1], map_location="cpu")
    if isinstance(obj, torch.nn.Module):
        obj = obj.state_dict()
    if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not all(torch.is_tensor(v) for v in obj.values()):
        sys.stderr.write("%s: not a state_dict of tensors\n" % argv[1])
        return 1
    sd = {re.sub(r"^module\.", "", k): v.float() if v.is_floating_point() else v
          for k, v in obj.items()}
    meta = generator_metadata(sd) or {"format": "libnegcut"}
    meta["source"] = os.path.basename(argv[1])
    safetensors_io.save(argv[2], sd, meta)
    print("%s: %d tensors -> %s" % (argv[1], len(sd), argv[2]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
