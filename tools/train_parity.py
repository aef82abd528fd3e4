"""Training parity data for libnegcut (STYLE.md 17): one CUT / FastCUT /
NEGCUT iteration in PyTorch, written literally from REFERENCE.md 4-7 on the
networks and losses of negcut_ref.py, and four more iterations.

Usage: train_parity.py OUTDIR

Writes OUTDIR/<config>.safetensors for each configuration of CONFIGS:
  - the initial weights under their state_dict names with a prefix per net:
    "G.", "D.", "F.", and for NEGCUT "N." and "F_." (F_ with its own init);
  - per iteration k = 0..ITERS-1: "it<k>.real_A", "it<k>.real_B" (B, 3, H, W),
    the injected randomness in the order the C trainer consumes it
    (lib/train/step.c: the flip bit first; then the N step's NCE calls X and,
    with nce_idt, Y; then the G step's calls X and Y; in each call, layer by
    layer, the patch ids and then, for NEGCUT, the noise):
      "it<k>.flip"     (1) int64, 0 or 1 (only with flip equivariance)
      "it<k>.id_shape" (n_draws, 2) int64: (H_l * W_l, n) of each id draw
      "it<k>.ids"      (sum n) int64: the draws concatenated
      "it<k>.noise"    (sum B * S * z_dim) float32: the noise draws concatenated
    and "it<k>.losses" (9) float32 in the order of ngc_train_losses:
      d_real, d_fake, d, g_gan, nce_x, nce_y, g, n, div
    (d_real, d_fake: the MSE of each D output; d = 0.5 (d_real + d_fake);
    g_gan = lambda_GAN MSE(D(fake_B), 1); nce_x, nce_y: the G step's NCE
    values (nce_y 0 without nce_idt); g = g_gan + NCE_both; n = L_N of the N
    step = -NCE_both + div; div = (1/L) sum_l lambda_MS (-mean|n1 - n2|); n and
    div 0 outside NEGCUT);
  - after iteration 0: "grad.<net>.<param>" for G, D, F (and N): each net's
    gradient as its optimiser saw it (D: the D step; N: the N step; G, F: the
    G step), "after.<net>.<param>" for every parameter of every net (F_
    after its EMA; the fixed blur buffers are left out), and "adam_m." /
    "adam_v.<net>.<param>" for G, D, F (and N): the optimiser's moments
    (exp_avg, exp_avg_sq) after its step; after iteration k > 0 the same
    under "it<k>.grad.", "it<k>.after.", "it<k>.adam_m." and "it<k>.adam_v.".
Metadata: mode, h, w, batch, iters.
"""
import os
import sys

import torch
import torch.nn.functional as Fn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import negcut_ref as ref  # noqa: E402
import safetensors_io  # noqa: E402

NGF, NDF, N_BLOCKS, N_LAYERS_D = 8, 8, 2, 3
NCE_LAYERS = [0, 4, 8, 12, 13]  # with 2 blocks, modules 12 and 13 are the ResBlocks
NUM_PATCHES, NETF_NC, Z_DIM = 16, 32, 8
TAU, LAMBDA_GAN, LAMBDA_MS = 0.07, 1.0, 1.0
LR, BETAS = 2e-4, (0.5, 0.999)
EMA = 0.9
GAIN = 0.5  # the reference's 0.02 gives tiny activations; 0.5 exercises every path
ITERS = 5
BIAS_STD = 0.1  # random biases: zero ones would leave the bias paths unexercised

# name, mode, H, W, batch, flip forced on in iteration 0 (None: drawn)
CONFIGS = [
    ("cut_32_b1", "cut", 32, 32, 1, None),
    ("fastcut_32_b1", "fastcut", 32, 32, 1, 1),
    ("negcut_32_b1", "negcut", 32, 32, 1, None),
    ("cut_64x48_b2", "cut", 64, 48, 2, None),
    ("fastcut_64x48_b2", "fastcut", 64, 48, 2, 0),
    ("negcut_64x48_b2", "negcut", 64, 48, 2, None),
]


class ContiguousGrad(torch.autograd.Function):
    """Identity whose backward makes the gradient contiguous.

    Works around a PyTorch 1.13 CPU bug: instance_norm's backward is wrong
    when grad_output is channels_last-strided, which is what the projector's
    permute(0, 2, 3, 1) hands back for a batch-1 feature (for batch > 1 the
    (1, B*C, H, W) reshape inside instance_norm copies, hiding the bug). The
    G features of the NCE layers are IN outputs (through the ResNet blocks'
    adds), so without this the reference's G gradients are wrong for B = 1
    (checked against finite differences in float64)."""

    @staticmethod
    def forward(ctx, x):
        return x.view_as(x)

    @staticmethod
    def backward(ctx, g):
        return g.contiguous()


def contiguous_grad(feats):
    return [ContiguousGrad.apply(f) for f in feats]


class Draws:
    """Draws the randomness of one iteration and records it in order."""

    def __init__(self):
        self.flip, self.id_shape, self.ids, self.noise = None, [], [], []

    def draw_flip(self, forced):
        u = torch.rand(1).item()
        self.flip = int(u < 0.5) if forced is None else forced
        return self.flip

    def draw_ids(self, hw):
        n = min(NUM_PATCHES, hw)
        ids = torch.randperm(hw)[:n]
        self.id_shape.append([hw, n])
        self.ids.append(ids)
        return ids

    def draw_noise(self, b):
        z = torch.randn(b * NUM_PATCHES, Z_DIM)
        self.noise.append(z.flatten())
        return z.view(b, NUM_PATCHES, Z_DIM)

    def dump(self, out, k):
        if self.flip is not None:
            out["it%d.flip" % k] = torch.tensor([self.flip], dtype=torch.int64)
        out["it%d.id_shape" % k] = torch.tensor(self.id_shape, dtype=torch.int64)
        out["it%d.ids" % k] = torch.cat(self.ids).to(torch.int64)
        if self.noise:
            out["it%d.noise" % k] = torch.cat(self.noise)


class Trainer:
    def __init__(self, mode, batch):
        self.mode, self.b = mode, batch
        self.neg = mode == "negcut"
        self.idt = mode in ("cut", "negcut")
        self.flip_eq = mode == "fastcut"
        self.lambda_nce = 10.0 if mode == "fastcut" else 1.0
        self.G = ref.ResnetGenerator(3, 3, NGF, N_BLOCKS)
        self.D = ref.NLayerDiscriminator(3, NDF, N_LAYERS_D)
        chans = [3, 2 * NGF, 4 * NGF, 4 * NGF, 4 * NGF]
        self.F = ref.PatchSampleF(chans, NETF_NC)
        nets = [self.G, self.D, self.F]
        if self.neg:
            self.N = ref.NegativeGenerator(len(NCE_LAYERS), NETF_NC, Z_DIM)
            self.F_ = ref.PatchSampleF(chans, NETF_NC)  # its own init, not a copy of F
            nets += [self.N, self.F_]
        for net in nets:
            ref.init_xavier(net, GAIN)
            with torch.no_grad():
                for name, p in net.named_parameters():
                    if name.endswith("bias"):
                        p.normal_(0.0, BIAS_STD)
        adam = lambda net: torch.optim.Adam(net.parameters(), lr=LR, betas=BETAS, eps=1e-8)  # noqa: E731
        self.opt_g, self.opt_d, self.opt_f = adam(self.G), adam(self.D), adam(self.F)
        if self.neg:
            self.opt_n = adam(self.N)

    def optimizer(self, prefix):
        return {"G": self.opt_g, "D": self.opt_d, "F": self.opt_f,
                "N": getattr(self, "opt_n", None)}.get(prefix)

    def nets(self):
        out = [("G", self.G), ("D", self.D), ("F", self.F)]
        if self.neg:
            out += [("N", self.N), ("F_", self.F_)]
        return out

    def nce(self, src, tgt, flipped, draws, detach_qk):
        """One NCE call (REFERENCE.md 4, 7): lambda_NCE * (sum over layers of
        the mean per-query loss) / L, and the negatives of each layer."""
        feat_q = contiguous_grad(self.G(tgt, NCE_LAYERS, encode_only=True))
        if flipped:
            feat_q = [torch.flip(f, [3]) for f in feat_q]
        feat_k = contiguous_grad(self.G(src, NCE_LAYERS, encode_only=True))
        ids, zs = [], []
        for f in feat_k:  # draw order of step.c: per layer, ids then noise
            ids.append(draws.draw_ids(f.shape[2] * f.shape[3]))
            if self.neg:
                zs.append(draws.draw_noise(self.b))
        k_pool, _ = self.F(feat_k, NUM_PATCHES, ids)
        q_pool, _ = self.F(feat_q, NUM_PATCHES, ids)
        negs = []
        if self.neg:
            h_all, _ = self.F_(feat_k, 0)  # (B, HW, nc) per layer, every position
            negs = [self.N(l, h_all[l], zs[l], NUM_PATCHES) for l in range(len(NCE_LAYERS))]
        total = 0.0
        for l, (q, k) in enumerate(zip(q_pool, k_pool)):
            if detach_qk:
                q, k = q.detach(), k.detach()
            if self.neg:
                per = ref.learned_nce(q, k, negs[l], self.b, TAU)
            else:
                per = ref.patch_nce(q, k, self.b, TAU)
            total = total + per.mean() * self.lambda_nce
        return total / len(NCE_LAYERS), negs

    def step(self, real_A, real_B, draws, forced_flip):
        b = self.b
        flipped = draws.draw_flip(forced_flip) if self.flip_eq else 0
        real = torch.cat((real_A, real_B), 0) if self.idt else real_A
        if flipped:
            real = torch.flip(real, [3])
        fake = self.G(real)
        fake_B = fake[:b]
        idt_B = fake[b:] if self.idt else None

        # D step
        self.D.requires_grad_(True)
        self.opt_d.zero_grad()
        pred_fake = self.D(fake_B.detach())
        d_fake = Fn.mse_loss(pred_fake, torch.zeros_like(pred_fake))
        pred_real = self.D(real_B)
        d_real = Fn.mse_loss(pred_real, torch.ones_like(pred_real))
        loss_d = 0.5 * (d_fake + d_real)
        loss_d.backward()
        self.opt_d.step()
        self.D.requires_grad_(False)

        # N step: N maximises the NCE (q, k detached) plus the diversity of the
        # last call's negatives
        n_val, div_val = 0.0, 0.0
        if self.neg:
            self.N.requires_grad_(True)
            self.opt_n.zero_grad()
            nx, negs = self.nce(real_A, fake_B, flipped, draws, True)
            if self.idt:
                ny, negs = self.nce(real_B, idt_B, flipped, draws, True)
                nce_both = 0.5 * (nx + ny)
            else:
                nce_both = nx
            half = NUM_PATCHES // 2
            div = 0.0
            for n in negs:
                n3 = n.view(b, NUM_PATCHES, -1)
                div = div + LAMBDA_MS * -(n3[:, :half, :] - n3[:, half:, :]).abs().mean()
            div = div / len(NCE_LAYERS)
            loss_n = -nce_both + div
            loss_n.backward()
            self.opt_n.step()
            self.N.requires_grad_(False)
            n_val, div_val = loss_n.item(), div.item()

        # G + F step (the N step's gradients in G are cleared here)
        self.opt_g.zero_grad()
        self.opt_f.zero_grad()
        pred = self.D(fake_B)
        g_gan = Fn.mse_loss(pred, torch.ones_like(pred)) * LAMBDA_GAN
        nce_x, _ = self.nce(real_A, fake_B, flipped, draws, False)
        if self.idt:
            nce_y, _ = self.nce(real_B, idt_B, flipped, draws, False)
            nce_both = 0.5 * (nce_x + nce_y)
        else:
            nce_y, nce_both = torch.zeros(()), nce_x
        loss_g = g_gan + nce_both
        loss_g.backward()
        self.opt_g.step()
        self.opt_f.step()
        if self.neg:  # EMA of F_ over named parameters, after the G/F step
            with torch.no_grad():
                src = dict(self.F.named_parameters())
                for name, p in self.F_.named_parameters():
                    p.mul_(EMA).add_(src[name], alpha=1.0 - EMA)
        return [d_real.item(), d_fake.item(), loss_d.item(), g_gan.item(), nce_x.item(),
                nce_y.item(), loss_g.item(), n_val, div_val]


def run(outdir, name, mode, h, w, b, forced_flip, seed):
    torch.manual_seed(seed)
    t = Trainer(mode, b)
    out = {}
    for prefix, net in t.nets():
        for k, v in net.state_dict().items():
            out["%s.%s" % (prefix, k)] = v.clone()
    for it in range(ITERS):
        real_A = torch.rand(b, 3, h, w) * 2 - 1
        real_B = torch.rand(b, 3, h, w) * 2 - 1
        draws = Draws()
        losses = t.step(real_A, real_B, draws, forced_flip if it == 0 else None)
        out["it%d.real_A" % it] = real_A
        out["it%d.real_B" % it] = real_B
        draws.dump(out, it)
        out["it%d.losses" % it] = torch.tensor(losses, dtype=torch.float32)
        pre = "" if it == 0 else "it%d." % it
        for prefix, net in t.nets():
            if prefix != "F_":  # F_ gradients accumulate but are never used
                for k, p in net.named_parameters():
                    out["%sgrad.%s.%s" % (pre, prefix, k)] = p.grad.clone()
            for k, v in net.named_parameters():
                out["%safter.%s.%s" % (pre, prefix, k)] = v.detach().clone()
            opt = t.optimizer(prefix)
            if opt is not None:
                for k, p in net.named_parameters():
                    out["%sadam_m.%s.%s" % (pre, prefix, k)] = opt.state[p]["exp_avg"].clone()
                    out["%sadam_v.%s.%s" % (pre, prefix, k)] = opt.state[p]["exp_avg_sq"].clone()
    meta = {"mode": mode, "h": h, "w": w, "batch": b, "iters": ITERS}
    safetensors_io.save(os.path.join(outdir, name + ".safetensors"), out, meta)
    return out


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: train_parity.py OUTDIR")
    outdir = sys.argv[1]
    os.makedirs(outdir, exist_ok=True)
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    for i, (name, mode, h, w, b, flip) in enumerate(CONFIGS):
        out = run(outdir, name, mode, h, w, b, flip, 1000 + i)
        print("%s: losses it0 %s" % (name, ", ".join("%.5g" % v for v in out["it0.losses"].tolist())))


if __name__ == "__main__":
    main()
