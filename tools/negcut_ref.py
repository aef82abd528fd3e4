"""The CUT / NEGCUT networks and losses in PyTorch, written from REFERENCE.md.

Our own code, used as the oracle for libnegcut's parity tests and by the
conversion tools. Module structure and state_dict names follow the reference
(one nn.Sequential called `model`, `conv_block` inside ResNet blocks, `filt`
buffers, `mlp_<l>.0/.2` in the projector and the negative generator).
"""
import torch
import torch.nn as nn
import torch.nn.functional as F


def init_xavier(net, gain=0.02):
    for m in net.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.xavier_normal_(m.weight, gain=gain)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


class Downsample(nn.Module):
    """Blur-pool: reflect pad 1, [1,2,1]^2/16 depthwise, stride 2."""

    def __init__(self, channels):
        super().__init__()
        a = torch.tensor([1.0, 2.0, 1.0])
        filt = (a[:, None] * a[None, :]) / 16.0
        self.register_buffer("filt", filt[None, None].repeat(channels, 1, 1, 1))
        self.pad = nn.ReflectionPad2d(1)
        self.channels = channels

    def forward(self, x):
        return F.conv2d(self.pad(x), self.filt, stride=2, groups=self.channels)


class Upsample(nn.Module):
    """Replicate pad 1, [1,3,3,1]^2/64*4 depthwise transposed conv stride 2,
    padding 2, then drop the first and (even filter) the last row/column."""

    def __init__(self, channels):
        super().__init__()
        a = torch.tensor([1.0, 3.0, 3.0, 1.0])
        filt = (a[:, None] * a[None, :]) / 64.0 * 4.0
        self.register_buffer("filt", filt[None, None].repeat(channels, 1, 1, 1))
        self.pad = nn.ReplicationPad2d(1)
        self.channels = channels

    def forward(self, x):
        y = F.conv_transpose2d(self.pad(x), self.filt, stride=2, padding=2,
                               groups=self.channels)[:, :, 1:, 1:]
        return y[:, :, :-1, :-1]


def norm(c):
    return nn.InstanceNorm2d(c, affine=False, track_running_stats=False)


class ResnetBlock(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.conv_block = nn.Sequential(
            nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3, bias=True), norm(dim), nn.ReLU(True),
            nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3, bias=True), norm(dim))

    def forward(self, x):
        return x + self.conv_block(x)


class ResnetGenerator(nn.Module):
    def __init__(self, input_nc=3, output_nc=3, ngf=64, n_blocks=9,
                 no_antialias=False, no_antialias_up=False):
        super().__init__()
        m = [nn.ReflectionPad2d(3), nn.Conv2d(input_nc, ngf, 7, bias=True), norm(ngf), nn.ReLU(True)]
        for i in range(2):
            mult = 2 ** i
            cin, cout = ngf * mult, ngf * mult * 2
            if no_antialias:
                m += [nn.Conv2d(cin, cout, 3, stride=2, padding=1, bias=True), norm(cout), nn.ReLU(True)]
            else:
                m += [nn.Conv2d(cin, cout, 3, stride=1, padding=1, bias=True), norm(cout), nn.ReLU(True),
                      Downsample(cout)]
        for _ in range(n_blocks):
            m += [ResnetBlock(ngf * 4)]
        for i in range(2):
            mult = 2 ** (2 - i)
            cin, cout = ngf * mult, ngf * mult // 2
            if no_antialias_up:
                m += [nn.ConvTranspose2d(cin, cout, 3, stride=2, padding=1, output_padding=1, bias=True),
                      norm(cout), nn.ReLU(True)]
            else:
                m += [Upsample(cin), nn.Conv2d(cin, cout, 3, stride=1, padding=1, bias=True),
                      norm(cout), nn.ReLU(True)]
        m += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, output_nc, 7, padding=0), nn.Tanh()]
        self.model = nn.Sequential(*m)

    def forward(self, x, layers=(), encode_only=False):
        if not layers:
            return self.model(x)
        feats, feat = [], x
        for idx, layer in enumerate(self.model):
            feat = layer(feat)
            if idx in layers:
                feats.append(feat)
            if idx == layers[-1] and encode_only:
                return feats
        return feat, feats


class NLayerDiscriminator(nn.Module):
    def __init__(self, input_nc=3, ndf=64, n_layers=3, no_antialias=False):
        super().__init__()
        kw, pw = 4, 1
        if no_antialias:
            seq = [nn.Conv2d(input_nc, ndf, kw, stride=2, padding=pw), nn.LeakyReLU(0.2, True)]
        else:
            seq = [nn.Conv2d(input_nc, ndf, kw, stride=1, padding=pw), nn.LeakyReLU(0.2, True),
                   Downsample(ndf)]
        mult = 1
        for n in range(1, n_layers):
            prev, mult = mult, min(2 ** n, 8)
            if no_antialias:
                seq += [nn.Conv2d(ndf * prev, ndf * mult, kw, stride=2, padding=pw, bias=True),
                        norm(ndf * mult), nn.LeakyReLU(0.2, True)]
            else:
                seq += [nn.Conv2d(ndf * prev, ndf * mult, kw, stride=1, padding=pw, bias=True),
                        norm(ndf * mult), nn.LeakyReLU(0.2, True), Downsample(ndf * mult)]
        prev, mult = mult, min(2 ** n_layers, 8)
        seq += [nn.Conv2d(ndf * prev, ndf * mult, kw, stride=1, padding=pw, bias=True),
                norm(ndf * mult), nn.LeakyReLU(0.2, True)]
        seq += [nn.Conv2d(ndf * mult, 1, kw, stride=1, padding=pw)]
        self.model = nn.Sequential(*seq)

    def forward(self, x):
        return self.model(x)


def l2norm(x, dim=1):
    return x / (x.pow(2).sum(dim, keepdim=True).pow(0.5) + 1e-7)


class PatchSampleF(nn.Module):
    """Projector. Created eagerly here (the reference builds it lazily on the
    first forward, then re-initialises the whole net: same distribution)."""

    def __init__(self, channels, nc=256):
        super().__init__()
        self.nc = nc
        for i, c in enumerate(channels):
            setattr(self, "mlp_%d" % i, nn.Sequential(nn.Linear(c, nc), nn.ReLU(), nn.Linear(nc, nc)))

    def forward(self, feats, num_patches=256, patch_ids=None):
        """patch_ids: list of LongTensors (or None to draw with torch.randperm).
        num_patches 0: every position, normalised over channels (NEGCUT's F_)."""
        out_feats, out_ids = [], []
        for i, feat in enumerate(feats):
            b, h, w = feat.shape[0], feat.shape[2], feat.shape[3]
            fr = feat.permute(0, 2, 3, 1).flatten(1, 2)  # (B, HW, C)
            mlp = getattr(self, "mlp_%d" % i)
            if num_patches > 0:
                ids = patch_ids[i] if patch_ids is not None else \
                    torch.randperm(fr.shape[1])[: min(num_patches, fr.shape[1])]
                x = fr[:, ids, :].flatten(0, 1)  # (B*S, C)
                x = l2norm(mlp(x))
            else:
                ids = torch.arange(fr.shape[1])
                x = l2norm(mlp(fr.flatten(0, 1)))  # (B*HW, nc), per position
                x = x.reshape(b, h * w, self.nc)
            out_feats.append(x)
            out_ids.append(ids)
        return out_feats, out_ids


class NegativeGenerator(nn.Module):
    """NEGCUT neg_gen_momentum: per layer Linear(nc+z, nc)-ReLU-Linear(nc, nc), L2."""

    def __init__(self, n_layers, nc=256, z_dim=64):
        super().__init__()
        self.nc, self.z_dim = nc, z_dim
        for i in range(n_layers):
            setattr(self, "mlp_%d" % i, nn.Sequential(nn.Linear(nc + z_dim, nc), nn.ReLU(), nn.Linear(nc, nc)))

    def forward(self, layer, h_all, z, num_negs=256):
        """h_all: (B, HW, nc) all-position projector output; z: (B, num_negs, z_dim).
        Returns (B*num_negs, nc)."""
        mean = h_all.mean(dim=1)  # (B, nc), not re-normalised
        rep = mean[:, None, :].expand(-1, num_negs, -1)
        x = torch.cat([rep, z], dim=2).flatten(0, 1)
        return l2norm(getattr(self, "mlp_%d" % layer)(x))


def patch_nce(q, k, batch, tau=0.07):
    """CUT PatchNCE for one layer: q, k (B*S, C). Returns per-query loss (B*S)."""
    k = k.detach()
    n, dim = q.shape
    l_pos = (q * k).sum(dim=1, keepdim=True)
    qb, kb = q.view(batch, -1, dim), k.view(batch, -1, dim)
    s = qb.shape[1]
    l_neg = torch.bmm(qb, kb.transpose(2, 1))
    diag = torch.eye(s, dtype=torch.bool)[None]
    l_neg = l_neg.masked_fill(diag, -10.0).view(-1, s)
    logits = torch.cat([l_pos, l_neg], dim=1) / tau
    return F.cross_entropy(logits, torch.zeros(n, dtype=torch.long), reduction="none")


def learned_nce(q, k, negs, batch, tau=0.07):
    """NEGCUT: only generated negatives (B*N, C), no mask; k detached, negs not."""
    k = k.detach()
    n, dim = q.shape
    l_pos = (q * k).sum(dim=1, keepdim=True)
    qb = q.view(batch, -1, dim)
    nb = negs.view(batch, -1, dim)
    l_neg = torch.bmm(qb, nb.transpose(2, 1)).reshape(n, -1)
    logits = torch.cat([l_pos, l_neg], dim=1) / tau
    return F.cross_entropy(logits, torch.zeros(n, dtype=torch.long), reduction="none")
