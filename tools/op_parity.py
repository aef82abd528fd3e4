#!/usr/bin/env python3
"""Reference values for tests/check_parity_ops.c, computed by PyTorch.

    op_parity.py OUT.safetensors      every op of lib/backend/backend.h: inputs,
                                      upstream gradients dy, outputs, gradients
    op_parity.py --sample OUT         a small fixed file without torch, for
                                      tests/check_safetensors.c

Tensor names are "<case>.<tensor>", e.g. conv2d.k3s2p1.x / .w / .b / .dy / .y
/ .dx / .dw / .db; the op parameters of a case are metadata "<case>.<param>".
Each case is built the way CUT's PyTorch code computes it (REFERENCE.md), in
float32 (in double only where float32 PyTorch itself loses digits: the L2
normalisation backward), with a fixed seed. The safetensors writer is our own (below): only
torch, json and struct are needed.
"""
import json
import os
import struct
import sys

DTYPES = {"F32": ("f", 4), "I64": ("q", 8), "U8": ("B", 1), "I32": ("i", 4)}


def write_safetensors(path, tensors, metadata=None, data_order=None):
    """tensors: list of (name, dtype, shape, flat list of values). The header
    lists tensors sorted by name (as the safetensors package does); the data
    follows data_order (names) or the list order. Written atomically."""
    by_name = {t[0]: t for t in tensors}
    if len(by_name) != len(tensors):
        raise ValueError("duplicate tensor names")
    order = data_order or [t[0] for t in tensors]
    header, blobs, off = {}, [], 0
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    for name in order:
        _, dtype, shape, values = by_name[name]
        code, size = DTYPES[dtype]
        n = 1
        for d in shape:
            n *= d
        if len(values) != n:
            raise ValueError("%s: %d values for shape %s" % (name, len(values), shape))
        blob = struct.pack("<%d%s" % (n, code), *values)
        header[name] = {"dtype": dtype, "shape": list(shape),
                        "data_offsets": [off, off + len(blob)]}
        blobs.append(blob)
        off += len(blob)
    text = json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for b in blobs:
            f.write(b)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def write_sample(path):
    """A fixed file for check_safetensors.c: the header is sorted by name
    while the data is not, and one tensor is empty."""
    tensors = [
        ("weight", "F32", [2, 3], [0.5 * i - 1.0 for i in range(6)]),
        ("ids", "I64", [4], [3, -1, 1 << 40, 0]),
        ("empty", "F32", [0, 5], []),
        ("bytes", "U8", [3], [1, 2, 255]),
    ]
    write_safetensors(path, tensors, {"format": "pt", "writer": "op_parity.py"},
                      data_order=["ids", "weight", "empty", "bytes"])


def main(path):
    try:
        import torch
        import torch.nn as nn
        import torch.nn.functional as F
    except ImportError as e:
        sys.exit("op_parity.py: PyTorch is required to make the parity data (%s)" % e)

    torch.manual_seed(20240521)
    torch.set_num_threads(1)
    tensors, meta = [], {"format": "negcut-op-parity", "torch": torch.__version__}

    def put(name, t, dtype="F32"):
        t = t.detach().contiguous()
        if dtype == "F32":
            t = t.float()
        shape = list(t.shape) or [1]  # scalars are stored as (1,)
        tensors.append((name, dtype, shape, t.flatten().tolist()))

    def param(case, **kw):
        for k, v in kw.items():
            meta["%s.%s" % (case, k)] = repr(v) if isinstance(v, float) else str(v)

    def randn(*shape, scale=1.0):
        return torch.randn(*shape) * scale

    def away(*shape, gap=0.05):
        """Values at least gap away from 0: no kinks for relu/lrelu/abs."""
        u = torch.randn(*shape)
        return torch.sign(u) * (u.abs() + gap)

    def fwd_bwd(case, fn, inputs, extra_out=None):
        """inputs: dict name -> tensor (grads wanted for every float input
        named in it). Saves inputs, y, dy and d<name> for each input."""
        leaves = {k: v.clone().requires_grad_(True) for k, v in inputs.items()}
        y = fn(**leaves)
        dy = torch.randn_like(y)
        grads = torch.autograd.grad(y, list(leaves.values()), dy)
        for k, v in inputs.items():
            put("%s.%s" % (case, k), v)
        put(case + ".y", y)
        put(case + ".dy", dy)
        for k, g in zip(leaves, grads):
            put("%s.d%s" % (case, k), g)
        return y

    # ------------------------------------------------------------ conv2d
    for (ci, co, h, w, k, s, p, bias) in [
        (3, 4, 7, 9, 3, 1, 1, True),
        (3, 4, 7, 9, 3, 2, 1, True),
        (5, 4, 8, 9, 3, 2, 1, False),
        (3, 4, 12, 13, 7, 1, 0, True),
        (3, 5, 8, 9, 4, 1, 1, True),
        (4, 3, 9, 10, 4, 2, 1, True),
    ]:
        case = "conv2d.k%ds%dp%d%s" % (k, s, p, "" if bias else "nb")
        param(case, stride=s, pad=p)
        ins = {"x": randn(2, ci, h, w), "w": randn(co, ci, k, k, scale=0.3)}
        if bias:
            ins["b"] = randn(co)
        fwd_bwd(case, lambda x, w, b=None, s=s, p=p: F.conv2d(x, w, b, stride=s, padding=p), ins)

    # --------------------------------------------------- conv_transpose2d
    for (ci, co, h, w, k, s, p, op) in [(4, 3, 5, 6, 3, 2, 1, 1), (3, 2, 4, 5, 4, 2, 1, 0)]:
        case = "convt2d.k%ds%dp%dop%d" % (k, s, p, op)
        param(case, stride=s, pad=p, out_pad=op)
        ins = {"x": randn(2, ci, h, w), "w": randn(ci, co, k, k, scale=0.3), "b": randn(co)}
        fwd_bwd(case, lambda x, w, b, s=s, p=p, op=op: F.conv_transpose2d(
            x, w, b, stride=s, padding=p, output_padding=op), ins)

    # --------------------------------------------------------------- pads
    for mode, mod, p in [("reflect", nn.ReflectionPad2d, 1), ("reflect", nn.ReflectionPad2d, 3),
                         ("replicate", nn.ReplicationPad2d, 1), ("zero", nn.ZeroPad2d, 1),
                         ("zero", nn.ZeroPad2d, 3)]:
        case = "pad.%s%d" % (mode, p)
        param(case, mode=mode, pad=p)
        fwd_bwd(case, lambda x, m=mod(p): m(x), {"x": randn(2, 3, 7, 9)})

    # ------------------------------------------------------ instance norm
    for (c, h, w, shift) in [(3, 7, 9, 0.0), (4, 5, 6, 3.0)]:
        case = "inorm.%dx%dx%d" % (c, h, w)
        param(case, eps=1e-5)
        x = randn(2, c, h, w, scale=2.0) + shift
        fwd_bwd(case, lambda x: F.instance_norm(x, eps=1e-5), {"x": x})
        xd = x.double()
        put(case + ".mean", xd.mean(dim=(2, 3)))
        put(case + ".rstd", 1.0 / torch.sqrt(xd.var(dim=(2, 3), unbiased=False) + 1e-5))

    # -------------------------------------------------------- activations
    param("act.relu", act="relu", alpha=0.0)
    fwd_bwd("act.relu", lambda x: F.relu(x), {"x": away(2, 3, 7, 9)})
    param("act.lrelu", act="lrelu", alpha=0.2)
    fwd_bwd("act.lrelu", lambda x: F.leaky_relu(x, 0.2), {"x": away(2, 3, 7, 9)})
    param("act.tanh", act="tanh", alpha=0.0)
    fwd_bwd("act.tanh", lambda x: torch.tanh(x), {"x": randn(2, 3, 7, 9, scale=1.5)})

    # --------------------------------------- blur down / up (CUT's code)
    def get_filter(filt_size):
        a = {3: [1.0, 2.0, 1.0], 4: [1.0, 3.0, 3.0, 1.0]}[filt_size]
        a = torch.tensor(a)
        filt = a[:, None] * a[None, :]
        return filt / torch.sum(filt)

    def downsample(x):  # models/networks.py Downsample, filt_size 3, stride 2
        c = x.shape[1]
        filt = get_filter(3)[None, None, :, :].repeat((c, 1, 1, 1))
        return F.conv2d(nn.ReflectionPad2d([1, 1, 1, 1])(x), filt, stride=2, groups=c)

    def upsample(x):  # models/networks.py Upsample, filt_size 4, stride 2
        c = x.shape[1]
        filt = (get_filter(4) * 4)[None, None, :, :].repeat((c, 1, 1, 1))
        ret = F.conv_transpose2d(nn.ReplicationPad2d([1, 1, 1, 1])(x), filt, stride=2,
                                 padding=2, groups=c)[:, :, 1:, 1:]
        return ret[:, :, :-1, :-1]  # even filter

    for (c, h, w) in [(3, 7, 9), (3, 8, 10), (2, 5, 4)]:
        fwd_bwd("blur_down.%dx%dx%d" % (c, h, w), downsample, {"x": randn(2, c, h, w)})
    for (c, h, w) in [(3, 4, 5), (2, 3, 7)]:
        fwd_bwd("blur_up.%dx%dx%d" % (c, h, w), upsample, {"x": randn(2, c, h, w)})

    # ------------------------------------------------- element-wise, misc
    a, b = randn(2, 3, 7, 9), randn(2, 3, 7, 9)
    put("add.a", a)
    put("add.b", b)
    put("add.y", a + b)

    x, y0 = randn(2, 3, 5, 7), randn(2, 3, 5, 7)
    for case, al, be in [("axpby.a2b05", 2.0, 0.5), ("axpby.beta0", -0.7, 0.0)]:
        param(case, alpha=al, beta=be)
        put(case + ".x", x)
        put(case + ".y0", y0)
        put(case + ".y", al * x + be * y0 if be != 0.0 else al * x)

    param("fill", v=-1.25)
    put("fill.y", torch.full((2, 3, 5, 7), -1.25))

    fwd_bwd("hflip.2x3x5x7", lambda x: torch.flip(x, [3]), {"x": randn(2, 3, 5, 7)})
    fwd_bwd("concat.3p2", lambda a, b: torch.cat([a, b], dim=1),
            {"a": randn(2, 3, 5, 6), "b": randn(2, 2, 5, 6)})

    # --------------------------------------------------- matrices and rows
    fwd_bwd("linear.10x7x5", lambda x, w, b: F.linear(x, w, b),
            {"x": randn(10, 7), "w": randn(5, 7, scale=0.4), "b": randn(5)})
    fwd_bwd("linear.6x320x16", lambda x, w, b: F.linear(x, w, b),
            {"x": randn(6, 320), "w": randn(16, 320, scale=0.1), "b": randn(16)})

    fwd_bwd("bmm.2x5x6x8", lambda a, b: torch.bmm(a, b.transpose(1, 2)),
            {"a": randn(2, 5, 8), "b": randn(2, 6, 8)})

    # Rows of small norm make the backward cancel (dx ~ (dy - y (y.dy)) / |x|):
    # float32 PyTorch is itself off by ~1e-5 relative there, so these are
    # computed in double from the float32 inputs ("double where it helps").
    for case, shape, scale in [("l2norm.10x16", (10, 16), 1.0), ("l2norm.small", (6, 5), 1e-3)]:
        param(case, eps=1e-7)
        x = randn(*shape, scale=scale)
        dy = torch.randn(*shape)
        xd = x.double().requires_grad_(True)
        y = xd / (xd.norm(dim=1, keepdim=True) + 1e-7)
        dx, = torch.autograd.grad(y, xd, dy.double())
        for k, v in [("x", x), ("y", y), ("dy", dy), ("dx", dx), ("norm", xd.norm(dim=1))]:
            put("%s.%s" % (case, k), v)

    for (bsz, c, h, w, s) in [(2, 5, 7, 9, 12), (2, 3, 4, 5, 20)]:
        case = "gather.%dx%dx%d.s%d" % (c, h, w, s)
        ids = torch.randperm(h * w)[:s]
        put(case + ".ids", ids, dtype="I64")
        fwd_bwd(case, lambda x, ids=ids: x.permute(0, 2, 3, 1).flatten(1, 2)[:, ids, :].flatten(0, 1),
                {"x": randn(bsz, c, h, w)})

    fwd_bwd("mean.2x11x6", lambda x: x.mean(dim=1), {"x": randn(2, 11, 6)})

    param("fill_diag.2x6x6", v=-10.0)
    eye = torch.eye(6, dtype=torch.bool)[None, :, :]
    fwd_bwd("fill_diag.2x6x6", lambda x: x.masked_fill(eye, -10.0), {"x": randn(2, 6, 6)})

    # -------------------------------------------------------------- losses
    fwd_bwd("xent0.12x9", lambda x: F.cross_entropy(x, torch.zeros(12, dtype=torch.long),
                                                     reduction="none"),
            {"x": randn(12, 9, scale=2.0)})
    # PatchNCE logits: [l_pos, l_neg with the diagonal at -10] / 0.07.
    q = F.normalize(randn(8, 16), dim=1)
    k = F.normalize(randn(8, 16), dim=1)
    lpos = (q * k).sum(dim=1, keepdim=True)
    lneg = (q @ k.t()).masked_fill(torch.eye(8, dtype=torch.bool), -10.0)
    logits = torch.cat([lpos, lneg], dim=1) / 0.07
    fwd_bwd("xent0.nce8", lambda x: F.cross_entropy(x, torch.zeros(8, dtype=torch.long),
                                                    reduction="none"), {"x": logits})

    for case, t in [("mse_const.t1", 1.0), ("mse_const.t0", 0.0)]:
        param(case, t=t)
        fwd_bwd(case, lambda x, t=t: F.mse_loss(x, torch.full_like(x, t)),
                {"x": randn(2, 1, 5, 6)})

    a = randn(2, 4, 8)
    fwd_bwd("mad.2x4x8", lambda a, b: (a - b).abs().mean(), {"a": a, "b": a + away(2, 4, 8)})

    x = randn(2, 3, 5, 7)
    put("mean_all.x", x)
    put("mean_all.y", x.mean())

    # ---------------------------------------------------------- optimisers
    for case, wd in [("adam.cut", 0.0), ("adam.wd", 0.1)]:
        lr, b1, b2, eps = 2e-4, 0.5, 0.999, 1e-8
        param(case, lr=lr, beta1=b1, beta2=b2, eps=eps, weight_decay=wd, steps=3)
        p = nn.Parameter(randn(5, 7, scale=0.1))
        opt = torch.optim.Adam([p], lr=lr, betas=(b1, b2), eps=eps, weight_decay=wd)
        put(case + ".p0", p)
        for step in range(1, 4):
            g = randn(5, 7, scale=0.01 * step)
            p.grad = g.clone()
            opt.step()
            st = opt.state[p]
            put("%s.g%d" % (case, step), g)
            put("%s.p%d" % (case, step), p)
            put("%s.m%d" % (case, step), st["exp_avg"])
            put("%s.v%d" % (case, step), st["exp_avg_sq"])

    for case, decay in [("ema.0.9", 0.9), ("ema.0.999", 0.999)]:
        param(case, decay=decay)
        t, s = randn(4, 9), randn(4, 9)
        put(case + ".target", t)
        put(case + ".src", s)
        put(case + ".y", decay * t + (1.0 - decay) * s)

    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    write_safetensors(path, tensors, meta)
    print("op_parity.py: %d tensors, %d metadata items -> %s" % (len(tensors), len(meta), path))


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--sample":
        write_sample(sys.argv[2])
    elif len(sys.argv) == 2 and not sys.argv[1].startswith("-"):
        main(sys.argv[1])
    else:
        sys.exit(__doc__)
