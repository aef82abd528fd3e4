#!/usr/bin/env python3
"""The PyTorch side of negcut-bench: the same work as ours, timed in its own
process so that peak RSS is its own.

    bench_torch.py infer --size 256 [--ngf 64] [--batch B] --reps K --threads T [--device cpu|cuda]
    bench_torch.py train --mode cut|negcut --size 256 [--ngf 64] [--batch B] --reps K --threads T [--device cuda]

Prints one line: "times <s> <s> ... rss_kib <n>". Networks are our PyTorch
implementation of the reference (tools/negcut_ref.py); the training
iteration follows REFERENCE.md 4-7 as the reference code runs it (including
NEGCUT's all-position F_ and the N step's full recomputation).
"""
import argparse
import os
import resource
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import negcut_ref as ref  # noqa: E402

LAYERS = [0, 4, 8, 12, 16]


def nce_layers_for(n_blocks):
    return [0, 4, 8, 12, 12 + min(4, n_blocks - 1)]


class Iteration:
    def __init__(self, mode, ngf, size, n_blocks):
        self.mode = mode
        self.layers = nce_layers_for(n_blocks)
        self.G = ref.ResnetGenerator(ngf=ngf, n_blocks=n_blocks)
        self.D = ref.NLayerDiscriminator(ndf=ngf)
        x = torch.zeros(1, 3, size, size)
        with torch.no_grad():
            feats = self.G(x, self.layers, encode_only=True)
        chans = [f.shape[1] for f in feats]
        self.F = ref.PatchSampleF(chans)
        for net in (self.G, self.D, self.F):
            ref.init_xavier(net, 0.02)
        adam = lambda p: torch.optim.Adam(p, lr=2e-4, betas=(0.5, 0.999))  # noqa: E731
        self.oG, self.oD, self.oF = adam(self.G.parameters()), adam(self.D.parameters()), adam(self.F.parameters())
        if mode == "negcut":
            self.N = ref.NegativeGenerator(len(self.layers))
            self.F_ = ref.PatchSampleF(chans)
            ref.init_xavier(self.N, 0.02)
            ref.init_xavier(self.F_, 0.02)
            self.oN = adam(self.N.parameters())

    def nce(self, src, tgt, negatives):
        fq = self.G(tgt, self.layers, encode_only=True)
        fk = self.G(src, self.layers, encode_only=True)
        kp, ids = self.F(fk, 256, None)
        qp, _ = self.F(fq, 256, ids)
        total, negs = 0.0, []
        if negatives:
            hall, _ = self.F_(fk, 0, None)
        for l, (q, k) in enumerate(zip(qp, kp)):
            if negatives:
                z = torch.randn(src.shape[0], 256, 64)
                n = self.N(l, hall[l], z)
                negs.append(n)
                total = total + ref.learned_nce(q, k, n, src.shape[0]).mean()
            else:
                total = total + ref.patch_nce(q, k, src.shape[0]).mean()
        return total / len(self.layers), negs

    def step(self, a, b):
        neg = self.mode == "negcut"
        batch = a.shape[0]
        fake = self.G(torch.cat([a, b]))
        fake_b, idt_b = fake[:batch], fake[batch:]
        # D step
        self.oD.zero_grad()
        ld = 0.5 * ((self.D(fake_b.detach()) ** 2).mean() + ((self.D(b) - 1) ** 2).mean())
        ld.backward()
        self.oD.step()
        if neg:  # N step: recomputes everything, q and k detached in the loss
            self.oN.zero_grad()
            x, _ = self.nce(a, fake_b.detach(), True)
            y, negs = self.nce(b, idt_b.detach(), True)
            div = sum(-(n.view(batch, 256, -1)[:, :128] - n.view(batch, 256, -1)[:, 128:]).abs().mean()
                      for n in negs)
            (-(x + y) * 0.5 + div / len(negs)).backward()
            self.oN.step()
        for p in self.D.parameters():
            p.requires_grad_(False)
        if neg:
            for p in self.N.parameters():
                p.requires_grad_(False)
        self.oG.zero_grad()
        self.oF.zero_grad()
        lg = ((self.D(fake_b) - 1) ** 2).mean()
        x, _ = self.nce(a, fake_b, neg)
        y, _ = self.nce(b, idt_b, neg)
        (lg + 0.5 * (x + y)).backward()
        self.oG.step()
        self.oF.step()
        for p in self.D.parameters():
            p.requires_grad_(True)
        if neg:
            for p in self.N.parameters():
                p.requires_grad_(True)
            with torch.no_grad():
                for p_, p in zip(self.F_.parameters(), self.F.parameters()):
                    p_.mul_(0.9).add_(p, alpha=0.1)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("what", choices=["infer", "train"])
    ap.add_argument("--mode", default="cut")
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--ngf", type=int, default=64)
    ap.add_argument("--blocks", type=int, default=9)
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--bf16", action="store_true")
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--tf32", action="store_true",
                    help="GPU: let cuDNN use TF32, PyTorch's own default (matrix products stay "
                         "fp32, also its default); without it fp32 is exact fp32, as libnegcut's "
                         "default")
    ap.add_argument("--compile", action="store_true",
                    help="infer: torch.compile(mode='reduce-overhead'), CUDA graphs on a GPU; "
                         "its compile time is in the untimed warm-up")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    if a.device == "cuda":
        # every tensor and module made below lands on the GPU (ANCHORS.md: cudnn.benchmark on)
        torch.set_default_device("cuda")
        torch.backends.cudnn.benchmark = True
        torch.backends.cudnn.allow_tf32 = a.tf32
        torch.backends.cuda.matmul.allow_tf32 = False

    def now():
        if a.device == "cuda":
            torch.cuda.synchronize()  # the GPU runs behind the host
        return time.perf_counter()

    times = []
    if a.what == "infer":
        g = ref.ResnetGenerator(ngf=a.ngf, n_blocks=a.blocks).eval()
        ref.init_xavier(g, 1.0)
        x = torch.rand(a.batch, 3, a.size, a.size) * 2 - 1
        warm = 1
        if a.compile:
            if not hasattr(torch, "compile"):
                sys.exit("bench_torch.py: --compile needs PyTorch 2 (this is %s)" % torch.__version__)
            g = torch.compile(g, mode="reduce-overhead")
            warm = 3  # compile, then CUDA graph recording
        with torch.no_grad():
            for i in range(a.reps + warm):
                t0 = now()
                if a.bf16:
                    with torch.autocast(a.device, dtype=torch.bfloat16):
                        g(x)
                else:
                    g(x)
                if i >= warm:
                    times.append(now() - t0)
    else:
        it = Iteration(a.mode, a.ngf, a.size, a.blocks)
        shape = (a.batch, 3, a.size, a.size)
        x, y = torch.rand(shape) * 2 - 1, torch.rand(shape) * 2 - 1
        for i in range(a.reps + 1):
            t0 = now()
            it.step(x, y)
            if i:
                times.append(now() - t0)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print("times " + " ".join("%.6f" % t for t in times) + " rss_kib %d" % rss)


if __name__ == "__main__":
    main()
