#!/usr/bin/env python3
"""Reference values for tests/check_parity_nets.c, computed by PyTorch with
the networks of tools/negcut_ref.py (REFERENCE.md 1-3, 7).

    net_parity.py OUTDIR            writes the files below into OUTDIR
    net_parity.py OUTDIR --verify   the reverse direction: loads the generator
                                    that check_parity_nets wrote
                                    (OUTDIR/ours_G.safetensors) with
                                    load_state_dict(strict=True), runs it on
                                    the x of OUTDIR/ours_io.safetensors and
                                    compares with the y stored there (max abs
                                    difference <= 1e-4); exit 1 on failure.

Files (fixed torch seed; weights files hold exactly a state_dict):
  ref_G.pth, ref_G.safetensors  default generator (ngf 64, 9 blocks), the
                                .safetensors made by tools/pth2safetensors.py
  gen_io.safetensors            x256, y256 (1,3,256,256); x250 (1,3,250,333),
                                y250 (1,3,252,336: the reference's size
                                change); x250pad (x250 reflect-padded at the
                                bottom/right to 252x336), y250crop (its output
                                cropped to 250x333)
  <g>_weights / <g>_io          small generators g = gen_small (ngf 8, 2
                                blocks), gen_na (no_antialias and
                                no_antialias_up, 1 block), gen_naup
                                (no_antialias_up only, 1 block): x, y, dy, dx,
                                grad.<param>; the encoder pass "enc.": taps
                                (I64 module indices), enc.feat<i>,
                                enc.dfeat<i>, enc.dx, enc.grad.<param>
  disc_weights / disc_io        NLayerD ndf 8, n_layers 3: x, y, dy, dx, grad.*
  proj_weights / proj_io        PatchSampleF [3, 16, 32, 32, 32], nc 256: per
                                layer l: l<l>.feat, l<l>.ids (I64), sampled
                                l<l>.s.{y,dy,dfeat,grad.*} and all positions
                                l<l>.a.{y,dy,dfeat,grad.*}
  neg_weights / neg_io          NegativeGenerator 2 layers, nc 256, z 64: per
                                layer l<l>.{h_all,z,y,dy,dh_all,grad.*}
Weights are xavier-normal with gain 1.0 (not the reference's 0.02, whose
outputs are ~0 and would hide errors) and random biases: parity is about the
equations, not the init.
"""
import os
import subprocess
import sys

import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import negcut_ref as R  # noqa: E402
import safetensors_io  # noqa: E402

SEED = 20240607


def randomise(net, gain=1.0, bias_std=0.1):
    R.init_xavier(net, gain)
    with torch.no_grad():
        for name, p in net.named_parameters():
            if name.endswith(".bias"):
                p.normal_(0.0, bias_std)


def weights(net):
    return {k: v.detach().clone() for k, v in net.state_dict().items()}


def grads(net, prefix):
    """grad.<name> for every parameter (zeros where none flowed)."""
    out = {}
    for name, p in net.named_parameters():
        g = p.grad if p.grad is not None else torch.zeros_like(p)
        out[prefix + "grad." + name] = g.detach().clone()
    return out


def tame_final_conv(g, x):
    """Scales the last conv so tanh is not saturated: pre-tanh std ~0.6,
    outputs within about [-0.95, 0.95]."""
    with torch.no_grad():
        pre = g.model[:-1](x)
        s = 0.6 / float(pre.std())
        last = g.model[-2]
        last.weight.mul_(s)
        last.bias.mul_(s)


def full_generator(out):
    g = R.ResnetGenerator()
    randomise(g)
    x256 = torch.rand(1, 3, 256, 256) * 2 - 1
    tame_final_conv(g, x256)
    pth = os.path.join(out, "ref_G.pth")
    torch.save(g.state_dict(), pth)
    subprocess.run([sys.executable, os.path.join(HERE, "pth2safetensors.py"), pth,
                    os.path.join(out, "ref_G.safetensors")], check=True)
    x250 = torch.rand(1, 3, 250, 333) * 2 - 1
    x250pad = F.pad(x250, (0, 336 - 333, 0, 252 - 250), mode="reflect")
    with torch.no_grad():
        y256, y250, y250pad = g(x256), g(x250), g(x250pad)
    assert y250.shape == (1, 3, 252, 336), y250.shape
    lo, hi = float(y256.min()), float(y256.max())
    assert lo < -0.8 and hi > 0.8 and max(-lo, hi) < 0.999, (lo, hi)
    safetensors_io.save(os.path.join(out, "gen_io.safetensors"), {
        "x256": x256, "y256": y256, "x250": x250, "y250": y250,
        "x250pad": x250pad, "y250crop": y250pad[:, :, :250, :333].contiguous()})
    print("generator ngf 64: y256 in [%.3f, %.3f]" % (lo, hi))


def small_generator(out, name, cfg, x_shape, taps):
    g = R.ResnetGenerator(**cfg)
    randomise(g)
    x = torch.rand(*x_shape) * 2 - 1
    tame_final_conv(g, x)
    io = {"x": x.clone()}
    xg = x.clone().requires_grad_(True)
    y = g(xg)
    dy = torch.randn_like(y)
    (y * dy).sum().backward()
    io.update({"y": y.detach(), "dy": dy, "dx": xg.grad.detach()})
    io.update(grads(g, ""))
    g.zero_grad(set_to_none=True)
    # The encoder pass: features at the taps, random gradients on each.
    xg = x.clone().requires_grad_(True)
    feats = g(xg, layers=list(taps), encode_only=True)
    loss = 0
    io["enc.taps"] = torch.tensor(taps, dtype=torch.int64)
    for i, f in enumerate(feats):
        df = torch.randn_like(f)
        io["enc.feat%d" % i] = f.detach().clone()
        io["enc.dfeat%d" % i] = df
        loss = loss + (f * df).sum()
    loss.backward()
    io["enc.dx"] = xg.grad.detach()
    io.update(grads(g, "enc."))
    safetensors_io.save(os.path.join(out, name + "_weights.safetensors"), weights(g))
    meta = dict(ngf=0, n_blocks=0, no_antialias=False, no_antialias_up=False)
    meta.update(cfg)
    safetensors_io.save(os.path.join(out, name + "_io.safetensors"), io,
                        {k: str(int(v)) for k, v in meta.items()})


def discriminator(out):
    d = R.NLayerDiscriminator(input_nc=3, ndf=8, n_layers=3)
    randomise(d)
    x = (torch.rand(2, 3, 64, 48) * 2 - 1).requires_grad_(True)
    y = d(x)
    dy = torch.randn_like(y)
    (y * dy).sum().backward()
    io = {"x": x.detach(), "y": y.detach(), "dy": dy, "dx": x.grad.detach()}
    io.update(grads(d, ""))
    safetensors_io.save(os.path.join(out, "disc_weights.safetensors"), weights(d))
    safetensors_io.save(os.path.join(out, "disc_io.safetensors"), io)


def projector(out):
    channels = [3, 16, 32, 32, 32]
    sizes = [(14, 12), (10, 12), (6, 8), (4, 4), (4, 5)]
    f = R.PatchSampleF(channels, nc=256)
    randomise(f)
    io = {}
    for l, (c, (h, w)) in enumerate(zip(channels, sizes)):
        feat = torch.randn(2, c, h, w)
        ids = torch.randperm(h * w)[:16]
        io["l%d.feat" % l] = feat
        io["l%d.ids" % l] = ids.clone()
        for mode in ("s", "a"):
            fg = feat.clone().requires_grad_(True)
            mlp = getattr(f, "mlp_%d" % l)
            fr = fg.permute(0, 2, 3, 1).flatten(1, 2)  # (B, HW, C)
            if mode == "s":
                x = fr[:, ids, :].flatten(0, 1)  # (B*S, C)
            else:
                x = fr.flatten(0, 1)  # (B*HW, C)
            y = R.l2norm(mlp(x))
            dy = torch.randn_like(y)
            f.zero_grad(set_to_none=True)
            (y * dy).sum().backward()
            p = "l%d.%s." % (l, mode)
            io[p + "y"] = y.detach()
            io[p + "dy"] = dy
            io[p + "dfeat"] = fg.grad.detach()
            for name, prm in mlp.named_parameters():
                io[p + "grad.mlp_%d.%s" % (l, name)] = prm.grad.detach().clone()
    # Cross-check the hand-written path against PatchSampleF.forward.
    with torch.no_grad():
        feats = [io["l%d.feat" % l] for l in range(len(channels))]
        ys, _ = f(feats, 16, [io["l%d.ids" % l] for l in range(len(channels))])
        ya, _ = f(feats, 0)
        for l in range(len(channels)):
            assert torch.equal(ys[l], io["l%d.s.y" % l])
            assert torch.allclose(ya[l].flatten(0, 1), io["l%d.a.y" % l], atol=1e-6)
    safetensors_io.save(os.path.join(out, "proj_weights.safetensors"), weights(f))
    safetensors_io.save(os.path.join(out, "proj_io.safetensors"), io)


def neggen(out):
    b, p, s, nc, zd = 2, 20, 16, 256, 64
    n = R.NegativeGenerator(2, nc=nc, z_dim=zd)
    randomise(n)
    io = {}
    for l in range(2):
        h = F.normalize(torch.randn(b * p, nc), dim=1).requires_grad_(True)
        z = torch.randn(b * s, zd)
        n.zero_grad(set_to_none=True)
        y = n(l, h.view(b, p, nc), z.view(b, s, zd), num_negs=s)
        dy = torch.randn_like(y)
        (y * dy).sum().backward()
        q = "l%d." % l
        io.update({q + "h_all": h.detach(), q + "z": z, q + "y": y.detach(), q + "dy": dy,
                   q + "dh_all": h.grad.detach()})
        for name, prm in getattr(n, "mlp_%d" % l).named_parameters():
            io[q + "grad.mlp_%d.%s" % (l, name)] = prm.grad.detach().clone()
    safetensors_io.save(os.path.join(out, "neg_weights.safetensors"), weights(n))
    safetensors_io.save(os.path.join(out, "neg_io.safetensors"), io,
                        {"batch": b, "positions": p, "count": s})


def dump(out):
    os.makedirs(out, exist_ok=True)
    torch.manual_seed(SEED)
    full_generator(out)
    small_generator(out, "gen_small", dict(ngf=8, n_blocks=2), (2, 3, 32, 40), [0, 4, 8, 12, 13])
    small_generator(out, "gen_na", dict(ngf=8, n_blocks=1, no_antialias=True, no_antialias_up=True),
                    (2, 3, 32, 40), [0, 4, 7, 10])
    small_generator(out, "gen_naup", dict(ngf=8, n_blocks=1, no_antialias_up=True),
                    (2, 3, 32, 40), [0, 4, 8, 12])
    discriminator(out)
    projector(out)
    neggen(out)
    print("net_parity.py: wrote %s" % out)
    return 0


def verify(out):
    """Reverse direction: our checkpoint in the reference's PyTorch net."""
    sd, meta = safetensors_io.load(os.path.join(out, "ours_G.safetensors"))
    io, _ = safetensors_io.load(os.path.join(out, "ours_io.safetensors"))
    if meta.get("net") != "generator":
        print("ours_G.safetensors: metadata 'net' is %r, expected 'generator'" % meta.get("net"))
        return 1
    cfg = {k: int(meta[k]) for k in ("input_nc", "output_nc", "ngf", "n_blocks")}
    cfg.update({k: bool(int(meta[k])) for k in ("no_antialias", "no_antialias_up")})
    g = R.ResnetGenerator(**cfg)
    g.load_state_dict(sd, strict=True)
    with torch.no_grad():
        y = g(io["x"])
    if y.shape != io["y"].shape:
        print("verify: PyTorch output %s, ours %s" % (tuple(y.shape), tuple(io["y"].shape)))
        return 1
    diff = float((y - io["y"]).abs().max())
    span = float(io["y"].abs().max())
    print("verify: %s, output %s, max |y| %.3f, max abs diff %.3g (limit 1e-4)"
          % (cfg, tuple(y.shape), span, diff))
    if not diff <= 1e-4 or span < 0.1:
        print("verify: FAILED" + (" (output ~0: nothing compared)" if span < 0.1 else ""))
        return 1
    return 0


def main(argv):
    if len(argv) == 2 and not argv[1].startswith("-"):
        return dump(argv[1])
    if len(argv) == 3 and argv[2] == "--verify":
        return verify(argv[1])
    sys.stderr.write(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
