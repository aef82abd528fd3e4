#!/usr/bin/env python3
"""How tiled translation could match the whole-image result (docs/TRANSLATE.md,
"Tiling and memory"). Every instance norm of the generator normalises with the
statistics of what it sees; a tile sees less than the image. This measures, on
a random generator (PyTorch's default initialisation, 3 blocks, ngf 16) and a
smooth 256x192 image cut into 64 px tiles, the mean abs difference from the
whole-image output when the tiles' norms use:
  own        each tile's own statistics (what libnegcut does);
  exact      the whole image's statistics;
  iterated   statistics gathered from the tiles' cores in the previous pass,
             every norm frozen at once (pass 1: own);
  layerwise  pass p freezes the first p norms (execution order) at statistics
             gathered from the tiles' cores in the passes before, the others
             use their own; after one pass per norm every norm is exact.
Core statistics are merged in double with Chan's update. Run: python3 this."""
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, __file__.rsplit("/", 1)[0])
import negcut_ref as R  # noqa: E402

H, W, TILE = 192, 256, 64


class Norm(nn.Module):
    """InstanceNorm2d(affine=False) with frozen statistics and core sums."""

    def __init__(self, state):
        super().__init__()
        self.state, self.idx = state, -1

    def forward(self, x):
        s = self.state
        if self.idx < 0:  # the first run numbers the norms in execution order
            self.idx = s["count"]
            s["count"] += 1
        if s["win"] is not None:  # the core's moments at this norm's scale
            (y0, y1, x0, x1), sc = s["win"], s["h"] // x.shape[2]
            w = x[:, :, y0 // sc:y1 // sc, x0 // sc:x1 // sc].double()
            m = w.mean((2, 3))
            s["acc"].setdefault(self.idx, []).append(
                (w[0, 0].numel(), m, ((w - m[..., None, None]) ** 2).sum((2, 3))))
        if self.idx in s["frozen"]:
            m, v = s["frozen"][self.idx]
        else:
            m = x.mean((2, 3), keepdim=True)
            v = x.var((2, 3), unbiased=False, keepdim=True)
        return (x - m) / torch.sqrt(v + 1e-5)


def merged(acc):
    out = {}
    for i, parts in acc.items():
        n, mu, m2 = 0, 0.0, 0.0
        for c, m, q in parts:
            d, tot = m - mu, n + c
            mu, m2, n = mu + d * c / tot, m2 + q + d * d * n * c / tot, tot
        out[i] = (mu.float()[..., None, None], (m2 / n).float()[..., None, None])
    return out


def tiled(g, img, state, ov, frozen):
    """Cores of the tiles (TILE px, ov px of context each side) pasted."""
    state.update(frozen=frozen, acc={})
    out = torch.zeros(1, 3, H, W)
    for ty in range(0, H, TILE):
        for tx in range(0, W, TILE):
            y0, x0 = max(ty - ov, 0), max(tx - ov, 0)
            y1, x1 = min(ty + TILE + ov, H), min(tx + TILE + ov, W)
            state.update(win=(ty - y0, ty + TILE - y0, tx - x0, tx + TILE - x0), h=y1 - y0)
            with torch.no_grad():
                o = g(img[:, :, y0:y1, x0:x1])
            out[:, :, ty:ty + TILE, tx:tx + TILE] = o[:, :, ty - y0:ty - y0 + TILE,
                                                      tx - x0:tx - x0 + TILE]
    state["win"] = None
    return out, merged(state["acc"])


def main():
    torch.manual_seed(0)
    state = {"count": 0, "win": None, "frozen": {}, "acc": {}}
    g = R.ResnetGenerator(ngf=16, n_blocks=3).eval()
    for mod in list(g.modules()):
        for name, c in list(mod.named_children()):
            if isinstance(c, nn.InstanceNorm2d):
                setattr(mod, name, Norm(state))
    yy, xx = torch.meshgrid(torch.linspace(0, 1, H), torch.linspace(0, 1, W), indexing="ij")
    img = torch.stack([torch.sin(6 * xx + 2 * yy), torch.cos(5 * yy - 3 * xx),
                       torch.sin(4 * xx * yy + 1)])[None]
    img = img + 0.3 * F.avg_pool2d(torch.randn(1, 3, H, W), 5, 1, 2)
    state.update(win=(0, H, 0, W), h=H)
    with torch.no_grad():
        whole = g(img)
    exact, n = merged(state["acc"]), state["count"]
    state["win"] = None
    diff = lambda o: (o - whole).abs().mean().item()  # noqa: E731
    print(f"{n} norms; whole-image output in [{whole.min():.2f}, {whole.max():.2f}]")
    for ov in (16, 32):
        own, _ = tiled(g, img, state, ov, {})
        ex, _ = tiled(g, img, state, ov, exact)
        print(f"overlap {ov}: own {diff(own):.4f}  exact {diff(ex):.4f}")
        frozen, row = {}, []
        for _ in range(4):
            o, frozen = tiled(g, img, state, ov, frozen)
            row.append(f"{diff(o):.4f}")
        print(f"  iterated, passes 1-4: {' '.join(row)}")
        frozen, row = {}, []
        for p in range(n + 1):
            o, acc = tiled(g, img, state, ov, dict(frozen))
            row.append(f"{diff(o):.4f}")
            if p < n:
                frozen[p] = acc[p]
        print(f"  layerwise, 0-{n} norms frozen: {' '.join(row)}")


if __name__ == "__main__":
    main()
