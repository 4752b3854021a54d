"""Every trainable part of the diffusion generator as one module (saved and restored by name)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from generators.diffusion.autoencoder import WeightAutoencoder
from generators.diffusion.config import DiffusionConfig
from generators.diffusion.denoiser import Conditioning, Denoiser
from generators.diffusion.task_encoder import SetFeatures, TaskEncoder


class DiffusionNetwork(nn.Module):
    """autoencoder (trained first, then frozen), task encoder, conditioning, denoiser, and the
    two projections of the contrastive loss (weight latents and task embeddings into one space)."""

    def __init__(
        self, tokens: int, size: int, latent: int, num_widths: int, features: SetFeatures,
        cfg: DiffusionConfig, use_property: bool,
    ) -> None:  # fmt: skip
        super().__init__()
        ac, tc, dc = cfg.autoencoder, cfg.task_encoder, cfg.denoiser
        self.autoencoder = WeightAutoencoder(tokens, size, latent, ac.hidden)
        self.task_encoder = TaskEncoder(features, tc.hidden, tc.heads, dc.dim)
        self.cond = Conditioning(num_widths, dc.dim, use_property)
        self.denoiser = Denoiser(tokens, latent, dc.dim, dc.depth, dc.heads)
        self.weight_proj = nn.Linear(latent, dc.dim)
        self.task_proj = nn.Linear(dc.dim, dc.dim)

    def freeze_autoencoder(self) -> None:
        """Trained in ``prepare``: no gradient from the denoiser's loss reaches it (it has no
        dropout or normalization statistics, so train / eval mode changes nothing)."""
        self.autoencoder.requires_grad_(False)

    def contrastive_loss(
        self, latents: Tensor, token_mask: Tensor, tasks: Tensor, embeddings: Tensor,
        temperature: float,
    ) -> Tensor:  # fmt: skip
        """CLIP-style cross-entropy of every net's latents (B, T, latent) (mean over its real
        tokens ``token_mask`` (B, T)) against the embeddings (K, dim) of the batch's K tasks;
        ``tasks`` (B,): each net's row in ``embeddings``."""
        m = token_mask.unsqueeze(-1).float()
        pooled = (latents * m).sum(1) / m.sum(1).clamp_min(1)  # (B, latent)
        w = nn.functional.normalize(self.weight_proj(pooled), dim=-1)
        e = nn.functional.normalize(self.task_proj(embeddings), dim=-1)
        return nn.functional.cross_entropy(w @ e.T / temperature, tasks)

    def condition(
        self, task: Tensor, width: Tensor, prop: Tensor, has_prop: Tensor, drop: Tensor
    ) -> Tensor:
        return self.cond(task, width, prop, has_prop, drop)

    def velocity(self, x: Tensor, t: Tensor, c: Tensor) -> Tensor:
        return self.denoiser(x, t, c)

    @torch.no_grad()
    def decode(self, latents: Tensor) -> Tensor:
        return self.autoencoder.decode(latents)
