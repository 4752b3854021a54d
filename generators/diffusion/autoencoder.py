"""KL autoencoder over weight tokens (D2NWG's first stage), and its fixed-step training.

Every token (a chunk of one layer's normalized weights, :mod:`generators.diffusion.tokens`) is
mapped to ``latent`` values by a linear map of its own position (:class:`TokenLinear`; one map
shared by all positions cannot reconstruct ~70 nets' chunks at 28 positions), then a residual
network over the latent tokens (a learned position embedding, a 1-D convolution over the token
axis, zero-initialised output) gives the posterior mean and log-variance. The decoder mirrors
it: a residual network over the latent tokens, then a linear map per position back to the chunk.

The linear maps start at a whitened per-position PCA of the training tokens
(:meth:`WeightAutoencoder.init_pca`), so the untrained autoencoder already reconstructs the
training nets up to their components past ``latent``; training (L1 reconstruction on the real
coordinates, each net's mean weighing the same whatever its width, plus a KL term of small
weight, D2NWG's 1e-6) refines the whole. After training, latents are rescaled to unit std
(:func:`latent_scale`): p-diff's users saw generation collapse when latents grew large.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

LOGVAR_RANGE = (-30.0, 20.0)
LOGVAR_INIT = -8.0  # the untrained posterior's log-variance, per unit-variance latent


class TokenLinear(nn.Module):
    """A separate linear map for every token position: (B, T, a) -> (B, T, b)."""

    def __init__(self, tokens: int, a: int, b: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(tokens, a, b) / a**0.5)
        self.bias = nn.Parameter(torch.zeros(tokens, b))

    def forward(self, x: Tensor) -> Tensor:
        return torch.bmm(x.transpose(0, 1), self.weight).transpose(0, 1) + self.bias


class LatentResidual(nn.Module):
    """(B, T, latent) -> (B, T, out): an MLP over each latent token with its position, mixed
    with its neighbours by a 1-D convolution over the token axis; zero-initialised output."""

    def __init__(self, tokens: int, latent: int, hidden: int, out: int) -> None:
        super().__init__()
        self.inp = nn.Linear(latent, hidden)
        self.pos = nn.Parameter(torch.randn(tokens, hidden) * 0.02)
        self.norm = nn.LayerNorm(hidden)
        self.conv = nn.Conv1d(hidden, hidden, kernel_size=3, padding=1)
        self.out = nn.Linear(hidden, out)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, u: Tensor) -> Tensor:
        h = nn.functional.gelu(self.inp(u) + self.pos)
        h = h + self.conv(nn.functional.gelu(self.norm(h)).transpose(1, 2)).transpose(1, 2)
        return self.out(nn.functional.gelu(h))


class WeightAutoencoder(nn.Module):
    """tokens (B, T, size) <-> latents (B, T, latent)."""

    def __init__(self, tokens: int, size: int, latent: int, hidden: int) -> None:
        super().__init__()
        self.latent = latent
        self.enc_lin = TokenLinear(tokens, size, latent)
        self.enc_res = LatentResidual(tokens, latent, hidden, 2 * latent)
        self.dec_res = LatentResidual(tokens, latent, hidden, latent)
        self.dec_lin = TokenLinear(tokens, latent, size)
        with torch.no_grad():
            self.enc_res.out.bias[latent:] = LOGVAR_INIT

    @torch.no_grad()
    def init_pca(self, tokens: Tensor) -> None:
        """Set the linear maps to each position's whitened PCA of ``tokens`` (M, T, size): the
        first ``latent`` components, each scaled to unit variance over the training tokens."""
        for t in range(tokens.shape[1]):
            x = tokens[:, t].double()  # (M, size)
            mean = x.mean(0)
            _, s, vh = torch.linalg.svd(x - mean, full_matrices=False)
            k = min(self.latent, len(s))
            std = s[:k] / max(len(x) - 1, 1) ** 0.5
            keep = std > 1e-6 * std.max().clamp_min(1e-12)
            basis = vh[:k] * keep.unsqueeze(-1)  # (k, size)
            self.enc_lin.weight[t].zero_()
            self.dec_lin.weight[t].zero_()
            self.enc_lin.weight[t, :, :k] = (basis.T / std.clamp_min(1e-12)).float()
            self.enc_lin.bias[t] = 0.0
            self.enc_lin.bias[t, :k] = -(mean @ self.enc_lin.weight[t, :, :k].double()).float()
            self.dec_lin.weight[t, :k] = (basis * std.unsqueeze(-1)).float()
            self.dec_lin.bias[t] = mean.float()

    def encode(self, tokens: Tensor) -> tuple[Tensor, Tensor]:
        """(B, T, size) -> posterior mean and log-variance, (B, T, latent) each."""
        u = self.enc_lin(tokens)
        delta, logvar = self.enc_res(u).chunk(2, dim=-1)
        return u + delta, logvar.clamp(*LOGVAR_RANGE)

    def decode(self, latents: Tensor) -> Tensor:
        """(B, T, latent) -> (B, T, size) reconstructed tokens."""
        return self.dec_lin(latents + self.dec_res(latents))


def autoencoder_loss(
    ae: WeightAutoencoder, tokens: Tensor, mask: Tensor, rng: torch.Generator, kl_weight: float
) -> Tensor:
    """L1 reconstruction of a posterior draw on the real coordinates ``mask`` (B, T, size) of
    ``tokens`` (each net's mean over its own coordinates, so narrow nets weigh as much as wide
    ones) + ``kl_weight`` x KL(posterior || N(0, 1)) per latent value."""
    mean, logvar = ae.encode(tokens)
    z = mean + (0.5 * logvar).exp() * torch.randn(mean.shape, generator=rng)
    err = ((ae.decode(z) - tokens).abs() * mask).flatten(1).sum(1)
    rec = (err / mask.flatten(1).sum(1).clamp_min(1)).mean()
    kl = 0.5 * (mean.pow(2) + logvar.exp() - 1 - logvar).mean()
    return rec + kl_weight * kl


def train_autoencoder(
    ae: WeightAutoencoder, tokens: Tensor, mask: Tensor, steps: int, batch_size: int, lr: float,
    kl_weight: float, seed: int, callback: Callable[[int, float], None] | None = None,
) -> list[float]:  # fmt: skip
    """PCA initialisation, then ``steps`` AdamW steps (cosine decay) on batches of ``tokens``
    (M, T, size) with their masks (M, T, size), every draw from one rng seeded with ``seed``;
    returns the losses."""
    ae.init_pca(tokens)
    rng = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(ae.parameters(), lr=lr, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, max(1, steps), eta_min=lr * 0.05)
    losses = []
    ae.train()
    for step in range(steps):
        pick = torch.randint(len(tokens), (min(batch_size, len(tokens)),), generator=rng)
        loss = autoencoder_loss(ae, tokens[pick], mask[pick], rng, kl_weight)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(ae.parameters(), 1.0)
        opt.step()
        sched.step()
        losses.append(float(loss.detach()))
        if callback is not None:
            callback(step, losses[-1])
    ae.eval()
    return losses


def latent_scale(means: Tensor, token_mask: Tensor) -> Tensor:
    """The factor that brings the posterior means (M, T, latent) of the real tokens
    ``token_mask`` (M, T) to unit std (a 0-d tensor; 1 for constant latents)."""
    real = means[token_mask]  # (R, latent)
    std = real.std() if real.numel() > 1 else torch.tensor(1.0)
    return 1.0 / std if float(std) > 1e-8 else torch.tensor(1.0)
