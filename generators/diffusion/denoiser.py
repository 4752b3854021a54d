"""The denoiser: a small transformer over latent tokens (DiT-style), conditioned by adaLN.

Input: the noisy latents (B, T, latent) of one net, its timestep (B,) and a conditioning vector
(B, dim) (task embedding + width + property, :class:`Conditioning`). Every latent token is
embedded with its position; the timestep goes through diffusers' sinusoidal ``Timesteps`` and
``TimestepEmbedding``; time + conditioning set the shift, scale and gate of every block's layer
norms (adaLN-zero: the gates start at 0, so an untrained block is the identity and the untrained
denoiser predicts zero). Output: the predicted velocity (v-prediction, :mod:`.schedule`),
(B, T, latent).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


class Block(nn.Module):
    """Self-attention + MLP over tokens, each modulated by (shift, scale, gate) from c."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"denoiser.dim ({dim}) must be a multiple of denoiser.heads ({heads})")
        self.heads = heads
        self.norm1 = nn.LayerNorm(dim, elementwise_affine=False)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.norm2 = nn.LayerNorm(dim, elementwise_affine=False)
        self.mlp = nn.Sequential(nn.Linear(dim, 2 * dim), nn.GELU(), nn.Linear(2 * dim, dim))
        self.ada = nn.Linear(dim, 6 * dim)
        nn.init.zeros_(self.ada.weight)
        nn.init.zeros_(self.ada.bias)

    def forward(self, h: Tensor, c: Tensor) -> Tensor:
        """h (B, T, dim), c (B, dim) -> (B, T, dim)."""
        s1, k1, g1, s2, k2, g2 = self.ada(nn.functional.silu(c)).unsqueeze(1).chunk(6, dim=-1)
        b, t, d = h.shape
        x = self.norm1(h) * (1 + k1) + s1
        q, k, v = self.qkv(x).reshape(b, t, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        a = nn.functional.scaled_dot_product_attention(q, k, v)  # (B, heads, T, d / heads)
        h = h + g1 * self.proj(a.transpose(1, 2).reshape(b, t, d))
        return h + g2 * self.mlp(self.norm2(h) * (1 + k2) + s2)


class Denoiser(nn.Module):
    """v(x_t, t, c): x_t (B, T, latent), t (B,) timesteps, c (B, dim) -> (B, T, latent)."""

    def __init__(self, tokens: int, latent: int, dim: int, depth: int, heads: int) -> None:
        from diffusers.models.embeddings import TimestepEmbedding, Timesteps  # slow to import

        super().__init__()
        self.inp = nn.Linear(latent, dim)
        self.pos = nn.Parameter(torch.randn(tokens, dim) * 0.02)
        self.time_proj = Timesteps(dim, flip_sin_to_cos=True, downscale_freq_shift=0)
        self.time_embed = TimestepEmbedding(dim, dim)
        self.blocks = nn.ModuleList(Block(dim, heads) for _ in range(depth))
        self.norm = nn.LayerNorm(dim, elementwise_affine=False)
        self.ada = nn.Linear(dim, 2 * dim)
        self.out = nn.Linear(dim, latent)
        for layer in (self.ada, self.out):
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)

    def forward(self, x: Tensor, t: Tensor, c: Tensor) -> Tensor:
        c = c + self.time_embed(self.time_proj(t.reshape(-1)).to(x.dtype)).expand_as(c)
        h = self.inp(x) + self.pos
        for block in self.blocks:
            h = block(h, c)
        shift, scale = self.ada(nn.functional.silu(c)).unsqueeze(1).chunk(2, dim=-1)
        return self.out(self.norm(h) * (1 + scale) + shift)


class Conditioning(nn.Module):
    """(task embedding or null, width id, property or null) -> (B, dim), summed. The task and
    the property are dropped together for classifier-free guidance; the width, structural,
    never is."""

    def __init__(self, num_widths: int, dim: int, use_property: bool) -> None:
        super().__init__()
        self.width = nn.Embedding(num_widths, dim)
        self.null_task = nn.Parameter(torch.zeros(dim))
        self.use_property = use_property
        self.prop = nn.Sequential(nn.Linear(1, dim), nn.GELU(), nn.Linear(dim, dim))
        self.null_prop = nn.Parameter(torch.zeros(dim))

    def forward(
        self, task: Tensor, width: Tensor, prop: Tensor, has_prop: Tensor, drop: Tensor
    ) -> Tensor:
        """task (B, dim) embeddings; width (B,) long; prop (B,) standardized; has_prop, drop
        (B,) bool -> (B, dim)."""
        d = drop.unsqueeze(-1)
        out = torch.where(d, self.null_task, task) + self.width(width)
        if self.use_property:
            keep = (has_prop & ~drop).unsqueeze(-1)
            out = out + torch.where(keep, self.prop(prop.unsqueeze(-1)), self.null_prop)
        return out
